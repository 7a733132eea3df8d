"""Pieces the suites share: a training-step callable built on autograd (the same on both sides,
so each side's backward is whatever its forward recorded), and a magnitude-scaled comparison."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch


def fwd_bwd(fn: Callable[..., torch.Tensor], inputs: Sequence, wrt: Sequence[int], grad_out=None) -> Callable:
    """A callable that runs ``fn(*inputs)`` and the gradients of its result with respect to
    ``inputs[i]`` for i in ``wrt`` (which must require grad); returns (output, *gradients).
    ``torch.autograd.grad`` rather than ``backward``: nothing accumulates in ``.grad`` between
    calls."""
    leaves = [inputs[i] for i in wrt]

    def step():
        y = fn(*inputs)
        grads = torch.autograd.grad(y, leaves, grad_out)
        return (y.detach(), *grads)

    return step


def bwd_only(fn: Callable[..., torch.Tensor], inputs: Sequence, wrt: Sequence[int], grad_out) -> Callable:
    """The backward pass alone: the forward runs once here and its graph is kept, each call runs
    only the gradient (the op's backward kernel plus the autograd engine's fixed cost)."""
    leaves = [inputs[i] for i in wrt]
    y = fn(*inputs)

    def step():
        grads = torch.autograd.grad(y, leaves, grad_out, retain_graph=True)
        return grads[0] if len(grads) == 1 else grads

    return step


def leaf(t: torch.Tensor) -> torch.Tensor:
    return t.detach().clone().requires_grad_()


def close_to_scale(actual: Any, expected: Any, factor: float = 2000) -> None:
    """Each output within a small fraction of its own largest magnitude. A sanity check that both
    sides computed the same thing (the tests check precision): reductions over 10^5 terms, such as
    a weight gradient or a mean loss, do not fit elementwise relative tolerances."""
    actual = actual if isinstance(actual, tuple) else (actual,)
    expected = expected if isinstance(expected, tuple) else (expected,)
    for a, e in zip(actual, expected, strict=True):
        scale = e.abs().max().item() if e.numel() else 0.0
        eps = torch.finfo(e.dtype).eps
        torch.testing.assert_close(a, e, rtol=0, atol=max(factor * eps * scale, 1e-30))


# close_to_scale's factor for products on tensor cores: 16-bit outputs differ by their rounding
# (f32 accumulation on both sides), TF32 rounds the inputs to 11 bits on both sides.
_PRODUCT_FACTOR = {torch.bfloat16: 4, torch.float16: 8}


def close_as_products(actual: Any, expected: Any) -> None:
    """close_to_scale for the results of matrix products, with a factor for the dtype (and for
    TF32 when torch's matmul flag allows it on CUDA) instead of one wide enough for all."""
    e = expected[0] if isinstance(expected, tuple) else expected
    tf32 = e.dtype == torch.float32 and e.is_cuda and torch.backends.cuda.matmul.allow_tf32
    close_to_scale(actual, expected, factor=2**14 if tf32 else _PRODUCT_FACTOR.get(e.dtype, 2000))


def pick(opts, full, quick, smoke):
    """The shape set for this run's size."""
    return smoke if opts.smoke else quick if opts.quick else full
