// ldmatrix.sync.aligned.m8n8.{x1,x2,x4}{,.trans}.shared.b16 (sm_75+): the warp loads 1, 2 or 4
// 8x8 matrices of 16-bit elements from shared memory; lane 8j+r passes the address of row r of
// matrix j (16-byte aligned), and register j of each lane receives the elements given by
// LdMatrix8x8::elem (cuda/ptx/layout.cuh).
#pragma once

#include <cstdint>

#include "cuda/ptx/layout.cuh"
#if defined(DLK_CUDA_SIM)
#include "cuda/sim/ptx.h"
#endif

namespace dlk::cuda::ptx {

template <int N, bool Trans = false>
__device__ __forceinline__ void ldmatrix(uint32_t (&r)[N], const void* smem_row
#if defined(DLK_CUDA_SIM)
                                         ,
                                         std::source_location loc = std::source_location::current()
#endif
) {
  static_assert(N == 1 || N == 2 || N == 4, "ldmatrix loads 1, 2 or 4 matrices");
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  const uint32_t a = static_cast<uint32_t>(__cvta_generic_to_shared(smem_row));
  if constexpr (N == 1 && !Trans) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x1.shared.b16 {%0}, [%1];\n" : "=r"(r[0]) : "r"(a));
  } else if constexpr (N == 1) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x1.trans.shared.b16 {%0}, [%1];\n" : "=r"(r[0]) : "r"(a));
  } else if constexpr (N == 2 && !Trans) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0,%1}, [%2];\n" : "=r"(r[0]), "=r"(r[1]) : "r"(a));
  } else if constexpr (N == 2) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0,%1}, [%2];\n" : "=r"(r[0]), "=r"(r[1]) : "r"(a));
  } else if constexpr (!Trans) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(a));
  } else {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(a));
  }
#elif defined(DLK_CUDA_SIM)
  ::dlk::sim::ptx::ldmatrix<N, Trans>(r, smem_row, loc);
#elif defined(__CUDA_ARCH__)
  (void)smem_row;
  __trap();
#endif
}

}  // namespace dlk::cuda::ptx
