// The PTX wrappers of csrc/cuda/ptx under the emulator: fragment layouts against the PTX ISA
// tables (written out again here in the document's own terms), mma products against a scalar
// GEMM for f16, bf16 and tf32, ldmatrix (plain and .trans) element by element, cp.async groups.
#include <cuda_runtime.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "cuda/launch.cuh"
#include "cuda/ptx/cp_async.cuh"
#include "cuda/ptx/ldmatrix.cuh"
#include "cuda/ptx/mma.cuh"
#include "harness.h"

using dlk::cuda::launch;
namespace ptx = dlk::cuda::ptx;

// ---- the PTX ISA tables, transcribed -----------------------------------------------------------
// m16n8k16 .f16/.bf16, A: row = groupID for a0,a1,a4,a5 and groupID+8 for a2,a3,a6,a7;
// col = threadID_in_group*2 + (i & 1) for i < 4, and + 8 for i >= 4.
static ptx::Coord doc_a16(int lane, int i) {
  const int g = lane >> 2, t = lane % 4;
  const bool upper = i == 2 || i == 3 || i == 6 || i == 7;
  return {upper ? g + 8 : g, t * 2 + (i & 1) + (i >= 4 ? 8 : 0)};
}
// B: row = threadID_in_group*2 + (i & 1) for b0,b1 and + 8 for b2,b3; col = groupID.
static ptx::Coord doc_b16(int lane, int i) { return {(lane % 4) * 2 + (i & 1) + (i >= 2 ? 8 : 0), lane >> 2}; }
// C/D: row = groupID for c0,c1 and groupID+8 for c2,c3; col = threadID_in_group*2 + (i & 1).
static ptx::Coord doc_c(int lane, int i) { return {(lane >> 2) + (i >= 2 ? 8 : 0), (lane % 4) * 2 + (i & 1)}; }
// m16n8k8 .tf32, A: row = groupID for a0,a2 and groupID+8 for a1,a3; col = threadID_in_group for
// a0,a1 and threadID_in_group+4 for a2,a3.  B: row = threadID_in_group for b0, +4 for b1; col = groupID.
static ptx::Coord doc_a8(int lane, int i) {
  return {(lane >> 2) + (i == 1 || i == 3 ? 8 : 0), lane % 4 + (i >= 2 ? 4 : 0)};
}
static ptx::Coord doc_b8(int lane, int i) { return {lane % 4 + (i == 1 ? 4 : 0), lane >> 2}; }

static bool same(ptx::Coord a, ptx::Coord b) { return a.row == b.row && a.col == b.col; }

TEST(layouts_match_ptx_isa_tables) {
  // Spot values straight from the figures: lane 5 is groupID 1, threadID_in_group 1.
  CHECK(same(ptx::M16N8K16::a(5, 0), {1, 2}) && same(ptx::M16N8K16::a(5, 7), {9, 11}));
  CHECK(same(ptx::M16N8K16::b(31, 3), {15, 7}) && same(ptx::M16N8K16::c(6, 3), {9, 5}));
  CHECK(same(ptx::M16N8K8::a(7, 3), {9, 7}) && same(ptx::M16N8K8::b(7, 1), {7, 1}));
  int seen16[16][16] = {}, seenb[16][8] = {}, seenc[16][8] = {}, seen8[16][8] = {}, seenb8[8][8] = {};
  for (int lane = 0; lane < 32; ++lane) {
    for (int i = 0; i < 8; ++i) {
      CHECK(same(ptx::M16N8K16::a(lane, i), doc_a16(lane, i)), "A16 lane %d i %d", lane, i);
      ++seen16[doc_a16(lane, i).row][doc_a16(lane, i).col];
    }
    for (int i = 0; i < 4; ++i) {
      CHECK(same(ptx::M16N8K16::b(lane, i), doc_b16(lane, i)), "B16 lane %d i %d", lane, i);
      CHECK(same(ptx::M16N8K16::c(lane, i), doc_c(lane, i)) && same(ptx::M16N8K8::c(lane, i), doc_c(lane, i)));
      CHECK(same(ptx::M16N8K8::a(lane, i), doc_a8(lane, i)), "A8 lane %d i %d", lane, i);
      ++seenb[doc_b16(lane, i).row][doc_b16(lane, i).col];
      ++seenc[doc_c(lane, i).row][doc_c(lane, i).col];
      ++seen8[doc_a8(lane, i).row][doc_a8(lane, i).col];
    }
    for (int i = 0; i < 2; ++i) {
      CHECK(same(ptx::M16N8K8::b(lane, i), doc_b8(lane, i)));
      ++seenb8[doc_b8(lane, i).row][doc_b8(lane, i).col];
    }
  }
  // Each table covers its matrix exactly once.
  for (int r = 0; r < 16; ++r)
    for (int c = 0; c < 16; ++c) CHECK(seen16[r][c] == 1);
  for (int r = 0; r < 16; ++r)
    for (int c = 0; c < 8; ++c) CHECK(seenb[r][c] == 1 && seenc[r][c] == 1 && seen8[r][c] == 1);
  for (int r = 0; r < 8; ++r)
    for (int c = 0; c < 8; ++c) CHECK(seenb8[r][c] == 1);
}

