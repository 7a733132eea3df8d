"""Fake kernels of the conv2d ops (csrc/cpu/conv2d.cpp, csrc/host/conv2d.h): output shapes, and
the same layout rule as csrc/host/conv2d.h conv_output_format: channels_last when the data tensor
(input, or grad_output for grad_input) or the weight has channels_last stride order."""

import torch
from torch._prims_common import suggest_memory_format


def _channels_last(t: torch.Tensor) -> bool:
    # The same reading of strides as at::suggest_memory_format, which the C++ side uses.
    return t.dim() == 4 and suggest_memory_format(t) == torch.channels_last


def _new(like: torch.Tensor, shape, data: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    fmt = torch.channels_last if _channels_last(data) or _channels_last(weight) else torch.contiguous_format
    return like.new_empty(shape).contiguous(memory_format=fmt)


def _out_size(size, k, s, p, d):
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


@torch.library.register_fake("dlkernels::conv2d")
def _conv2d(input, weight, bias, stride, padding, dilation, groups):
    n, _, h, w = input.shape
    k, _, r, s = weight.shape
    p = _out_size(h, r, stride[0], padding[0], dilation[0])
    q = _out_size(w, s, stride[1], padding[1], dilation[1])
    return _new(input, (n, k, p, q), input, weight)


@torch.library.register_fake("dlkernels::conv2d_grad_input")
def _conv2d_grad_input(grad_output, weight, input_size, stride, padding, dilation, groups):
    return _new(grad_output, tuple(input_size), grad_output, weight)


@torch.library.register_fake("dlkernels::conv2d_grad_weight")
def _conv2d_grad_weight(grad_output, input, weight_size, stride, padding, dilation, groups):
    return input.new_empty(tuple(weight_size))


@torch.library.register_fake("dlkernels::conv2d_grad_bias")
def _conv2d_grad_bias(grad_output):
    return grad_output.new_empty((grad_output.shape[1],))
