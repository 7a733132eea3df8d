// Opens the baseline target (the build's default: no pragma) for one generated kernel unit (see
// cpu/isa/prelude.h). No include guard: included once by each build/isa/<family>_baseline.cpp.
// clang-format off
#define DLK_ISA baseline
#include "cpu/simd/baseline.h"
#include "cpu/simd/tile.h"
#define DLK_ISA_ENABLED 1
// clang-format on
