// What the standalone GEMM harnesses in this folder share: the GEMM core compiled for AVX-512 and
// AVX2 straight from csrc/ (no torch, no ISA dispatch: active_isa() is fixed to avx512), and a
// wall clock.
#pragma once

#include "cpu/isa/prelude.h"  // first: it sets up the ISA compilation

#include <chrono>

#include "cpu/gemm.h"

#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma,bmi2")
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#define DLK_ISA avx512
// clang-format off: the vocabulary before the kernels written against it
#include "cpu/simd/avx512.h"
#include "cpu/simd/tile.h"
#include "cpu/kernels/gemm.h"
// clang-format on
#undef DLK_ISA
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx2,fma,bmi2")
#define DLK_ISA avx2
// clang-format off
#include "cpu/simd/avx2.h"
#include "cpu/simd/tile.h"
#include "cpu/kernels/gemm.h"
// clang-format on
#undef DLK_ISA
#pragma GCC pop_options

// The dispatch in cpu/isa.cpp is not linked here.
namespace dlk::cpu {
Isa active_isa() { return Isa::avx512; }  // one definition: include this header in one file
}  // namespace dlk::cpu

inline double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