// ---- mma ---------------------------------------------------------------------------------------

static uint16_t to16(float v, int kind) {
  return kind == 0 ? __half_as_ushort(__float2half_rn(v)) : __bfloat16_as_ushort(__float2bfloat16_rn(v));
}

// One warp; fragments built with the document's tables from row-major A (16xK), B (Kx8), C.
template <int Kind>  // 0 f16, 1 bf16
__global__ void mma16_kernel(const float* A, const float* B, const float* C, float* D) {
  const int lane = threadIdx.x;
  uint32_t a[4] = {}, b[2] = {};
  float c[4];
  for (int i = 0; i < 8; ++i) {
    const auto p = doc_a16(lane, i);
    a[i / 2] |= static_cast<uint32_t>(to16(A[p.row * 16 + p.col], Kind)) << (16 * (i % 2));
  }
  for (int i = 0; i < 4; ++i) {
    const auto p = doc_b16(lane, i);
    b[i / 2] |= static_cast<uint32_t>(to16(B[p.row * 8 + p.col], Kind)) << (16 * (i % 2));
  }
  for (int i = 0; i < 4; ++i) c[i] = C[doc_c(lane, i).row * 8 + doc_c(lane, i).col];
  if (Kind == 0)
    ptx::mma_m16n8k16_f32_f16(c, a, b, c);  // d aliases c
  else
    ptx::mma_m16n8k16_f32_bf16(c, a, b, c);
  for (int i = 0; i < 4; ++i) D[lane * 4 + i] = c[i];  // per lane, per register
}

template <bool Round>
__global__ void mma8_kernel(const float* A, const float* B, const float* C, float* D) {
  const int lane = threadIdx.x;
  uint32_t a[4], b[2];
  float c[4], d[4];
  for (int i = 0; i < 4; ++i) {
    const float v = A[doc_a8(lane, i).row * 8 + doc_a8(lane, i).col];
    a[i] = Round ? ptx::to_tf32(v) : __float_as_uint(v);
  }
  for (int i = 0; i < 2; ++i) {
    const float v = B[doc_b8(lane, i).row * 8 + doc_b8(lane, i).col];
    b[i] = Round ? ptx::to_tf32(v) : __float_as_uint(v);
  }
  for (int i = 0; i < 4; ++i) c[i] = C[doc_c(lane, i).row * 8 + doc_c(lane, i).col];
  ptx::mma_m16n8k8_f32_tf32(d, a, b, c);
  for (int i = 0; i < 4; ++i) D[lane * 4 + i] = d[i];
}

