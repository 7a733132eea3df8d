// CUDA pooling launchers (csrc/cuda/pool2d.cu). Torch-free: the host side (pool2d_host.cpp) checks
// the arguments, picks the layout (NCHW or channels_last, both dense) and passes raw pointers, the
// geometry of host/pool2d.h and the current stream. Every output element is written.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "common/dtype.h"
#include "common/pool2d.h"

namespace dlk::cuda {

// y (and, when not null, the flat H x W index of each maximum) over the windows of g.
cudaError_t max_pool2d_forward(DType dtype, const void* x, void* y, int64_t* indices, const Pool2dGeometry& g,
                               bool channels_last, cudaStream_t stream);
// dx[cell] = sum of dy over the windows containing cell whose index names it.
cudaError_t max_pool2d_backward(DType dtype, const void* dy, const int64_t* indices, void* dx, const Pool2dGeometry& g,
                                bool channels_last, cudaStream_t stream);
// out[n, c, o] = x[n, c, indices[n, c, o]] for `opix` outputs per plane of `plane` inputs. An index
// outside the plane gives 0 and sets *out_of_bounds (waits for the stream: it reads a device flag
// that `flag`, one zeroed device int, holds).
cudaError_t max_pool2d_gather(DType dtype, const void* x, const int64_t* indices, void* out, int64_t N, int64_t C,
                              int64_t plane, int64_t opix, bool channels_last, int* flag, bool* out_of_bounds,
                              cudaStream_t stream);
cudaError_t avg_pool2d_forward(DType dtype, const void* x, void* y, const Pool2dGeometry& g, bool channels_last,
                               cudaStream_t stream);
cudaError_t avg_pool2d_backward(DType dtype, const void* dy, void* dx, const Pool2dGeometry& g, bool channels_last,
                                cudaStream_t stream);
// Adaptive windows: only N, C, H, W, OH, OW of g are read.
cudaError_t adaptive_avg_pool2d_forward(DType dtype, const void* x, void* y, const Pool2dGeometry& g,
                                        bool channels_last, cudaStream_t stream);
cudaError_t adaptive_avg_pool2d_backward(DType dtype, const void* dy, void* dx, const Pool2dGeometry& g,
                                         bool channels_last, cudaStream_t stream);

}  // namespace dlk::cuda
