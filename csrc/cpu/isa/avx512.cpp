// The CPU kernels compiled for the avx512 instruction set (see cpu/isa.h and cpu/isa/prelude.h).
#include "cpu/isa/prelude.h"
// clang-format off
#if DLK_X86
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma,bmi2")
// GCC 12 reports its own _mm512_undefined_*() temporaries inside the intrinsics as uninitialized.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#define DLK_ISA avx512
#include "cpu/simd/avx512.h"
#include "cpu/kernels/activation.h"
#endif
// clang-format on
