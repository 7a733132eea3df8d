// The emulator's execution model: barriers, shared memory, warp collectives, atomics, the seed,
// launch validation, and planted bugs it must catch. Built and run by tests/test_cuda_sim_core.py.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <thread>
#include <vector>

#include "cuda/launch.cuh"
#include "harness.h"

using dlk::cuda::launch;

static uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

// First, before any test calls set_seed: what DLK_CUDA_SIM_SEED gave.
TEST(seed_from_environment) { std::printf("  seed=%llu\n", (unsigned long long)dlk::sim::get_seed()); }

// ---- barriers and shared memory --------------------------------------------------------------

// Tree reduction in static shared memory; Buggy drops the barrier inside the loop, so a thread
// may read a partial sum its partner has not added yet.
template <bool Buggy>
__global__ void block_sum(const float* x, float* out, int n) {
  __shared__ float s[256];
  float v = 0;
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) v += x[i];
  s[threadIdx.x] = v;
  __syncthreads();
  for (unsigned k = blockDim.x / 2; k > 0; k >>= 1) {
    if (threadIdx.x < k) s[threadIdx.x] += s[threadIdx.x + k];
    if (!Buggy) __syncthreads();
  }
  if (Buggy) __syncthreads();
  if (threadIdx.x == 0) out[blockIdx.x] = s[0];
}

static std::vector<float> run_block_sum(bool buggy, uint64_t seed, float* total) {
  dlk::sim::set_seed(seed);
  const int n = 5000, blocks = 3;
  std::vector<float> x(n), out(blocks, -1.0f);
  for (int i = 0; i < n; ++i) x[i] = static_cast<float>(i % 17);  // small integers: every order is exact
  const cudaError_t e = buggy ? launch(block_sum<true>, blocks, 256, 0, nullptr, x.data(), out.data(), n)
                              : launch(block_sum<false>, blocks, 256, 0, nullptr, x.data(), out.data(), n);
  CHECK(e == cudaSuccess);
  *total = 0;
  for (float v : out) *total += v;
  return out;
}

TEST(barrier_reduction_correct_under_every_seed) {
  float expect = 0;
  for (int i = 0; i < 5000; ++i) expect += static_cast<float>(i % 17);
  for (uint64_t seed = 0; seed < 12; ++seed) {
    float total;
    run_block_sum(false, seed, &total);
    CHECK(total == expect, "seed %llu: %g != %g", (unsigned long long)seed, total, expect);
  }
}

// Planted bug (a): the race is invisible to a sequential run but some seed exposes it.
TEST(planted_missing_syncthreads_is_caught) {
  float expect = 0;
  for (int i = 0; i < 5000; ++i) expect += static_cast<float>(i % 17);
  int wrong = 0;
  for (uint64_t seed = 0; seed < 12; ++seed) {
    float total;
    run_block_sum(true, seed, &total);
    wrong += total != expect;
  }
  std::printf("  missing barrier: %d of 12 seeds give a wrong sum\n", wrong);
  CHECK(wrong > 0);
}

// Neighbour exchange: every thread reads what another wrote before the barrier.
__global__ void rotate(int* out) {
  __shared__ int s[128];
  s[threadIdx.x] = static_cast<int>(threadIdx.x) * 3;
  __syncthreads();
  out[blockIdx.x * blockDim.x + threadIdx.x] = s[(threadIdx.x + 1) % blockDim.x];
}

TEST(barrier_orders_shared_writes) {
  for (uint64_t seed = 0; seed < 5; ++seed) {
    dlk::sim::set_seed(seed);
    std::vector<int> out(4 * 128);
    CHECK(launch(rotate, 4, 128, 0, nullptr, out.data()) == cudaSuccess);
    for (int i = 0; i < 4 * 128; ++i) CHECK(out[i] == ((i % 128 + 1) % 128) * 3, "i=%d", i);
  }
}

__global__ void sync_variants(int* out) {
  const int t = threadIdx.x;
  out[0 + 4 * t] = __syncthreads_count(t % 3 == 0);
  out[1 + 4 * t] = __syncthreads_and(t < 1000);
  out[2 + 4 * t] = __syncthreads_and(t != 5);
  out[3 + 4 * t] = __syncthreads_or(t == 77);
}