// Scalar reference of D = A B + C in double, read back through the document's C/D table.
static void check_d(const std::vector<float>& A, const std::vector<float>& B, const std::vector<float>& C,
                    const std::vector<float>& D, int K, double rtol, const char* what) {
  int bad = 0;
  for (int lane = 0; lane < 32; ++lane)
    for (int i = 0; i < 4; ++i) {
      const auto p = doc_c(lane, i);
      double ref = C[p.row * 8 + p.col], mag = std::fabs(ref);
      for (int k = 0; k < K; ++k) {
        ref += static_cast<double>(A[p.row * K + k]) * B[k * 8 + p.col];
        mag += std::fabs(static_cast<double>(A[p.row * K + k]) * B[k * 8 + p.col]);
      }
      const double got = D[lane * 4 + i];
      if (!(std::fabs(got - ref) <= rtol * mag) && bad++ < 5)
        std::printf("  %s lane %d d%d (row %d col %d): %.9g vs %.9g\n", what, lane, i, p.row, p.col, got, ref);
    }
  CHECK(bad == 0, "%s: %d wrong", what, bad);
}

TEST(mma_m16n8k16_f16_and_bf16_match_scalar_gemm) {
  // Distinct small integers per element: exact in f16 and bf16 and in every f32 sum, so the check
  // is exact and any misplaced element shows.
  std::vector<float> A(16 * 16), B(16 * 8), C(16 * 8), D(32 * 4);
  for (int i = 0; i < 256; ++i) A[i] = static_cast<float>(i - 128);
  for (int i = 0; i < 128; ++i) B[i] = static_cast<float>((i * 37) % 128 - 64);
  for (int i = 0; i < 128; ++i) C[i] = static_cast<float>(i * 1000);
  CHECK(launch(mma16_kernel<0>, 1, 32, 0, nullptr, A.data(), B.data(), C.data(), D.data()) == cudaSuccess);
  check_d(A, B, C, D, 16, 0.0, "f16 exact");
  CHECK(launch(mma16_kernel<1>, 1, 32, 0, nullptr, A.data(), B.data(), C.data(), D.data()) == cudaSuccess);
  check_d(A, B, C, D, 16, 0.0, "bf16 exact");
  // Random values already rounded to the input type: only the f32 result rounding remains.
  std::mt19937 rng(3);
  std::normal_distribution<float> nd;
  for (int kind = 0; kind < 2; ++kind) {
    std::vector<float> a(256), b(128), c(128);
    auto rt = [&](float v) {
      return kind == 0 ? __half2float(__float2half_rn(v)) : __bfloat162float(__float2bfloat16_rn(v));
    };
    for (auto& v : a) v = rt(nd(rng));
    for (auto& v : b) v = rt(nd(rng));
    for (auto& v : c) v = nd(rng);
    const cudaError_t e = kind == 0
                              ? launch(mma16_kernel<0>, 1, 32, 0, nullptr, a.data(), b.data(), c.data(), D.data())
                              : launch(mma16_kernel<1>, 1, 32, 0, nullptr, a.data(), b.data(), c.data(), D.data());
    CHECK(e == cudaSuccess);
    check_d(a, b, c, D, 16, 1e-6, kind == 0 ? "f16 random" : "bf16 random");
  }
}

