"""Pooling forward and backward against torch.nn.functional: dtypes, odd shapes, ceil_mode edge
windows, padding, dilation, layouts, NaN, unbatched and empty input, and a seeded randomized
differential test of the configuration space. Every CPU ISA path runs (the ``device`` fixture).

Max pooling selects values, so outputs, indices and (summed in torch's order) gradients are exact.
Average pooling sums in torch's order for strided windows; the adaptive pool sums whole rows in
vector lanes, so it gets torch.testing's defaults.

float16 / bfloat16 (the CUDA kernels, on a GPU or emulated): the reference runs in float64 and
rounds once, as the kernels sum in float and round once (torch's CPU kernels round partial
gradient sums in the half type). Results are then within one unit in the last place: the max
forward stays exact, sums get the dtype's torch.testing default (about one ulp)."""

import random

import pytest
import torch
import torch.nn.functional as F
from helpers import DEFAULT_TOL, EXACT, assert_close, fuzz_seed, sim_scaled, torch_device

import dlkernels.functional as D

# (N, C, H, W), kernel, stride, padding, dilation, ceil_mode
MAX_CASES = [
    ((2, 3, 8, 8), 2, None, 0, 1, False),
    ((2, 5, 13, 17), 3, 2, 1, 1, False),
    ((1, 3, 11, 7), 3, 2, 1, 1, True),  # ceil_mode: partial last windows
    ((2, 2, 6, 6), 3, 2, 1, 1, True),  # ceil_mode: the last window would start in the padding
    ((1, 4, 9, 19), (2, 3), (1, 2), (1, 1), (2, 1), False),  # dilation, per-axis arguments
    ((1, 1, 1, 1), 1, 1, 0, 1, False),
    ((2, 3, 5, 7), (5, 7), None, 0, 1, False),  # kernel = input
    ((1, 17, 31, 29), 2, 1, 1, 1, True),
    ((1, 9, 7, 41), (1, 4), 3, 0, 2, True),  # stride > 2 (the gathered loads)
]
AVG_CASES = [
    ((2, 3, 8, 8), 2, None, 0, False, True, None),
    ((2, 5, 13, 17), 3, 2, 1, False, True, None),
    ((2, 5, 13, 17), 3, 2, 1, True, False, None),
    ((1, 3, 11, 7), 3, 2, 1, True, True, None),
    ((1, 4, 9, 19), (2, 3), (1, 2), (1, 1), False, False, 5),
    ((1, 1, 1, 1), 1, 1, 0, False, True, None),
    ((2, 3, 5, 7), (5, 7), None, 0, False, True, None),
    ((1, 19, 35, 35), 3, 1, 1, False, True, None),
    ((1, 9, 7, 41), (1, 4), 3, 0, True, True, -3),
]
ADAPTIVE_CASES = [
    ((2, 3, 7, 7), 1),
    ((2, 5, 14, 14), 7),
    ((1, 3, 13, 11), (5, 4)),
    ((1, 3, 5, 4), (9, 11)),  # larger than the input
    ((2, 3, 6, 9), (None, 4)),
    ((1, 17, 1, 1), 3),
]
LAYOUTS = ["contiguous", "channels_last", "strided"]


def _layout(x, layout):
    if layout == "channels_last":
        return x.contiguous(memory_format=torch.channels_last)
    if layout == "strided":
        return torch.cat([x, x], dim=3)[..., ::2]
    return x


HALF_TYPES = (torch.float16, torch.bfloat16)


def _grad_tol(dtype, tol):
    # Several windows' gradients meet in one input element: one rounding of the float sum.
    return DEFAULT_TOL[dtype] if dtype in HALF_TYPES else tol


