// Activations and their derivatives: one definition for the CPU (scalar and SIMD) and CUDA.
//
// Each functor is a template over the value type V, which is either a scalar accumulation type
// (float, double; CUDA half/bfloat16 are widened to float first) or a CPU SIMD vector. Only the
// vocabulary of common/math.h is used, so the same line of math runs everywhere.
//
// NaN handling follows PyTorch: relu(NaN) = NaN (comparisons are ordered, so a NaN never takes
// the "< 0" branch), leaky_relu(NaN) = NaN, sigmoid(NaN) = NaN.
#pragma once

#include "common/math.h"

namespace dlk {

enum class Activation : int { relu = 0, leaky_relu = 1, sigmoid = 2 };

// Runtime parameters of an activation; only leaky_relu has one today.
template <class V>
struct ActParams {
  V negative_slope;
};

struct ReluOp {
  template <class V>
  DLK_HD static V forward(V x, ActParams<V>) {
    const V zero(0);
    return where(x < zero, zero, x);  // x itself at +-0: relu(-0.0) is -0.0, as in torch
  }
  // `y` is the forward output (valid for the in-place variant too): y > 0 exactly where x > 0.
  template <class V>
  DLK_HD static V backward(V dy, V y, ActParams<V>) {
    const V zero(0);
    return where(y <= zero, zero, dy);
  }
};

struct LeakyReluOp {
  template <class V>
  DLK_HD static V forward(V x, ActParams<V> p) {
    return where(x > V(0), x, x * p.negative_slope);
  }
  // `x` is the forward input, or its output when the slope is >= 0 (signs are preserved then).
  template <class V>
  DLK_HD static V backward(V dy, V x, ActParams<V> p) {
    return where(x > V(0), dy, dy * p.negative_slope);
  }
};

struct SigmoidOp {
  // 1 / (1 + e^-x) for x >= 0 and e^x / (1 + e^x) for x < 0: exp never overflows, and tiny
  // results for very negative x stay accurate instead of flushing through inf.
  template <class V>
  DLK_HD static V forward(V x, ActParams<V>) {
    const V one(1);
    const V e = exp(-abs(x));
    const V r = one / (one + e);
    return where(x >= V(0), r, e * r);
  }
  // `y` is the forward output: d sigmoid / dx = y (1 - y).
  template <class V>
  DLK_HD static V backward(V dy, V y, ActParams<V>) {
    const V one(1);
    return dy * (one - y) * y;
  }
};

}  // namespace dlk
