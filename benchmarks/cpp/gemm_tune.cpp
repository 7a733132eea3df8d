// Standalone tuning harness for the CPU GEMM core (no torch): micro-kernel peak with L1-resident
// panels, and single-thread blocked GEMM GFLOP/s for a few shapes. Build and run:
//   g++ -O3 -std=c++20 -fopenmp -I csrc benchmarks/cpp/gemm_tune.cpp -o /tmp/gemm_tune && /tmp/gemm_tune
#include "harness.h"  // first: it sets up the ISA compilation

#include <cstdio>
#include <cstdlib>
#include <vector>

using namespace dlk::cpu;

template <class T>
double micro_peak(const GemmTable<T>& t) {
  const int64_t kc = 256;
  std::vector<T> a(t.mr * kc, T(1e-3)), b(t.nr * kc, T(1e-3)), c(t.mr * t.nr);
  double best = 0;
  for (int rep = 0; rep < 40; ++rep) {
    const int iters = 2000;
    const double t0 = now();
    for (int i = 0; i < iters; ++i)
      t.micro_for(t.mr, t.nr)(kc, a.data(), 0, b.data(), 0, c.data(), t.nr, t.mr, t.nr, true, nullptr, nullptr);
    const double dt = now() - t0;
    best = std::max(best, 2.0 * t.mr * t.nr * kc * iters / dt * 1e-9);
  }
  return best;
}

template <class T>
double gemm_gflops(const GemmTable<T>& t, GemmBlocking blk, int64_t M, int64_t N, int64_t K) {
  std::vector<T> A(M * K), B(K * N), C(M * N);
  for (auto& v : A) v = T(rand() % 100) / 100;
  for (auto& v : B) v = T(rand() % 100) / 100;
  std::vector<T> abuf(gemm_a_buffer_size(t, blk)), bbuf(gemm_b_buffer_size(t, blk));
  auto get_a = [&](int64_t ic, int64_t pc, int64_t mc, int64_t kc, T* buf) {
    t.pack_a(A.data() + ic * K + pc, K, 1, mc, kc, buf);
    return static_cast<const T*>(buf);
  };
  auto pack_b = [&](int64_t pc, int64_t jc, int64_t kc, int64_t nc, T* buf) {
    t.pack_b(B.data() + pc * N + jc, N, 1, kc, nc, buf);
  };
  double best = 0;
  for (int rep = 0; rep < 15; ++rep) {
    const double t0 = now();
    gemm_blocked<T>(t, blk, 0, M, 0, N, K, get_a, pack_b, C.data(), N, ColumnMap{N}, false, nullptr, abuf.data(),
                    bbuf.data(), nullptr);
    const double dt = now() - t0;
    best = std::max(best, 2.0 * M * N * K / dt * 1e-9);
  }
  // Check one entry.
  double ref = 0;
  for (int64_t k = 0; k < K; ++k) ref += double(A[(M - 1) * K + k]) * B[k * N + N - 1];
  if (std::abs(ref - C[M * N - 1]) > 1e-3 * std::abs(ref) + 1e-3)
    std::printf("MISMATCH %g %g\n", ref, double(C[M * N - 1]));
  return best;
}

int main(int argc, char** argv) {
  const auto& f512 = avx512::gemm_table<float>();
  const auto& f2 = avx2::gemm_table<float>();
  const auto& d512 = avx512::gemm_table<double>();
  std::printf("micro peak 1 thread: avx512 f32 %.1f GFLOP/s (tile %dx%d), avx2 f32 %.1f, avx512 f64 %.1f\n",
              micro_peak(f512), f512.mr, f512.nr, micro_peak(f2), micro_peak(d512));
  int64_t kc = argc > 1 ? atoi(argv[1]) : 256, mc = argc > 2 ? atoi(argv[2]) : 512,
          nc = argc > 3 ? atoi(argv[3]) : 2048;
  GemmBlocking blk{mc - mc % f512.mr, kc, nc - nc % f512.nr};  // fixed KC, to sweep it
  std::printf("blocking mc=%ld kc=%ld nc=%ld\n", blk.mc, blk.kc, blk.nc);
  // Square, then forward-conv GEMMs of ResNet-50 at N=8 (M = out channels, N = 8 P Q, K = C R S).
  const int64_t shapes[][3] = {{1024, 1024, 1024}, {64, 25088, 576}, {128, 6272, 1152}, {256, 1568, 2304},
                               {512, 392, 4608},   {2048, 392, 512}, {256, 1568, 1024}};
  for (auto& s : shapes) {
    std::printf("M=%5ld N=%5ld K=%5ld  avx512 f32 %6.1f GFLOP/s\n", s[0], s[1], s[2],
                gemm_gflops(f512, blk, s[0], s[1], s[2]));
  }
}
