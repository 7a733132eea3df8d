// Activation kernels for one CPU ISA: a vector loop over the shared functors, a masked tail.
// Included by cpu/isa/<isa>.cpp with DLK_ISA naming the namespace whose Vec<T> to use.
// No include guard: included once per ISA, each time into the namespace DLK_ISA names.
//
// Each kernel comes in two flavours that compute the same bits and differ only in how the output
// is written (cpu/activation.cpp picks one per call):
//  - ordinary stores: the output lines go through the caches, where the next op finds them;
//  - streaming (non-temporal) stores: whole output lines go straight to memory, without being
//    read first (no read-for-ownership) and without evicting the inputs. For outputs far larger
//    than the caches this cuts the memory traffic of a forward pass from 3 to 2 array transfers.
//    They need vector-aligned addresses (a masked head gets there) and a fence at the end.

#include "common/activation.h"
#include "cpu/activation_table.h"

namespace dlk::cpu::DLK_ISA {

// Elements before the first address of `p` that a full-vector streaming store may use.
template <class T>
inline int64_t head_to_aligned(const T* p, int64_t n) {
  constexpr uintptr_t bytes = sizeof(Vec<T>);  // streaming stores need a vector-size alignment
  const int64_t head = static_cast<int64_t>(((bytes - reinterpret_cast<uintptr_t>(p) % bytes) % bytes) / sizeof(T));
  return head < n ? head : n;
}

template <class Op, class T, bool kStream>
void activation_forward(const T* x, T* y, int64_t n, T negative_slope) {
  using V = Vec<T>;
  const ActParams<V> p{V(negative_slope)};
  int64_t i = 0;
  if constexpr (kStream) {
    i = head_to_aligned(y, n);  // < one vector
    if (i > 0) Op::forward(V::load(x, i), p).store(y, i);
#pragma GCC unroll 4
    for (; i + V::W <= n; i += V::W) Op::forward(V::load(x + i), p).stream(y + i);
  } else {
#pragma GCC unroll 4
    for (; i + V::W <= n; i += V::W) Op::forward(V::load(x + i), p).store(y + i);
  }
  if (i < n) Op::forward(V::load(x + i, n - i), p).store(y + i, n - i);
  if constexpr (kStream) stream_fence();
}

// kOneGrad: dy is one value for every element (the gradient of a sum or mean, an expanded
// scalar), read once instead of from a copy the size of the input.
template <class Op, class T, bool kStream, bool kOneGrad = false>
void activation_backward(const T* dy, const T* saved, T* dx, int64_t n, T negative_slope) {
  using V = Vec<T>;
  const ActParams<V> p{V(negative_slope)};
  const V one = kOneGrad ? V(dy[0]) : V(T(0));
  auto grad = [&](int64_t i) { return kOneGrad ? one : V::load(dy + i); };
  auto grad_part = [&](int64_t i, int64_t k) { return kOneGrad ? one : V::load(dy + i, k); };
  int64_t i = 0;
  if constexpr (kStream) {
    i = head_to_aligned(dx, n);
    if (i > 0) Op::backward(grad_part(0, i), V::load(saved, i), p).store(dx, i);
#pragma GCC unroll 4
    for (; i + V::W <= n; i += V::W) Op::backward(grad(i), V::load(saved + i), p).stream(dx + i);
  } else {
#pragma GCC unroll 4
    for (; i + V::W <= n; i += V::W) Op::backward(grad(i), V::load(saved + i), p).store(dx + i);
  }
  if (i < n) Op::backward(grad_part(i, n - i), V::load(saved + i, n - i), p).store(dx + i, n - i);
  if constexpr (kStream) stream_fence();
}

template <class T>
const ActivationTable<T>& activation_table() {
  static constexpr ActivationTable<T> table = {
      {&activation_forward<ReluOp, T, false>, &activation_forward<LeakyReluOp, T, false>,
       &activation_forward<SigmoidOp, T, false>},
      {&activation_backward<ReluOp, T, false>, &activation_backward<LeakyReluOp, T, false>,
       &activation_backward<SigmoidOp, T, false>},
      {&activation_forward<ReluOp, T, true>, &activation_forward<LeakyReluOp, T, true>,
       &activation_forward<SigmoidOp, T, true>},
      {&activation_backward<ReluOp, T, true>, &activation_backward<LeakyReluOp, T, true>,
       &activation_backward<SigmoidOp, T, true>},
      {&activation_backward<ReluOp, T, false, true>, &activation_backward<LeakyReluOp, T, false, true>,
       &activation_backward<SigmoidOp, T, false, true>},
      {&activation_backward<ReluOp, T, true, true>, &activation_backward<LeakyReluOp, T, true, true>,
       &activation_backward<SigmoidOp, T, true, true>},
  };
  return table;
}

template const ActivationTable<float>& activation_table<float>();
template const ActivationTable<double>& activation_table<double>();

}  // namespace dlk::cpu::DLK_ISA
