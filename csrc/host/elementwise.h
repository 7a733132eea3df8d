// Memory layout for elementwise ops, shared by the CPU and CUDA registrations.
//
// An elementwise kernel runs over flat arrays, so every operand must store its elements in the
// same order. The output takes the layout of its first input (at::empty_like: dense tensors keep
// their strides, so channels_last stays channels_last); any operand laid out differently is
// copied into that layout first. The fake kernels in dlkernels/_meta mirror this rule.
#pragma once

#include <ATen/ATen.h>
#include <ATen/MemoryOverlap.h>

namespace dlk {

// `t` itself when it is stored like `like`, else a copy of it in `like`'s layout.
inline at::Tensor as_layout_of(const at::Tensor& t, const at::Tensor& like) {
  if (t.is_non_overlapping_and_dense() && t.strides() == like.strides()) return t;
  return at::empty_like(like).copy_(t);
}

// Runs `fn(inout)` on `self` in place, through a dense temporary when `self` is not dense.
template <class Fn>
void inplace_elementwise(at::Tensor& self, Fn&& fn) {
  at::assert_no_internal_overlap(self);
  if (self.numel() == 0) return;
  if (self.is_non_overlapping_and_dense()) {
    fn(self);
  } else {
    at::Tensor tmp = self.contiguous();
    fn(tmp);
    self.copy_(tmp);
  }
}

}  // namespace dlk
