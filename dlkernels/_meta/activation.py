"""Fake kernels of the activation ops (csrc/host/activation.h): the output is
``empty_like(input)`` (dense inputs keep their strides); in-place ops return nothing."""

import torch

_lib = "dlkernels::"


def _unary(x, *args):
    return torch.empty_like(x)


def _inplace(x, *args):
    return None


def _backward(grad_output, saved, *args):
    return torch.empty_like(grad_output)


for _name in ("relu", "leaky_relu", "sigmoid"):
    torch.library.register_fake(_lib + _name)(_unary)
    torch.library.register_fake(_lib + _name + "_")(_inplace)
    torch.library.register_fake(_lib + _name + "_backward")(_backward)
