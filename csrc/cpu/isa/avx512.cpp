// The CPU kernels compiled for the avx512 instruction set (see cpu/isa.h and cpu/isa/prelude.h).
#include "cpu/isa/prelude.h"
// clang-format off
#if DLK_X86
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma,bmi2")
// GCC 12 reports the _mm512_undefined_*() temporaries inside its own intrinsics as uninitialized.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#define DLK_ISA avx512
#include "cpu/simd/avx512.h"
#include "cpu/kernels/activation.h"
#include "cpu/kernels/gemm.h"
#include "cpu/kernels/conv2d.h"
#endif  // DLK_X86
// clang-format on