def _compare(ours_fn, ref_fn, shape, dtype, device, layout, tol, grad_tol):
    x = _layout(torch.randn(shape, dtype=torch.float64).to(device=torch_device(device), dtype=dtype), layout)
    wide = torch.float64 if dtype in HALF_TYPES else dtype  # the reference's precision
    before = x.clone()
    ref = ref_fn(x.to(wide)).to(dtype)
    out = ours_fn(x)
    assert_close(out, ref, tol, "forward")
    assert out.stride() == ref.stride(), (out.stride(), ref.stride())
    assert torch.equal(x, before)
    dy = _layout(
        torch.randn(ref.shape, dtype=torch.float64).to(device=torch_device(device), dtype=dtype), layout
    )
    xr, xo = x.to(wide, copy=True).requires_grad_(), x.clone().requires_grad_()
    ref_fn(xr).backward(dy.to(wide))
    ours_fn(xo).backward(dy)
    assert_close(xo.grad, xr.grad.to(dtype), _grad_tol(dtype, grad_tol), "grad_input")


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("case", MAX_CASES, ids=str)
def test_max_pool2d(device, dtype, case, layout):
    shape, k, s, p, d, ceil = case
    kw = dict(kernel_size=k, stride=s, padding=p, dilation=d, ceil_mode=ceil)
    _compare(
        lambda t: D.max_pool2d(t, **kw),
        lambda t: F.max_pool2d(t, **kw),
        shape,
        dtype,
        device,
        layout,
        EXACT,
        EXACT,
    )
    x = _layout(torch.randn(shape, device=torch_device(device), dtype=dtype), layout)
    y, i = D.max_pool2d(x, return_indices=True, **kw)
    yr, ir = F.max_pool2d(x, return_indices=True, **kw)
    assert torch.equal(i, ir) and i.dtype == torch.int64 and i.stride() == ir.stride()


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("case", AVG_CASES, ids=str)
def test_avg_pool2d(device, dtype, case, layout):
    shape, k, s, p, ceil, cip, div = case
    kw = dict(kernel_size=k, stride=s, padding=p, ceil_mode=ceil, count_include_pad=cip, divisor_override=div)
    tol = DEFAULT_TOL[dtype]
    _compare(
        lambda t: D.avg_pool2d(t, **kw),
        lambda t: F.avg_pool2d(t, **kw),
        shape,
        dtype,
        device,
        layout,
        tol,
        tol,
    )


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("case", ADAPTIVE_CASES, ids=str)
def test_adaptive_avg_pool2d(device, dtype, case, layout):
    shape, size = case
    tol = DEFAULT_TOL[dtype]
    _compare(
        lambda t, a=size: D.adaptive_avg_pool2d(t, a),
        lambda t, a=size: F.adaptive_avg_pool2d(t, a),
        shape,
        dtype,
        device,
        layout,
        tol,
        tol,
    )


@pytest.mark.parametrize("channels_last", [False, True])
def test_max_pool2d_nan_and_ties(device, dtype, channels_last):
    """A NaN anywhere in a window wins (its index too); among equal values the first does."""
    x = torch.zeros(1, 9, 6, 20, device=torch_device(device), dtype=dtype)
    x[0, :, 1, 3] = float("nan")
    x[0, :, 2, 2] = float("nan")
    x[0, :, 4, 9] = float("-inf")
    x[0, 3, :, 10:] = float("-inf")
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    for kw in (
        dict(kernel_size=3, stride=1, padding=1),
        dict(kernel_size=2),
        dict(kernel_size=3, stride=2, ceil_mode=True),
    ):
        y, i = D.max_pool2d(x, return_indices=True, **kw)
        yr, ir = F.max_pool2d(x, return_indices=True, **kw)
        assert_close(y, yr, EXACT)
        assert torch.equal(i, ir)


def test_unbatched_and_empty(device, dtype):
    x = torch.randn(3, 9, 10, device=torch_device(device), dtype=dtype)
    assert_close(D.max_pool2d(x, 3, 2, 1), F.max_pool2d(x, 3, 2, 1), EXACT)
    assert_close(D.avg_pool2d(x, 2), F.avg_pool2d(x, 2), DEFAULT_TOL[dtype])
    assert_close(D.adaptive_avg_pool2d(x, 4), F.adaptive_avg_pool2d(x, 4), DEFAULT_TOL[dtype])
    e = torch.randn(0, 3, 8, 8, device=torch_device(device), dtype=dtype, requires_grad=True)
    for fn, args in ((D.max_pool2d, (2,)), (D.avg_pool2d, (2,)), (D.adaptive_avg_pool2d, (3,))):
        ref = getattr(F, fn.__name__)(e, *args)
        out = fn(e, *args)
        assert out.shape == ref.shape
        out.sum().backward()
        assert e.grad.shape == e.shape
    assert D.adaptive_avg_pool2d(
        torch.randn(2, 3, 4, 4, device=torch_device(device), dtype=dtype), 0
    ).shape == (2, 3, 0, 0)


