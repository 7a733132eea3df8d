// The CPU kernels compiled for the baseline instruction set (see cpu/isa.h and cpu/isa/prelude.h).
#include "cpu/isa/prelude.h"
// clang-format off
// Compiled for the build's default target: no pragma.
#define DLK_ISA baseline
#include "cpu/simd/baseline.h"
#include "cpu/kernels/activation.h"
#include "cpu/kernels/gemm.h"
#include "cpu/kernels/conv2d.h"

// clang-format on