TEST(syncthreads_count_and_or) {
  std::vector<int> out(4 * 100);
  CHECK(launch(sync_variants, 1, 100, 0, nullptr, out.data()) == cudaSuccess);
  for (int t = 0; t < 100; ++t) {
    CHECK(out[4 * t] == 34 && out[4 * t + 1] == 1 && out[4 * t + 2] == 0 && out[4 * t + 3] == 1, "t=%d", t);
  }
}

// Threads that return early do not hold up a barrier (CUDA counts exited threads as arrived).
__global__ void early_exit(int* out) {
  __shared__ int s[64];
  if (threadIdx.x >= 40) return;
  s[threadIdx.x] = threadIdx.x;
  __syncthreads();
  out[threadIdx.x] = s[39 - threadIdx.x];
}

TEST(early_exit_threads_release_barrier) {
  std::vector<int> out(40, -1);
  CHECK(launch(early_exit, 1, 64, 0, nullptr, out.data()) == cudaSuccess);
  for (int t = 0; t < 40; ++t) CHECK(out[t] == 39 - t);
}

// Planted bug (b): reading shared memory nobody wrote in this block gives the poison, even
// when an earlier block wrote it.
__global__ void read_unwritten(uint32_t* out) {
  __shared__ float s[32];
  if (blockIdx.x == 0) s[threadIdx.x] = 1.0f;
  __syncthreads();
  float v = s[threadIdx.x];
  std::memcpy(&out[blockIdx.x * 32 + threadIdx.x], &v, 4);
}

__global__ void read_unwritten_dynamic(uint32_t* out) {
  const float* s = dlk::cuda::dynamic_shared<float>();
  float v = s[threadIdx.x];
  std::memcpy(&out[threadIdx.x], &v, 4);
}

TEST(planted_unwritten_shared_reads_poison) {
  for (uint64_t seed : {0, 1, 2}) {
    dlk::sim::set_seed(seed);
    std::vector<uint32_t> out(64);
    CHECK(launch(read_unwritten, 2, 32, 0, nullptr, out.data()) == cudaSuccess);
    for (int t = 0; t < 32; ++t) CHECK(out[t] == bits(1.0f) && out[32 + t] == 0xffffffffu, "t=%d", t);
  }
  std::vector<uint32_t> out(32);
  CHECK(launch(read_unwritten_dynamic, 1, 32, 32 * sizeof(float), nullptr, out.data()) == cudaSuccess);
  for (int t = 0; t < 32; ++t) CHECK(out[t] == 0xffffffffu);
  float f;
  std::memcpy(&f, &out[0], 4);
  CHECK(f != f, "poison is a NaN");
}

// Planted bug (c): a barrier inside divergent code is reported, not hung.
__global__ void divergent_barrier(int* out) {
  if (threadIdx.x < 16) {
    __syncthreads();
  } else {
    __syncthreads();
  }
  out[threadIdx.x] = 1;
}

__global__ void barrier_vs_shuffle(int* out) {
  int v = threadIdx.x;
  if (threadIdx.x < 16) {
    __syncthreads();
  } else {
    v = __shfl_sync(0xffffffffu, v, 0);
  }
  out[threadIdx.x] = v;
}

TEST(planted_divergent_barrier_is_reported) {
  std::vector<int> out(64);
  cudaError_t e = launch(divergent_barrier, 1, 64, 0, nullptr, out.data());
  CHECK(e == cudaErrorLaunchFailure, "got %d", (int)e);
  CHECK(dlk::sim::last_error_message().find("divergent __syncthreads") != std::string::npos, "%s",
        dlk::sim::last_error_message().c_str());
  CHECK(cudaGetLastError() == cudaErrorLaunchFailure);
  CHECK(cudaGetLastError() == cudaSuccess);
  e = launch(barrier_vs_shuffle, 1, 32, 0, nullptr, out.data());
  CHECK(e == cudaErrorLaunchTimeout, "got %d", (int)e);
  CHECK(dlk::sim::last_error_message().find("deadlock") != std::string::npos, "%s",
        dlk::sim::last_error_message().c_str());
  cudaGetLastError();
  // The emulator is reusable after an aborted launch.
  std::vector<int> r(128);
  CHECK(launch(rotate, 1, 128, 0, nullptr, r.data()) == cudaSuccess);
  CHECK(r[0] == 3);
}

// ---- dynamic shared memory -------------------------------------------------------------------

