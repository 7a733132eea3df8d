// Opens the avx512 target for one generated kernel unit (see cpu/isa/prelude.h). No include
// guard: included once, last but one, by each build/isa/<family>_avx512.cpp that setup.py writes.
// clang-format off
#if DLK_X86
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma,bmi2")
// GCC 12 reports the _mm512_undefined_*() temporaries inside its own intrinsics as uninitialized.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#define DLK_ISA avx512
#include "cpu/simd/avx512.h"
#include "cpu/simd/tile.h"
#define DLK_ISA_ENABLED 1
#endif  // DLK_X86
// clang-format on
