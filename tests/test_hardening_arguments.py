"""Hardening: every argument of every functional op, replaced in turn by values of the wrong type
or range, raises what torch raises (the same exception type), or succeeds where torch does.

Guards against the classes a probe of this kind found: flags that took anything truthy (None, 1,
'x' as ceil_mode), int64 overflow raising RuntimeError instead of torch's ValueError, a reduction
list raising 'unhashable type', ignore_index taking a bool, cross entropy telling probability
targets by dtype instead of by shape. The deliberate differences are listed in DIFFERENT.
"""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F

import dlkernels.functional as DF

_X4 = torch.randn(2, 3, 6, 6)
_X2 = torch.randn(4, 5)

# op -> its arguments in order, valid (each call with all of them succeeds on both sides)
CALLS = {
    "conv2d": [_X4, torch.randn(4, 3, 3, 3), None, 1, 0, 1, 1],
    "max_pool2d": [_X4, 2, None, 0, 1, False, False],
    "avg_pool2d": [_X4, 2, None, 0, False, True, None],
    "adaptive_avg_pool2d": [_X4, (2, 2)],
    "linear": [_X2, torch.randn(3, 5), None],
    "relu": [_X2, False],
    "leaky_relu": [_X2, 0.01, False],
    "sigmoid": [_X2],
    "mse_loss": [_X2, torch.randn(4, 5), None, None, "mean"],
    "cross_entropy": [_X2, torch.tensor([0, 1, 2, 3]), None, None, -100, None, "mean", 0.0],
}

BAD = [
    None,
    1.5,
    -1,
    0,
    "x",
    [1],
    (1, 2, 3),
    [],
    True,
    float("nan"),
    2**63,
    torch.tensor(1),
    torch.tensor([1.0, 2.0]),
    object(),
]


def _different(op: str, position: int, value) -> bool:
    """The documented differences: a non-tensor where a tensor goes raises TypeError here (torch's
    Python layer fails later with AttributeError); an integer tensor input is refused by dtype
    before torch's rank check; cross_entropy refuses a label_smoothing below 0 or NaN (README,
    Guarantees); conv2d reports a bad stride, padding or dilation element by name where torch
    lists its overloads (both TypeError)."""
    valid = CALLS[op][position]
    if isinstance(valid, torch.Tensor) and not isinstance(value, torch.Tensor):
        return True
    if position == 0 and isinstance(value, torch.Tensor) and not value.is_floating_point():
        return True
    if op == "cross_entropy" and position == 7 and type(value) in (int, float) and not value >= 0:
        return True  # below 0 or NaN
    if op == "cross_entropy" and position == 0 and isinstance(value, torch.Tensor) and value.dim() == 0:
        return True  # torch: IndexError from its class-dimension lookup; here a RuntimeError naming the rank
    return False


def _outcome(fn, args):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            fn(*args)
        except Exception as e:  # noqa: BLE001 (the exception type is what is compared)
            return type(e)
    return None


@pytest.mark.parametrize("op", CALLS)
def test_every_argument_replaced_raises_like_torch(op):
    valid = CALLS[op]
    assert _outcome(getattr(F, op), valid) is None and _outcome(getattr(DF, op), valid) is None
    mismatches = []
    for position in range(len(valid)):
        for value in BAD:
            if _different(op, position, value):
                continue
            args = [*valid[:position], value, *valid[position + 1 :]]
            theirs, ours = _outcome(getattr(F, op), args), _outcome(getattr(DF, op), args)
            if theirs is not ours:
                name = "ok" if theirs is None else theirs.__name__
                got = "ok" if ours is None else ours.__name__
                mismatches.append(f"argument {position} = {value!r:.24}: torch {name}, dlkernels {got}")
    assert not mismatches, f"{op}:\n" + "\n".join(mismatches)
