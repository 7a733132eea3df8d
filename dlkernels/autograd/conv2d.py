"""conv2d as a torch.autograd.Function. Its backward is the registered op's own
(dlkernels/_ops/conv2d.py): one autograd implementation behind both entry points."""

import torch

from .._ext import ops
from .._ops.conv2d import backward_of_conv2d
from ..functional._checks import check_kernel_dtype


class Conv2dFunction(torch.autograd.Function):
    """conv2d(input, weight, bias, stride, padding, dilation, groups) with explicit pairs for
    stride/padding/dilation and symmetric zero padding (see dlkernels.functional.conv2d)."""

    @staticmethod
    def forward(input, weight, bias, stride, padding, dilation, groups):
        check_kernel_dtype("conv2d", input)
        return ops.conv2d(input, weight, bias, stride, padding, dilation, groups)

    @staticmethod
    def setup_context(ctx, inputs, output):
        input, weight, bias, *conf = inputs
        ctx.save_for_backward(input, weight)
        ctx.conf = tuple(conf)
        ctx.has_bias = bias is not None

    @staticmethod
    def backward(ctx, grad_output):
        input, weight = ctx.saved_tensors
        grads = backward_of_conv2d(grad_output, input, weight, ctx.has_bias, ctx.conf, ctx.needs_input_grad)
        return (*grads, None, None, None, None)
