// csrc/cuda/gemm.cu under the emulator, through dlk::cuda::gemm: every path (f16 / bf16 / TF32
// tensor cores, f32 / f64 SIMT), every tile of each, odd sizes (1, primes, one either side of a
// tile), and operands in every layout the loaders distinguish (K- or R-contiguous, 16-byte
// aligned or not, padded rows, no unit stride), against a double reference.
//
// Bound: with f32 (or the dtype's) accumulation, any order of K products is within
// gamma_(K+1) |A| |B| of the exact sum (the bias adds one rounding); TF32 rounds each operand
// to 11 bits first (2 u_tf32 |A| |B| more); the result is rounded to T once (u_T |C|).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "convert.h"
#include "cuda/gemm.cuh"
#include "harness.h"

using dlk::DType;
using dlk::cuda::GemmOptions;
using dlk::cuda::GemmProblem;

// A rows x cols operand in one of the layouts, inside a buffer whose other elements are NaN (a
// read outside the operand poisons the result).
template <class T>
struct Operand {
  std::vector<T> buf;
  int64_t off = 0, rs = 0, cs = 0;
  const T* ptr() const { return buf.data() + off; }
};

enum Layout { row_major, col_major, padded_rows, offset_one, no_unit_stride, kLayouts };
static const char* layout_name(int l) {
  static const char* n[] = {"row-major", "col-major", "padded-rows", "offset-1", "no-unit-stride"};
  return n[l];
}

template <class T>
static Operand<T> make(const std::vector<double>& v, int64_t rows, int64_t cols, int layout) {
  Operand<T> o;
  switch (layout) {
    case row_major:
      o.rs = cols, o.cs = 1;
      break;
    case col_major:
      o.rs = 1, o.cs = rows;
      break;
    case padded_rows:  // 16-byte aligned rows whatever cols is
      o.rs = (cols + 7) / 8 * 8 + 8, o.cs = 1;
      break;
    case offset_one:
      o.off = 1, o.rs = cols, o.cs = 1;
      break;
    default:
      o.rs = 2 * cols + 1, o.cs = 2;
      break;
  }
  o.buf.assign(o.off + (rows - 1) * o.rs + (cols - 1) * o.cs + 1, from_d<T>(NAN));
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) o.buf[o.off + i * o.rs + j * o.cs] = from_d<T>(v[i * cols + j]);
  return o;
}

struct Shape {
  int64_t M, N, K;
};
// The last shape runs more K steps than the deepest ring has stages (its stages are refilled)
// and spans two column blocks of the widest tile.
static const Shape kShapes[] = {{1, 1, 1},    {1, 13, 7},  {17, 8, 16},   {31, 37, 41},   {64, 64, 32},
                                {65, 63, 33}, {3, 131, 5}, {130, 3, 129}, {127, 129, 67}, {19, 300, 300}};

// Runs one case; returns the number of wrong elements (printing the first).
template <class T>
static int run_case(DType dt, bool tf32, const Shape& s, int la, int lb, int tile, bool with_bias, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  std::vector<double> a(s.M * s.K), b(s.K * s.N), bias(s.N);
  for (auto& x : a) x = to_d(from_d<T>(u(rng)));
  for (auto& x : b) x = to_d(from_d<T>(u(rng)));
  for (auto& x : bias) x = to_d(from_d<T>(u(rng)));
  const Operand<T> A = make<T>(a, s.M, s.K, la), B = make<T>(b, s.K, s.N, lb);
  std::vector<T> bias_t(s.N);
  for (int64_t j = 0; j < s.N; ++j) bias_t[j] = from_d<T>(bias[j]);
  const int64_t c_rs = s.N + 3;
  const T sentinel = from_d<T>(-7.25);
  std::vector<T> C(s.M * c_rs, sentinel);
  const GemmProblem p{s.M,     s.N,  s.K,  A.ptr(),  A.rs, A.cs,
                      B.ptr(), B.rs, B.cs, C.data(), c_rs, with_bias ? bias_t.data() : nullptr};
  GemmOptions opt;
  opt.allow_tf32 = tf32;
  opt.tile = tile;
  const cudaError_t err = dlk::cuda::gemm(dt, p, opt, nullptr);
  if (err != cudaSuccess) {
    std::printf("  launch failed: %s\n", cudaGetErrorString(err));
    return 1;
  }
  const bool low = sizeof(T) == 2;
  const double u_acc = std::is_same_v<T, double> ? 0x1p-53 : 0x1p-24;
  const double u_out = std::is_same_v<T, __half> ? 0x1p-11 : std::is_same_v<T, __nv_bfloat16> ? 0x1p-8 : 0.0;
  const double u_in = tf32 ? 0x1p-11 : 0.0;
  int bad = 0;
  for (int64_t i = 0; i < s.M; ++i) {
    for (int64_t j = 0; j < s.N; ++j) {
      double ref = with_bias ? bias[j] : 0.0, mag = with_bias ? std::fabs(bias[j]) : 0.0;
      for (int64_t k = 0; k < s.K; ++k) {
        ref += a[i * s.K + k] * b[k * s.N + j];
        mag += std::fabs(a[i * s.K + k] * b[k * s.N + j]);
      }
      const double bound = (s.K + 2) * u_acc * mag + 2 * u_in * mag + u_out * std::fabs(ref) + (low ? 1e-6 : 1e-300);
      const double got = to_d(C[i * c_rs + j]);
      if (!(std::fabs(got - ref) <= bound)) {
        if (bad++ == 0)
          std::printf("  C[%lld,%lld] = %.9g, expected %.9g (bound %.3g)\n", (long long)i, (long long)j, got, ref,
                      bound);
      }
    }
    for (int64_t j = s.N; j < c_rs; ++j) {
      if (std::memcmp(&C[i * c_rs + j], &sentinel, sizeof(T)) != 0 && bad++ == 0)
        std::printf("  wrote past row %lld's end\n", (long long)i);
    }
  }
  return bad;
}

