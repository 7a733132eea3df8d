// Activation kernels for one CPU ISA: a vector loop over the shared functors, a masked tail.
// Included by cpu/isa/<isa>.cpp with DLK_ISA naming the namespace whose Vec<T> to use.
// No include guard: included once per ISA, each time into the namespace DLK_ISA names.

#include "common/activation.h"
#include "cpu/activation_table.h"

namespace dlk::cpu::DLK_ISA {

template <class Op, class T>
void activation_forward(const T* x, T* y, int64_t n, T negative_slope) {
  using V = Vec<T>;
  const ActParams<V> p{V(negative_slope)};
  int64_t i = 0;
#pragma GCC unroll 4
  for (; i + V::W <= n; i += V::W) Op::forward(V::load(x + i), p).store(y + i);
  if (i < n) Op::forward(V::load(x + i, n - i), p).store(y + i, n - i);
}

template <class Op, class T>
void activation_backward(const T* dy, const T* saved, T* dx, int64_t n, T negative_slope) {
  using V = Vec<T>;
  const ActParams<V> p{V(negative_slope)};
  int64_t i = 0;
#pragma GCC unroll 4
  for (; i + V::W <= n; i += V::W) Op::backward(V::load(dy + i), V::load(saved + i), p).store(dx + i);
  if (i < n) Op::backward(V::load(dy + i, n - i), V::load(saved + i, n - i), p).store(dx + i, n - i);
}

template <class T>
const ActivationTable<T>& activation_table() {
  static constexpr ActivationTable<T> table = {
      {&activation_forward<ReluOp, T>, &activation_forward<LeakyReluOp, T>, &activation_forward<SigmoidOp, T>},
      {&activation_backward<ReluOp, T>, &activation_backward<LeakyReluOp, T>, &activation_backward<SigmoidOp, T>},
  };
  return table;
}

template const ActivationTable<float>& activation_table<float>();
template const ActivationTable<double>& activation_table<double>();

}  // namespace dlk::cpu::DLK_ISA
