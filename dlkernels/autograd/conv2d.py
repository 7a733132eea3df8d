"""Autograd for conv2d: each gradient is its own op, computed only when autograd asks for it."""

import torch

from .._ext import ops


def _grads(ctx, grad_output, input, weight, has_bias, needs):
    conf = ctx.conv_params
    grad_input = grad_weight = grad_bias = None
    if needs[0]:
        grad_input = ops.conv2d_grad_input(grad_output, weight, input.shape, *conf)
    if needs[1]:
        grad_weight = ops.conv2d_grad_weight(grad_output, input, weight.shape, *conf)
    if has_bias and needs[2]:
        grad_bias = ops.conv2d_grad_bias(grad_output)
    return grad_input, grad_weight, grad_bias


class Conv2dFunction(torch.autograd.Function):
    """conv2d(input, weight, bias, stride, padding, dilation, groups) with explicit pairs for
    stride/padding/dilation and symmetric zero padding (see dlkernels.functional.conv2d)."""

    @staticmethod
    def forward(ctx, input, weight, bias, stride, padding, dilation, groups):
        ctx.save_for_backward(input, weight)
        ctx.conv_params = (stride, padding, dilation, groups)
        ctx.has_bias = bias is not None
        return ops.conv2d(input, weight, bias, stride, padding, dilation, groups)

    @staticmethod
    def backward(ctx, grad_output):
        input, weight = ctx.saved_tensors
        grads = _grads(ctx, grad_output, input, weight, ctx.has_bias, ctx.needs_input_grad)
        return (*grads, None, None, None, None)


# The raw op is differentiable too, through the same gradient ops.
def _setup_context(ctx, inputs, output):
    input, weight, bias, stride, padding, dilation, groups = inputs
    ctx.save_for_backward(input, weight)
    ctx.conv_params = (stride, padding, dilation, groups)
    ctx.has_bias = bias is not None


def _backward(ctx, grad_output):
    input, weight = ctx.saved_tensors
    grads = _grads(ctx, grad_output, input, weight, ctx.has_bias, ctx.needs_input_grad)
    return (*grads, None, None, None, None)


torch.library.register_autograd("dlkernels::conv2d", _backward, setup_context=_setup_context)


# The gradient ops are differentiable too, so double backward (torch.autograd.grad(...,
# create_graph=True), gradgradcheck, gradient penalties) is exact instead of silently dropping
# their derivatives. Each is linear in every tensor argument (bilinear for the first two):
#   <G, grad_input(dy, w)>  = <dy, conv2d(G, w)>         -> d/d dy = conv2d(G, w),
#                                                           d/d w  = grad_weight(dy, G)
#   <H, grad_weight(dy, x)> = <dy, conv2d(x, H)>         -> d/d dy = conv2d(x, H),
#                                                           d/d x  = grad_input(dy, H)
#   <h, grad_bias(dy)>      = <dy, h broadcast>          -> d/d dy = h broadcast to dy's shape
# These calls are themselves differentiable, so higher orders work as well.
def _save_grad_op_inputs(ctx, inputs, output):
    grad_output, other = inputs[0], inputs[1]
    ctx.save_for_backward(grad_output, other)
    ctx.conv_params = tuple(inputs[3:])


def _grad_input_backward(ctx, grad):
    grad_output, weight = ctx.saved_tensors
    needs = ctx.needs_input_grad
    d_grad_output = ops.conv2d(grad, weight, None, *ctx.conv_params) if needs[0] else None
    d_weight = ops.conv2d_grad_weight(grad_output, grad, weight.shape, *ctx.conv_params) if needs[1] else None
    return d_grad_output, d_weight, None, None, None, None, None


def _grad_weight_backward(ctx, grad):
    grad_output, input = ctx.saved_tensors
    needs = ctx.needs_input_grad
    d_grad_output = ops.conv2d(input, grad, None, *ctx.conv_params) if needs[0] else None
    d_input = ops.conv2d_grad_input(grad_output, grad, input.shape, *ctx.conv_params) if needs[1] else None
    return d_grad_output, d_input, None, None, None, None, None


def _grad_bias_setup(ctx, inputs, output):
    ctx.grad_output_shape = inputs[0].shape


def _grad_bias_backward(ctx, grad):
    return grad.view(1, -1, 1, 1).expand(ctx.grad_output_shape)


torch.library.register_autograd(
    "dlkernels::conv2d_grad_input", _grad_input_backward, setup_context=_save_grad_op_inputs
)
torch.library.register_autograd(
    "dlkernels::conv2d_grad_weight", _grad_weight_backward, setup_context=_save_grad_op_inputs
)
torch.library.register_autograd(
    "dlkernels::conv2d_grad_bias", _grad_bias_backward, setup_context=_grad_bias_setup
)