// Every shape; each shape pairs every A layout with a B layout and tile that rotate with it, so
// every combination shows up without a full product of runs.
template <class T>
static void sweep(DType dt, bool tf32) {
  const int tiles = dlk::cuda::gemm_tile_count(dt, tf32);
  int n = 0;
  for (const Shape& s : kShapes) {
    for (int la = 0; la < kLayouts; ++la, ++n) {
      const int lb = (la + n / kLayouts) % kLayouts, tile = n % tiles;
      const int bad = run_case<T>(dt, tf32, s, la, lb, tile, n % 2 == 0, 1000 + n);
      CHECK(bad == 0, "%lldx%lldx%lld A %s B %s tile %d: %d wrong", (long long)s.M, (long long)s.N, (long long)s.K,
            layout_name(la), layout_name(lb), tile, bad);
    }
  }
}

TEST(gemm_f16) { sweep<__half>(DType::f16, false); }
TEST(gemm_bf16) { sweep<__nv_bfloat16>(DType::bf16, false); }
TEST(gemm_tf32) { sweep<float>(DType::f32, true); }
TEST(gemm_f32) { sweep<float>(DType::f32, false); }
TEST(gemm_f64) { sweep<double>(DType::f64, false); }

// Each element is one thread's fixed-order sum: the same bits under any block / thread order,
// with every tile.
TEST(gemm_same_bits_under_every_seed) {
  const Shape s{70, 75, 100};
  std::mt19937 rng(5);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  for (DType dt : {DType::f16, DType::f32}) {
    for (bool tf32 : {false, true}) {
      std::vector<float> a(s.M * s.K), b(s.K * s.N);
      for (auto& x : a) x = static_cast<float>(u(rng));
      for (auto& x : b) x = static_cast<float>(u(rng));
      std::vector<__half> ah(a.size()), bh(b.size());
      for (size_t i = 0; i < a.size(); ++i) ah[i] = __float2half_rn(a[i]);
      for (size_t i = 0; i < b.size(); ++i) bh[i] = __float2half_rn(b[i]);
      const bool h = dt == DType::f16;
      for (int tile = 0; tile < dlk::cuda::gemm_tile_count(dt, tf32); ++tile) {
        std::vector<float> first;
        for (uint64_t seed : {0, 1, 7}) {
          dlk::sim::set_seed(seed);
          std::vector<float> c(s.M * s.N);
          std::vector<__half> ch(s.M * s.N);
          const GemmProblem p{s.M,
                              s.N,
                              s.K,
                              h ? (const void*)ah.data() : a.data(),
                              s.K,
                              1,
                              h ? (const void*)bh.data() : b.data(),
                              s.N,
                              1,
                              h ? (void*)ch.data() : c.data(),
                              s.N,
                              nullptr};
          GemmOptions opt;
          opt.allow_tf32 = tf32;
          opt.tile = tile;
          CHECK(dlk::cuda::gemm(dt, p, opt, nullptr) == cudaSuccess);
          if (h)
            for (size_t i = 0; i < c.size(); ++i) c[i] = __half2float(ch[i]);
          if (first.empty())
            first = c;
          else
            CHECK(std::memcmp(first.data(), c.data(), c.size() * sizeof(float)) == 0, "tile %d seed %llu differs", tile,
                  (unsigned long long)seed);
        }
      }
      dlk::sim::set_seed(1);
    }
  }
}

TEST(gemm_empty_and_bad_tile) {
  float c = 3.0f;
  const GemmProblem empty{0, 5, 4, nullptr, 4, 1, nullptr, 5, 1, &c, 5, nullptr};
  CHECK(dlk::cuda::gemm(DType::f32, empty, {}, nullptr) == cudaSuccess && c == 3.0f);
  // K = 0: C is the bias (or zero).
  const float bias[2] = {1.5f, -2.0f};
  float out[2] = {9, 9};
  const GemmProblem k0{1, 2, 0, bias, 0, 1, bias, 2, 1, out, 2, bias};
  for (bool tf32 : {false, true}) {
    GemmOptions opt;
    opt.allow_tf32 = tf32;
    out[0] = out[1] = 9;
    CHECK(dlk::cuda::gemm(DType::f32, k0, opt, nullptr) == cudaSuccess && out[0] == 1.5f && out[1] == -2.0f);
  }
  GemmOptions bad;
  bad.tile = 5;
  CHECK(dlk::cuda::gemm(DType::f16, k0, bad, nullptr) == cudaErrorInvalidValue);
}

TEST_MAIN
