// The CPU loss kernels of one ISA, as a table of plain functions on raw pointers. Filled in by
// cpu/kernels/loss.h (compiled once per ISA), used by cpu/loss.cpp.
#pragma once

#include <cstdint>

#include "common/loss.h"
#include "cpu/isa.h"

namespace dlk::cpu {

// Rows [r0, r1) of a cross entropy. The logits are (batch, classes, positions), contiguous; a
// row is one (sample, position), numbered sample-major, so with one position they are row-major
// (rows x classes) and with more the classes of a row lie `positions` apart.
template <class T>
struct CrossEntropyRows {
  const T* logits;
  int64_t classes;
  int64_t positions;      // 1 for (rows, classes) logits
  const int64_t* target;  // class indices (one per row), or null for soft targets
  const T* soft;          // probabilities laid out as the logits, or null for class targets
  const T* weight;        // per-class weights, or null
  int64_t ignore_index;   // class targets only
  double smoothing;
  double weight_sum;  // sum of the class weights (classes when unweighted)
  // forward outputs
  double* row_loss;    // per row
  double* row_weight;  // the row's share of the mean's divisor: w_t, 0 when ignored
  T* lse;              // per row log-sum-exp (saved for backward)
  // backward inputs and output
  const T* lse_in;
  const T* grad;  // per row upstream gradient, or null: then every row's is `scale`
  double scale;   // multiplies every row's gradient (1 / total weight for a mean)
  T* grad_input;
};

template <class T>
struct LossTable {
  // sum of (x - t)^2 over one block, in double.
  using SquaredErrorSum = double (*)(const T* x, const T* t, int64_t n);
  // y = (x - t)^2.
  using SquaredError = void (*)(const T* x, const T* t, T* y, int64_t n);
  // dx = scale (x - t), times g[i] when g is not null.
  using SquaredErrorGrad = void (*)(const T* x, const T* t, const T* g, T scale, T* dx, int64_t n);
  // The forward and backward of rows [r0, r1); forward returns the first row with a target out of
  // range, or -1. Indexed by cross_entropy_variant().
  using CrossEntropyForward = int64_t (*)(const CrossEntropyRows<T>& a, int64_t r0, int64_t r1);
  using CrossEntropyBackward = void (*)(const CrossEntropyRows<T>& a, int64_t r0, int64_t r1);
  SquaredErrorSum squared_error_sum;
  SquaredError squared_error;
  SquaredErrorGrad squared_error_grad;
  CrossEntropyForward cross_entropy_forward[8];
  CrossEntropyBackward cross_entropy_backward[8];
};

// Each combination of (weighted, smoothed, soft targets) is its own kernel, so the common case
// (class targets, no weight, no smoothing) carries none of the others' work.
inline int cross_entropy_variant(bool weighted, bool smoothed, bool soft) {
  return (weighted ? 1 : 0) | (smoothed ? 2 : 0) | (soft ? 4 : 0);
}

#define DLK_DECLARE(ns)             \
  namespace ns {                    \
  template <class T>                \
  const LossTable<T>& loss_table(); \
  }
DLK_FOR_EACH_ISA(DLK_DECLARE)
#undef DLK_DECLARE

template <class T>
const LossTable<T>& loss_table(Isa isa) {
  DLK_ISA_DISPATCH(isa, loss_table<T>())
}

}  // namespace dlk::cpu
