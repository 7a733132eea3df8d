// The activation ops above the kernels, shared by CPU and CUDA: checks, output allocation,
// layout, empty tensors. `Backend` supplies the device's dtype list and kernel launches:
//   static void check_dtype(const at::Tensor&, const char* op);
//   static void forward(Activation, const at::Tensor& x, const at::Tensor& y, double slope);
//   static void backward(Activation, const at::Tensor& dy, const at::Tensor& saved,
//                        const at::Tensor& dx, double slope);
// Kernels receive non-empty tensors that share one dense layout (host/elementwise.h).
#pragma once

#include <ATen/ATen.h>
#include <torch/library.h>

#include "common/activation.h"
#include "host/checks.h"
#include "host/elementwise.h"

namespace dlk {

template <class Backend>
at::Tensor activation_forward(Activation act, const char* op, const at::Tensor& x, double slope = 0.0) {
  Backend::check_dtype(x, op);
  at::Tensor y = at::empty_like(x);
  if (x.numel() == 0) return y;
  Backend::forward(act, as_layout_of(x, y), y, slope);
  return y;
}

template <class Backend>
void activation_forward_(Activation act, const char* op, at::Tensor& self, double slope = 0.0) {
  Backend::check_dtype(self, op);
  inplace_elementwise(self, [&](const at::Tensor& t) { Backend::forward(act, t, t, slope); });
}

template <class Backend>
at::Tensor activation_backward(Activation act, const char* op, const at::Tensor& grad_output, const at::Tensor& saved,
                               const char* saved_name, double slope = 0.0) {
  Backend::check_dtype(saved, op);
  check_like(saved, saved_name, grad_output, "grad_output", op);
  at::Tensor grad_input = at::empty_like(grad_output);
  if (grad_output.numel() == 0) return grad_input;
  Backend::backward(act, as_layout_of(grad_output, grad_input), as_layout_of(saved, grad_input), grad_input, slope);
  return grad_input;
}

// Registers every activation op of the library for one dispatch key.
template <class Backend>
void register_activation_ops(torch::Library& m) {
  using A = Activation;
  m.impl("relu", [](const at::Tensor& x) { return activation_forward<Backend>(A::relu, "relu", x); });
  m.impl("relu_", [](at::Tensor& x) { activation_forward_<Backend>(A::relu, "relu_", x); });
  m.impl("relu_backward", [](const at::Tensor& dy, const at::Tensor& result) {
    return activation_backward<Backend>(A::relu, "relu_backward", dy, result, "result");
  });
  m.impl("leaky_relu", [](const at::Tensor& x, double slope) {
    return activation_forward<Backend>(A::leaky_relu, "leaky_relu", x, slope);
  });
  m.impl("leaky_relu_",
         [](at::Tensor& x, double slope) { activation_forward_<Backend>(A::leaky_relu, "leaky_relu_", x, slope); });
  m.impl("leaky_relu_backward", [](const at::Tensor& dy, const at::Tensor& self, double slope) {
    return activation_backward<Backend>(A::leaky_relu, "leaky_relu_backward", dy, self, "self", slope);
  });
  m.impl("sigmoid", [](const at::Tensor& x) { return activation_forward<Backend>(A::sigmoid, "sigmoid", x); });
  m.impl("sigmoid_", [](at::Tensor& x) { activation_forward_<Backend>(A::sigmoid, "sigmoid_", x); });
  m.impl("sigmoid_backward", [](const at::Tensor& dy, const at::Tensor& result) {
    return activation_backward<Backend>(A::sigmoid, "sigmoid_backward", dy, result, "result");
  });
}

}  // namespace dlk
