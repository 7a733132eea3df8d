"""mse_loss and cross_entropy with the signatures, broadcasting, dtype rules and errors of
``torch.nn.functional``. Cross entropy's kernels take (rows, classes) or (batch, classes,
positions) logits: the unbatched (C,) becomes one row, and (N, C, d1, ...) its view (N, C, d1 x ...),
or (rows, classes) when its classes are already innermost (channels_last): both without a copy."""

import math
import warnings

import torch
from torch import Tensor
from torch.nn import _reduction

from .._ext import ops
from .._ops._common import PLAIN_TYPES, call
from .._ops.loss import cross_entropy_loss
from . import _checks
from ._checks import INT64, OVERFLOW, as_int, check_kernel_dtype, check_number, check_tensor

_REDUCTIONS = {"none": 0, "mean": 1, "sum": 2}
_LONG = torch.int64


def _reduction_code(reduction, size_average, reduce) -> int:
    if size_average is not None or reduce is not None:
        reduction = _reduction.legacy_get_string(size_average, reduce)
    if type(reduction) is not str or reduction not in _REDUCTIONS:  # (a list is not hashable)
        raise ValueError(f"{reduction} is not a valid value for reduction")
    return _REDUCTIONS[reduction]


def mse_loss(
    input: Tensor,
    target: Tensor,
    size_average=None,
    reduce=None,
    reduction: str = "mean",
    weight: Tensor | None = None,
) -> Tensor:
    check_tensor("mse_loss", input)
    check_tensor("mse_loss", target, "target", 2)
    code = _reduction_code(reduction, size_average, reduce)
    if weight is not None:
        raise NotImplementedError("dlkernels.functional.mse_loss: the weight argument is not supported")
    if target.size() != input.size():
        warnings.warn(
            f"Using a target size ({target.size()}) that is different to the input size ({input.size()}). "
            "This will likely lead to incorrect results due to broadcasting. "
            "Please ensure they have the same size.",
            stacklevel=2,
        )
        input, target = torch.broadcast_tensors(input, target)
    if input.dtype != target.dtype or not input.dtype.is_floating_point:
        dtype = torch.promote_types(input.dtype, target.dtype)  # result_type is not traceable
        if not dtype.is_floating_point:
            dtype = torch.get_default_dtype()
        input, target = input.to(dtype), target.to(dtype)
    check_kernel_dtype("mse_loss", input)
    return call(ops.mse_loss, input, target, code)


