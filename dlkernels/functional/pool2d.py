"""max_pool2d, avg_pool2d and adaptive_avg_pool2d with the signatures, defaults, accepted
arguments and errors of ``torch.nn.functional``. 3-D (unbatched) input gets a batch dimension
here; the ops (dlkernels/_ops/pool2d.py) take 4-D input and carry their own autograd."""

import torch
from torch import Tensor

from .._ext import ops
from .._ops._common import call
from .._ops.pool2d import max_pool2d_output
from ._checks import INT64, OVERFLOW, as_int, check_kernel_dtype, check_tensor, needs_grad, unpack_error

INT32_MAX = 2**31 - 1


def _fits_int64(v: int) -> int:
    if v not in INT64:
        raise ValueError(OVERFLOW)
    return v


def _fits(v: int) -> int:
    # torch's binding reads the arguments as int64 (beyond: ValueError), its kernels as C ints.
    if not -INT32_MAX - 1 <= _fits_int64(v) <= INT32_MAX:
        raise RuntimeError("value cannot be converted to type int without overflow")
    return v


def _bool(fn: str, name: str, position: int, value) -> bool:
    """A bool argument, or the TypeError of torch's binding, which takes nothing else (not an int,
    not None): anything truthy read as True would run another pooling than asked for."""
    if not isinstance(value, bool):
        raise TypeError(
            f"{fn}(): argument '{name}' (position {position}) must be bool, not {type(value).__name__}"
        )
    return value


def _pair(fn: str, name: str, position: int, value, default=None) -> tuple:
    """An int or a sequence of 1 or 2 ints as a pair (an empty sequence or None: `default`)."""
    if value is None and default is not None:
        return default
    single = as_int(value)
    if single is not None:
        return (_fits(single),) * 2
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise TypeError(
            f"{fn}(): argument '{name}' (position {position}) must be tuple of ints, "
            f"not {type(value).__name__}"
        )
    items = tuple(as_int(v) for v in value)
    for pos, (v, i) in enumerate(zip(value, items), 1):
        if i is None:
            raise TypeError(
                f"{fn}(): argument '{name}' (position {position}) must be tuple of ints, "
                f"but found element of type {type(v).__name__}"
            )
        if i not in INT64:
            raise unpack_error(fn, name, pos)
    items = tuple(_fits(v) for v in items)
    if not items and default is not None:
        return default
    if len(items) == 1:
        return items * 2
    if len(items) != 2:
        what = "kernel_size" if name == "kernel_size" else name
        extra = "" if name == "kernel_size" else ", or be empty"
        raise RuntimeError(f"{fn}: {what} must either be a single int, or a tuple of two ints{extra}")
    return items


def _check_window(fn, kernel, stride, dilation=(1, 1)):
    if min(kernel) <= 0:
        raise RuntimeError(
            f"kernel size should be greater than zero, but got kH: {kernel[0]} kW: {kernel[1]}"
        )
    if 0 in stride:
        raise RuntimeError("stride should not be zero")
    if min(stride) < 0:
        raise RuntimeError(f"stride should be greater than zero, but got dH: {stride[0]} dW: {stride[1]}")
    if min(dilation) <= 0:
        raise RuntimeError(
            f"dilation should be greater than zero, but got dilationH: {dilation[0]} dilationW: {dilation[1]}"
        )


def _batched(fn: str, input: Tensor, kind: str):
    """``input`` as 4-D and whether it was 3-D, with torch's error for other ranks."""
    check_tensor(fn, input)
    check_kernel_dtype(fn, input)
    d = input.dim()
    if d not in (3, 4):
        if kind == "max":
            raise RuntimeError("non-empty 3D or 4D (batch mode) tensor expected for input")
        if kind == "adaptive":
            raise RuntimeError(f"{fn}(): Expected 3D or 4D tensor, but got {list(input.shape)}")
        if d < 3:
            raise IndexError(
                "Dimension out of range (expected to be in range of "
                f"[{-max(d, 1)}, {max(d, 1) - 1}], but got -3)"
            )
        raise RuntimeError(
            "Expected 3D or 4D (batch mode) tensor with optional 0 dim batch size for input, but got:"
            f"{list(input.shape)}"
        )
    return (input.unsqueeze(0), True) if d == 3 else (input, False)


