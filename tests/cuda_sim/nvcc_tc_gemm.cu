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

}  // namespace

// M % 16 == 0, N % 8 == 0, K % 16 == 0, pointers 16-byte aligned.
cudaError_t tc_gemm(const __half* A, const __half* B, float* C, int M, int N, int K, cudaStream_t stream) {
  return dlk::cuda::launch(tc_gemm_kernel, dim3(N / 8, M / 16), 32, 0, stream, A, B, C, N, K);
}
