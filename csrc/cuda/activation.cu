// Activations on CUDA, forward and backward.
//
// Work split: one grid-stride loop over 16-byte packs (4 float, 2 double, 8 half/bfloat16); each
// thread loads kUnroll packs before computing so several loads are in flight, then the < 1 pack
// tail is done by the first threads. Math is the shared functors of common/activation.h in the
// accumulation type (float for half/bfloat16). Indices are 64-bit: tensors over 2^31 elements work.
// Pointers that are not 16-byte aligned (views with an odd offset) take the same kernel with
// one-element packs.
#include "cuda/activation.h"
#include "cuda/launch.cuh"

namespace dlk::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kUnroll = 4;

template <class Op, class T, int N>
__global__ void __launch_bounds__(kThreads) forward_kernel(const T* x, T* y, int64_t n, opmath_t<T> slope) {
  using P = Pack<T, N>;
  using M = opmath_t<T>;
  const ActParams<M> p{slope};
  const int64_t npack = n / N;
  const P* xp = reinterpret_cast<const P*>(x);
  P* yp = reinterpret_cast<P*>(y);
  const int64_t tile = static_cast<int64_t>(blockDim.x) * kUnroll;
  for (int64_t base = blockIdx.x * tile + threadIdx.x; base < npack; base += static_cast<int64_t>(gridDim.x) * tile) {
    P a[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t i = base + u * static_cast<int64_t>(blockDim.x);
      if (i < npack) a[u] = xp[i];
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t i = base + u * static_cast<int64_t>(blockDim.x);
      if (i < npack) {
        P b;
#pragma unroll
        for (int k = 0; k < N; ++k) b.v[k] = from_opmath<T>(Op::forward(to_opmath(a[u].v[k]), p));
        yp[i] = b;
      }
    }
  }
  const int64_t t = npack * N + blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (t < n) y[t] = from_opmath<T>(Op::forward(to_opmath(x[t]), p));
}

// kOneGrad: dy[0] is every element's gradient, read once per thread.
template <class Op, class T, int N, bool kOneGrad>
__global__ void __launch_bounds__(kThreads)
    backward_kernel(const T* dy, const T* saved, T* dx, int64_t n, opmath_t<T> slope) {
  using P = Pack<T, N>;
  using M = opmath_t<T>;
  const ActParams<M> p{slope};
  const int64_t npack = n / N;
  const P* dyp = reinterpret_cast<const P*>(dy);
  const P* sp = reinterpret_cast<const P*>(saved);
  P* dxp = reinterpret_cast<P*>(dx);
  const M one = kOneGrad ? to_opmath(dy[0]) : M(0);
  const int64_t tile = static_cast<int64_t>(blockDim.x) * kUnroll;
  for (int64_t base = blockIdx.x * tile + threadIdx.x; base < npack; base += static_cast<int64_t>(gridDim.x) * tile) {
    P g[kUnroll], s[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t i = base + u * static_cast<int64_t>(blockDim.x);
      if (i < npack) {
        if constexpr (!kOneGrad) g[u] = dyp[i];
        s[u] = sp[i];
      }
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t i = base + u * static_cast<int64_t>(blockDim.x);
      if (i < npack) {
        P b;
#pragma unroll
        for (int k = 0; k < N; ++k) {
          const M gk = kOneGrad ? one : to_opmath(g[u].v[k]);
          b.v[k] = from_opmath<T>(Op::backward(gk, to_opmath(s[u].v[k]), p));
        }
        dxp[i] = b;
      }
    }
  }
  const int64_t t = npack * N + blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (t < n) dx[t] = from_opmath<T>(Op::backward(kOneGrad ? one : to_opmath(dy[t]), to_opmath(saved[t]), p));
}

template <class Op, class T>
cudaError_t launch_forward(const void* x, void* y, int64_t n, double slope, cudaStream_t stream) {
  constexpr int N = 16 / sizeof(T);
  const auto* xt = static_cast<const T*>(x);
  auto* yt = static_cast<T*>(y);
  const auto s = static_cast<opmath_t<T>>(slope);
  if (aligned16(x) && aligned16(y)) {
    return launch(forward_kernel<Op, T, N>, grid_for(n / N + 1, kThreads * kUnroll), kThreads, 0, stream, xt, yt, n, s);
  }
  return launch(forward_kernel<Op, T, 1>, grid_for(n + 1, kThreads * kUnroll), kThreads, 0, stream, xt, yt, n, s);
}

template <class Op, class T, bool kOneGrad>
cudaError_t launch_backward(const void* dy, const void* saved, void* dx, int64_t n, double slope, cudaStream_t stream) {
  constexpr int N = 16 / sizeof(T);
  const auto* dyt = static_cast<const T*>(dy);
  const auto* st = static_cast<const T*>(saved);
  auto* dxt = static_cast<T*>(dx);
  const auto s = static_cast<opmath_t<T>>(slope);
  if ((kOneGrad || aligned16(dy)) && aligned16(saved) && aligned16(dx)) {
    return launch(backward_kernel<Op, T, N, kOneGrad>, grid_for(n / N + 1, kThreads * kUnroll), kThreads, 0, stream,
                  dyt, st, dxt, n, s);
  }
  return launch(backward_kernel<Op, T, 1, kOneGrad>, grid_for(n + 1, kThreads * kUnroll), kThreads, 0, stream, dyt, st,
                dxt, n, s);
}

// Calls F::template run<Op, T>() for the runtime (activation, dtype) pair.
template <class F>
cudaError_t dispatch(Activation act, DType dtype, F f) {
  auto by_type = [&](auto op) -> cudaError_t {
    using Op = decltype(op);
    switch (dtype) {
      case DType::f32:
        return f.template operator()<Op, float>();
      case DType::f64:
        return f.template operator()<Op, double>();
      case DType::f16:
        return f.template operator()<Op, __half>();
      case DType::bf16:
        return f.template operator()<Op, __nv_bfloat16>();
    }
    return cudaErrorInvalidValue;
  };
  switch (act) {
    case Activation::relu:
      return by_type(ReluOp{});
    case Activation::leaky_relu:
      return by_type(LeakyReluOp{});
    case Activation::sigmoid:
      return by_type(SigmoidOp{});
  }
  return cudaErrorInvalidValue;
}

}  // namespace

cudaError_t activation_forward(Activation act, DType dtype, const void* x, void* y, int64_t n, double negative_slope,
                               cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  return dispatch(act, dtype,
                  [&]<class Op, class T>() { return launch_forward<Op, T>(x, y, n, negative_slope, stream); });
}

cudaError_t activation_backward(Activation act, DType dtype, const void* dy, const void* saved, void* dx, int64_t n,
                                double negative_slope, cudaStream_t stream, bool one_grad) {
  if (n <= 0) return cudaSuccess;
  return dispatch(act, dtype, [&]<class Op, class T>() {
    return one_grad ? launch_backward<Op, T, true>(dy, saved, dx, n, negative_slope, stream)
                    : launch_backward<Op, T, false>(dy, saved, dx, n, negative_slope, stream);
  });
}

}  // namespace dlk::cuda
