"""torch.nn.init's functions on dlkernels' own kernels: the same names, signatures, fan rules,
gains and errors, filling the tensor in place and returning it.

The random bits come from torch's generator (``generator=``, else the default generator of the
tensor's device): each call draws a 64-bit seed and offset from it, which advances it, so
``torch.manual_seed`` makes results reproducible; the numbers themselves are Philox4x32-10 draws
computed by the kernels (csrc/common/philox.h), indexed by element, so they do not depend on the
thread count or on the tensor's strides. ``he_normal_`` is the seed article's name for
``kaiming_normal_(mode='fan_in', nonlinearity='relu')``.
"""

from __future__ import annotations

import math
import warnings

import torch

from .functional import _checks

__all__ = [
    "calculate_gain",
    "uniform_",
    "normal_",
    "trunc_normal_",
    "constant_",
    "ones_",
    "zeros_",
    "xavier_uniform_",
    "xavier_normal_",
    "kaiming_uniform_",
    "kaiming_normal_",
    "he_normal_",
]

_ops = torch.ops.dlkernels
_INT64_MAX = (1 << 63) - 1


def _draw(tensor: torch.Tensor, generator: torch.Generator | None) -> tuple[int, int]:
    """A seed and an offset from torch's generator for this call (meta and fake tensors: zeros,
    nothing is drawn)."""
    if tensor.device.type not in ("cpu", "cuda"):
        return 0, 0
    device = generator.device if generator is not None else tensor.device
    seed, offset = torch.randint(0, _INT64_MAX, (2,), generator=generator, device=device).tolist()
    return seed, offset


# The torch.Tensor method each kernel stands in for, which names a bad generator in torch's
# message (torch 2.13's trunc_normal_ draws through normal_).
_TORCH_METHOD = {"init_uniform_": "uniform_", "init_normal_": "normal_", "init_trunc_normal_": "normal_"}


def _run(name: str, tensor: torch.Tensor, *args, generator=None, random=True) -> torch.Tensor:
    # Checked before drawing: a refused call leaves the generator where it was.
    _checks.check_tensor(name, tensor, "tensor")
    _checks.check_kernel_dtype(name, tensor)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(
            f"{_TORCH_METHOD.get(name, name)}(): argument 'generator' must be torch.Generator, not "
            f"{type(generator).__name__}"
        )
    if random:
        args = (*args, *_draw(tensor, generator))
    with torch.no_grad():
        getattr(_ops, name)(tensor, *args)
    return tensor


def uniform_(tensor: torch.Tensor, a: float = 0.0, b: float = 1.0, generator: torch.Generator | None = None):
    """Fills ``tensor`` with values from U(a, b)."""
    if a > b:
        raise RuntimeError(f"uniform_ expects to return a [from, to) range, but found from={a} > to={b}")
    return _run("init_uniform_", tensor, float(a), float(b), generator=generator)


def normal_(
    tensor: torch.Tensor, mean: float = 0.0, std: float = 1.0, generator: torch.Generator | None = None
):
    """Fills ``tensor`` with values from N(mean, std^2)."""
    if not std >= 0.0:
        raise RuntimeError(f"normal expects std >= 0.0, but found std {std}")
    return _run("init_normal_", tensor, float(mean), float(std), generator=generator)


def trunc_normal_(
    tensor: torch.Tensor,
    mean: float = 0.0,
    std: float = 1.0,
    a: float = -2.0,
    b: float = 2.0,
    generator: torch.Generator | None = None,
):
    """Fills ``tensor`` with values from N(mean, std^2) truncated to [a, b]: the exact truncated
    distribution (inverse CDF), not clipped normal values."""
    if mean < a - 2 * std or mean > b + 2 * std:
        warnings.warn(
            "mean is more than 2 std from [a, b] in nn.init.trunc_normal_. "
            "The distribution of values may be incorrect.",
            stacklevel=2,
        )
    if a > b:
        raise RuntimeError(f"trunc_normal_: expected a <= b, but found a={a} > b={b}")
    if not (std > 0.0 and math.isfinite(std)):
        raise RuntimeError(f"trunc_normal_: expected a finite std > 0, but found std {std}")
    return _run(
        "init_trunc_normal_", tensor, float(mean), float(std), float(a), float(b), generator=generator
    )