__global__ void dyn_reverse(const int* x, int* y) {
  int* s = dlk::cuda::dynamic_shared<int>();
  s[threadIdx.x] = x[blockIdx.x * blockDim.x + threadIdx.x];
  __syncthreads();
  y[blockIdx.x * blockDim.x + threadIdx.x] = s[blockDim.x - 1 - threadIdx.x];
}

TEST(dynamic_shared_memory) {
  std::vector<int> x(3 * 96), y(3 * 96);
  std::iota(x.begin(), x.end(), 0);
  CHECK(launch(dyn_reverse, 3, 96, 96 * sizeof(int), nullptr, x.data(), y.data()) == cudaSuccess);
  for (int b = 0; b < 3; ++b)
    for (int t = 0; t < 96; ++t) CHECK(y[b * 96 + t] == b * 96 + 95 - t);
  CHECK(reinterpret_cast<uintptr_t>(dlk::cuda::dynamic_shared<int>) != 0);
}

// ---- launch configuration --------------------------------------------------------------------

__global__ void noop(int*) {}

TEST(launch_config_is_validated) {
  int* p = nullptr;
  CHECK(launch(noop, 1, 1025, 0, nullptr, p) == cudaErrorInvalidConfiguration);
  CHECK(cudaGetLastError() == cudaErrorInvalidConfiguration);
  CHECK(launch(noop, 1, dim3(32, 33), 0, nullptr, p) == cudaErrorInvalidConfiguration);
  CHECK(launch(noop, 1, dim3(1, 1, 65), 0, nullptr, p) == cudaErrorInvalidConfiguration);
  CHECK(launch(noop, 0, 32, 0, nullptr, p) == cudaErrorInvalidConfiguration);
  CHECK(launch(noop, dim3(1, 65536), 32, 0, nullptr, p) == cudaErrorInvalidConfiguration);
  CHECK(launch(noop, 1, 1024, 0, nullptr, p) == cudaSuccess);
  CHECK(launch(noop, 1, 32, 48 * 1024 + 1, nullptr, p) == cudaErrorInvalidValue);
  CHECK(cudaFuncSetAttribute(noop, cudaFuncAttributeMaxDynamicSharedMemorySize, 100 * 1024) == cudaSuccess);
  CHECK(launch(noop, 1, 32, 100 * 1024, nullptr, p) == cudaSuccess);
  CHECK(cudaFuncSetAttribute(noop, cudaFuncAttributeMaxDynamicSharedMemorySize, 300 * 1024) == cudaErrorInvalidValue);
  cudaGetLastError();
  CHECK(cudaGetLastError() == cudaSuccess);
  int sms = 0;
  CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0) == cudaSuccess && sms == 4);
  CHECK(std::string(cudaGetErrorString(cudaErrorInvalidConfiguration)) == "invalid configuration argument");
}

__global__ void indices(uint32_t* out) {
  const uint32_t t = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  const uint32_t b = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
  const uint32_t id = b * (blockDim.x * blockDim.y * blockDim.z) + t;
  out[id] = (blockIdx.z << 24) | (blockIdx.y << 20) | (blockIdx.x << 16) | (threadIdx.z << 8) | (threadIdx.y << 4) |
            threadIdx.x;
}

TEST(three_dimensional_indices) {
  const dim3 grid(3, 2, 2), block(5, 3, 2);
  std::vector<uint32_t> out(12 * 30);
  CHECK(launch(indices, grid, block, 0, nullptr, out.data()) == cudaSuccess);
  for (uint32_t bz = 0; bz < 2; ++bz)
    for (uint32_t by = 0; by < 2; ++by)
      for (uint32_t bx = 0; bx < 3; ++bx)
        for (uint32_t tz = 0; tz < 2; ++tz)
          for (uint32_t ty = 0; ty < 3; ++ty)
            for (uint32_t tx = 0; tx < 5; ++tx) {
              const uint32_t id = ((bz * 2 + by) * 3 + bx) * 30 + (tz * 3 + ty) * 5 + tx;
              CHECK(out[id] == ((bz << 24) | (by << 20) | (bx << 16) | (tz << 8) | (ty << 4) | tx));
            }
}

// ---- warp collectives ------------------------------------------------------------------------

// Reference source lane of each shuffle, from the CUDA programming guide's description.
static int ref_src(int mode, int lane, int b, int width) {
  const int group = lane / width * width;
  switch (mode) {
    case 0:
      return group + b % width;
    case 1:
      return lane - group >= b ? lane - b : lane;
    case 2:
      return lane - group + b < width ? lane + b : lane;
    default: {
      const int j = lane ^ b;
      return j < group + width ? j : lane;  // later groups: own value; earlier ones are reachable
    }
  }
}

