// The CPU activation kernels of one ISA, as a table of plain functions on raw pointers.
// Filled in by cpu/kernels/activation.h (compiled once per ISA), used by cpu/activation.cpp.
#pragma once

#include <cstdint>

#include "cpu/isa.h"

namespace dlk::cpu {

template <class T>
struct ActivationTable {
  // y[i] = f(x[i]); x may equal y (in place).
  using Forward = void (*)(const T* x, T* y, int64_t n, T negative_slope);
  // dx[i] = f'(saved[i]) * dy[i], where `saved` is the op's input or output (see common/activation.h).
  using Backward = void (*)(const T* dy, const T* saved, T* dx, int64_t n, T negative_slope);
  Forward forward[3];  // indexed by dlk::Activation
  Backward backward[3];
  // The same, writing the output with non-temporal (streaming) stores; the output must not
  // overlap the inputs. Same result bits; for outputs much larger than the caches.
  Forward forward_stream[3];
  Backward backward_stream[3];
  // backward (and its streaming form) with dy[0] as every element's gradient.
  Backward backward_one_grad[3];
  Backward backward_one_grad_stream[3];
};

#define DLK_DECLARE(ns)                         \
  namespace ns {                                \
  template <class T>                            \
  const ActivationTable<T>& activation_table(); \
  }
DLK_FOR_EACH_ISA(DLK_DECLARE)
#undef DLK_DECLARE

template <class T>
const ActivationTable<T>& activation_table(Isa isa) {
  DLK_ISA_DISPATCH(isa, activation_table<T>())
}

}  // namespace dlk::cpu
