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


# The raw ops (conv2d and its three gradient ops, for double backward) have C++ autograd kernels:
# csrc/autograd/conv2d.cpp.
