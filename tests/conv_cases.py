"""conv2d test cases, their reference results and error bounds, shared by the test_conv2d_* files.

Error bounds, from error analysis rather than a fixed rtol: every conv2d result element is a sum
of products (forward: C/G * R * S products plus the bias; grad_input: at most K/G * R * S;
grad_weight: N * P * Q; grad_bias: N * P * Q terms). Summed in any order, with or without FMA,

    |computed - exact| <= gamma_n * (sum of |terms|),   gamma_n = n u / (1 - n u),  u = eps / 2,

elementwise. The sums of |terms| are the same convolutions (and gradients) of the absolute
values, computed with torch in float64. Two computed results (kernel and reference) may each be
off by their own bound, so a comparison allows the sum of both. An off-by-one tap moves a result
by about one of its terms, far beyond gamma_n times all of them (test_bound_rejects_wrong_kernels).
"""

from __future__ import annotations

import dataclasses
import functools

import pytest
import torch
import torch.nn.functional as F
from conv_reference import conv2d_naive_grads, out_size
from helpers import DTYPE_NAMES, gamma, tiny, with_layout

ops = torch.ops.dlkernels

DTYPES = (torch.float32, torch.float64)


@dataclasses.dataclass(frozen=True)
class ConvCase:
    """One conv2d call: input N x C x H x W, weight K x C/groups x R x S."""

    id: str
    N: int
    C: int
    H: int
    W: int
    K: int
    R: int
    S: int
    stride: tuple = (1, 1)
    padding: tuple = (0, 0)
    dilation: tuple = (1, 1)
    groups: int = 1
    bias: bool = True

    def __str__(self) -> str:
        return self.id

    @property
    def input_shape(self) -> tuple:
        return (self.N, self.C, self.H, self.W)

    @property
    def weight_shape(self) -> tuple:
        return (self.K, self.C // self.groups, self.R, self.S)

    @property
    def P(self) -> int:
        return out_size(self.H, self.R, self.stride[0], self.padding[0], self.dilation[0])

    @property
    def Q(self) -> int:
        return out_size(self.W, self.S, self.stride[1], self.padding[1], self.dilation[1])

    @property
    def output_shape(self) -> tuple:
        return (self.N, self.K, self.P, self.Q)

    @property
    def params(self) -> tuple:
        """(stride, padding, dilation, groups) as the raw ops take them."""
        return (list(self.stride), list(self.padding), list(self.dilation), self.groups)

    def tensors(self, dtype: torch.dtype, device: str = "cpu", seed: int = 0):
        """(input, weight, bias or None, grad_output): standard normal values, the same for every
        call with the same dtype and seed (the references are cached on that)."""
        g = torch.Generator().manual_seed(seed)

        def randn(shape):
            return torch.randn(shape, generator=g, dtype=torch.float64).to(dtype).to(device)

        x, w = randn(self.input_shape), randn(self.weight_shape)
        b = randn((self.K,)) if self.bias else None
        dy = randn(self.output_shape)
        return x, w, b, dy

    # Terms per result element, for the bounds.
    @property
    def forward_terms(self) -> int:
        return (self.C // self.groups) * self.R * self.S + (1 if self.bias else 0)

    @property
    def grad_input_terms(self) -> int:
        return (self.K // self.groups) * self.R * self.S

    @property
    def grad_weight_terms(self) -> int:
        return self.N * self.P * self.Q


def case(id, N, C, H, W, K, R, S, stride=1, padding=0, dilation=1, groups=1, bias=True):
    def pair(v):
        return (v, v) if isinstance(v, int) else tuple(v)

    return ConvCase(id, N, C, H, W, K, R, S, pair(stride), pair(padding), pair(dilation), groups, bias)


# Every path of csrc/cpu/conv2d.cpp: the dense and grouped implicit GEMMs (forward, grad_input as
# GEMM + col2im when the stride is > 1 or the padding exceeds the kernel's reach, grad_input as a
# forward conv with flipped weights otherwise, grad_weight tiled or split over images), the
# depthwise direct kernels (C/groups == 1), the planes' stride-2 vector paths (width >= 64).
CASES = [
    case("1x1", 2, 5, 7, 9, 3, 1, 1),
    case("1x1-stride2", 2, 3, 7, 9, 4, 1, 1, stride=2),
    case("1x1-pad1-nobias", 2, 4, 5, 6, 3, 1, 1, padding=1, bias=False),
    case("3x3-pad1", 2, 3, 8, 8, 5, 3, 3, padding=1),
    case("3x3-nopad-nobias", 2, 4, 6, 7, 6, 3, 3, bias=False),
    case("7x7-stride2-pad3", 2, 3, 15, 13, 4, 7, 7, stride=2, padding=3),
    case("dilation2", 2, 4, 9, 11, 3, 3, 3, padding=2, dilation=2),
    case("dilation-stride-mixed", 1, 3, 13, 12, 5, 3, 3, stride=2, padding=(1, 2), dilation=(2, 3)),
    case("groups3", 2, 6, 7, 7, 9, 3, 3, padding=1, groups=3),
    case("groups3-stride2", 2, 9, 9, 8, 6, 3, 3, stride=2, padding=1, groups=3),
    # C/G = 2, K/G = 1: the stride-1 grad_input is a depthwise conv with channel multiplier 2.
    case("groups3-one-output-each", 2, 6, 7, 8, 3, 3, 3, padding=1, groups=3),
    case("depthwise", 2, 8, 9, 9, 8, 3, 3, padding=1, groups=8),
    case("depthwise-multiplier2", 2, 5, 9, 7, 10, 3, 3, padding=1, groups=5),
    case("depthwise-stride2", 2, 4, 13, 13, 4, 3, 3, stride=2, padding=1, groups=4),
    # Strided depthwise grad_input accumulates the multiplier's outputs into one plane.
    case("depthwise-multiplier2-stride2", 2, 3, 9, 11, 6, 3, 3, stride=2, padding=1, groups=3),
    case("depthwise-stride3-dilation2", 1, 2, 14, 17, 2, 3, 3, stride=3, padding=2, dilation=2, groups=2),
    case("depthwise-5x5-dilation2", 1, 3, 12, 11, 6, 5, 5, dilation=2, groups=3),
    case("depthwise-pad-beyond-kernel", 2, 3, 5, 6, 3, 3, 3, padding=(3, 4), groups=3),
    case("depthwise-wide-stride2", 2, 3, 6, 70, 3, 3, 3, stride=2, padding=1, groups=3),
    case("depthwise-wide-stride2-nobias", 1, 2, 4, 131, 2, 3, 3, stride=2, groups=2, bias=False),
    case("C17-K5", 1, 17, 6, 6, 5, 3, 3, padding=1),
    case("C3-K17", 2, 3, 5, 7, 17, 3, 3),
    # one input channel (a first layer on grey images): the weight gradient sums per output channel
    case("C1-K16", 2, 1, 9, 10, 16, 3, 3),
    case("C1-K6-stride2-pad1", 2, 1, 11, 9, 6, 3, 3, stride=2, padding=1),
    case("C1-K1-pad1", 2, 1, 8, 8, 1, 3, 3, padding=1),
    case("C5-K3-G1-pointwise-odd", 3, 5, 3, 5, 3, 1, 1),
    case("image-smaller-than-kernel", 2, 3, 2, 3, 4, 5, 5, padding=2),
    case("N1", 1, 4, 10, 10, 8, 3, 3, padding=1),
    case("N0", 0, 3, 5, 5, 4, 3, 3, padding=1),
    case("N0-depthwise", 0, 3, 5, 5, 3, 3, 3, groups=3),
    case("stride-beyond-kernel", 2, 3, 11, 10, 4, 2, 3, stride=(3, 4)),
    case("padding-beyond-kernel", 2, 3, 4, 5, 2, 3, 3, padding=(4, 5)),
    case("non-square", 3, 5, 10, 13, 7, 3, 5, stride=(2, 1), padding=(1, 2), dilation=(2, 1)),
    case("non-square-1x2-stride", 2, 3, 6, 66, 4, 3, 3, stride=(1, 2), padding=1),
    case("wide-stride2-pad1", 2, 3, 9, 67, 4, 3, 3, stride=2, padding=1),
    case("wide-stride2-pad0", 1, 2, 5, 131, 3, 3, 3, stride=2),
    case("wide-stride2-pad2-5x5", 1, 2, 7, 100, 3, 5, 5, stride=2, padding=2),
    case("NPQ-49", 1, 4, 7, 7, 5, 3, 3, padding=1),
    case("NPQ-105", 3, 3, 5, 7, 4, 3, 3, padding=1),
    case("single-pixel-1x1", 2, 3, 1, 1, 4, 1, 1),
    case("single-pixel-3x3-pad1", 2, 3, 1, 1, 4, 3, 3, padding=1),
    case("single-output-pixel", 2, 3, 5, 5, 4, 5, 5),
    # Reductions over several KC (256) blocks, several MR panels, several NC (2048) column blocks.
    case("deep-3x3", 2, 64, 10, 10, 80, 3, 3, padding=1),
    case("deep-1x1", 2, 300, 4, 4, 20, 1, 1),
    case("many-columns", 2, 8, 40, 40, 16, 3, 3, padding=1),
    case("many-columns-stride2", 1, 4, 96, 96, 8, 3, 3, stride=2, padding=1),
]
CASES_BY_ID = {c.id: c for c in CASES}


def case_param(cases=CASES):
    return pytest.mark.parametrize("case", cases, ids=str)


def run_ops(case, x, w, b, dy) -> Results:
    """The four raw ops on one case."""
    y = ops.conv2d(x, w, b, *case.params)
    gi = ops.conv2d_grad_input(dy, w, list(x.shape), *case.params)
    gw = ops.conv2d_grad_weight(dy, x, list(w.shape), *case.params)
    gb = ops.conv2d_grad_bias(dy) if b is not None else None
    return Results(y, gi, gw, gb)


# ---- references ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Results:
    output: torch.Tensor
    grad_input: torch.Tensor
    grad_weight: torch.Tensor
    grad_bias: torch.Tensor | None


def torch_results(x, w, b, dy, stride, padding, dilation, groups) -> Results:
    """torch's convolution and its three gradients for grad_output ``dy``, in the inputs' dtype."""
    y = F.conv2d(x, w, b, stride, padding, dilation, groups)
    gi, gw, gb = torch.ops.aten.convolution_backward(
        dy,
        x,
        w,
        [w.shape[0]] if b is not None else None,
        stride,
        padding,
        dilation,
        False,
        [0, 0],
        groups,
        [True, True, b is not None],
    )
    return Results(y, gi, gw, gb)


def abs_results(c: ConvCase, x, w, b, dy) -> Results:
    """The sums of |terms| of every result element: the same computation on absolute values, in
    float64 (exact to far below the float32 and float64 bounds that use it)."""
    x, w, dy = x.double().abs(), w.double().abs(), dy.double().abs()
    b = b.double().abs() if b is not None else None
    return torch_results(x, w, b, dy, *c.params)


@functools.cache
def references(c: ConvCase, dtype: torch.dtype):
    """(torch's results in ``dtype``, the naive loop reference's in float64, the |terms| sums) for
    ``c.tensors(dtype)``. Cached: every ISA compares against the same references."""
    x, w, b, dy = c.tensors(dtype)
    ref_torch = torch_results(x, w, b, dy, *c.params)

    def d(t):
        return t.double() if t is not None else None

    y, gi, gw, gb = conv2d_naive_grads(d(x), d(w), d(b), d(dy), c.stride, c.padding, c.dilation, c.groups)
    return ref_torch, Results(y, gi, gw, gb), abs_results(c, x, w, b, dy)


# ---- bounds --------------------------------------------------------------------------------------


def bound(abs_sum: torch.Tensor, n: int, dtype: torch.dtype, ref_dtype: torch.dtype) -> torch.Tensor:
    """Allowed |result - reference| for a result computed in ``dtype`` against a reference computed
    in ``ref_dtype``, both sums of ``n`` terms whose absolute values add up to ``abs_sum``."""
    return (gamma(n, dtype) + gamma(n, ref_dtype)) * abs_sum + tiny(dtype)


def assert_within_bound(actual: torch.Tensor, expected: torch.Tensor, allowed: torch.Tensor, what: str):
    """Elementwise |actual - expected| <= allowed (NaN anywhere fails), with the worst element in the
    message."""
    assert actual.shape == expected.shape, (
        f"{what}: shape {tuple(actual.shape)}, expected {tuple(expected.shape)}"
    )
    if actual.numel() == 0:
        return
    err = (actual.double() - expected.double()).abs()
    bad = ~(err <= allowed)
    if bad.any():
        ratio = torch.where(bad, err / allowed, torch.zeros_like(err)).nan_to_num(float("inf"))
        i = int(ratio.flatten().argmax())
        idx = tuple(int(v) for v in torch.unravel_index(torch.tensor(i), actual.shape))
        raise AssertionError(
            f"{what}: {int(bad.sum())} of {actual.numel()} elements outside the error bound; worst at "
            f"{idx}: got {actual.flatten()[i].item()!r}, expected {expected.flatten()[i].item()!r}, "
            f"|error| {err.flatten()[i].item():.3g} > bound {allowed.flatten()[i].item():.3g}"
        )


def check_results(c: ConvCase, dtype: torch.dtype, got: Results, what: str, *, naive_only: bool = False):
    """``got`` against torch's results (same dtype) and the naive reference (float64), each within
    the error bound of both computations."""
    ref_torch, ref_naive, absr = references(c, dtype)
    name = f"{what} [{c}, {DTYPE_NAMES[dtype]}]"
    fields = [
        ("output", c.forward_terms),
        ("grad_input", c.grad_input_terms),
        ("grad_weight", c.grad_weight_terms),
        ("grad_bias", c.grad_weight_terms),
    ]
    refs = [("naive reference", ref_naive, torch.float64)]
    if not naive_only:
        refs.insert(0, ("torch", ref_torch, dtype))
    for field, n in fields:
        actual = getattr(got, field)
        if actual is None:
            continue
        assert actual.dtype == dtype, f"{name}: {field} dtype {actual.dtype}"
        for ref_name, ref, ref_dtype in refs:
            expected = getattr(ref, field)
            allowed = bound(getattr(absr, field), n, dtype, ref_dtype)
            assert_within_bound(actual, expected, allowed, f"{name}: {field} vs {ref_name}")


# ---- opcheck samples -----------------------------------------------------------------------------


def opcheck_samples(device: str = "cpu"):
    """Per op: argument tuples covering plain, grouped, depthwise, strided/dilated, channels_last
    and empty-batch calls, with tensors requiring grad where the op is differentiable, on the torch
    ``device``."""
    g = torch.Generator().manual_seed(3)

    def t(*shape, grad=False, layout=None):
        x = torch.randn(shape, generator=g).to(device)
        x = with_layout(x, layout) if layout else x
        return x.requires_grad_(grad)

    configs = [
        # (input shape, weight shape, stride, padding, dilation, groups, input layout)
        ((2, 3, 7, 8), (4, 3, 3, 3), [1, 1], [1, 1], [1, 1], 1, None),
        ((2, 3, 7, 8), (4, 3, 3, 3), [2, 1], [0, 2], [1, 2], 1, "channels_last"),
        ((2, 6, 7, 7), (6, 1, 3, 3), [1, 1], [1, 1], [1, 1], 6, None),  # depthwise
        ((2, 4, 9, 9), (8, 1, 3, 3), [2, 2], [1, 1], [1, 1], 4, "channels_last"),  # depthwise x2
        ((2, 6, 5, 5), (3, 2, 1, 1), [1, 1], [0, 0], [1, 1], 3, None),
        ((0, 3, 5, 5), (4, 3, 3, 3), [1, 1], [1, 1], [1, 1], 1, None),
    ]
    samples = {"conv2d": [], "conv2d_grad_input": [], "conv2d_grad_weight": [], "conv2d_grad_bias": []}
    for shape, wshape, stride, padding, dilation, groups, layout in configs:
        p = (stride, padding, dilation, groups)
        out_shape = (
            shape[0],
            wshape[0],
            *(out_size(n, k, s, q, d) for n, k, s, q, d in zip(shape[2:], wshape[2:], *p[:3])),
        )
        for grad in (False, True):
            x, w, b = t(*shape, grad=grad, layout=layout), t(*wshape, grad=grad), t(wshape[0], grad=grad)
            dy = t(*out_shape, grad=grad, layout=layout)
            samples["conv2d"] += [(x, w, b, *p), (x, w, None, *p)]
            samples["conv2d_grad_input"].append((dy, w, list(shape), *p))
            samples["conv2d_grad_weight"].append((dy, x, list(wshape), *p))
            samples["conv2d_grad_bias"].append((dy,))
    return samples
