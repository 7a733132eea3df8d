// conv2d on CUDA, forward and the three gradients: direct kernels on dense NCHW tensors, the
// first correct version of the family (the implicit GEMM on the tensor-core core, cuda/gemm.cuh,
// is the next step: benchmarks/README.md).
//
// Work split, 64-bit indices throughout:
// - forward and grad_input: a grid-stride loop with one thread per output (input) element,
//   consecutive threads on consecutive columns, so a warp reads neighbouring pixels;
// - grad_weight and grad_bias: one warp per weight element (bias channel), its lanes striding over
//   the N x P x Q terms, then a fixed butterfly over the lanes' partial sums.
// Each result is summed in the math type (float for half types) in one fixed order, with no
// atomics: the same bits on every run. Padding taps are skipped, not multiplied by zero, so an
// infinite weight next to the border gives what torch gives.
#include "cuda/conv2d.h"
#include "cuda/launch.cuh"

namespace dlk::cuda {
namespace {

constexpr int kThreads = 256;

template <class T>
__global__ void __launch_bounds__(kThreads)
    forward_kernel(const T* x, const T* w, const T* bias, T* y, Conv2dGeometry g, int64_t items) {
  using M = opmath_t<T>;
  const int64_t Cg = g.Cg(), Kg = g.Kg();
  for (int64_t i = first_item(); i < items; i += item_stride()) {
    const int64_t q = i % g.Q, t = i / g.Q;
    const int64_t p = t % g.P, nk = t / g.P;
    const int64_t k = nk % g.K, n = nk / g.K;
    const int64_t h0 = p * g.sh - g.ph, w0 = q * g.sw - g.pw;
    const T* xg = x + (n * g.C + k / Kg * Cg) * g.HW();
    const T* wk = w + k * Cg * g.RS();
    M acc = bias ? to_opmath(bias[k]) : M(0);
    for (int64_t c = 0; c < Cg; ++c) {
      const T* xc = xg + c * g.HW();
      const T* wc = wk + c * g.RS();
      for (int64_t r = 0; r < g.R; ++r) {
        const int64_t h = h0 + r * g.dh;
        if (h < 0 || h >= g.H) continue;
        for (int64_t s = 0; s < g.S; ++s) {
          const int64_t v = w0 + s * g.dw;
          if (v < 0 || v >= g.W) continue;
          acc += to_opmath(wc[r * g.S + s]) * to_opmath(xc[h * g.W + v]);
        }
      }
    }
    y[i] = from_opmath<T>(acc);
  }
}

// Output index o of the tap at offset `at` (= input position + padding - tap * dilation), or -1
// when the tap reads (h, w) from no output: between strides or past the end.
__device__ __forceinline__ int64_t tap_output(int64_t at, int64_t stride, int64_t outputs) {
  if (at < 0 || at % stride != 0) return -1;
  const int64_t o = at / stride;
  return o < outputs ? o : -1;
}

template <class T>
__global__ void __launch_bounds__(kThreads)
    grad_input_kernel(const T* dy, const T* w, T* dx, Conv2dGeometry g, int64_t items) {
  using M = opmath_t<T>;
  const int64_t Cg = g.Cg(), Kg = g.Kg();
  for (int64_t i = first_item(); i < items; i += item_stride()) {
    const int64_t v = i % g.W, t = i / g.W;
    const int64_t h = t % g.H, nc = t / g.H;
    const int64_t c = nc % g.C, n = nc / g.C;
    const int64_t k0 = c / Cg * Kg, cc = c % Cg;
    M acc = M(0);
    for (int64_t kk = 0; kk < Kg; ++kk) {
      const T* dyk = dy + (n * g.K + k0 + kk) * g.PQ();
      const T* wk = w + ((k0 + kk) * Cg + cc) * g.RS();
      for (int64_t r = 0; r < g.R; ++r) {
        const int64_t p = tap_output(h + g.ph - r * g.dh, g.sh, g.P);
        if (p < 0) continue;
        for (int64_t s = 0; s < g.S; ++s) {
          const int64_t q = tap_output(v + g.pw - s * g.dw, g.sw, g.Q);
          if (q < 0) continue;
          acc += to_opmath(dyk[p * g.Q + q]) * to_opmath(wk[r * g.S + s]);
        }
      }
    }
    dx[i] = from_opmath<T>(acc);
  }
}

constexpr int kWarps = kThreads / 32;
constexpr unsigned kFull = 0xffffffffu;

// The warp's sum of v, in every lane: a fixed butterfly (lanes i and i ^ o add the same two values,
// so every lane gets the same bits). All 32 lanes call it.
template <class M>
__device__ __forceinline__ M warp_sum(M v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFull, v, o);
  return v;
}

__device__ __forceinline__ int64_t first_warp_item() {
  return static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32;
}
__device__ __forceinline__ int64_t warp_item_stride() { return static_cast<int64_t>(gridDim.x) * kWarps; }

template <class T>
__global__ void __launch_bounds__(kThreads) grad_weight_kernel(const T* dy, const T* x, T* dw, Conv2dGeometry g) {
  using M = opmath_t<T>;
  const int64_t Cg = g.Cg(), Kg = g.Kg(), PQ = g.PQ(), terms = g.N * PQ;
  const int64_t weights = g.K * Cg * g.RS();
  const int lane = threadIdx.x % 32;
  for (int64_t e = first_warp_item(); e < weights; e += warp_item_stride()) {
    const int64_t s = e % g.S, t = e / g.S;
    const int64_t r = t % g.R, kc = t / g.R;
    const int64_t cc = kc % Cg, k = kc / Cg;
    const int64_t c = k / Kg * Cg + cc;
    M acc = M(0);
    for (int64_t j = lane; j < terms; j += 32) {
      const int64_t q = j % g.Q, pn = j / g.Q;
      const int64_t p = pn % g.P, n = pn / g.P;
      const int64_t h = p * g.sh - g.ph + r * g.dh, v = q * g.sw - g.pw + s * g.dw;
      if (h < 0 || h >= g.H || v < 0 || v >= g.W) continue;
      acc += to_opmath(dy[(n * g.K + k) * PQ + p * g.Q + q]) * to_opmath(x[((n * g.C + c) * g.H + h) * g.W + v]);
    }
    const M sum = warp_sum(acc);
    if (lane == 0) dw[e] = from_opmath<T>(sum);
  }
}

template <class T>
__global__ void __launch_bounds__(kThreads) grad_bias_kernel(const T* dy, T* db, int64_t N, int64_t K, int64_t PQ) {
  using M = opmath_t<T>;
  const int64_t terms = N * PQ;
  const int lane = threadIdx.x % 32;
  for (int64_t k = first_warp_item(); k < K; k += warp_item_stride()) {
    M acc = M(0);
    for (int64_t j = lane; j < terms; j += 32) acc += to_opmath(dy[(j / PQ * K + k) * PQ + j % PQ]);
    const M sum = warp_sum(acc);
    if (lane == 0) db[k] = from_opmath<T>(sum);
  }
}

}  // namespace