__global__ void shuffles(int* out, int b, int width) {
  const int v = 1000 + threadIdx.x;
  const int l = threadIdx.x;
  out[0 * 32 + l] = __shfl_sync(0xffffffffu, v, b, width);
  out[1 * 32 + l] = __shfl_up_sync(0xffffffffu, v, b, width);
  out[2 * 32 + l] = __shfl_down_sync(0xffffffffu, v, b, width);
  out[3 * 32 + l] = __shfl_xor_sync(0xffffffffu, v, b, width);
}

TEST(shuffles_full_mask_all_widths) {
  for (int width : {1, 2, 4, 8, 16, 32})
    for (int b : {0, 1, 3, 5, 8, 16, 31}) {
      std::vector<int> out(4 * 32);
      CHECK(launch(shuffles, 1, 32, 0, nullptr, out.data(), b, width) == cudaSuccess);
      for (int mode = 0; mode < 4; ++mode)
        for (int l = 0; l < 32; ++l)
          CHECK(out[mode * 32 + l] == 1000 + ref_src(mode, l, b, width), "mode %d width %d b %d lane %d: %d", mode,
                width, b, l, out[mode * 32 + l]);
    }
}

// Butterfly reduction of doubles and floats (64-bit and 32-bit payloads).
__global__ void warp_sum(const double* x, double* out, float* outf) {
  double v = x[blockIdx.x * 32 + threadIdx.x];
  float f = static_cast<float>(v);
  for (int o = 16; o > 0; o >>= 1) {
    v += __shfl_xor_sync(0xffffffffu, v, o);
    f += __shfl_down_sync(0xffffffffu, f, o);
  }
  if (threadIdx.x == 0) {
    out[blockIdx.x] = v;
    outf[blockIdx.x] = f;
  }
}

TEST(warp_reduction_by_shuffle) {
  std::vector<double> x(64), out(2);
  std::vector<float> outf(2);
  for (int i = 0; i < 64; ++i) x[i] = i * 0.5;
  CHECK(launch(warp_sum, 2, 32, 0, nullptr, x.data(), out.data(), outf.data()) == cudaSuccess);
  CHECK(out[0] == 248.0 && out[1] == 760.0, "%g %g", out[0], out[1]);
  CHECK(outf[0] == 248.0f && outf[1] == 760.0f);
}

// Two halves of a warp run different collectives on disjoint masks; lanes not in any mask skip.
__global__ void partial_masks(unsigned* out) {
  const int l = threadIdx.x % 32;
  unsigned r = 0;
  if (l < 16) {
    r = __ballot_sync(0x0000ffffu, l % 3 == 0);
    r += static_cast<unsigned>(__shfl_sync(0x0000ffffu, l * 10, 15)) << 20;
  } else if (l < 28) {
    r = static_cast<unsigned>(__any_sync(0x0fff0000u, l == 27)) |
        (static_cast<unsigned>(__all_sync(0x0fff0000u, l > 15)) << 1);
    __syncwarp(0x0fff0000u);
    r |= __reduce_add_sync(0x0fff0000u, static_cast<unsigned>(l)) << 8;
  } else {
    r = __activemask();
  }
  out[threadIdx.x] = r;
}

TEST(votes_and_shuffles_with_partial_masks) {
  std::vector<unsigned> out(64);
  CHECK(launch(partial_masks, 1, 64, 0, nullptr, out.data()) == cudaSuccess);
  unsigned ballot = 0;
  for (int l = 0; l < 16; ++l)
    if (l % 3 == 0) ballot |= 1u << l;
  unsigned sum = 0;
  for (int l = 16; l < 28; ++l) sum += l;
  for (int w = 0; w < 2; ++w)
    for (int l = 0; l < 32; ++l) {
      const unsigned got = out[w * 32 + l];
      if (l < 16)
        CHECK(got == ballot + (150u << 20), "lane %d: %x", l, got);
      else if (l < 28)
        CHECK(got == (3u | (sum << 8)), "lane %d: %x", l, got);
      else
        CHECK((got >> l) & 1u && (got & 0x0fffffffu) == 0x0fffffffu, "lane %d: activemask %x", l, got);
    }
}