def cross_entropy(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    size_average=None,
    ignore_index: int = -100,
    reduce=None,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    if (  # the common call, (N, C) logits and class indices with default options, in fewer steps
        type(input) in PLAIN_TYPES
        and type(target) in PLAIN_TYPES
        and weight is None
        and size_average is None
        and reduce is None
        and type(reduction) is str
        and type(ignore_index) is int
        and ignore_index in INT64
        and type(label_smoothing) is float
        and label_smoothing == 0.0
        and reduction in _REDUCTIONS
        and target.dtype is _LONG
        and input.dtype in _checks.ANY_DEVICE_DTYPES
        and input.dim() == 2
        and target.dim() == 1
        and input.size(0) == target.size(0)
        and _checks.CUDA_SIM is None
    ):
        return cross_entropy_loss(input, target, None, _REDUCTIONS[reduction], ignore_index, 0.0)
    check_tensor("cross_entropy", input)
    check_tensor("cross_entropy", target, "target", 2)
    if weight is not None:
        check_tensor("cross_entropy", weight, "weight", 3)
    code = _reduction_code(reduction, size_average, reduce)
    label_smoothing = check_number("cross_entropy", label_smoothing, "label_smoothing", 8)
    if not 0.0 <= label_smoothing <= 1.0:
        raise RuntimeError(f"label_smoothing must be between 0.0 and 1.0. Got: {label_smoothing}")
    ignore_index = _ignore_index(ignore_index)
    dim = input.dim()
    if dim == 0:
        raise RuntimeError("cross_entropy: input tensor should be 1D or more, but got a 0-dim tensor")
    # torch's rule: a target of the input's shape holds probabilities, any other class indices
    # (whatever its dtype); the checks below come in torch's order, with its errors.
    soft = target.shape == input.shape
    batched = dim > 1
    classes = input.shape[1] if batched else input.shape[0]

    if soft:
        if not target.is_floating_point():
            raise RuntimeError(
                f"Expected floating point type for target with class probabilities, got {_c10(target.dtype)}"
            )
        if input.dtype != target.dtype:
            dtype = torch.promote_types(input.dtype, target.dtype)
            input, target = input.to(dtype), target.to(dtype)
    else:
        target_batch = target.shape[0] if target.dim() else 0  # torch reads 0 for a 0-d target
        if batched and target_batch != input.shape[0]:
            raise _batch_mismatch(input.shape[0], target_batch)
        if dim <= 2:
            if target.dim() > 1:
                raise RuntimeError("0D or 1D target tensor expected, multi-target not supported")
            _check_class_dtype(target)
            if not batched and target.dim() == 1 and target.shape[0] != 1:
                raise ValueError(
                    f"For 1D input, 1D target must have size 1, but got target size: {target.shape[0]}"
                )
            if batched and target.dim() == 0:
                raise IndexError("Dimension specified as 0 but tensor has no dimensions")
        else:
            expected = [input.shape[0], *input.shape[2:]]
            if list(target.shape) != expected:
                raise RuntimeError(f"Expected target size {expected}, got {list(target.shape)}")
            _check_class_dtype(target)
        if target.dtype != torch.int64:
            target = target.long()
    if weight is not None:
        if weight.dim() != 1 or weight.shape[0] != classes:
            raise RuntimeError(
                f"weight tensor should be defined either for all {classes} classes or no classes but got "
                f"weight tensor of shape: {list(weight.shape)}"
            )
        if weight.dtype != input.dtype:
            raise RuntimeError(f"expected scalar type {_c10(input.dtype)} but found {_c10(weight.dtype)}")
        if not soft and weight.requires_grad and torch.is_grad_enabled():
            # torch refuses it too (nll_loss has no derivative in the weight); probability
            # targets do get one
            raise RuntimeError(
                "The function 'cross_entropy_forward' is not differentiable with respect to argument "
                "'weight'. This input cannot have requires_grad True."
            )
    # named after the op: dlkernels.testing.cuda_sim() admits CUDA's dtypes by the op's name
    check_kernel_dtype("cross_entropy_forward", input)

    # to the kernels' (rows, classes) or (batch, classes, positions)
    if not batched:
        x2 = input.unsqueeze(0)
        t2 = target.unsqueeze(0) if soft else target.reshape(1)
        out_shape = ()
    elif dim == 2:
        x2, t2 = input, target
        out_shape = (input.shape[0],)
    else:
        out_shape = (input.shape[0], *input.shape[2:])
        last = input.movedim(1, -1)
        if last.is_contiguous():  # the classes innermost: a row per position, as a view
            x2 = last.view(-1, classes)
            t2 = target.movedim(1, -1).reshape(-1, classes) if soft else target.reshape(-1)
        else:
            positions = math.prod(input.shape[2:])
            x2 = input.reshape(input.shape[0], classes, positions)
            t2 = target.reshape(x2.shape) if soft else target.reshape(input.shape[0], positions)
    loss = cross_entropy_loss(x2, t2, weight, code, ignore_index, label_smoothing)
    return loss.reshape(out_shape) if code == 0 else loss


def _c10(dtype: torch.dtype) -> str:
    from .._ops._common import dtype_name

    return dtype_name(dtype)


def _batch_mismatch(input_batch: int, target_batch: int) -> ValueError:
    return ValueError(
        f"Expected input batch_size ({input_batch}) to match target batch_size ({target_batch})."
    )


def _check_class_dtype(target: Tensor) -> None:
    if target.dtype not in (torch.int64, torch.uint8):
        raise RuntimeError(f"expected target dtype to be Long or Byte, but got {_c10(target.dtype)}")


def _ignore_index(value) -> int:
    """An int (anything with __index__ but a bool, as torch's binding takes), in int64."""
    if type(value) is int and value in INT64:  # the common case, first (and traceable)
        return value
    index = as_int(value)
    if index is None:
        raise TypeError(
            "cross_entropy_loss(): argument 'ignore_index' (position 5) must be int, not "
            f"{type(value).__name__}"
        )
    if index not in INT64:
        raise ValueError(OVERFLOW)
    return index
