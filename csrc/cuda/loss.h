// CUDA loss launchers (csrc/cuda/loss.cu). Torch-free: the host side (loss_host.cpp) passes raw
// pointers, sizes, workspace it allocated and the current stream. "Stat" values (the saved lse,
// the total weight, the workspace) are in the math type: float for float/half/bfloat16, double
// for double.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "common/dtype.h"
#include "common/loss.h"

namespace dlk::cuda {

// Elements of stat workspace mse_loss_sum needs for n elements (one partial per block).
int64_t mse_sum_workspace(int64_t n);
// out (0-dim) = sum (x - t)^2, divided by n for the mean; n > 0.
cudaError_t mse_loss_sum(DType dtype, const void* x, const void* t, void* out, int64_t n, bool mean, void* workspace,
                         cudaStream_t stream);
// y = (x - t)^2.
cudaError_t mse_loss_none(DType dtype, const void* x, const void* t, void* y, int64_t n, cudaStream_t stream);
// dx = 2 (x - t) g_i for the none reduction (g has n values), else dx = 2 g_0 (x - t) (/ n for the
// mean), g_0 read on the device.
cudaError_t mse_loss_grad(DType dtype, const void* g, const void* x, const void* t, void* dx, int64_t n, Reduction red,
                          cudaStream_t stream);

struct CrossEntropyArgs {
  DType dtype;
  // (batch, classes, positions), contiguous: a row is one (sample, position), numbered
  // sample-major, with its classes `positions` apart (row-major rows x classes for one position)
  const void* logits;
  int64_t rows, classes, positions;
  const int64_t* target;  // class indices (one per row), or null for probabilities
  const void* soft;       // probabilities laid out as the logits, or null
  const void* weight;     // classes, or null
  int64_t ignore_index;
  double smoothing;
  Reduction reduction;
  // forward
  void* loss;                // rows values (none) or one
  void* lse;                 // rows stat values
  void* total_weight;        // one stat value
  void* workspace;           // cross_entropy_workspace(rows) stat values
  unsigned long long* flag;  // the first row with a bad target; the host sets it to all ones
  // backward
  const void* grad_output;  // rows values (none) or one
  const void* lse_in;
  const void* total_in;
  void* grad_input;
};

int64_t cross_entropy_workspace(int64_t rows);
cudaError_t cross_entropy_forward(const CrossEntropyArgs& a, cudaStream_t stream);
cudaError_t cross_entropy_backward(const CrossEntropyArgs& a, cudaStream_t stream);

}  // namespace dlk::cuda