__global__ void bad_mask(int* out) { out[threadIdx.x] = __shfl_sync(0x1u, 1, 0); }
__global__ void mismatched(int* out) {
  out[threadIdx.x] = threadIdx.x < 16 ? __shfl_sync(0xffffffffu, 1, 0) : __shfl_sync(0xfffffffeu, 1, 1);
}
__global__ void exited_lane(int* out) {
  if (threadIdx.x == 3) return;
  out[threadIdx.x] = __shfl_sync(0xffffffffu, 1, 0);
}

TEST(warp_collective_misuse_is_reported) {
  std::vector<int> out(32);
  CHECK(launch(bad_mask, 1, 32, 0, nullptr, out.data()) == cudaErrorLaunchFailure);
  CHECK(dlk::sim::last_error_message().find("not in mask") != std::string::npos);
  CHECK(launch(mismatched, 1, 32, 0, nullptr, out.data()) == cudaErrorLaunchFailure);
  CHECK(dlk::sim::last_error_message().find("mismatched") != std::string::npos ||
            dlk::sim::last_error_message().find("not in mask") != std::string::npos,
        "%s", dlk::sim::last_error_message().c_str());
  const cudaError_t e = launch(exited_lane, 1, 32, 0, nullptr, out.data());
  CHECK(e == cudaErrorLaunchFailure || e == cudaErrorLaunchTimeout);
  cudaGetLastError();
}

// ---- atomics ---------------------------------------------------------------------------------

__global__ void atomics(int* i, unsigned* u, float* f, double* d, unsigned long long* ull, int* mx, int* mn,
                        unsigned* wrap, int* cas_sum) {
  const int g = blockIdx.x * blockDim.x + threadIdx.x;
  atomicAdd(i, 1);
  atomicAdd(u, 2u);
  atomicAdd(f, 0.5f);
  atomicAdd(d, 0.25);
  atomicAdd(ull, 1ull << 33);
  atomicMax(mx, (g * 37) % 1001);
  atomicMin(mn, 500 - g);
  atomicInc(wrap, 9u);
  int old = *cas_sum, assumed;
  do {
    assumed = old;
    old = atomicCAS(cas_sum, assumed, assumed + g);
  } while (old != assumed);
}

TEST(atomics_over_a_grid) {
  int i = 0, mx = -1, mn = 1 << 30, cas = 0;
  unsigned u = 0, wrap = 0;
  float f = 0;
  double d = 0;
  unsigned long long ull = 0;
  CHECK(launch(atomics, 8, 128, 0, nullptr, &i, &u, &f, &d, &ull, &mx, &mn, &wrap, &cas) == cudaSuccess);
  const int n = 1024;
  int expect_max = 0;
  for (int g = 0; g < n; ++g) expect_max = std::max(expect_max, (g * 37) % 1001);
  CHECK(i == n && u == 2u * n && f == 0.5f * n && d == 0.25 * n && ull == (1ull << 33) * n);
  CHECK(mx == expect_max && mn == 500 - (n - 1) && wrap == n % 10 && cas == n * (n - 1) / 2, "%d %d %u %d", mx, mn,
        wrap, cas);
  int e = 5;
  CHECK(atomicExch(&e, 7) == 5 && e == 7);
}

// ---- the seed --------------------------------------------------------------------------------

__global__ void record_order(int* ticket, int* counter, int* block_ticket, int* block_counter) {
  ticket[blockIdx.x * blockDim.x + threadIdx.x] = atomicAdd(counter, 1);
  if (threadIdx.x == 0) block_ticket[blockIdx.x] = atomicAdd(block_counter, 1);
}

static std::pair<std::vector<int>, std::vector<int>> order_for(uint64_t seed) {
  dlk::sim::set_seed(seed);
  std::vector<int> t(8 * 64), b(8);
  int c = 0, bc = 0;
  CHECK(launch(record_order, 8, 64, 0, nullptr, t.data(), &c, b.data(), &bc) == cudaSuccess);
  return {t, b};
}

TEST(seed_reorders_blocks_and_threads) {
  const auto in_order = order_for(0);
  std::vector<int> iota_t(8 * 64), iota_b(8);
  std::iota(iota_t.begin(), iota_t.end(), 0);
  std::iota(iota_b.begin(), iota_b.end(), 0);
  CHECK(in_order.first == iota_t && in_order.second == iota_b, "seed 0 runs in index order");
  const auto s1 = order_for(1), s2 = order_for(2);
  CHECK(s1.first != iota_t && s1.second != iota_b, "seed 1 shuffles");
  CHECK(s1 != s2, "different seeds give different orders");
  CHECK(order_for(1) == s1, "a seed reproduces its order");
  // Within a block the tickets are still a permutation of one contiguous range.
  for (int b = 0; b < 8; ++b) {
    std::vector<int> t(s1.first.begin() + b * 64, s1.first.begin() + (b + 1) * 64);
    std::sort(t.begin(), t.end());
    CHECK(t.back() - t.front() == 63, "blocks do not interleave");
  }
  dlk::sim::set_seed(1);
}

