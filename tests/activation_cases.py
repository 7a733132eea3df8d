"""The activation ops under test, each next to its torch reference and its tolerances.

One ``Act`` per (op, negative_slope): the test modules parametrize over ``ACTS`` and call its
methods, so every test covers every op the same way.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from helpers import DTYPE_NAMES, EXACT, Tol, eps, eps_tol, subnormal_min

import dlkernels

ops = dlkernels.ops
DF = dlkernels.functional

# leaky_relu slopes: the default, zero (the in-place backward then sees -0.0 / 0.0 outputs),
# negative (the output's sign differs from the input's: no in-place backward) and > 1.
SLOPES = (0.01, 0.0, -0.2, 1.5)


def sigmoid_tol(dtype: torch.dtype, device: str) -> Tol:
    """dlkernels' sigmoid against torch's, same dtype and device."""
    if dtype in (torch.float16, torch.bfloat16):
        return eps_tol(
            1,
            dtype,
            "both compute in float32 and round once: float32 values a few float32 ulp apart "
            "round to the same or adjacent values",
        )
    if device == "cpu":
        # Measured over 4.2M points on every ISA (randn * 8, [-120, 40], [-760, 40]): the kernel is
        # within 1.73 eps of the exact value (its exp polynomial is ~1 ulp, libm's expf on the
        # baseline path 0.5 ulp, plus three roundings), torch's float32/float64 sigmoid within
        # 1.22 eps; the two differ by less than the sum. Below the normal range torch's float32
        # 1/(1+exp(-x)) flushes to 0 (exp overflows) while the kernel keeps the subnormal: both are
        # within tiny of the exact value.
        return eps_tol(3, dtype, "kernel <= 1.73 eps and torch <= 1.22 eps from the exact sigmoid")
    # CUDA: expf/exp are within 2/1 ulp (CUDA Programming Guide, Mathematical Functions). The
    # kernel's e * 1/(1 + e) carries exp's error once and through 1/(1 + e) at most half of it
    # again, plus three roundings: 4.5 eps; torch's 1/(1 + exp(-x)): 3 eps. Together 7.5.
    return eps_tol(8, dtype, "CUDA exp error bounds: kernel <= 4.5 eps, torch <= 3 eps from exact")


def sigmoid_accuracy_tol(dtype: torch.dtype, device: str) -> Tol:
    """dlkernels' sigmoid against the exactly rounded value."""
    if dtype in (torch.float16, torch.bfloat16):
        return eps_tol(1, dtype, "computed in float32, then one rounding to the dtype")
    if device == "cpu":
        # The kernel is within 1.73 eps of the exact value (measured, see sigmoid_tol), the
        # reference within 0.5 eps (it is rounded): 2.23 eps. Below the normal range both are
        # multiples of the smallest subnormal, 0.78 and 0.5 of a step from the exact value: at most
        # one step apart.
        return Tol(
            2.25 * eps(dtype),
            subnormal_min(dtype),
            f"2.25 eps of {DTYPE_NAMES[dtype]} (kernel <= 1.73 eps from exact, reference rounded), or "
            "one subnormal step below the normal range",
        )
    # CUDA: the kernel within 4.5 eps of exact (see sigmoid_tol), the reference rounded (0.5).
    return eps_tol(5, dtype, "CUDA exp error bound: kernel <= 4.5 eps from exact, reference rounded")


