// The operator namespace the schemas and the CUDA registrations use. dlkernels._cuda_sim compiles
// them a second time with -DDLK_NAMESPACE=dlkernels_sim, so the emulated CUDA kernels live beside
// the real ones. Write STABLE_TORCH_LIBRARY_FRAGMENT(DLK_NAMESPACE, m), never a literal namespace.
// (STABLE_TORCH_LIBRARY itself pastes its argument unexpanded, so each library has its own DEF:
// schema/library.cpp and cuda/sim_module.cpp.)
#pragma once

#include <torch/csrc/stable/library.h>

#ifndef DLK_NAMESPACE
#define DLK_NAMESPACE dlkernels
#endif
