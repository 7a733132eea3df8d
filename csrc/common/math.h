// Scalar math primitives used by the shared functors (common/activation.h).
//
// The functors are written once against a small vocabulary: arithmetic operators, comparisons,
// where(mask, a, b), abs, exp. For scalars (CPU tails, CUDA threads) that vocabulary lives here;
// the CPU SIMD types provide the same names in their own namespaces (cpu/simd/*.h), found by
// argument-dependent lookup. Torch-free so nvcc and the CPU ISA units can include it.
#pragma once

#include <cmath>

#include "common/macros.h"

namespace dlk {

DLK_HD float where(bool m, float a, float b) { return m ? a : b; }
DLK_HD double where(bool m, double a, double b) { return m ? a : b; }

DLK_HD float abs(float x) { return fabsf(x); }
DLK_HD double abs(double x) { return fabs(x); }

DLK_HD float exp(float x) { return expf(x); }
DLK_HD double exp(double x) { return ::exp(x); }

}  // namespace dlk
