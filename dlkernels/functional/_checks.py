"""Argument checks shared by the functional ops, worded like torch's."""

import numbers
import operator

import torch


def check_tensor(fn: str, value, name: str = "input", position: int = 1) -> None:
    if not isinstance(value, torch.Tensor):
        raise TypeError(
            f"{fn}(): argument '{name}' (position {position}) must be Tensor, not {type(value).__name__}"
        )


def as_int(value):
    """``value`` as an int (anything with ``__index__`` but a bool, as torch accepts), else None."""
    if isinstance(value, bool):
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None


# torch's binding refuses ints outside int64 before anything else looks at them (ValueError, or
# TypeError naming the element of a sequence); so do the functional ops, so they never reach C++.
OVERFLOW = "Overflow when unpacking long long"
INT64 = range(-(2**63), 2**63)


def unpack_error(fn: str, name: str, pos: int) -> TypeError:
    """torch's error for an element of a sequence argument outside int64 (pos from 1)."""
    return TypeError(
        f"{fn}(): argument '{name}' failed to unpack the object at pos {pos} with error \"{OVERFLOW}\""
    )


def needs_grad(*tensors) -> bool:
    """Whether autograd must record this call (else the op runs without the Function wrapper)."""
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def check_number(fn: str, value, name: str, position: int) -> float:
    """``value`` as a float, or the error torch's binding raises: TypeError for a non-number,
    including a tensor that is not 0-dimensional (float() would raise ValueError for it),
    OverflowError for an int outside [-2**63, 2**64) (float() would accept it), RuntimeError for a
    complex number with an imaginary part."""
    if type(value) is float:  # the common case, first
        return value
    is_scalar_tensor = isinstance(value, torch.Tensor) and value.dim() == 0
    if not (isinstance(value, numbers.Number) or is_scalar_tensor):
        raise TypeError(
            f"{fn}(): argument '{name}' (position {position}) must be Number, not {type(value).__name__}"
        )
    if isinstance(value, numbers.Integral):
        if int(value) < -(2**63):
            raise OverflowError("can't convert negative int to unsigned")
        if int(value) >= 2**64:
            raise OverflowError("int too big to convert")
    elif isinstance(value, numbers.Complex) and not isinstance(value, numbers.Real):
        if value.imag != 0:
            raise RuntimeError("value cannot be converted to type float without overflow")
        value = value.real
    return float(value)


def check_inplace(input) -> None:
    """torch's errors for writing in place to a leaf that requires grad (or a view of one), raised
    *before* the kernel runs: an autograd.Function would raise them only after its forward had
    already overwritten the leaf. Skipped while torch.compile traces (nothing is written then, and
    tracing cannot evaluate ``_is_view()``): the Function's own check raises at trace time."""
    if not needs_grad(input) or torch.compiler.is_compiling():
        return
    if input._is_view() and input._base.is_leaf:
        raise RuntimeError(
            "a view of a leaf Variable that requires grad is being used in an in-place operation."
        )
    if input.is_leaf:
        raise RuntimeError("a leaf Variable that requires grad is being used in an in-place operation.")


# The dtypes each device's kernels take (csrc/cpu, csrc/cuda). Other devices (meta) pass: the
# fake kernels check those.
KERNEL_DTYPES = {
    "cpu": (torch.float32, torch.float64),
    "cuda": (torch.float32, torch.float64, torch.float16, torch.bfloat16),
}


# The dtypes every device's kernels take: a fast path that admits only these can skip
# check_kernel_dtype (the other dtypes go the long way).
ANY_DEVICE_DTYPES = (torch.float32, torch.float64)


# While dlkernels.testing.cuda_sim() is active: (the ops whose CPU calls run their CUDA kernel on
# the emulator, its on_fallback or None). Those ops take CUDA's dtypes on CPU tensors; the others
# report to on_fallback first. A plain global, which torch.compile can trace.
CUDA_SIM = None


def check_kernel_dtype(fn: str, value: torch.Tensor) -> None:
    """torch's NotImplementedError for a dtype the device's kernel lacks, raised here: the C++ op
    (stable ABI) can only raise RuntimeError for it."""
    device = "cpu" if value.is_cpu else "cuda" if value.is_cuda else value.device.type
    if CUDA_SIM is not None and device == "cpu":
        emulated, on_fallback = CUDA_SIM
        if fn in emulated:
            device = "cuda"
        elif on_fallback is not None:
            on_fallback(fn)
    allowed = KERNEL_DTYPES.get(device)
    if allowed is not None and value.dtype not in allowed:
        from .._ops._common import dtype_name

        names = ", ".join(dtype_name(d) for d in allowed)
        raise NotImplementedError(
            f"\"{fn}\" not implemented for '{dtype_name(value.dtype)}' on {value.device} (supported: {names})"
        )
