// A small tensor-core GEMM built only from the cuda/ptx wrappers (cp.async -> ldmatrix -> mma).
// It is the same source under nvcc (tools/check_cuda.py compiles it for sm_80 and sm_90, which
// checks the inline PTX) and under the emulator (test_tc_gemm.cu runs it against a scalar GEMM).
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/launch.cuh"
#include "cuda/ptx/cp_async.cuh"
#include "cuda/ptx/ldmatrix.cuh"
#include "cuda/ptx/mma.cuh"

namespace {

namespace ptx = dlk::cuda::ptx;

// One warp per 16x8 tile of C = A B; A is M x K, B is K x N, both row-major f16; K % 16 == 0.
__global__ void __launch_bounds__(32) tc_gemm_kernel(const __half* A, const __half* B, float* C, int N, int K) {
  __shared__ __align__(16) __half As[16 * 16];
  __shared__ __align__(16) __half Bs[16 * 8];
  const int lane = threadIdx.x;
  const int m0 = blockIdx.y * 16, n0 = blockIdx.x * 8;
  float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  for (int k0 = 0; k0 < K; k0 += 16) {
    // 16 bytes per lane: A row lane/2, half-row lane%2; B row lane (lanes 0-15).
    ptx::cp_async_cg(&As[(lane / 2) * 16 + (lane % 2) * 8], &A[(m0 + lane / 2) * K + k0 + (lane % 2) * 8]);
    if (lane < 16) ptx::cp_async_cg(&Bs[lane * 8], &B[(k0 + lane) * N + n0]);
    ptx::cp_async_wait_all();
    __syncthreads();
    uint32_t a[4], b[2];
    ptx::ldmatrix<4>(a, &As[(lane % 16) * 16 + 8 * (lane / 16)]);
    ptx::ldmatrix<2, true>(b, &Bs[(lane % 16) * 8]);
    ptx::mma_m16n8k16_f32_f16(acc, a, b, acc);
    __syncthreads();
  }
  for (int i = 0; i < 4; ++i) {
    const ptx::Coord p = ptx::M16N8K16::c(lane, i);
    C[(m0 + p.row) * N + n0 + p.col] = acc[i];
  }
}

// Instantiates every wrapper once, so nvcc checks each inline-PTX string; one warp, `g` holds at
// least 64 floats, 16-byte aligned.
__global__ void __launch_bounds__(32) all_wrappers_kernel(const float* g, float* out) {
  __shared__ __align__(16) float s[32 * 4];
  __shared__ __align__(16) uint16_t t[16 * 16];
  const int lane = threadIdx.x;
  ptx::cp_async_ca<4>(&s[lane], &g[lane]);
  ptx::cp_async_ca<8>(&s[32 + (lane % 16) * 2], &g[(lane % 16) * 2]);
  ptx::cp_async_ca<16>(&s[64 + (lane % 8) * 4], &g[(lane % 8) * 4]);
  ptx::cp_async_ca_zfill<16>(&s[96 + (lane % 8) * 4], &g[(lane % 8) * 4], 8);
  ptx::cp_async_cg_zfill(&s[96 + (lane % 8) * 4], &g[(lane % 8) * 4], 0);
  ptx::cp_async_commit();
  ptx::cp_async_wait<0>();
  for (int i = lane; i < 256; i += 32) t[i] = static_cast<uint16_t>(i);
  __syncthreads();
  const uint16_t* row = &t[(lane % 16) * 16 + 8 * (lane / 16)];
  uint32_t r1[1], r2[2], r4[4], q1[1], q2[2], q4[4];
  ptx::ldmatrix<1>(r1, row);
  ptx::ldmatrix<2>(r2, row);
  ptx::ldmatrix<4>(r4, row);
  ptx::ldmatrix<1, true>(q1, row);
  ptx::ldmatrix<2, true>(q2, row);
  ptx::ldmatrix<4, true>(q4, row);
  const uint32_t a[4] = {r4[0] ^ q1[0], r4[1] ^ r1[0], r4[2] ^ r2[0], r4[3] ^ q4[0]};
  const uint32_t b[2] = {q2[0] ^ r2[1], q2[1] ^ q4[3]};
  float c[4] = {s[lane], s[32 + lane % 32], s[64 + lane % 32], s[96 + lane % 32]};
  float d[4];
  ptx::mma_m16n8k16_f32_f16(d, a, b, c);
  ptx::mma_m16n8k16_f32_bf16(d, a, b, d);
  const uint32_t ta[4] = {ptx::to_tf32(d[0]), ptx::to_tf32(d[1]), ptx::to_tf32(d[2]), ptx::to_tf32(d[3])};
  const uint32_t tb[2] = {ptx::to_tf32(c[0]), ptx::to_tf32(c[1])};
  ptx::mma_m16n8k8_f32_tf32(d, ta, tb, c);
  ptx::cp_async_wait_all();
  for (int i = 0; i < 4; ++i) out[lane * 4 + i] = d[i];
}

}  // namespace

cudaError_t ptx_all_wrappers(const float* g, float* out, cudaStream_t stream) {
  return dlk::cuda::launch(all_wrappers_kernel, 1, 32, 0, stream, g, out);
}

// M % 16 == 0, N % 8 == 0, K % 16 == 0, pointers 16-byte aligned.
cudaError_t tc_gemm(const __half* A, const __half* B, float* C, int M, int N, int K, cudaStream_t stream) {
  return dlk::cuda::launch(tc_gemm_kernel, dim3(N / 8, M / 16), 32, 0, stream, A, B, C, N, K);
}
