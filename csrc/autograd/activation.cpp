// Autograd for the out-of-place activations and for the relu / leaky_relu backward ops (double
// backward), in C++: one node per call and no Python on the way, ~1 us instead of the ~5 us that
// a Python registration (torch.library.register_autograd) costs on every call, grad or not.
// sigmoid_backward's own derivative is a composite of torch ops, the op
// dlkernels::_sigmoid_backward_backward defined in dlkernels/autograd/activation.py. The in-place
// ops' autograd is dlkernels.autograd's Functions (they mark the input dirty); their dispatcher
// kernels are in ops.cpp.
#include <torch/autograd.h>
#include <torch/library.h>

#include "autograd/dispatch.h"

namespace dlk::autograd {
namespace {

using at::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

Tensor call_relu(const Tensor& x) {
  static const auto op = find_op<Tensor(const Tensor&)>("dlkernels::relu");
  return op.call(x);
}
Tensor call_sigmoid(const Tensor& x) {
  static const auto op = find_op<Tensor(const Tensor&)>("dlkernels::sigmoid");
  return op.call(x);
}
Tensor call_leaky_relu(const Tensor& x, double slope) {
  static const auto op = find_op<Tensor(const Tensor&, double)>("dlkernels::leaky_relu");
  return op.call(x, slope);
}
Tensor call_relu_backward(const Tensor& grad, const Tensor& result) {
  static const auto op = find_op<Tensor(const Tensor&, const Tensor&)>("dlkernels::relu_backward");
  return op.call(grad, result);
}
Tensor call_sigmoid_backward(const Tensor& grad, const Tensor& result) {
  static const auto op = find_op<Tensor(const Tensor&, const Tensor&)>("dlkernels::sigmoid_backward");
  return op.call(grad, result);
}
Tensor call_leaky_relu_backward(const Tensor& grad, const Tensor& x, double slope) {
  static const auto op = find_op<Tensor(const Tensor&, const Tensor&, double)>("dlkernels::leaky_relu_backward");
  return op.call(grad, x, slope);
}

std::tuple<Tensor, Tensor> call_sigmoid_backward_backward(const Tensor& gg, const Tensor& grad, const Tensor& result) {
  static const auto op = find_op<std::tuple<Tensor, Tensor>(const Tensor&, const Tensor&, const Tensor&)>(
      "dlkernels::_sigmoid_backward_backward");
  return op.call(gg, grad, result);
}

// Each forward runs the op below autograd (the kernel registered for the device, or the fake
// kernel under torch.compile); each backward calls the gradient ops through the full dispatcher.
struct Relu : torch::autograd::Function<Relu> {
  static Tensor forward(AutogradContext* ctx, const Tensor& x) {
    const at::AutoDispatchBelowADInplaceOrView below;
    Tensor y = call_relu(x);
    ctx->save_for_backward({y});
    return y;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    return {call_relu_backward(grads[0], ctx->get_saved_variables()[0])};
  }
};

struct Sigmoid : torch::autograd::Function<Sigmoid> {
  static Tensor forward(AutogradContext* ctx, const Tensor& x) {
    const at::AutoDispatchBelowADInplaceOrView below;
    Tensor y = call_sigmoid(x);
    ctx->save_for_backward({y});
    return y;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    return {call_sigmoid_backward(grads[0], ctx->get_saved_variables()[0])};
  }
};

struct LeakyRelu : torch::autograd::Function<LeakyRelu> {
  static Tensor forward(AutogradContext* ctx, const Tensor& x, double slope) {
    const at::AutoDispatchBelowADInplaceOrView below;
    ctx->save_for_backward({x});
    ctx->saved_data["slope"] = slope;
    return call_leaky_relu(x, slope);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const double slope = ctx->saved_data["slope"].toDouble();
    return {call_leaky_relu_backward(grads[0], ctx->get_saved_variables()[0], slope), Tensor()};
  }
};

// relu_backward(g, y) and leaky_relu_backward(g, x, slope) are linear in g with a factor that is
// piecewise constant in y or x: their derivative through y or x is zero almost everywhere (as in
// torch), and through g it is the op itself.
struct ReluBackward : torch::autograd::Function<ReluBackward> {
  static Tensor forward(AutogradContext* ctx, const Tensor& grad, const Tensor& result) {
    const at::AutoDispatchBelowADInplaceOrView below;
    ctx->save_for_backward({result});
    return call_relu_backward(grad, result);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    return {call_relu_backward(grads[0], ctx->get_saved_variables()[0]), Tensor()};
  }
};

struct LeakyReluBackward : torch::autograd::Function<LeakyReluBackward> {
  static Tensor forward(AutogradContext* ctx, const Tensor& grad, const Tensor& x, double slope) {
    const at::AutoDispatchBelowADInplaceOrView below;
    ctx->save_for_backward({x});
    ctx->saved_data["slope"] = slope;
    return call_leaky_relu_backward(grad, x, slope);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const double slope = ctx->saved_data["slope"].toDouble();
    return {call_leaky_relu_backward(grads[0], ctx->get_saved_variables()[0], slope), Tensor(), Tensor()};
  }
};

// sigmoid_backward(g, y) = g y (1 - y): its derivatives come from the composite op above.
struct SigmoidBackward : torch::autograd::Function<SigmoidBackward> {
  static Tensor forward(AutogradContext* ctx, const Tensor& grad, const Tensor& result) {
    const at::AutoDispatchBelowADInplaceOrView below;
    ctx->save_for_backward({grad, result});
    return call_sigmoid_backward(grad, result);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    auto [d_grad, d_result] = call_sigmoid_backward_backward(grads[0], saved[0], saved[1]);
    return {ctx->needs_input_grad(0) ? d_grad : Tensor(), ctx->needs_input_grad(1) ? d_result : Tensor()};
  }
};

TORCH_LIBRARY_IMPL(dlkernels, Autograd, m) {
  m.impl("relu", [](const Tensor& x) { return Relu::apply(x); });
  m.impl("sigmoid", [](const Tensor& x) { return Sigmoid::apply(x); });
  m.impl("leaky_relu", [](const Tensor& x, double slope) { return LeakyRelu::apply(x, slope); });
  m.impl("relu_backward", [](const Tensor& g, const Tensor& y) { return ReluBackward::apply(g, y); });
  m.impl("sigmoid_backward", [](const Tensor& g, const Tensor& y) { return SigmoidBackward::apply(g, y); });
  m.impl("leaky_relu_backward",
         [](const Tensor& g, const Tensor& x, double slope) { return LeakyReluBackward::apply(g, x, slope); });
}

}  // namespace
}  // namespace dlk::autograd
