// Loss definitions shared by the CPU and CUDA kernels: the reduction codes, and the scalar
// pieces of the fused cross entropy (online log-sum-exp, per-row loss and gradient coefficients).
// Torch-free so nvcc, the emulator and the CPU ISA units can include it.
//
// Cross entropy of one row x (C logits) with lse = log sum_c e^{x_c}, class weights w (all 1
// without a weight) and label smoothing e:
//   class target t:  loss = (1-e) w_t (lse - x_t) + e/C sum_c w_c (lse - x_c)
//   soft target  q:  loss = sum_c w_c y_c (lse - x_c),  y_c = (1-e) q_c + e/C
// Both are sum_c b_c (lse - x_c) for non-negative b, so d loss / d x_c = A p_c - b_c with
// p = softmax(x) and A = sum_c b_c: the gradient needs only x, lse and the target.
#pragma once

#include <cstdint>

#include "common/macros.h"
#include "common/math.h"

namespace dlk {

// torch's at::Reduction codes.
enum class Reduction : int { none = 0, mean = 1, sum = 2 };

// Merges the log-sum-exp state (m2, s2) into (m, s), where a state stands for m + log(s).
template <class A>
DLK_HD void lse_merge(A& m, A& s, A m2, A s2) {
  if (m2 > m) {
    s = s * exp(m - m2) + s2;
    m = m2;
  } else {
    s = s + s2 * exp(m2 - m);
  }
}

// A target other than ignore_index must be a class index in [0, classes).
DLK_HD bool target_ok(int64_t t, int64_t classes, int64_t ignore_index) {
  return t == ignore_index || (t >= 0 && t < classes);
}

// What a class-target row contributes, from its lse, x_t and (with smoothing) sum_c w_c x_c.
template <class A>
DLK_HD A class_row_loss(A lse, A x_t, A w_t, A smoothing, A weight_sum, A sum_wx, int64_t classes) {
  A loss = w_t * (lse - x_t);
  if (smoothing > A(0)) loss = (A(1) - smoothing) * loss + smoothing / A(classes) * (weight_sum * lse - sum_wx);
  return loss;
}

// The coefficient A of p_c in a class-target row's gradient: (1-e) w_t + e/C sum_c w_c.
template <class A>
DLK_HD A class_row_coef(A w_t, A smoothing, A weight_sum, int64_t classes) {
  return (A(1) - smoothing) * w_t + smoothing / A(classes) * weight_sum;
}

}  // namespace dlk