def constant_(tensor: torch.Tensor, val: float) -> torch.Tensor:
    """Fills ``tensor`` with ``val``."""
    return _run("init_fill_", tensor, float(val), random=False)


def ones_(tensor: torch.Tensor) -> torch.Tensor:
    return constant_(tensor, 1.0)


def zeros_(tensor: torch.Tensor) -> torch.Tensor:
    return constant_(tensor, 0.0)


# ---- fans and gains (torch.nn.init's rules and errors) -------------------------------------------

_LINEAR = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d")


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The recommended gain for a nonlinearity, as torch.nn.init.calculate_gain."""
    if nonlinearity in _LINEAR or nonlinearity == "sigmoid":
        return 1
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            negative_slope = 0.01
        elif not isinstance(param, bool) and isinstance(param, (int, float)):
            negative_slope = param
        else:
            raise ValueError(f"negative_slope {param} not a valid number")
        return math.sqrt(2.0 / (1 + negative_slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"Unsupported nonlinearity {nonlinearity}")


def _fan_in_and_fan_out(tensor: torch.Tensor) -> tuple[int, int]:
    if tensor.dim() < 2:
        raise ValueError("Fan in and fan out can not be computed for tensor with fewer than 2 dimensions")
    receptive = math.prod(tensor.shape[2:])
    return tensor.size(1) * receptive, tensor.size(0) * receptive


def _fan(tensor: torch.Tensor, mode: str) -> int:
    mode = mode.lower()
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"Mode {mode} not supported, please use one of ['fan_in', 'fan_out']")
    fan_in, fan_out = _fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def xavier_uniform_(tensor: torch.Tensor, gain: float = 1.0, generator: torch.Generator | None = None):
    """Glorot uniform: U(-a, a), a = gain * sqrt(6 / (fan_in + fan_out))."""
    fan_in, fan_out = _fan_in_and_fan_out(tensor)
    a = math.sqrt(3.0) * gain * math.sqrt(2.0 / float(fan_in + fan_out))
    return uniform_(tensor, -a, a, generator)


def xavier_normal_(tensor: torch.Tensor, gain: float = 1.0, generator: torch.Generator | None = None):
    """Glorot normal: N(0, std^2), std = gain * sqrt(2 / (fan_in + fan_out))."""
    fan_in, fan_out = _fan_in_and_fan_out(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / float(fan_in + fan_out)), generator)


def _kaiming_std(tensor, a, mode, nonlinearity) -> float | None:
    if 0 in tensor.shape:
        warnings.warn("Initializing zero-element tensors is a no-op", stacklevel=3)
        return None
    return calculate_gain(nonlinearity, a) / math.sqrt(_fan(tensor, mode))


def kaiming_uniform_(
    tensor: torch.Tensor,
    a: float = 0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    generator: torch.Generator | None = None,
):
    """He uniform: U(-bound, bound), bound = gain * sqrt(3 / fan_mode)."""
    std = _kaiming_std(tensor, a, mode, nonlinearity)
    if std is None:
        return tensor
    bound = math.sqrt(3.0) * std
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(
    tensor: torch.Tensor,
    a: float = 0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    generator: torch.Generator | None = None,
):
    """He normal: N(0, std^2), std = gain / sqrt(fan_mode)."""
    std = _kaiming_std(tensor, a, mode, nonlinearity)
    if std is None:
        return tensor
    return normal_(tensor, 0.0, std, generator)


def he_normal_(tensor: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """The seed article's He initialisation: N(0, 2 / fan_in)."""
    return kaiming_normal_(tensor, 0, "fan_in", "relu", generator)
