"""relu, leaky_relu and sigmoid with the signatures of ``torch.nn.functional``.

Out of place, these call the operators, whose autograd is registered with them
(dlkernels/_ops), by the direct path of dlkernels._ops._common.call where it applies;
in place with autograd recording, they go through dlkernels.autograd's Functions, which mark the
input dirty."""

import torch
from torch import Tensor

from .._ext import ops
from .._ops._common import PLAIN_TYPES, call, direct_keyset
from ..autograd.activation import LeakyReLUFunction, ReLUFunction
from . import _checks
from ._checks import check_inplace, check_kernel_dtype, check_number, check_tensor, needs_grad


def _inplace(op, input, *args) -> None:
    """The raw in-place op, or, when no autograd is involved, its device kernel directly plus the
    version bump its ADInplaceOrView kernel would make (two Python dispatcher kernels saved)."""
    keys = direct_keyset(input)
    if keys and not input.is_inference() and not input.is_neg():  # a negation view: see register_inplace
        op.default.redispatch(keys, input, *args)
        torch.autograd.graph.increment_version(input)
    else:
        op(input, *args)


def _fast(input) -> bool:
    """Whether the out-of-place op may skip the Python checks (they would pass)."""
    return (
        type(input) in PLAIN_TYPES and input.dtype in _checks.ANY_DEVICE_DTYPES and _checks.CUDA_SIM is None
    )


def relu(input: Tensor, inplace: bool = False) -> Tensor:
    if not inplace and _fast(input):
        return call(ops.relu, input)
    check_tensor("relu_" if inplace else "relu", input)
    check_kernel_dtype("relu_" if inplace else "relu", input)
    if not inplace:
        return call(ops.relu, input)
    check_inplace(input)
    if needs_grad(input):
        return ReLUFunction.apply(input, True)
    _inplace(ops.relu_, input)
    return input


def relu_(input: Tensor) -> Tensor:
    return relu(input, inplace=True)


def leaky_relu(input: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    if not inplace and type(negative_slope) is float and _fast(input):
        return call(ops.leaky_relu, input, negative_slope)
    name = "leaky_relu_" if inplace else "leaky_relu"
    check_tensor(name, input)
    check_kernel_dtype(name, input)
    negative_slope = check_number(name, negative_slope, "negative_slope", 2)
    if not inplace:
        return call(ops.leaky_relu, input, negative_slope)
    check_inplace(input)
    if needs_grad(input):
        return LeakyReLUFunction.apply(input, negative_slope, True)
    _inplace(ops.leaky_relu_, input, negative_slope)
    return input


def leaky_relu_(input: Tensor, negative_slope: float = 0.01) -> Tensor:
    return leaky_relu(input, negative_slope, inplace=True)


def sigmoid(input: Tensor) -> Tensor:
    if _fast(input):
        return call(ops.sigmoid, input)
    check_tensor("sigmoid", input)
    check_kernel_dtype("sigmoid", input)
    return call(ops.sigmoid, input)
