"""conv2d with the signature, defaults, accepted inputs and errors of torch.nn.functional.conv2d."""

import operator

import torch
from torch import Tensor

from .._ext import ops
from .._ops._common import call
from ._checks import check_kernel_dtype, check_tensor


def _int(value):
    """``value`` as an int (anything with ``__index__`` but a bool, as torch accepts), else None."""
    if isinstance(value, bool):
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _in_int64(value: int) -> bool:
    return _INT64_MIN <= value <= _INT64_MAX


# torch's binding refuses ints outside int64 before anything else looks at them; so does this
# module, so they never reach C++ (where they would not fit).
_OVERFLOW = "Overflow when unpacking long long"


def _int_arg(name: str, value) -> int:
    result = _int(value)
    if result is None:
        raise TypeError(f"conv2d(): argument '{name}' must be int, not {type(value).__name__}")
    if not _in_int64(result):
        raise ValueError(_OVERFLOW)
    return result


def _pair(name: str, value) -> tuple:
    """An int or a sequence of 1 or 2 ints as a pair, with torch's errors (TypeError for a
    non-integer, RuntimeError for a wrong length)."""
    single = _int(value)
    if single is not None:
        if not _in_int64(single):
            raise ValueError(_OVERFLOW)
        return (single, single)
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise TypeError(f"conv2d(): argument '{name}' must be tuple of ints, not {type(value).__name__}")
    value = tuple(value)
    for v in value:
        if _int(v) is None:
            raise TypeError(
                f"conv2d(): argument '{name}' must be tuple of ints, but found element of type "
                f"{type(v).__name__}"
            )
    value = tuple(_int(v) for v in value)
    for pos, v in enumerate(value, 1):
        if not _in_int64(v):
            raise TypeError(
                f"conv2d(): argument '{name}' failed to unpack the object at pos {pos} with error "
                f'"{_OVERFLOW}"'
            )
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
