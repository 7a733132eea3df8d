// A/B comparison of GEMM blocking choices on one core: macro-kernel loop order (0: BLIS
// jr-outer, 1: ir-outer) and KC / MC / NC, each configuration timed in interleaved rounds over
// forward-conv GEMM shapes of ResNet-50 at N = 8; prints median and best GFLOP/s.
//   g++ -O3 -std=c++20 -I csrc benchmarks/cpp/gemm_order_ab.cpp -o /tmp/ab
//   /tmp/ab ORDER KC MC NC [ORDER KC MC NC ...]      (SHAPE=i for one shape)
#include "harness.h"  // first: it sets up the ISA compilation

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>

using namespace dlk::cpu;

// order 0: jc, pc, ic, jr, ir (BLIS). order 1: jc, pc, ic, ir, jr.
double run(int order, int64_t kc_blk, int64_t mc_blk, int64_t nc_blk, int64_t M, int64_t N, int64_t K, const float* A,
           const float* B, float* C, float* ab, float* bb) {
  const auto& t = avx512::gemm_table<float>();
  const double t0 = now();
  for (int64_t jc = 0; jc < N; jc += nc_blk) {
    const int64_t nc = std::min(nc_blk, N - jc);
    for (int64_t pc = 0; pc < K; pc += kc_blk) {
      const int64_t kc = std::min(kc_blk, K - pc);
      t.pack_b(B + pc * N + jc, N, 1, kc, nc, bb);
      for (int64_t ic = 0; ic < M; ic += mc_blk) {
        const int64_t mc = std::min(mc_blk, M - ic);
        t.pack_a(A + ic * K + pc, K, 1, mc, kc, ab);
        if (order == 0) {
          for (int64_t jr = 0; jr < nc; jr += t.nr)
            for (int64_t ir = 0; ir < mc; ir += t.mr)
              t.micro_for(std::min<int64_t>(t.mr, mc - ir), std::min<int64_t>(t.nr, nc - jr))(
                  kc, ab + ir * kc, 0, bb + jr * kc, 0, C + (ic + ir) * N + jc + jr, N,
                  std::min<int64_t>(t.mr, mc - ir), std::min<int64_t>(t.nr, nc - jr), pc > 0, nullptr, nullptr);
        } else {
          for (int64_t ir = 0; ir < mc; ir += t.mr)
            for (int64_t jr = 0; jr < nc; jr += t.nr)
              t.micro_for(std::min<int64_t>(t.mr, mc - ir), std::min<int64_t>(t.nr, nc - jr))(
                  kc, ab + ir * kc, 0, bb + jr * kc, 0, C + (ic + ir) * N + jc + jr, N,
                  std::min<int64_t>(t.mr, mc - ir), std::min<int64_t>(t.nr, nc - jr), pc > 0, nullptr, nullptr);
        }
      }
    }
  }
  return 2.0 * M * N * K / (now() - t0) * 1e-9;
}

int main(int argc, char** argv) {
  struct Cfg {
    int order;
    int64_t kc, mc, nc;
  };
  std::vector<Cfg> cfgs;
  for (int i = 1; i + 3 < argc; i += 4)
    cfgs.push_back({atoi(argv[i]), atoi(argv[i + 1]), atoi(argv[i + 2]), atoi(argv[i + 3])});
  const int64_t shapes[][3] = {{64, 6272, 576},  {128, 6272, 1152}, {256, 1568, 2304},
                               {512, 392, 4608}, {2048, 392, 512},  {256, 1568, 1024}};
  const char* only = getenv("SHAPE");
  int si = -1;
  for (auto& s : shapes) {
    if (only && ++si != atoi(only)) continue;
    const int64_t M = s[0], N = s[1], K = s[2];
    std::vector<float> A(M * K, 0.5f), B(K * N, 0.25f), C(M * N);
    std::vector<float> ab(2048 * 1024), bb(4096 * 1024);
    std::vector<std::vector<double>> res(cfgs.size());
    for (int round = 0; round < 21; ++round)
      for (size_t c = 0; c < cfgs.size(); ++c)
        res[c].push_back(run(cfgs[c].order, cfgs[c].kc, cfgs[c].mc, cfgs[c].nc, M, N, K, A.data(), B.data(), C.data(),
                             ab.data(), bb.data()));
    printf("M=%5ld N=%5ld K=%5ld", M, N, K);
    for (auto& r : res) {
      std::sort(r.begin(), r.end());
      printf("  med %5.1f max %5.1f |", r[r.size() / 2], r.back());
    }
    printf("\n");
  }
}
