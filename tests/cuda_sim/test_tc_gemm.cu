// Runs nvcc_tc_gemm.cu (a second translation unit with its own static __shared__) against a scalar
// GEMM: the wrappers composed the way a real kernel uses them.
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <random>
#include <vector>

#include "harness.h"

cudaError_t tc_gemm(const __half* A, const __half* B, float* C, int M, int N, int K, cudaStream_t stream);

TEST(tensor_core_gemm_matches_scalar) {
  const int M = 48, N = 24, K = 64;
  std::mt19937 rng(11);
  std::uniform_int_distribution<int> d(-8, 8);
  std::vector<__half> A(M * K), B(K * N);
  std::vector<float> a(M * K), b(K * N), C(M * N, -1.0f);
  for (int i = 0; i < M * K; ++i) a[i] = d(rng) * 0.5f, A[i] = __float2half_rn(a[i]);
  for (int i = 0; i < K * N; ++i) b[i] = d(rng) * 0.25f, B[i] = __float2half_rn(b[i]);
  for (uint64_t seed : {0, 1, 2}) {
    dlk::sim::set_seed(seed);
    CHECK(tc_gemm(A.data(), B.data(), C.data(), M, N, K, nullptr) == cudaSuccess);
    int bad = 0;
    for (int i = 0; i < M; ++i)
      for (int j = 0; j < N; ++j) {
        double ref = 0;
        for (int k = 0; k < K; ++k) ref += static_cast<double>(a[i * K + k]) * b[k * N + j];
        bad += C[i * N + j] != static_cast<float>(ref);  // small dyadic values: exact
      }
    CHECK(bad == 0, "seed %llu: %d wrong", (unsigned long long)seed, bad);
  }
}

cudaError_t ptx_all_wrappers(const float* g, float* out, cudaStream_t stream);

TEST(every_wrapper_runs) {
  alignas(16) float g[64];
  for (int i = 0; i < 64; ++i) g[i] = 0.5f * i;
  std::vector<float> out(128);
  CHECK(ptx_all_wrappers(g, out.data(), nullptr) == cudaSuccess);
}

TEST_MAIN
