"""linear with the signature, accepted inputs and errors of torch.nn.functional.linear."""

import math

import torch
from torch import Tensor

from .._ext import ops
from .._ops._common import PLAIN_TYPES, call
from .._ops.linear import check_linear
from . import _checks
from ._checks import check_kernel_dtype, check_tensor


def _bias_as_vector(bias: Tensor, out: int, input: Tensor) -> Tensor:
    """A bias that broadcasts over the output as one value per feature (torch adds it with
    broadcasting), as a 1-D tensor of ``out`` values (a view: its gradient flows back)."""
    lead_ones = all(s == 1 for s in bias.shape[:-1])
    result_dim = max(input.dim(), 1)
    if bias.dim() <= 1 or (lead_ones and bias.dim() <= result_dim):
        last = bias.shape[-1] if bias.dim() else 1
        if last == out:
            return bias.reshape(out)
        if last == 1:
            return bias.reshape(1).expand(out)
    # torch's error from expanding the bias to the output's rows, on the first dimension (from
    # the last) that does not broadcast.
    target = [math.prod(input.shape[:-1]), out]
    for i in range(1, min(bias.dim(), 2) + 1):
        if bias.shape[-i] not in (1, target[-i]):
            raise RuntimeError(
                f"The expanded size of the tensor ({target[-i]}) must match the existing size "
                f"({bias.shape[-i]}) at non-singleton dimension {2 - i}.  Target sizes: {target}.  "
                f"Tensor sizes: {list(bias.shape)}"
            )
    raise NotImplementedError(
        f"linear: a bias of size {list(bias.shape)} varies over the rows; dlkernels takes one value per "
        "output feature (a bias of size [out_features], or one that broadcasts as one)"
    )


def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    if (  # the common call in fewer steps: what the checks below would accept, read cheaply
        type(input) in PLAIN_TYPES
        and type(weight) in PLAIN_TYPES
        and len(ws := weight.shape) == 2
        and (xs := input.shape)  # at least 1-D
        and xs[-1] == ws[1]
        and (dtype := input.dtype) is weight.dtype
        and dtype in _checks.ANY_DEVICE_DTYPES
        and (
            bias is None
            or (
                type(bias) in PLAIN_TYPES
                and bias.dtype is dtype
                and len(bs := bias.shape) == 1
                and bs[0] == ws[0]
            )
        )
        and _checks.CUDA_SIM is None
    ):
        # devices: a mix fails route() in call, and the kernel's check raises check_linear's error
        return call(ops.linear, input, weight, bias, input.is_cuda and torch.backends.cuda.matmul.allow_tf32)
    check_tensor("linear", input)
    check_tensor("linear", weight, "weight", 2)
    if bias is not None:
        check_tensor("linear", bias, "bias", 3)
    if input.dim() < 1 or weight.dim() < 1:
        raise RuntimeError(
            "both arguments to linear need to be at least 1D, but they are "
            f"{input.dim()}D and {weight.dim()}D"
        )
    if weight.dim() > 2:
        raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is {weight.dim()}D")
    vector_weight = weight.dim() == 1  # torch: (in,) is one output feature, dropped from the result
    if vector_weight:
        if bias is not None and (bias.numel() != 1 or input.dim() > 1):  # torch's addmm path
            raise RuntimeError("mat2 must be a matrix, got 1-D tensor")
        weight = weight.unsqueeze(0)
    out = weight.shape[0]
    if bias is not None and bias.shape != (out,):
        bias = _bias_as_vector(bias, out, input)
    # Dtype agreement first, with torch's messages; then whether the device has a kernel for it.
    if bias is not None and bias.dtype != weight.dtype or input.dtype != weight.dtype:
        check_linear("linear", input, weight, bias)
    check_kernel_dtype("linear", input)
    check_linear("linear", input, weight, bias)
    # torch's flag for float32 matmuls on CUDA (TF32 tensor cores); the CPU kernels ignore it.
    y = call(
        ops.linear, input, weight, bias, torch.backends.cuda.matmul.allow_tf32
    )  # autograd: _ops/linear.py
    return y.squeeze(-1) if vector_weight else y
