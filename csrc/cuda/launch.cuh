// Launch helpers for the CUDA kernels. Torch-free (CONTRIBUTING.md): kernels and launchers take
// raw pointers, sizes and a cudaStream_t, and report failures as a cudaError_t for the host side
// to raise.
//
// Every launch goes through dlk::cuda::launch, so the same launcher runs on a GPU (nvcc) and on
// the CPU under the SIMT emulator (g++ -DDLK_CUDA_SIM, see cuda/sim/README.md).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <utility>

#include "common/dtype.h"

namespace dlk::cuda {

// Unnamed namespace: under the emulator each translation unit must keep its own instantiation
// (it names the module's shared-memory section); on nvcc it costs nothing.
namespace {

// kernel<<<grid, block, shared_bytes, stream>>>(args...), returning the launch's error: an
// invalid configuration comes back as cudaErrorInvalidConfiguration / cudaErrorInvalidValue.
template <class... P, class... A>
inline cudaError_t launch(void (*kernel)(P...), dim3 grid, dim3 block, size_t shared_bytes, cudaStream_t stream,
                          A&&... args) {
  static_assert(sizeof...(P) == sizeof...(A), "kernel launched with the wrong number of arguments");
#if defined(DLK_CUDA_SIM)
  return ::dlk::sim::launch(kernel, grid, block, shared_bytes, stream, std::forward<A>(args)...);
#else
  // clang-format would split the >>> after a pack expansion.
  // clang-format off
  kernel<<<grid, block, shared_bytes, stream>>>(static_cast<P>(std::forward<A>(args))...);
  // clang-format on
  return cudaGetLastError();
#endif
}

}  // namespace

// The block's dynamic shared memory (the launch's shared_bytes), 16-byte aligned. Kernels use
// this instead of spelling `extern __shared__`, which the emulator cannot express.
template <class T>
__device__ __forceinline__ T* dynamic_shared() {
#if defined(DLK_CUDA_SIM)
  return static_cast<T*>(::dlk::sim::dynamic_smem());
#else
  extern __shared__ __align__(16) unsigned char dlk_dynamic_smem[];
  return reinterpret_cast<T*>(dlk_dynamic_smem);
#endif
}

// A grid-stride loop's first item and step, in 64 bits: for (i = first_item(); i < n; i += item_stride()).
__device__ __forceinline__ int64_t first_item() { return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; }
__device__ __forceinline__ int64_t item_stride() { return static_cast<int64_t>(gridDim.x) * blockDim.x; }

// Math type of an element type: half and bfloat16 compute in float (at::opmath_type's rule).
template <class T>
struct OpMath {
  using type = T;
};
template <>
struct OpMath<__half> {
  using type = float;
};
template <>
struct OpMath<__nv_bfloat16> {
  using type = float;
};
template <class T>
using opmath_t = typename OpMath<T>::type;

// Explicit conversions (torch builds with __CUDA_NO_HALF_CONVERSIONS__ and friends).
__device__ __forceinline__ float to_opmath(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_opmath(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float to_opmath(float v) { return v; }
__device__ __forceinline__ double to_opmath(double v) { return v; }

template <class T>
__device__ __forceinline__ T from_opmath(opmath_t<T> v);
template <>
__device__ __forceinline__ __half from_opmath<__half>(float v) {
  return __float2half_rn(v);
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_opmath<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}
template <>
__device__ __forceinline__ float from_opmath<float>(float v) {
  return v;
}
template <>
__device__ __forceinline__ double from_opmath<double>(double v) {
  return v;
}

// N elements moved as one 16-byte load or store.
template <class T, int N>
struct alignas(sizeof(T) * N) Pack {
  T v[N];
};

inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

// Devices the per-device caches below hold; a device past them reads as having one SM and no
// shared memory to opt into (the launchers then take their smallest configurations).
inline constexpr int kMaxDevices = 64;
// Dynamic shared memory a kernel may use without opting in (cudaFuncSetAttribute).
inline constexpr size_t kDefaultShared = 48 * 1024;

// An attribute of the current device, cached per device; `fallback` if it cannot be read.
template <cudaDeviceAttr Attr>
inline int device_attribute(int fallback) {
  static int cache[kMaxDevices] = {};
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess || dev < 0 || dev >= kMaxDevices) return fallback;
  if (cache[dev] == 0) {
    int n = 0;
    if (cudaDeviceGetAttribute(&n, Attr, dev) != cudaSuccess || n <= 0) return fallback;
    cache[dev] = n;
  }
  return cache[dev];
}

// Number of SMs of the current device.
inline int sm_count() { return device_attribute<cudaDevAttrMultiProcessorCount>(1); }

// The most dynamic shared memory one block may opt into on the current device, in bytes.
inline int shared_optin() { return device_attribute<cudaDevAttrMaxSharedMemoryPerBlockOptin>(0); }

// Blocks for a grid-stride loop over `work` items, `per_block` items per block and pass: enough
// blocks to fill every SM several times over, never more than the work needs.
inline unsigned int grid_for(int64_t work, int64_t per_block) {
  const int64_t needed = (work + per_block - 1) / per_block;
  const int64_t cap = static_cast<int64_t>(sm_count()) * 32;
  const int64_t blocks = needed < cap ? needed : cap;
  return static_cast<unsigned int>(blocks < 1 ? 1 : blocks);
}

// Calls f.template operator()<T>() with the element type of the runtime dtype: the one dtype switch
// of the launchers (the host side has refused other dtypes before a launcher runs).
template <class F>
cudaError_t by_dtype(DType dtype, F f) {
  switch (dtype) {
    case DType::f32:
      return f.template operator()<float>();
    case DType::f64:
      return f.template operator()<double>();
    case DType::f16:
      return f.template operator()<__half>();
    case DType::bf16:
      return f.template operator()<__nv_bfloat16>();
  }
  return cudaErrorInvalidValue;
}

}  // namespace dlk::cuda
