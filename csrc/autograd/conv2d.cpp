// Autograd for conv2d and its gradient ops, in C++ (see activation.cpp for why). Each gradient is
// its own op, called only for the inputs autograd asks about. The gradient ops are differentiable
// too, so double backward is exact; each is linear in every tensor argument:
//   <G, grad_input(dy, w)>  = <dy, conv2d(G, w)>      d/d dy = conv2d(G, w),  d/d w = grad_weight(dy, G)
//   <H, grad_weight(dy, x)> = <dy, conv2d(x, H)>      d/d dy = conv2d(x, H),  d/d x = grad_input(dy, H)
//   <h, grad_bias(dy)>      = <dy, h broadcast>       d/d dy = h broadcast to dy's shape
#include <torch/autograd.h>
#include <torch/library.h>

#include "autograd/dispatch.h"

namespace dlk::autograd {
namespace {

using at::IntArrayRef;
using at::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// stride, padding, dilation, groups, as the ops take them and as ctx->saved_data keeps them.
struct ConvParams {
  std::vector<int64_t> stride, padding, dilation;
  int64_t groups;

  void save(AutogradContext* ctx) const {
    ctx->saved_data["stride"] = stride;
    ctx->saved_data["padding"] = padding;
    ctx->saved_data["dilation"] = dilation;
    ctx->saved_data["groups"] = groups;
  }
  static ConvParams load(AutogradContext* ctx) {
    return {ctx->saved_data["stride"].toIntVector(), ctx->saved_data["padding"].toIntVector(),
            ctx->saved_data["dilation"].toIntVector(), ctx->saved_data["groups"].toInt()};
  }
};

Tensor call_conv2d(const Tensor& x, const Tensor& w, const std::optional<Tensor>& b, const ConvParams& p) {
  static const auto op = find_op<Tensor(const Tensor&, const Tensor&, const std::optional<Tensor>&, IntArrayRef,
                                        IntArrayRef, IntArrayRef, int64_t)>("dlkernels::conv2d");
  return op.call(x, w, b, p.stride, p.padding, p.dilation, p.groups);
}
Tensor call_grad_input(const Tensor& dy, const Tensor& w, c10::SymIntArrayRef input_size, const ConvParams& p) {
  static const auto op = find_op<Tensor(const Tensor&, const Tensor&, c10::SymIntArrayRef, IntArrayRef, IntArrayRef,
                                        IntArrayRef, int64_t)>("dlkernels::conv2d_grad_input");
  return op.call(dy, w, input_size, p.stride, p.padding, p.dilation, p.groups);
}
Tensor call_grad_weight(const Tensor& dy, const Tensor& x, c10::SymIntArrayRef weight_size, const ConvParams& p) {
  static const auto op = find_op<Tensor(const Tensor&, const Tensor&, c10::SymIntArrayRef, IntArrayRef, IntArrayRef,
                                        IntArrayRef, int64_t)>("dlkernels::conv2d_grad_weight");
  return op.call(dy, x, weight_size, p.stride, p.padding, p.dilation, p.groups);
}
Tensor call_grad_bias(const Tensor& dy) {
  static const auto op = find_op<Tensor(const Tensor&)>("dlkernels::conv2d_grad_bias");
  return op.call(dy);
}

struct Conv2d : torch::autograd::Function<Conv2d> {
  static Tensor forward(AutogradContext* ctx, const Tensor& x, const Tensor& w, const std::optional<Tensor>& b,
                        const ConvParams& p) {
    const at::AutoDispatchBelowADInplaceOrView below;
    ctx->save_for_backward({x, w});
    p.save(ctx);
    ctx->saved_data["has_bias"] = b.has_value();
    return call_conv2d(x, w, b, p);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const Tensor &x = saved[0], &w = saved[1], &dy = grads[0];
    const ConvParams p = ConvParams::load(ctx);
    const bool has_bias = ctx->saved_data["has_bias"].toBool();
    return {ctx->needs_input_grad(0) ? call_grad_input(dy, w, x.sym_sizes(), p) : Tensor(),
            ctx->needs_input_grad(1) ? call_grad_weight(dy, x, w.sym_sizes(), p) : Tensor(),
            has_bias && ctx->needs_input_grad(2) ? call_grad_bias(dy) : Tensor(), Tensor()};
  }
};

struct Conv2dGradInput : torch::autograd::Function<Conv2dGradInput> {
  static Tensor forward(AutogradContext* ctx, const Tensor& dy, const Tensor& w, c10::SymIntArrayRef input_size,
                        const ConvParams& p) {
    const at::AutoDispatchBelowADInplaceOrView below;
    ctx->save_for_backward({dy, w});
    p.save(ctx);
    return call_grad_input(dy, w, input_size, p);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const Tensor &dy = saved[0], &w = saved[1], &g = grads[0];
    const ConvParams p = ConvParams::load(ctx);
    return {ctx->needs_input_grad(0) ? call_conv2d(g, w, std::nullopt, p) : Tensor(),
            ctx->needs_input_grad(1) ? call_grad_weight(dy, g, w.sym_sizes(), p) : Tensor(), Tensor(), Tensor()};
  }
};

struct Conv2dGradWeight : torch::autograd::Function<Conv2dGradWeight> {
  static Tensor forward(AutogradContext* ctx, const Tensor& dy, const Tensor& x, c10::SymIntArrayRef weight_size,
                        const ConvParams& p) {
    const at::AutoDispatchBelowADInplaceOrView below;
    ctx->save_for_backward({dy, x});
    p.save(ctx);
    return call_grad_weight(dy, x, weight_size, p);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const Tensor &dy = saved[0], &x = saved[1], &h = grads[0];
    const ConvParams p = ConvParams::load(ctx);
    return {ctx->needs_input_grad(0) ? call_conv2d(x, h, std::nullopt, p) : Tensor(),
            ctx->needs_input_grad(1) ? call_grad_input(dy, h, x.sym_sizes(), p) : Tensor(), Tensor(), Tensor()};
  }
};

struct Conv2dGradBias : torch::autograd::Function<Conv2dGradBias> {
  static Tensor forward(AutogradContext* ctx, const Tensor& dy) {
    const at::AutoDispatchBelowADInplaceOrView below;
    ctx->saved_data["shape"] = dy.sym_sizes();
    return call_grad_bias(dy);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto shape = ctx->saved_data["shape"].toSymIntVector();
    return {grads[0].view({1, -1, 1, 1}).expand_symint(shape)};
  }
};

ConvParams params(IntArrayRef stride, IntArrayRef padding, IntArrayRef dilation, int64_t groups) {
  return {stride.vec(), padding.vec(), dilation.vec(), groups};
}

TORCH_LIBRARY_IMPL(dlkernels, Autograd, m) {
  m.impl("conv2d", [](const Tensor& x, const Tensor& w, const std::optional<Tensor>& b, IntArrayRef stride,
                      IntArrayRef padding, IntArrayRef dilation,
                      int64_t groups) { return Conv2d::apply(x, w, b, params(stride, padding, dilation, groups)); });
  m.impl("conv2d_grad_input", [](const Tensor& dy, const Tensor& w, c10::SymIntArrayRef input_size, IntArrayRef stride,
                                 IntArrayRef padding, IntArrayRef dilation, int64_t groups) {
    return Conv2dGradInput::apply(dy, w, input_size, params(stride, padding, dilation, groups));
  });
  m.impl("conv2d_grad_weight", [](const Tensor& dy, const Tensor& x, c10::SymIntArrayRef weight_size,
                                  IntArrayRef stride, IntArrayRef padding, IntArrayRef dilation, int64_t groups) {
    return Conv2dGradWeight::apply(dy, x, weight_size, params(stride, padding, dilation, groups));
  });
  m.impl("conv2d_grad_bias", [](const Tensor& dy) { return Conv2dGradBias::apply(dy); });
}

}  // namespace
}  // namespace dlk::autograd
