"""Hardening: NaN and inf reach exactly the conv2d entries whose definition reads them.

Guards against: materialised zeros (padding in planes and im2col panels, the depthwise kernels'
margins and padding columns) multiplied by a NaN or inf, so that `0 * inf` turned entries that
never read a non-finite value into NaN: one NaN weight of a depthwise layer made every entry of
grad_input NaN, and an inf in an input pixel no output reads (dilation, stride) made grad_weight
NaN while the loss was finite.

The reference for which entries are non-finite is the definition: an entry is non-finite exactly
when one of the products it sums (over taps that read real pixels) has a non-finite factor. That
is counted with torch's convolutions of 0/1 indicators (finite, so exact). torch's own CPU
convolution can differ from the definition here (its im2col path multiplies padding zeros too);
this follows the definition. Finite entries must match torch on the inputs with every non-finite
value replaced by 0 (values the entry does not read do not change it).
"""

from __future__ import annotations

import random

import pytest
import torch
from helpers import fuzz_seed
from torch.nn.grad import conv2d_input, conv2d_weight

import dlkernels
import dlkernels.functional as DF

ops = torch.ops.dlkernels
ISAS = tuple(dlkernels.cpu_isas())
DTYPES = (torch.float32, torch.float64)


def bad(t):
    return (~torch.isfinite(t)).double()


def expected_sets(x, w, b, dy, args):
    """Which entries of (y, grad_input, grad_weight, grad_bias) must be non-finite."""
    ox, ow, ody = (torch.ones_like(t, dtype=torch.float64) for t in (x, w, dy))
    y = (torch.conv2d(bad(x), ow, None, *args) + torch.conv2d(ox, bad(w), None, *args)) > 0
    if b is not None:
        y |= ~torch.isfinite(b)[None, :, None, None]
    gx = (conv2d_input(x.shape, bad(w), ody, *args) + conv2d_input(x.shape, ow, bad(dy), *args)) > 0
    gw = (conv2d_weight(bad(x), w.shape, ody, *args) + conv2d_weight(ox, w.shape, bad(dy), *args)) > 0
    gb = bad(dy).sum((0, 2, 3)) > 0
    return y, gx, gw, gb


def finite_values(x, w, b, dy, args):
    """The four results with every non-finite input replaced by 0, in float64."""
    x, w, dy = (torch.nan_to_num(t.double(), nan=0.0, posinf=0.0, neginf=0.0) for t in (x, w, dy))
    b = None if b is None else torch.nan_to_num(b.double(), nan=0.0, posinf=0.0, neginf=0.0)
    y = torch.conv2d(x, w, b, *args)
    return y, conv2d_input(x.shape, w, dy, *args), conv2d_weight(x, w.shape, dy, *args), dy.sum((0, 2, 3))


def dlk_results(x, w, b, dy, args):
    y = ops.conv2d(x, w, b, *args)
    gx = ops.conv2d_grad_input(dy, w, list(x.shape), *args)
    gw = ops.conv2d_grad_weight(dy, x, list(w.shape), *args)
    return y, gx, gw, ops.conv2d_grad_bias(dy)


def check(x, w, b, dy, args, what):
    names = ("output", "grad_input", "grad_weight", "grad_bias")
    expected = expected_sets(x, w, b, dy, args)
    values = finite_values(x, w, b, dy, args)
    tol = 2e-4 if x.dtype == torch.float32 else 1e-10
    for name, got, want_bad, want in zip(names, dlk_results(x, w, b, dy, args), expected, values):
        got_bad = ~torch.isfinite(got)
        assert torch.equal(got_bad, want_bad), (
            f"{what}: {name} non-finite at {got_bad.nonzero().tolist()[:8]}, expected "
            f"{want_bad.nonzero().tolist()[:8]} ({int(got_bad.sum())} vs {int(want_bad.sum())})"
        )
        ok = ~want_bad
        torch.testing.assert_close(got[ok].double(), want[ok], atol=tol, rtol=tol, msg=f"{what}: {name}")


def spoil(t, rng, count, gen):
    """``t`` with ``count`` random entries set to NaN, inf or -inf."""
    t = t.clone()
    flat = t.view(-1)
    for _ in range(count):
        flat[int(torch.randint(flat.numel(), (1,), generator=gen))] = rng.choice(
            [float("nan"), float("inf"), -float("inf")]
        )
    return t


def random_config(rng):
    kind = rng.choice(["dense", "grouped", "depthwise", "depthwise", "pointwise", "wide"])
    if kind == "depthwise":
        G = rng.choice([1, 3, 5, 17])
        Cg, Kg = 1, rng.choice([1, 1, 2])
        G = max(G, 2)
    elif kind == "grouped":
        G, Cg, Kg = rng.choice([2, 3]), rng.randrange(1, 4), rng.randrange(1, 4)
    elif kind == "wide":  # window rows of 16 values or more: channels_last takes the NHWC forward
        G, Cg, Kg = 1, rng.choice([8, 16]), rng.randrange(1, 6)
    else:
        G, Cg, Kg = 1, rng.randrange(1, 6), rng.randrange(1, 6)
    R, S = (1, 1) if kind == "pointwise" else (rng.randrange(1, 5), rng.randrange(1, 5))
    stride = (rng.randrange(1, 4), rng.randrange(1, 4))
    dilation = (rng.randrange(1, 4), rng.randrange(1, 4))
    padding = (rng.randrange(0, 4), rng.randrange(0, 4))
    big = rng.random() < 0.15  # large enough for the depthwise plane kernels (more than 32 x 32 outputs)
    H = rng.randrange(34, 48) if big else rng.randrange(1, 12)
    W = rng.randrange(34, 48) if big else rng.randrange(1, 12)
    if big:
        stride = (1, 1)
    H = max(H, dilation[0] * (R - 1) + 1 - 2 * padding[0])
    W = max(W, dilation[1] * (S - 1) + 1 - 2 * padding[1])
    N = rng.randrange(1, 4)
    return dict(N=N, C=G * Cg, H=H, W=W, K=G * Kg, Cg=Cg, R=R, S=S, args=(stride, padding, dilation, G))


