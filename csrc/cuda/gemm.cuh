// The CUDA GEMM core (csrc/cuda/gemm.cu): C[M x N] = A[M x K] B[K x N] (+ bias[j] per column),
// torch-free. A and B are read through (pointer, row stride, column stride), so transposed and
// strided operands (X W^T, dY W, dY^T X, an im2col view) need no copy; C has contiguous rows.
//
// Paths, by dtype: float16 / bfloat16 on tensor cores (mma m16n8k16, f32 accumulation); float32
// as TF32 on tensor cores (mma m16n8k8) when allow_tf32, else exact FMA on a SIMT path; float64
// on the SIMT path. Each C element is summed by one thread in a fixed order: results do not
// depend on the launch order.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "common/dtype.h"

namespace dlk::cuda {

struct GemmProblem {
  int64_t M, N, K;
  const void* a;  // A(i, k) at a[i * a_rs + k * a_cs]
  int64_t a_rs, a_cs;
  const void* b;  // B(k, j) at b[k * b_rs + j * b_cs]
  int64_t b_rs, b_cs;
  void* c;  // C(i, j) at c[i * c_rs + j]
  int64_t c_rs;
  const void* bias;  // N values, or null
};

struct GemmOptions {
  bool allow_tf32 = false;
  // Index into the path's tile table (gemm_tile_count), or -1 for the rule by M, N, K. For tests.
  int tile = -1;
};

// Tile configurations the path for (dtype, allow_tf32) has.
int gemm_tile_count(DType dtype, bool allow_tf32);

cudaError_t gemm(DType dtype, const GemmProblem& p, const GemmOptions& opt, cudaStream_t stream);

}  // namespace dlk::cuda