TEST(mma_m16n8k8_tf32_matches_scalar_gemm) {
  std::vector<float> A(16 * 8), B(8 * 8), C(16 * 8), D(32 * 4);
  for (int i = 0; i < 128; ++i) A[i] = static_cast<float>(i - 64) * 0.25f;  // exact in tf32
  for (int i = 0; i < 64; ++i) B[i] = static_cast<float>((i * 29) % 64 - 32);
  for (int i = 0; i < 128; ++i) C[i] = static_cast<float>(i);
  CHECK(launch(mma8_kernel<false>, 1, 32, 0, nullptr, A.data(), B.data(), C.data(), D.data()) == cudaSuccess);
  check_d(A, B, C, D, 8, 0.0, "tf32 exact");
  // Inputs with bits below tf32's 10-bit mantissa: raw operands are truncated by the tensor core,
  // to_tf32 rounds to nearest (ties away).
  std::mt19937 rng(5);
  std::normal_distribution<float> nd;
  std::vector<float> a(128), b(64), c(128), at(128), bt(64), ar(128), br(64);
  auto trunc = [](float v) { return __uint_as_float(__float_as_uint(v) & 0xffffe000u); };
  auto rna = [](float v) { return __uint_as_float((__float_as_uint(v) + 0x1000u) & 0xffffe000u); };
  for (int i = 0; i < 128; ++i) a[i] = nd(rng), at[i] = trunc(a[i]), ar[i] = rna(a[i]), c[i] = nd(rng);
  for (int i = 0; i < 64; ++i) b[i] = nd(rng), bt[i] = trunc(b[i]), br[i] = rna(b[i]);
  CHECK(launch(mma8_kernel<false>, 1, 32, 0, nullptr, a.data(), b.data(), c.data(), D.data()) == cudaSuccess);
  check_d(at, bt, c, D, 8, 1e-6, "tf32 raw operands (truncated)");
  CHECK(launch(mma8_kernel<true>, 1, 32, 0, nullptr, a.data(), b.data(), c.data(), D.data()) == cudaSuccess);
  check_d(ar, br, c, D, 8, 1e-6, "tf32 via to_tf32 (rna)");
  CHECK(ptx::to_tf32(1.0f + 0x1p-11f) == __float_as_uint(1.0f + 0x1p-10f), "tie rounds away from zero");
  CHECK(ptx::to_tf32(-(1.0f + 0x1p-11f)) == __float_as_uint(-(1.0f + 0x1p-10f)));
  CHECK(ptx::to_tf32(1.0f + 0x1p-12f) == __float_as_uint(1.0f));
}

// ---- ldmatrix ----------------------------------------------------------------------------------

// 16x16 tile of 16-bit values v = row * 16 + col in shared memory. Lane L points at row L % 16,
// column 8 * (L / 16): the usual pattern that makes x4 yield an m16n8k16 A fragment and x2.trans
// of a 16x8 row-major B tile yield its B fragment.
template <int N, bool Trans>
__global__ void ldm_kernel(uint32_t* out, int misalign) {
  __shared__ __align__(16) uint16_t tile[16 * 16];
  for (int i = threadIdx.x; i < 256; i += 32) tile[i] = static_cast<uint16_t>(i);
  __syncthreads();
  const int lane = threadIdx.x;
  const uint16_t* row = &tile[(lane % 16) * 16 + 8 * (lane / 16)] + misalign;
  uint32_t r[N];
  ptx::ldmatrix<N, Trans>(r, row);
  for (int j = 0; j < N; ++j) out[lane * 4 + j] = r[j];
}

template <int N, bool Trans>
static void check_ldmatrix() {
  std::vector<uint32_t> out(32 * 4);
  CHECK(launch(ldm_kernel<N, Trans>, 1, 32, 0, nullptr, out.data(), 0) == cudaSuccess);
  // Matrix j is rows 8j.. of the lanes' addresses: lanes 8j+r point at tile row (8j+r) % 16,
  // column 8 * ((8j + r) / 16).
  for (int lane = 0; lane < 32; ++lane)
    for (int j = 0; j < N; ++j)
      for (int h = 0; h < 2; ++h) {
        // PTX ISA: without .trans, lane holds row lane/4, elements 2*(lane%4) and +1 of each matrix;
        // .trans delivers the transpose.
        const int mr = Trans ? (lane % 4) * 2 + h : lane / 4;
        const int mc = Trans ? lane / 4 : (lane % 4) * 2 + h;
        const int src_lane = 8 * j + mr;
        const int v = (src_lane % 16) * 16 + 8 * (src_lane / 16) + mc;
        const uint32_t got = (out[lane * 4 + j] >> (16 * h)) & 0xffffu;
        CHECK(got == static_cast<uint32_t>(v), "x%d%s lane %d reg %d half %d: %u vs %d", N, Trans ? ".trans" : "", lane,
              j, h, got, v);
      }
}

