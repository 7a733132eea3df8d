// csrc/cuda/activation.cu under the emulator, through its launchers (dlk::cuda::activation_forward
// / _backward): every activation, all four dtypes, sizes around the pack and tail boundaries and
// unaligned pointers, against a scalar reference built from the same common/activation.h functors.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "common/activation.h"
#include "convert.h"
#include "cuda/activation.h"
#include "harness.h"

using dlk::Activation;
using dlk::DType;

template <class T>
using M = std::conditional_t<std::is_same_v<T, double>, double, float>;

template <class Op, class T>
static T ref_forward(T x, double slope) {
  return from_d<T>(Op::forward(static_cast<M<T>>(to_d(x)), dlk::ActParams<M<T>>{static_cast<M<T>>(slope)}));
}
template <class Op, class T>
static T ref_backward(T dy, T s, double slope) {
  return from_d<T>(Op::backward(static_cast<M<T>>(to_d(dy)), static_cast<M<T>>(to_d(s)),
                                dlk::ActParams<M<T>>{static_cast<M<T>>(slope)}));
}

template <class T>
static bool same_bits(T a, T b) {
  return std::memcmp(&a, &b, sizeof(T)) == 0 || (to_d(a) != to_d(a) && to_d(b) != to_d(b));
}

template <class Op, class T>
static void check_one(Activation act, DType dt, int64_t n, int offset, int& bad) {
  const double slope = 0.125;
  std::mt19937 rng(static_cast<unsigned>(n * 7 + offset));
  std::normal_distribution<double> nd(0.0, 3.0);
  // Over-allocate so `offset` elements in makes every pointer misaligned for 16-byte packs.
  std::vector<T> xb(n + 8), yb(n + 8), db(n + 8), gb(n + 8);
  T *x = xb.data() + offset, *y = yb.data() + offset, *dy = db.data() + offset, *dx = gb.data() + offset;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = from_d<T>(nd(rng));
    dy[i] = from_d<T>(nd(rng));
  }
  if (n > 2) x[1] = from_d<T>(0.0), x[2] = from_d<T>(NAN);
  const T sentinel = from_d<T>(-777.0);
  yb[offset + n] = sentinel;
  gb[offset + n] = sentinel;
  CHECK(dlk::cuda::activation_forward(act, dt, x, y, n, slope, nullptr) == cudaSuccess);
  CHECK(dlk::cuda::activation_backward(act, dt, dy, y, dx, n, slope, nullptr) == cudaSuccess);
  for (int64_t i = 0; i < n; ++i) {
    const T fy = ref_forward<Op>(x[i], slope);
    const T fx = ref_backward<Op>(dy[i], fy, slope);
    if (!same_bits(y[i], fy) || !same_bits(dx[i], fx)) {
      if (bad++ < 5)
        std::printf("  act %d dtype %d n %lld off %d i %lld: y %g vs %g, dx %g vs %g\n", (int)act, (int)dt,
                    (long long)n, offset, (long long)i, to_d(y[i]), to_d(fy), to_d(dx[i]), to_d(fx));
    }
  }
  CHECK(same_bits(yb[offset + n], sentinel) && same_bits(gb[offset + n], sentinel), "wrote past the end");
}

template <class T>
static void check_dtype(DType dt) {
  int bad = 0;
  for (int64_t n : {0, 1, 7, 8, 9, 1000, 4099})
    for (int offset : {0, 1, 3}) {
      check_one<dlk::ReluOp, T>(Activation::relu, dt, n, offset, bad);
      check_one<dlk::LeakyReluOp, T>(Activation::leaky_relu, dt, n, offset, bad);
      check_one<dlk::SigmoidOp, T>(Activation::sigmoid, dt, n, offset, bad);
    }
  CHECK(bad == 0, "%d mismatches", bad);
}

TEST(activation_f32) { check_dtype<float>(DType::f32); }
TEST(activation_f64) { check_dtype<double>(DType::f64); }
TEST(activation_f16) { check_dtype<__half>(DType::f16); }
TEST(activation_bf16) { check_dtype<__nv_bfloat16>(DType::bf16); }

// A grid-stride size: more elements than the capped grid covers in one pass.
TEST(activation_grid_stride) {
  const int64_t n = 4 * 32 * 256 * 4 * 4 + 5;  // sm_count * 32 blocks * kThreads * kUnroll * 4 floats, + tail
  std::vector<float> x(n), y(n);
  for (int64_t i = 0; i < n; ++i) x[i] = static_cast<float>(i % 5) - 2.0f;
  CHECK(dlk::cuda::activation_forward(Activation::relu, DType::f32, x.data(), y.data(), n, 0.0, nullptr) ==
        cudaSuccess);
  int64_t bad = 0;
  for (int64_t i = 0; i < n; ++i) bad += y[i] != (x[i] > 0 ? x[i] : 0.0f);
  CHECK(bad == 0, "%lld wrong", (long long)bad);
}

TEST_MAIN