def test_randomized_differential(device, dtype):
    """Seeded random configurations (shape, kernel, stride, padding, dilation, ceil_mode,
    count_include_pad, divisor, layout); bounded in count and size."""
    rng = random.Random(fuzz_seed(1234))
    for _ in range(25):
        h, w = rng.randint(1, 23), rng.randint(1, 23)
        kh, kw = rng.randint(1, min(h, 5)), rng.randint(1, min(w, 5))
        dh, dw = rng.randint(1, 2), rng.randint(1, 2)
        if dh * (kh - 1) + 1 > h:
            dh = 1
        if dw * (kw - 1) + 1 > w:
            dw = 1
        # torch's no-indices path bounds padding by half the kernel (its indices path: the effective one)
        ph, pw = rng.randint(0, kh // 2), rng.randint(0, kw // 2)
        s = (rng.randint(1, 4), rng.randint(1, 4))
        ceil = rng.random() < 0.5
        layout = rng.choice(LAYOUTS)
        shape = (rng.randint(1, 3), rng.randint(1, 19), h, w)
        kw_max = dict(kernel_size=(kh, kw), stride=s, padding=(ph, pw), dilation=(dh, dw), ceil_mode=ceil)
        _compare(
            lambda t, a=kw_max: D.max_pool2d(t, **a),
            lambda t, a=kw_max: F.max_pool2d(t, **a),
            shape,
            dtype,
            device,
            layout,
            EXACT,
            EXACT,
        )
        kw_avg = dict(
            kernel_size=(kh, kw),
            stride=s,
            padding=(ph, pw),
            ceil_mode=ceil,
            count_include_pad=rng.random() < 0.5,
            divisor_override=rng.choice([None, None, 3]),
        )
        tol = DEFAULT_TOL[dtype]
        _compare(
            lambda t, a=kw_avg: D.avg_pool2d(t, **a),
            lambda t, a=kw_avg: F.avg_pool2d(t, **a),
            shape,
            dtype,
            device,
            layout,
            tol,
            tol,
        )
        size = (rng.randint(1, 2 * h), rng.randint(1, 2 * w))
        _compare(
            lambda t, a=size: D.adaptive_avg_pool2d(t, a),
            lambda t, a=size: F.adaptive_avg_pool2d(t, a),
            shape,
            dtype,
            device,
            layout,
            tol,
            tol,
        )


def test_randomized_channels_last_groups(device, dtype):
    """Seeded random channels_last configurations with channel counts that fill whole 16-byte groups
    (the CUDA kernels' vector path) or not, and NaN / -inf scattered over the input: values,
    indices and gradients of the max pool, and both average pools."""
    rng = random.Random(fuzz_seed(4321))
    for _ in range(8):
        h, w = rng.randint(1, 13), rng.randint(1, 13)
        k = (rng.randint(1, min(h, 4)), rng.randint(1, min(w, 4)))
        p = (rng.randint(0, k[0] // 2), rng.randint(0, k[1] // 2))
        s = (rng.randint(1, 3), rng.randint(1, 3))
        ceil = rng.random() < 0.5
        shape = sim_scaled((rng.randint(1, 2), rng.choice([2, 4, 8, 16, 24, 12]), h, w), device)
        x = torch.randn(shape, dtype=torch.float64)
        flat = x.view(-1)
        for v in (float("nan"), float("-inf"), 0.0):
            flat[torch.randint(flat.numel(), (max(1, flat.numel() // 50),))] = v
        x = x.to(dtype).contiguous(memory_format=torch.channels_last).to(torch_device(device))
        kw = dict(kernel_size=k, stride=s, padding=p, ceil_mode=ceil)
        y, i = D.max_pool2d(x, return_indices=True, **kw)
        yr, ir = F.max_pool2d(x, return_indices=True, **kw)
        assert_close(y, yr, EXACT, "max forward")
        assert torch.equal(i, ir) and i.stride() == ir.stride()
        finite = torch.nan_to_num(x, nan=0.0, neginf=0.0)
        _compare(
            lambda t, a=kw: D.max_pool2d(t, **a),
            lambda t, a=kw: F.max_pool2d(t, **a),
            shape,
            dtype,
            device,
            "channels_last",
            EXACT,
            EXACT,
        )
        avg = dict(kw, count_include_pad=rng.random() < 0.5)
        tol = DEFAULT_TOL[dtype]
        assert_close(D.avg_pool2d(finite, **avg), F.avg_pool2d(finite.double(), **avg).to(dtype), tol, "avg")
        size = (rng.randint(1, 2 * h), rng.randint(1, 2 * w))
        _compare(
            lambda t, a=size: D.adaptive_avg_pool2d(t, a),
            lambda t, a=size: F.adaptive_avg_pool2d(t, a),
            shape,
            dtype,
            device,
            "channels_last",
            tol,
            tol,
        )