TEST(ldmatrix_fragments_match_ptx_isa) {
  check_ldmatrix<1, false>();
  check_ldmatrix<2, false>();
  check_ldmatrix<4, false>();
  check_ldmatrix<1, true>();
  check_ldmatrix<2, true>();
  check_ldmatrix<4, true>();
  // x4 of the tile is exactly the m16n8k16 A fragment of the tile as A.
  std::vector<uint32_t> out(32 * 4);
  CHECK(launch(ldm_kernel<4, false>, 1, 32, 0, nullptr, out.data(), 0) == cudaSuccess);
  for (int lane = 0; lane < 32; ++lane)
    for (int i = 0; i < 8; ++i) {
      const auto p = ptx::M16N8K16::a(lane, i);
      CHECK(((out[lane * 4 + i / 2] >> (16 * (i % 2))) & 0xffffu) == static_cast<uint32_t>(p.row * 16 + p.col));
    }
  CHECK(launch(ldm_kernel<1, false>, 1, 32, 0, nullptr, out.data(), 1) == cudaErrorLaunchFailure);
  CHECK(dlk::sim::last_error_message().find("16-byte aligned") != std::string::npos);
  cudaGetLastError();
}

// ---- cp.async ----------------------------------------------------------------------------------

__global__ void cp_async_kernel(const float* g, uint32_t* out) {
  __shared__ __align__(16) float s[32 * 4];
  __shared__ __align__(16) float t[32];
  __shared__ __align__(16) float z[32 * 8];
  const int l = threadIdx.x;
  ptx::cp_async_cg(&s[4 * l], &g[4 * l]);
  ptx::cp_async_commit();  // group 0
  ptx::cp_async_ca<4>(&t[l], &g[128 + l]);
  ptx::cp_async_ca_zfill<16>(&z[8 * l], &g[4 * l], 4);
  ptx::cp_async_ca_zfill<16>(&z[8 * l + 4], nullptr, 0);
  ptx::cp_async_commit();                       // group 1
  out[0 * 32 + l] = __float_as_uint(s[4 * l]);  // not waited for yet
  ptx::cp_async_wait<1>();                      // group 0 done, group 1 may be pending
  out[1 * 32 + l] = __float_as_uint(s[4 * l + 3]);
  out[2 * 32 + l] = __float_as_uint(t[l]);
  ptx::cp_async_wait_all();
  out[3 * 32 + l] = __float_as_uint(t[l]);
  out[4 * 32 + l] = __float_as_uint(z[8 * l]) ^ __float_as_uint(z[8 * l + 1]) ^ __float_as_uint(z[8 * l + 3]);
  out[5 * 32 + l] = __float_as_uint(z[8 * l + 4]) | __float_as_uint(z[8 * l + 7]);
  __syncthreads();
  out[6 * 32 + l] = __float_as_uint(s[4 * ((l + 1) % 32)]);  // a neighbour's copy, after the barrier
}

// Planted bug: reading another thread's cp.async destination after its own wait but without a
// barrier; some order of threads shows the neighbour's copy has not landed.
__global__ void cp_async_missing_barrier(const float* g, uint32_t* out) {
  __shared__ __align__(16) float s[32 * 4];
  const int l = threadIdx.x;
  ptx::cp_async_cg(&s[4 * l], &g[4 * l]);
  ptx::cp_async_wait_all();
  out[l] = __float_as_uint(s[4 * ((l + 1) % 32)]);
}

