"""conv2d with the signature, defaults, accepted inputs and errors of torch.nn.functional.conv2d."""

import torch
from torch import Tensor

from .._ext import ops
from .._ops._common import call
from ._checks import INT64, OVERFLOW, as_int, check_kernel_dtype, check_tensor, unpack_error


def _int_arg(name: str, value) -> int:
    result = as_int(value)
    if result is None:
        raise TypeError(f"conv2d(): argument '{name}' must be int, not {type(value).__name__}")
    if result not in INT64:
        raise ValueError(OVERFLOW)
    return result


def _pair(name: str, value) -> tuple:
    """An int or a sequence of 1 or 2 ints as a pair, with torch's errors (TypeError for a
    non-integer, RuntimeError for a wrong length)."""
    single = as_int(value)
    if single is not None:
        if single not in INT64:
            raise ValueError(OVERFLOW)
        return (single, single)
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise TypeError(f"conv2d(): argument '{name}' must be tuple of ints, not {type(value).__name__}")
    value = tuple(value)
    for v in value:
        if as_int(v) is None:
            raise TypeError(
                f"conv2d(): argument '{name}' must be tuple of ints, but found element of type "
                f"{type(v).__name__}"
            )
    value = tuple(as_int(v) for v in value)
    for pos, v in enumerate(value, 1):
        if v not in INT64:
            raise unpack_error("conv2d", name, pos)
    if len(value) == 1:
        return (value[0], value[0])
    if len(value) != 2:
        raise RuntimeError(
            f"expected {name} to be a single integer value or a list of 2 values to match the "
            f"convolution dimensions, but got {name}={list(value)}"
        )
    return value


def _same_padding(weight: Tensor, stride: tuple, dilation: tuple):
    """Per-dimension (before, after) zero padding that keeps the spatial size: like torch, any
    odd total puts the extra row/column after."""
    if stride != (1, 1):
        raise RuntimeError("padding='same' is not supported for strided convolutions")
    if weight.dim() != 4:
        # The op's own check, before the weight's shape is read here.
        raise RuntimeError(
            "conv2d: expected a 4-D weight (out_channels, in_channels / groups, kH, kW), but got "
            f"weight of size {list(weight.shape)}"
        )
    if min(dilation) <= 0:
        raise RuntimeError("non-positive dilation is not supported")
    pads = []
    for k, d in zip(weight.shape[2:], dilation):
        total = d * (k - 1)
        pads.append((total // 2, total - total // 2))
    return pads


def conv2d(
    input: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: int | tuple = 1,
    padding: int | tuple | str = 0,
    dilation: int | tuple = 1,
    groups: int = 1,
) -> Tensor:
    check_tensor("conv2d", input)
    check_tensor("conv2d", weight, "weight", 2)
    if bias is not None:
        check_tensor("conv2d", bias, "bias", 3)
    check_kernel_dtype("conv2d", input)
    if input.dim() not in (3, 4):
        raise RuntimeError(
            "Expected 3D (unbatched) or 4D (batched) input to conv2d, but got input of size: "
            f"{list(input.shape)}"
        )
    stride, dilation = _pair("stride", stride), _pair("dilation", dilation)
    groups = _int_arg("groups", groups)
    unbatched = input.dim() == 3
    if unbatched:
        input = input.unsqueeze(0)
    if isinstance(padding, str):
        if padding == "valid":
            padding = (0, 0)
        elif padding == "same":
            (top, bottom), (left, right) = _same_padding(weight, stride, dilation)
            if bottom != top or right != left:  # odd total: pad the extra row/column explicitly
                input = torch.nn.functional.pad(input, (0, right - left, 0, bottom - top))
            padding = (top, left)
        else:
            raise RuntimeError(f"Invalid padding string: '{padding}'")
    else:
        padding = _pair("padding", padding)
    out = call(ops.conv2d, input, weight, bias, stride, padding, dilation, groups)  # autograd: dlkernels/_ops
    return out.squeeze(0) if unbatched else out