@dataclasses.dataclass(frozen=True)
class Act:
    name: str  # relu, leaky_relu or sigmoid
    slope: float | None = None

    def __str__(self) -> str:
        return self.name if self.slope is None else f"{self.name}({self.slope:g})"

    # ---- forward -------------------------------------------------------------------------------
    def op(self, x):
        """The raw out-of-place op."""
        if self.name == "leaky_relu":
            return ops.leaky_relu(x, self.slope)
        return getattr(ops, self.name)(x)

    def op_(self, x):
        """The raw in-place op (returns None)."""
        if self.name == "leaky_relu":
            return ops.leaky_relu_(x, self.slope)
        return getattr(ops, self.name + "_")(x)

    def functional(self, x, inplace: bool = False):
        """dlkernels.functional; sigmoid has no in-place form there (as in torch), so its in-place
        variant goes through the autograd Function."""
        if self.name == "relu":
            return DF.relu(x, inplace=inplace)
        if self.name == "leaky_relu":
            return DF.leaky_relu(x, self.slope, inplace=inplace)
        if inplace:
            return dlkernels.autograd.SigmoidFunction.apply(x, True)
        return DF.sigmoid(x)

    def function(self, x, inplace: bool = False):
        """The torch.autograd.Function directly."""
        A = dlkernels.autograd
        if self.name == "relu":
            return A.ReLUFunction.apply(x, inplace)
        if self.name == "leaky_relu":
            return A.LeakyReLUFunction.apply(x, self.slope, inplace)
        return A.SigmoidFunction.apply(x, inplace)

    def module(self, inplace: bool = False):
        if self.name == "relu":
            return dlkernels.nn.ReLU(inplace=inplace)
        if self.name == "leaky_relu":
            return dlkernels.nn.LeakyReLU(self.slope, inplace=inplace)
        return dlkernels.nn.Sigmoid()

    def torch_module(self, inplace: bool = False):
        if self.name == "relu":
            return torch.nn.ReLU(inplace=inplace)
        if self.name == "leaky_relu":
            return torch.nn.LeakyReLU(self.slope, inplace=inplace)
        return torch.nn.Sigmoid()

    def ref(self, x):
        """torch's out-of-place op: the reference."""
        if self.name == "relu":
            return torch.relu(x)
        if self.name == "leaky_relu":
            return F.leaky_relu(x, self.slope)
        return torch.sigmoid(x)

    def ref_(self, x):
        """torch's in-place op."""
        if self.name == "relu":
            return torch.relu_(x)
        if self.name == "leaky_relu":
            return F.leaky_relu_(x, self.slope)
        return torch.sigmoid_(x)

    @property
    def has_inplace_backward(self) -> bool:
        """Whether the in-place form is differentiable (leaky_relu needs a slope >= 0)."""
        return self.name != "leaky_relu" or self.slope >= 0

    # ---- backward ------------------------------------------------------------------------------
    def op_backward(self, grad_output, x, y):
        """The raw backward op, given the forward's input ``x`` and output ``y``."""
        if self.name == "relu":
            return ops.relu_backward(grad_output, y)
        if self.name == "leaky_relu":
            return ops.leaky_relu_backward(grad_output, x, self.slope)
        return ops.sigmoid_backward(grad_output, y)

    def ref_backward(self, grad_output, x, y):
        """torch's backward op for the same saved tensors."""
        aten = torch.ops.aten
        if self.name == "relu":
            return aten.threshold_backward(grad_output, y, 0)
        if self.name == "leaky_relu":
            return aten.leaky_relu_backward(grad_output, x, self.slope, False)
        return aten.sigmoid_backward(grad_output, y)

    # ---- tolerances ----------------------------------------------------------------------------
    def forward_tol(self, dtype: torch.dtype, device: str) -> Tol:
        if self.name == "sigmoid":
            return sigmoid_tol(dtype, device)
        # relu is a select; leaky_relu one multiplication by the slope rounded to the dtype (in
        # float32 for half/bfloat16 on both sides): torch does exactly the same arithmetic.
        return EXACT

    def backward_op_tol(self, dtype: torch.dtype, device: str) -> Tol:
        # Same saved tensors: relu/leaky_relu select or multiply once (in float32 for half and
        # bfloat16, on both sides); sigmoid's g * (1 - y) * y is evaluated in the same order as
        # torch's (no product can be fused into an FMA) ...
        if self.name == "sigmoid" and dtype in (torch.float16, torch.bfloat16):
            # ... except that torch's CUDA kernel computes it in the dtype itself, rounding each
            # of its three operations (0.5 eps each), where the kernel rounds once at the end.
            return eps_tol(2, dtype, "torch rounds 3 intermediate results to the dtype, the kernel 1")
        return EXACT

    def grad_tol(self, dtype: torch.dtype, device: str, grad_output: torch.Tensor) -> Tol:
        """x.grad through autograd against torch's, for the same grad_output g."""
        if self.name != "sigmoid":
            return EXACT
        # The backward formulas agree, but use each implementation's own y. With |y - y'| <=
        # rtol * y + atol (the forward tolerance) and |d/dy g (1 - y) y| = |g (1 - 2y)| <= |g|,
        # the gradients differ by at most max|g| * (rtol + atol), plus a rounding of each of the
        # two products (2 eps relative).
        fwd = self.forward_tol(dtype, device)
        gmax = grad_output.abs().max().item() if grad_output.numel() else 0.0
        return Tol(
            2 * eps(dtype),
            gmax * (fwd.rtol + fwd.atol),
            f"sigmoid forward tolerance ({fwd}) propagated through g * (1 - y) * y",
        )


ACTS = (Act("relu"), *(Act("leaky_relu", s) for s in SLOPES), Act("sigmoid"))
# One per op, for tests where the slope does not matter.
ACTS_BY_OP = (Act("relu"), Act("leaky_relu", 0.01), Act("sigmoid"))