TEST(cp_async_groups_and_waits) {
  std::vector<float> g(256);
  for (int i = 0; i < 256; ++i) g[i] = 1.0f + i;
  for (uint64_t seed : {0, 1, 2}) {
    dlk::sim::set_seed(seed);
    std::vector<uint32_t> out(7 * 32);
    CHECK(launch(cp_async_kernel, 1, 32, 0, nullptr, g.data(), out.data()) == cudaSuccess);
    for (int l = 0; l < 32; ++l) {
      CHECK(out[l] == 0xffffffffu, "read before the wait sees poison");
      CHECK(out[32 + l] == __float_as_uint(g[4 * l + 3]));
      // Group 1 may have landed after wait_group 1: under seed 0 copies land at their wait only.
      CHECK(seed != 0 || out[64 + l] == 0xffffffffu, "group 1 still pending under seed 0");
      CHECK(out[64 + l] == 0xffffffffu || out[64 + l] == __float_as_uint(g[128 + l]));
      CHECK(out[96 + l] == __float_as_uint(g[128 + l]));
      CHECK(out[128 + l] == __float_as_uint(g[4 * l]), "zfill: 4 bytes copied, 12 zeroed");
      CHECK(out[160 + l] == 0u, "src-size 0 zero-fills");
      CHECK(out[192 + l] == __float_as_uint(g[4 * ((l + 1) % 32)]));
    }
  }
  int caught = 0;
  for (uint64_t seed = 0; seed < 6; ++seed) {
    dlk::sim::set_seed(seed);
    std::vector<uint32_t> out(32);
    CHECK(launch(cp_async_missing_barrier, 1, 32, 0, nullptr, g.data(), out.data()) == cudaSuccess);
    for (int l = 0; l < 32; ++l) caught += out[l] == 0xffffffffu;
  }
  CHECK(caught > 0, "a missing barrier after cp.async shows as poison under some seed");
  dlk::sim::set_seed(1);
}

// A two-stage ring: step k's 64 floats are copied into stage k % 2, one per thread, and every
// thread adds up, over the steps, the element a thread of the other warp copied. Buggy refills
// the stage of the previous step before the barrier, while the other warp may still read it: a
// copy landing early (allowed, as on the GPU) changes what that warp reads.
template <bool Buggy>
__global__ void ring_sum(const float* g, float* out, int steps) {
  __shared__ __align__(16) float s[2][64];
  const int t = threadIdx.x;
  auto fill = [&](int k) {
    if (k < steps) ptx::cp_async_ca<4>(&s[k % 2][t], &g[k * 64 + t]);
    ptx::cp_async_commit();
  };
  fill(0);
  float sum = 0;
  for (int k = 0; k < steps; ++k) {
    ptx::cp_async_wait<0>();
    if (Buggy) fill(k + 1);
    __syncthreads();
    if (!Buggy) fill(k + 1);
    sum += s[k % 2][(t + 32) % 64];
  }
  out[t] = sum;
}

TEST(planted_refill_before_barrier_is_caught) {
  const int steps = 6;
  std::vector<float> g(steps * 64);
  for (int i = 0; i < steps * 64; ++i) g[i] = 1.0f + i;  // small integers: sums are exact
  int wrong[2] = {0, 0};
  for (uint64_t seed = 0; seed < 12; ++seed) {
    for (int buggy = 0; buggy < 2; ++buggy) {
      dlk::sim::set_seed(seed);
      std::vector<float> out(64);
      CHECK(launch(buggy ? ring_sum<true> : ring_sum<false>, 1, 64, 0, nullptr, g.data(), out.data(), steps) ==
            cudaSuccess);
      for (int t = 0; t < 64; ++t) {
        float expect = 0;
        for (int k = 0; k < steps; ++k) expect += g[k * 64 + (t + 32) % 64];
        if (out[t] != expect) {
          ++wrong[buggy];
          break;
        }
      }
    }
  }
  std::printf("  refill before the barrier: %d of 12 seeds give a wrong sum\n", wrong[1]);
  CHECK(wrong[0] == 0, "the correct ring is wrong under %d seeds", wrong[0]);
  CHECK(wrong[1] > 0);
  dlk::sim::set_seed(1);
}

TEST_MAIN
