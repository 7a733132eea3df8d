// The elementwise op core shared by every device and every elementwise family (activations now,
// losses and init next): checks, output allocation, layout and empty tensors, so a device only
// supplies kernels over flat, equally laid out arrays.
//
// An elementwise kernel runs over flat arrays, so every operand must store its elements in the
// same order. The output takes the layout of its first input (empty_like: dense tensors keep
// their strides, so channels_last stays channels_last); any operand laid out differently is
// copied into that layout first. The fake kernels in dlkernels/_meta mirror this rule.
#pragma once

#include "host/tensor.h"

namespace dlk {

// y = f(x): `run(x, y)` gets non-empty, equally laid out, dense tensors.
template <class Run>
Tensor elementwise_unary(const Tensor& x, Run&& run) {
  Tensor y = dlk::empty_like(x);
  if (x.numel() == 0) return y;
  run(as_layout_of(x, y), y);
  return y;
}

// x = f(x) in place, through a dense temporary when `x` is not dense. Refuses tensors whose
// elements share memory, as torch does.
template <class Run>
void elementwise_inplace(const char* op, Tensor& x, Run&& run) {
  DLK_CHECK(!has_internal_overlap(x), op,
            ": unsupported operation: more than one element of the written-to tensor refers to a single memory "
            "location. Please clone() the tensor before performing the operation.");
  if (x.numel() == 0) return;
  if (is_dense(x)) return run(x, x);
  Tensor tmp = torch::stable::contiguous(x);
  run(tmp, tmp);
  torch::stable::copy_(x, tmp);
}

// out = f(a, b) for a and b of one shape (a gradient and a saved tensor): `run(a, b, out)`.
template <class Run>
Tensor elementwise_binary(const Tensor& a, const Tensor& b, Run&& run) {
  Tensor out = dlk::empty_like(a);
  if (a.numel() == 0) return out;
  run(as_layout_of(a, out), as_layout_of(b, out), out);
  return out;
}

}  // namespace dlk
