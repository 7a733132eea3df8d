// The activation ops above the kernels, shared by CPU and CUDA. `Backend` supplies the device's
// dtype list and kernels over flat arrays (host/elementwise.h gives them equally laid out,
// non-empty tensors):
//   static constexpr std::initializer_list<ScalarType> dtypes;
//   static void forward(Activation, const Tensor& x, const Tensor& y, double slope);
//   static void backward(Activation, const Tensor& dy, const Tensor& saved, const Tensor& dx, double slope);
// and optionally backward_one_grad(...): the same with dy a single value broadcast to every element.
#pragma once

#include "common/activation.h"
#include "host/elementwise.h"

namespace dlk {

template <class Backend>
struct ActivationOps {
  static Tensor forward(Activation act, const char* op, const Tensor& x, double slope) {
    check_dtype(x, op, Backend::dtypes);
    return elementwise_unary(x, [&](const Tensor& in, const Tensor& out) { Backend::forward(act, in, out, slope); });
  }
  static void forward_(Activation act, const char* op, Tensor& x, double slope) {
    check_dtype(x, op, Backend::dtypes);
    elementwise_inplace(op, x, [&](const Tensor& in, const Tensor& out) { Backend::forward(act, in, out, slope); });
  }
  static Tensor backward(Activation act, const char* op, const Tensor& dy, const Tensor& saved, const char* saved_name,
                         double slope) {
    check_dtype(saved, op, Backend::dtypes);
    check_like(saved, saved_name, dy, "grad_output", op);
    if constexpr (requires { &Backend::backward_one_grad; }) {
      // The gradient of a sum or mean is one value expanded (all strides 0): read it once rather
      // than copy it out to the input's size. The output is contiguous, as the general rule makes
      // it for such a dy (empty_like of a non-dense tensor).
      if (is_one_value(dy) && saved.is_contiguous()) {
        Tensor dx = dlk::new_empty(saved, saved.sizes());
        Backend::backward_one_grad(act, dy, saved, dx, slope);
        return dx;
      }
    }
    return elementwise_binary(dy, saved, [&](const Tensor& g, const Tensor& s, const Tensor& out) {
      Backend::backward(act, g, s, out, slope);
    });
  }

  // The registered kernels: one function per op, as the stable boxer needs.
  static Tensor relu(Tensor x) { return forward(Activation::relu, "relu", x, 0.0); }
  static void relu_(Tensor x) { forward_(Activation::relu, "relu_", x, 0.0); }
  static Tensor relu_backward(Tensor dy, Tensor y) {
    return backward(Activation::relu, "relu_backward", dy, y, "result", 0.0);
  }
  static Tensor leaky_relu(Tensor x, double slope) { return forward(Activation::leaky_relu, "leaky_relu", x, slope); }
  static void leaky_relu_(Tensor x, double slope) { forward_(Activation::leaky_relu, "leaky_relu_", x, slope); }
  static Tensor leaky_relu_backward(Tensor dy, Tensor x, double slope) {
    return backward(Activation::leaky_relu, "leaky_relu_backward", dy, x, "self", slope);
  }
  static Tensor sigmoid(Tensor x) { return forward(Activation::sigmoid, "sigmoid", x, 0.0); }
  static void sigmoid_(Tensor x) { forward_(Activation::sigmoid, "sigmoid_", x, 0.0); }
  static Tensor sigmoid_backward(Tensor dy, Tensor y) {
    return backward(Activation::sigmoid, "sigmoid_backward", dy, y, "result", 0.0);
  }

  static void register_all(torch::stable::detail::StableLibrary& m) {
    m.impl("relu", TORCH_BOX(&relu));
    m.impl("relu_", TORCH_BOX(&relu_));
    m.impl("relu_backward", TORCH_BOX(&relu_backward));
    m.impl("leaky_relu", TORCH_BOX(&leaky_relu));
    m.impl("leaky_relu_", TORCH_BOX(&leaky_relu_));
    m.impl("leaky_relu_backward", TORCH_BOX(&leaky_relu_backward));
    m.impl("sigmoid", TORCH_BOX(&sigmoid));
    m.impl("sigmoid_", TORCH_BOX(&sigmoid_));
    m.impl("sigmoid_backward", TORCH_BOX(&sigmoid_backward));
  }
};

}  // namespace dlk
