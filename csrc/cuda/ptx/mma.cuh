// Warp-level tensor-core MMA atoms (sm_80+), one typed wrapper per PTX instruction. Fragments
// are raw .b32 registers laid out as in cuda/ptx/layout.cuh. On the GPU: inline PTX; under the
// SIMT emulator: cuda/sim/ptx.h.
#pragma once

#include <cstdint>

#include "cuda/ptx/layout.cuh"
#if defined(DLK_CUDA_SIM)
#include "cuda/sim/ptx.h"
#define DLK_PTX_LOC , std::source_location loc = std::source_location::current()
#else
#define DLK_PTX_LOC
#endif

namespace dlk::cuda::ptx {

// d = a * b + c, mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32. a: 8 halves of A (M16N8K16::a),
// b: 4 halves of B, c/d: 4 floats. d may alias c.
__device__ __forceinline__ void mma_m16n8k16_f32_f16(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2],
                                                     const float (&c)[4] DLK_PTX_LOC) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%10,%11,%12,%13};\n"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]));
#elif defined(DLK_CUDA_SIM)
  ::dlk::sim::ptx::mma<M16N8K16, 0>("mma.m16n8k16.f32.f16", d, a, b, c, loc);
#elif defined(__CUDA_ARCH__)
  __trap();  // no tensor-core path below sm_80
#endif
}

// The same with .bf16 inputs: mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32.
__device__ __forceinline__ void mma_m16n8k16_f32_bf16(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2],
                                                      const float (&c)[4] DLK_PTX_LOC) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%10,%11,%12,%13};\n"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]));
#elif defined(DLK_CUDA_SIM)
  ::dlk::sim::ptx::mma<M16N8K16, 1>("mma.m16n8k16.f32.bf16", d, a, b, c, loc);
#elif defined(__CUDA_ARCH__)
  __trap();
#endif
}

// mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32: a holds 4 tf32 of A (M16N8K8::a), b 2 of B.
// The hardware ignores the low 13 bits of each operand, so convert with to_tf32 first.
__device__ __forceinline__ void mma_m16n8k8_f32_tf32(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2],
                                                     const float (&c)[4] DLK_PTX_LOC) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile(
      "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%10,%11,%12,%13};\n"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]));
#elif defined(DLK_CUDA_SIM)
  ::dlk::sim::ptx::mma<M16N8K8, 2>("mma.m16n8k8.f32.tf32", d, a, b, c, loc);
#elif defined(__CUDA_ARCH__)
  __trap();
#endif
}

// cvt.rna.tf32.f32: float rounded to tf32 (nearest, ties away from zero), as a .b32 operand.
__device__ __forceinline__ uint32_t to_tf32(float x) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  uint32_t r;
  asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(r) : "f"(x));
  return r;
#elif defined(DLK_CUDA_SIM)
  return ::dlk::sim::ptx::cvt_rna_tf32(x);
#else
  (void)x;
  return 0;
#endif
}

}  // namespace dlk::cuda::ptx

#undef DLK_PTX_LOC
