// Stand-in for the CUDA toolkit header of the same name when a .cu file is compiled as C++ for the
// SIMT emulator (csrc/cuda/sim/README.md). Only on the include path of sim builds.
#pragma once
#ifndef DLK_CUDA_SIM
#error "csrc/cuda/sim/include is for sim builds: compile with -DDLK_CUDA_SIM"
#endif
#include "../sim.h"
