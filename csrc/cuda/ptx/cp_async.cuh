// cp.async (sm_80+): asynchronous global -> shared copies of 4, 8 or 16 bytes, grouped with
// commit_group and awaited with wait_group N (all but the newest N groups complete) or
// wait_all. The zfill forms copy src_bytes and zero the rest of the destination (src_bytes = 0
// zero-fills without reading, the usual way to pad out-of-bounds tiles). Addresses must be
// aligned to the copy size. The copies are visible to other threads only after the wait and a
// __syncthreads.
#pragma once

#include <cstdint>

#if defined(DLK_CUDA_SIM)
#include "cuda/sim/ptx.h"
#define DLK_PTX_LOC , std::source_location loc = std::source_location::current()
#define DLK_PTX_LOC_ARG loc
#else
#define DLK_PTX_LOC
#endif

namespace dlk::cuda::ptx {

// .ca: cached in L1 and L2; 4, 8 or 16 bytes.
template <int Bytes>
__device__ __forceinline__ void cp_async_ca_zfill(void* smem, const void* gmem, int src_bytes DLK_PTX_LOC) {
  static_assert(Bytes == 4 || Bytes == 8 || Bytes == 16, "cp.async.ca copies 4, 8 or 16 bytes");
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  const uint32_t s = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.ca.shared.global [%0], [%1], %2, %3;\n" ::"r"(s), "l"(gmem), "n"(Bytes), "r"(src_bytes)
               : "memory");
#elif defined(DLK_CUDA_SIM)
  ::dlk::sim::ptx::cp_async(smem, gmem, Bytes, static_cast<uint32_t>(src_bytes), loc);
#elif defined(__CUDA_ARCH__)
  (void)smem, (void)gmem, (void)src_bytes;
  __trap();
#endif
}
template <int Bytes>
__device__ __forceinline__ void cp_async_ca(void* smem, const void* gmem DLK_PTX_LOC) {
#if defined(DLK_CUDA_SIM)
  cp_async_ca_zfill<Bytes>(smem, gmem, Bytes, loc);
#else
  cp_async_ca_zfill<Bytes>(smem, gmem, Bytes);
#endif
}

// .cg: cached in L2 only; 16 bytes.
__device__ __forceinline__ void cp_async_cg_zfill(void* smem, const void* gmem, int src_bytes DLK_PTX_LOC) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  const uint32_t s = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(src_bytes) : "memory");
#elif defined(DLK_CUDA_SIM)
  ::dlk::sim::ptx::cp_async(smem, gmem, 16, static_cast<uint32_t>(src_bytes), loc);
#elif defined(__CUDA_ARCH__)
  (void)smem, (void)gmem, (void)src_bytes;
  __trap();
#endif
}
__device__ __forceinline__ void cp_async_cg(void* smem, const void* gmem DLK_PTX_LOC) {
#if defined(DLK_CUDA_SIM)
  cp_async_cg_zfill(smem, gmem, 16, loc);
#else
  cp_async_cg_zfill(smem, gmem, 16);
#endif
}

__device__ __forceinline__ void cp_async_commit() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.commit_group;\n" ::: "memory");
#elif defined(DLK_CUDA_SIM)
  ::dlk::sim::ptx::cp_async_commit();
#endif
}

// Waits until at most N committed groups are pending.
template <int N>
__device__ __forceinline__ void cp_async_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
#elif defined(DLK_CUDA_SIM)
  ::dlk::sim::ptx::cp_async_wait(N);
#endif
}

// commit_group + wait_group 0.
__device__ __forceinline__ void cp_async_wait_all() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_all;\n" ::: "memory");
#elif defined(DLK_CUDA_SIM)
  ::dlk::sim::ptx::cp_async_commit();
  ::dlk::sim::ptx::cp_async_wait(0);
#endif
}

}  // namespace dlk::cuda::ptx

#undef DLK_PTX_LOC
#undef DLK_PTX_LOC_ARG