cudaError_t conv2d_forward(DType dtype, const void* x, const void* w, const void* bias, void* y,
                           const Conv2dGeometry& g, cudaStream_t stream) {
  const int64_t items = g.N * g.K * g.PQ();
  if (items == 0) return cudaSuccess;
  return by_dtype(dtype, [&]<class T>() {
    return launch(forward_kernel<T>, grid_for(items, kThreads), kThreads, 0, stream, static_cast<const T*>(x),
                  static_cast<const T*>(w), static_cast<const T*>(bias), static_cast<T*>(y), g, items);
  });
}

cudaError_t conv2d_grad_input(DType dtype, const void* dy, const void* w, void* dx, const Conv2dGeometry& g,
                              cudaStream_t stream) {
  const int64_t items = g.N * g.C * g.HW();
  if (items == 0) return cudaSuccess;
  return by_dtype(dtype, [&]<class T>() {
    return launch(grad_input_kernel<T>, grid_for(items, kThreads), kThreads, 0, stream, static_cast<const T*>(dy),
                  static_cast<const T*>(w), static_cast<T*>(dx), g, items);
  });
}

cudaError_t conv2d_grad_weight(DType dtype, const void* dy, const void* x, void* dw, const Conv2dGeometry& g,
                               cudaStream_t stream) {
  const int64_t weights = g.K * g.Cg() * g.RS();
  if (weights == 0) return cudaSuccess;
  return by_dtype(dtype, [&]<class T>() {
    return launch(grad_weight_kernel<T>, grid_for(weights, kWarps), kThreads, 0, stream, static_cast<const T*>(dy),
                  static_cast<const T*>(x), static_cast<T*>(dw), g);
  });
}

cudaError_t conv2d_grad_bias(DType dtype, const void* dy, void* db, int64_t N, int64_t K, int64_t PQ,
                             cudaStream_t stream) {
  if (K == 0) return cudaSuccess;
  return by_dtype(dtype, [&]<class T>() {
    return launch(grad_bias_kernel<T>, grid_for(K, kWarps), kThreads, 0, stream, static_cast<const T*>(dy),
                  static_cast<T*>(db), N, K, PQ);
  });
}

}  // namespace dlk::cuda