def make_case(rng, gen, dtype, cfg):
    x = torch.randn(cfg["N"], cfg["C"], cfg["H"], cfg["W"], generator=gen, dtype=dtype)
    w = torch.randn(cfg["K"], cfg["Cg"], cfg["R"], cfg["S"], generator=gen, dtype=dtype)
    b = torch.randn(cfg["K"], generator=gen, dtype=dtype) if rng.random() < 0.5 else None
    y_shape = torch.conv2d(x, w, None, *cfg["args"]).shape
    dy = torch.randn(y_shape, generator=gen, dtype=dtype)
    # Spoil one or two of the operands, a few entries each.
    which = rng.choice(["x", "w", "dy", "x+w", "w+dy", "x+dy", "b"])
    if "x" in which:
        x = spoil(x, rng, rng.randrange(1, 4), gen)
    if "w" in which:
        w = spoil(w, rng, rng.randrange(1, 3), gen)
    if "dy" in which:
        dy = spoil(dy, rng, rng.randrange(1, 3), gen)
    if which == "b" and b is not None:
        b = spoil(b, rng, 1, gen)
    return x, w, b, dy


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_randomized_nonfinite_sets(isa, dtype):
    """Seeded random dense, grouped, depthwise and 1x1 convs (strided, dilated, padded; small and
    plane-kernel sizes; contiguous and channels_last input) with a few NaN / inf / -inf in the
    input, weight, bias or grad_output: forward, grad_input, grad_weight and grad_bias are
    non-finite exactly where the definition says, and equal to the reference elsewhere."""
    rng = random.Random(fuzz_seed(f"{isa}-{dtype}"))
    gen = torch.Generator().manual_seed(fuzz_seed(7))
    with dlkernels.use_cpu_isa(isa):
        for i in range(40):
            cfg = random_config(rng)
            x, w, b, dy = make_case(rng, gen, dtype, cfg)
            layout = "channels_last" if rng.random() < 0.4 else "contiguous"
            if layout == "channels_last":
                x = x.contiguous(memory_format=torch.channels_last)
            check(x, w, b, dy, cfg["args"], f"case {i} {layout} {cfg}")


def test_nan_weight_of_depthwise_layer_reaches_only_its_taps(isa):
    """The fuzzer's case: one NaN weight of a depthwise layer made every grad_input entry NaN
    (stride 1, so the data gradient runs as a padded forward convolution). Only the pixels that
    weight reaches may be NaN, as in the definition. Both depthwise kernels (blocked, plane)."""
    for hw in (8, 40):
        x = torch.randn(2, 4, hw, hw, requires_grad=True)
        w = torch.randn(4, 1, 3, 3)
        w[1, 0, 0, 0] = float("nan")
        w.requires_grad_()
        with dlkernels.use_cpu_isa(isa):
            y = DF.conv2d(x, w, None, 1, 1, 1, 4)
            (gx,) = torch.autograd.grad(y.sum(), x)
        nan = torch.isnan(gx)
        assert not nan[:, [0, 2, 3]].any()
        # Tap (0, 0) reads pixel (p - 1, q - 1) for outputs p, q: pixels [0, hw - 2] on each axis.
        assert (
            nan[:, 1, : hw - 1, : hw - 1].all()
            and not nan[:, 1, hw - 1].any()
            and not nan[:, 1, :, hw - 1].any()
        )
        check(x.detach(), w.detach(), None, torch.ones_like(y), ((1, 1), (1, 1), (1, 1), 4), f"hw {hw}")


# (input H x W, weight shape, stride, dilation, groups, an unread column)
UNREAD = [
    ((9, 8), (2, 3, 3, 3), 2, 1, 1, 7),  # 3 x 3 stride 2 reads columns 0..6
    ((9, 9), (2, 3, 3, 3), 2, 2, 1, 3),  # stride 2, dilation 2 reads even columns only
    ((9, 8), (3, 1, 3, 3), 3, 1, 3, 7),  # depthwise, stride 3 reads columns 0..5
    ((70, 70), (3, 1, 3, 3), 2, 1, 3, 69),  # depthwise with more than 32 x 32 outputs (plane kernels)
]


@pytest.mark.parametrize("case", UNREAD, ids=str)
def test_inf_in_unread_input_cell_leaves_grad_weight_finite(isa, case):
    """The fuzzer's case: an inf in an input pixel that no output reads (a column a stride or a
    dilation skips) made grad_weight NaN while the loss was finite."""
    (H, W), wshape, stride, dilation, groups, col = case
    x = torch.randn(2, 3, H, W)
    x[:, :, :, col] = float("inf")
    x.requires_grad_()
    w = torch.randn(wshape, requires_grad=True)
    with dlkernels.use_cpu_isa(isa):
        y = DF.conv2d(x, w, None, stride, 0, dilation, groups)
        loss = y.sum()
        (gw,) = torch.autograd.grad(loss, w)
    assert torch.isfinite(loss)
    assert torch.isfinite(gw).all(), gw
    args = ((stride, stride), (0, 0), (dilation, dilation), groups)
    check(x.detach(), w.detach(), None, torch.ones_like(y), args, str(case))
