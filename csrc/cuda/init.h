// CUDA init launchers (csrc/cuda/init.cu). Torch-free: the host side (init_host.cpp) passes a
// contiguous output, its element count and the current stream.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "common/dtype.h"
#include "common/philox.h"

namespace dlk::cuda {

// y[i] = value over n elements.
cudaError_t init_fill(DType dtype, void* y, int64_t n, double value, cudaStream_t stream);
// y[i] = draw i of `p` (common/philox.h) over n elements.
cudaError_t init_random(DType dtype, void* y, int64_t n, const InitParams& p, cudaStream_t stream);

}  // namespace dlk::cuda