// ---- host threads ----------------------------------------------------------------------------

TEST(concurrent_launches_from_two_os_threads) {
  bool ok[2] = {true, true};
  auto work = [&](int k) {
    for (int rep = 0; rep < 20; ++rep) {
      std::vector<int> out(2 * 128);
      if (launch(rotate, 2, 128, 0, nullptr, out.data()) != cudaSuccess) ok[k] = false;
      for (int i = 0; i < 256; ++i)
        if (out[i] != ((i % 128 + 1) % 128) * 3) ok[k] = false;
    }
  };
  std::thread a(work, 0), b(work, 1);
  a.join();
  b.join();
  CHECK(ok[0] && ok[1]);
}

// ---- half and bfloat16 conversions ----------------------------------------------------------

TEST(half_conversions_match_float16_rne) {
  int bad = 0;
  for (uint32_t h = 0; h < 65536; ++h) {  // every half, widened, against the compiler's _Float16
    _Float16 r;
    const uint16_t hb = static_cast<uint16_t>(h);
    std::memcpy(&r, &hb, 2);
    const float want = static_cast<float>(r), got = __half2float(__ushort_as_half(hb));
    bad += !(bits(want) == bits(got) || (want != want && got != got));
  }
  std::mt19937 rng(1);
  for (int i = 0; i < 2000000; ++i) {  // float -> half over random bit patterns, biased to half's range
    uint32_t u = rng();
    if (i % 2) u = (u & 0x87ffffffu) | 0x30000000u;
    float f;
    std::memcpy(&f, &u, 4);
    const _Float16 r = static_cast<_Float16>(f);
    uint16_t want;
    std::memcpy(&want, &r, 2);
    const uint16_t got = __half_as_ushort(__float2half_rn(f));
    bad += f == f ? got != want : got != 0x7fffu;
  }
  CHECK(bad == 0, "%d mismatches", bad);
  CHECK(__half_as_ushort(__float2half_rn(65520.0f)) == 0x7c00u &&
        __half_as_ushort(__float2half_rn(65519.0f)) == 0x7bffu);
}

// bfloat16: nearest of the two neighbouring bfloat16 values, ties to the even one.
static uint16_t bf16_reference(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fffu;
  const uint16_t lo = static_cast<uint16_t>(u >> 16);
  if ((u & 0xffffu) == 0) return lo;
  const uint16_t hi = static_cast<uint16_t>(lo + 1);  // next magnitude up, same sign
  const double dl = std::fabs(static_cast<double>(f) - __bfloat162float(__ushort_as_bfloat16(lo)));
  const double dh = std::fabs(static_cast<double>(__bfloat162float(__ushort_as_bfloat16(hi))) - f);
  if ((hi & 0x7f80u) == 0x7f80u && (lo & 0x7fffu) == 0x7f7fu)  // rounding up to inf: compare with 2^128
    return (u & 0xffffu) >= 0x8000u ? hi : lo;
  return dl < dh ? lo : dh < dl ? hi : (lo & 1 ? hi : lo);
}

TEST(bfloat16_conversions_round_to_nearest_even) {
  int bad = 0;
  std::mt19937 rng(2);
  for (int i = 0; i < 2000000; ++i) {
    uint32_t u = rng();
    if (i % 4 == 0) u = (u & 0xffff0000u) | 0x8000u;  // exact ties
    float f;
    std::memcpy(&f, &u, 4);
    bad += __bfloat16_as_ushort(__float2bfloat16_rn(f)) != bf16_reference(f);
  }
  for (uint32_t b = 0; b < 65536; ++b) {
    const uint32_t u = b << 16;
    float f;
    std::memcpy(&f, &u, 4);
    bad += !(bits(__bfloat162float(__ushort_as_bfloat16(static_cast<uint16_t>(b)))) == u);
  }
  CHECK(bad == 0, "%d mismatches", bad);
}

TEST_MAIN