def _restore(out: Tensor, unbatched: bool) -> Tensor:
    return out.squeeze(0) if unbatched else out


def max_pool2d(
    input: Tensor,
    kernel_size,
    stride=None,
    padding=0,
    dilation=1,
    ceil_mode: bool = False,
    return_indices: bool = False,
):
    fn = "max_pool2d_with_indices" if return_indices else "max_pool2d"
    x, unbatched = _batched(fn, input, "max")
    kernel = _pair(fn, "kernel_size", 2, kernel_size)
    stride = _pair(fn, "stride", 3, stride, default=kernel)
    padding = _pair(fn, "padding", 4, padding)
    dilation = _pair(fn, "dilation", 5, dilation)
    conf = (kernel, stride, padding, dilation, _bool(fn, "ceil_mode", 6, ceil_mode))
    _check_window(fn, kernel, stride, dilation)
    if return_indices:
        out, indices = call(ops.max_pool2d_with_indices, x, *conf)
        return _restore(out, unbatched), _restore(indices, unbatched)
    if needs_grad(x):  # the backward reads the indices
        return _restore(max_pool2d_output(x, conf), unbatched)
    return _restore(call(ops.max_pool2d, x, *conf), unbatched)


def avg_pool2d(
    input: Tensor,
    kernel_size,
    stride=None,
    padding=0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override=None,
) -> Tensor:
    fn = "avg_pool2d"
    x, unbatched = _batched(fn, input, "avg")
    kernel = _pair(fn, "kernel_size", 2, kernel_size)
    stride = _pair(fn, "stride", 3, stride, default=kernel)
    padding = _pair(fn, "padding", 4, padding)
    ceil_mode = _bool(fn, "ceil_mode", 5, ceil_mode)
    count_include_pad = _bool(fn, "count_include_pad", 6, count_include_pad)
    _check_window(fn, kernel, stride)
    if divisor_override is not None:
        d = as_int(divisor_override)
        if d is None:
            raise TypeError(
                "avg_pool2d(): argument 'divisor_override' must be int, "
                f"not {type(divisor_override).__name__}"
            )
        if d == 0:
            raise RuntimeError("divisor must be not zero")
        divisor_override = _fits(d)
    out = call(ops.avg_pool2d, x, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override)
    return _restore(out, unbatched)


def adaptive_avg_pool2d(input: Tensor, output_size) -> Tensor:
    fn = "adaptive_avg_pool2d"
    check_tensor(fn, input)
    if not isinstance(output_size, int):
        # torch takes the len() of anything but an int (None, a 0-d tensor: TypeError), and wants
        # more input dimensions than output sizes before looking at the input further.
        if isinstance(output_size, torch.Tensor) and output_size.dim() == 0:
            raise TypeError("len() of a 0-d tensor")
        if isinstance(output_size, (str, bytes)) or not hasattr(output_size, "__len__"):
            raise TypeError(f"object of type '{type(output_size).__name__}' has no len()")
        if input.dim() <= len(output_size):
            raise ValueError(f"Input dimension should be at least {len(output_size) + 1}")
    x, unbatched = _batched(fn, input, "adaptive")
    single = as_int(output_size)
    if single is not None:
        size = [_fits_int64(single)] * 2
    else:
        size = list(output_size)
        if len(size) != 2:
            raise RuntimeError("adaptive_avg_pool2d: output_size must be 2")
    # None keeps the input's size along that dimension.
    size = [x.shape[2 + i] if v is None else v for i, v in enumerate(size)]
    for v in size:
        if as_int(v) is None:
            raise TypeError(
                f"{fn}(): argument 'output_size' must be tuple of ints, "
                f"but found element of type {type(v).__name__}"
            )
    size = [_fits_int64(as_int(v)) for v in size]
    if min(size) < 0:
        raise RuntimeError(
            "adaptive_avg_pool2d: elements of output_size must be greater than or equal to 0 but received "
            f"{{{size[0]}, {size[1]}}}"
        )
    if max(size) > 2**62 or x.shape[0] * x.shape[1] * size[0] * size[1] * x.element_size() > 2**63 - 1:
        raise RuntimeError("numel: integer multiplication overflow")
    return _restore(call(ops.adaptive_avg_pool2d, x, size), unbatched)
