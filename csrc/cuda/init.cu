// The init fills on CUDA.
//
// Work split: one thread per block of four outputs (one Philox call, common/philox.h), in a
// grid-stride loop; block g fills elements 4g..4g+3, so the values are those of the CPU kernel
// whatever the grid. Math in double, converted once to the element type (through float for
// half/bfloat16). Indices are 64-bit.
#include "cuda/init.h"
#include "cuda/launch.cuh"

namespace dlk::cuda {
namespace {

constexpr int kThreads = 256;

template <class T>
__device__ __forceinline__ T from_double(double v) {
  return from_opmath<T>(static_cast<opmath_t<T>>(v));
}

template <class T>
__global__ void __launch_bounds__(kThreads) random_kernel(T* y, int64_t n, InitParams p) {
  const int64_t blocks = (n + 3) / 4;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t g = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; g < blocks; g += stride) {
    double v[4];
    init_block(p, static_cast<uint64_t>(g), v);
    const int64_t base = 4 * g;
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      if (base + k < n) y[base + k] = from_double<T>(v[k]);
    }
  }
}

template <class T>
__global__ void __launch_bounds__(kThreads) fill_kernel(T* y, int64_t n, double value) {
  const T v = from_double<T>(value);
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n; i += stride) y[i] = v;
}

template <class F>
cudaError_t by_type(DType dtype, F f) {
  switch (dtype) {
    case DType::f32:
      return f(float{});
    case DType::f64:
      return f(double{});
    case DType::f16:
      return f(__half{});
    case DType::bf16:
      return f(__nv_bfloat16{});
  }
  return cudaErrorInvalidValue;
}

}  // namespace

cudaError_t init_fill(DType dtype, void* y, int64_t n, double value, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  return by_type(dtype, [&](auto tag) {
    using T = decltype(tag);
    return launch(fill_kernel<T>, grid_for(n, kThreads), kThreads, 0, stream, static_cast<T*>(y), n, value);
  });
}

cudaError_t init_random(DType dtype, void* y, int64_t n, const InitParams& p, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  return by_type(dtype, [&](auto tag) {
    using T = decltype(tag);
    return launch(random_kernel<T>, grid_for((n + 3) / 4, kThreads), kThreads, 0, stream, static_cast<T*>(y), n, p);
  });
}

}  // namespace dlk::cuda
