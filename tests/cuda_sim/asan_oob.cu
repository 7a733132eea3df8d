// Planted out-of-bounds accesses for the sanitizer build: each mode must be reported by ASan
// (the process then exits non-zero). Static __shared__ needs -fsanitize-sections=dlk_sim_shared
// so the variables get redzones; dynamic shared memory is an exact-size heap allocation.
#include <cuda_runtime.h>

#include <cstdio>
#include <cstring>
#include <vector>

#include "cuda/launch.cuh"

// UBSan's object-size check would report this one before ASan; this test is about ASan.
__attribute__((no_sanitize("undefined"))) __global__ void static_shared_oob(int* out, int n) {
  __shared__ int s[64];
  s[threadIdx.x] = threadIdx.x;
  __syncthreads();
  if (threadIdx.x == 0) out[0] = s[n];  // n == 64: one past the end
}

__global__ void dynamic_shared_oob(int* out, int n) {
  int* s = dlk::cuda::dynamic_shared<int>();
  s[threadIdx.x] = threadIdx.x;
  __syncthreads();
  if (threadIdx.x == 0) out[0] = s[n];
}

__global__ void global_oob(const int* x, int* out, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  out[i] = x[i];  // no `if (i < n)`: the last block reads and writes past n
  (void)n;
}

int main(int argc, char** argv) {
  const char* mode = argc > 1 ? argv[1] : "none";
  std::vector<int> out(1);
  cudaError_t e = cudaSuccess;
  if (!std::strcmp(mode, "static_shared")) {
    e = dlk::cuda::launch(static_shared_oob, 1, 64, 0, nullptr, out.data(), 64);
  } else if (!std::strcmp(mode, "dynamic_shared")) {
    e = dlk::cuda::launch(dynamic_shared_oob, 1, 64, 64 * sizeof(int), nullptr, out.data(), 64);
  } else if (!std::strcmp(mode, "global")) {
    std::vector<int> x(100), y(100);
    e = dlk::cuda::launch(global_oob, 4, 32, 0, nullptr, x.data(), y.data(), 100);
  } else {  // in bounds: must run clean
    e = dlk::cuda::launch(static_shared_oob, 1, 64, 0, nullptr, out.data(), 63);
    if (e == cudaSuccess) e = dlk::cuda::launch(dynamic_shared_oob, 1, 64, 64 * sizeof(int), nullptr, out.data(), 63);
  }
  std::printf("%s: %s, out %d\n", mode, cudaGetErrorString(e), out[0]);
  return e == cudaSuccess ? 0 : 2;
}
