// The CPU kernels compiled for the avx2 instruction set (see cpu/isa.h and cpu/isa/prelude.h).
#include "cpu/isa/prelude.h"
// clang-format off
#if DLK_X86
#pragma GCC target("avx2,fma,bmi2")
#define DLK_ISA avx2
#include "cpu/simd/avx2.h"
#include "cpu/kernels/activation.h"
#include "cpu/kernels/gemm.h"
#include "cpu/kernels/conv2d.h"
#endif  // DLK_X86
// clang-format on
