// Opens the avx2 target for one generated kernel unit (see cpu/isa/prelude.h). No include guard:
// included once, last but one, by each build/isa/<family>_avx2.cpp that setup.py writes.
// clang-format off
#if DLK_X86
#pragma GCC target("avx2,fma,bmi2")
#define DLK_ISA avx2
#include "cpu/simd/avx2.h"
#include "cpu/simd/tile.h"
#define DLK_ISA_ENABLED 1
#endif  // DLK_X86
// clang-format on
