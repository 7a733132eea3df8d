// CUDA pieces of the linear family that the GEMM core (cuda/gemm.cuh) does not cover: the bias
// gradient, a column sum. Torch-free; the host side is linear_host.cpp.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "common/dtype.h"

namespace dlk::cuda {

// Row chunks the column sum of R rows is split into (each summed by its own blocks, then added
// in chunk order): a function of R only, so the result does not depend on the device.
int64_t column_sum_chunks(int64_t R);

// db[j] = sum over r of dy[r * rs + j * cs], j < out, R >= 1, summed in the accumulation type
// (float for float16 / bfloat16 / float32, double for float64) in a fixed order. `partial` holds
// column_sum_chunks(R) * out values of the accumulation type (unused when that is 1).
cudaError_t column_sums(DType dtype, const void* dy, int64_t rs, int64_t cs, int64_t R, int64_t out, void* db,
                        void* partial, cudaStream_t stream);

}  // namespace dlk::cuda
