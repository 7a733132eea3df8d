// CUDA conv2d launchers (csrc/cuda/conv2d.cu). Torch-free: the host side (conv2d_host.cpp) checks
// the arguments with host/conv2d.h, makes every tensor a dense NCHW one and passes raw pointers,
// the geometry and the current stream. Every output element is written; each is one thread's (or
// one block's) sum in a fixed order, so results do not depend on the launch.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "common/conv2d_geometry.h"
#include "common/dtype.h"

namespace dlk::cuda {

// y = conv2d(x, w) (+ bias[k]; bias may be null).
cudaError_t conv2d_forward(DType dtype, const void* x, const void* w, const void* bias, void* y,
                           const Conv2dGeometry& g, cudaStream_t stream);
// dx[n, c, h, w] = sum over the outputs whose window reads (h, w) of dy * the tap's weight.
cudaError_t conv2d_grad_input(DType dtype, const void* dy, const void* w, void* dx, const Conv2dGeometry& g,
                              cudaStream_t stream);
// dw[k, c, r, s] = sum over n, p, q of dy[n, k, p, q] * x at the tap.
cudaError_t conv2d_grad_weight(DType dtype, const void* dy, const void* x, void* dw, const Conv2dGeometry& g,
                               cudaStream_t stream);
// db[k] = sum over n and the PQ pixels of dy[n, k].
cudaError_t conv2d_grad_bias(DType dtype, const void* dy, void* db, int64_t N, int64_t K, int64_t PQ,
                             cudaStream_t stream);

}  // namespace dlk::cuda
