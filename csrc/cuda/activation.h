// CUDA activation launchers (csrc/cuda/activation.cu). Torch-free: the host side
// (activation_host.cpp) passes raw pointers, the element count and the current stream.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "common/activation.h"
#include "common/dtype.h"

namespace dlk::cuda {

// y = f(x) over n elements; x may equal y.
cudaError_t activation_forward(Activation act, DType dtype, const void* x, void* y, int64_t n, double negative_slope,
                               cudaStream_t stream);
// dx = f'(saved) * dy over n elements; with one_grad, dy[0] is every element's dy (the expanded
// gradient of a sum or mean).
cudaError_t activation_backward(Activation act, DType dtype, const void* dy, const void* saved, void* dx, int64_t n,
                                double negative_slope, cudaStream_t stream, bool one_grad = false);

}  // namespace dlk::cuda
