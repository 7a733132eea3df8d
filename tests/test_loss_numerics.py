"""mse_loss and the fused cross entropy against torch: every reduction, weights, ignore_index in
every position, label smoothing with weights, soft targets, spatial and unbatched inputs, extreme
logits, empty batches, on every CPU ISA; reductions are bit-reproducible across thread counts."""

import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from helpers import Tol, assert_close, eps, fuzz_seed, torch_device

import dlkernels

DF = dlkernels.functional
ops = torch.ops.dlkernels
REDUCTIONS = ("mean", "sum", "none")

# Error analysis: a row's lse and its loss are a few roundings of values of the logits' size (one
# exp per element, a lane-wise sum, one log), against torch's log_softmax that rounds differently;
# sums over rows add a relative error of about log2(rows) eps.
TOL = {
    torch.float32: Tol(2e-5, 2e-5, "lse/softmax vs torch's log_softmax: a few float32 roundings per row"),
    torch.float64: Tol(1e-12, 1e-12, "lse/softmax vs torch's log_softmax: a few float64 roundings per row"),
    # Half types compute in float and round once; the reference is torch in float64 rounded once
    # (torch's own half kernels round intermediates and measured 3% off in grad_input). Measured:
    # losses equal, gradients within one unit in the last place.
    torch.float16: Tol(torch.finfo(torch.float16).eps, 1e-5, "float math rounded once to float16: 1 ulp"),
    torch.bfloat16: Tol(torch.finfo(torch.bfloat16).eps, 1e-5, "float math rounded once to bfloat16: 1 ulp"),
}
HALF = (torch.float16, torch.bfloat16)


def _up(v):
    return v.double() if isinstance(v, torch.Tensor) and v.is_floating_point() else v


def _upstream(shape):
    """The gradient _fwd_bwd sends into the loss (float64, fixed)."""
    return torch.randn(shape, generator=torch.Generator().manual_seed(99), dtype=torch.float64)


def _fwd_bwd(fn, x, *args, target_grad=False, ref=False, **kw):
    """Loss and gradients of ``fn``; with ``ref``, half-type inputs are computed in float64 and
    the results rounded to their dtype (the reference for kernels that compute in float)."""
    dtype = x.dtype
    up = ref and dtype in HALF
    if up:
        x, args, kw = x.double(), tuple(_up(a) for a in args), {k: _up(v) for k, v in kw.items()}
    x = x.detach().clone().requires_grad_()
    t = args[0]
    if target_grad:
        t = t.detach().clone().requires_grad_()
    y = fn(x, t, *args[1:], **kw)
    y.backward(_upstream(y.shape).to(dtype).to(y))
    out = y.detach(), x.grad, (t.grad if target_grad else None)
    return tuple(o.to(dtype) if up and o is not None else o for o in out)


def _ref(fn, x, *args, **kw):
    return _fwd_bwd(fn, x, *args, ref=True, **kw)


def _compare(ours, ref, tol, what):
    for a, b, name in zip(ours, ref, ("loss", "grad_input", "grad_target")):
        if b is None:
            assert a is None
            continue
        assert_close(a, b, tol, f"{what} {name}")


# ---- MSE ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("n", [1, 7, 64, 1000, 40003])
def test_mse_matches_torch(device, dtype, reduction, n):
    x = torch.randn(n, dtype=dtype, device=torch_device(device))
    t = torch.randn(n, dtype=dtype, device=torch_device(device))
    torch.manual_seed(1)
    ours = _fwd_bwd(DF.mse_loss, x, t, reduction=reduction, target_grad=True)
    torch.manual_seed(1)
    ref = _ref(F.mse_loss, x, t, reduction=reduction, target_grad=True)
    _compare(ours, ref, TOL[dtype], f"mse {reduction} n={n}")


def test_mse_layouts_and_broadcast(device):
    x = torch.randn(4, 6, 5, device=torch_device(device)).transpose(0, 2)
    t = torch.randn(5, 6, 4, device=torch_device(device))
    for red in REDUCTIONS:
        assert_close(
            DF.mse_loss(x, t, reduction=red), F.mse_loss(x, t, reduction=red), TOL[torch.float32], red
        )
    tb = torch.randn(4, device=torch_device(device))
    torch.manual_seed(1)
    with pytest.warns(UserWarning, match="different to the input size"):
        ours = _fwd_bwd(DF.mse_loss, x, tb, target_grad=True)
    torch.manual_seed(1)
    with pytest.warns(UserWarning):
        ref = _ref(F.mse_loss, x, tb, target_grad=True)
    _compare(ours, ref, TOL[torch.float32], "broadcast")


def _random_operand(gen, shape, dtype, dev):
    """A tensor of ``shape`` in one of three layouts: contiguous, transposed (its last two dims
    stored the other way) or a strided slice of a larger one."""
    r = int(torch.randint(3, (1,), generator=gen))
    if r == 1 and len(shape) >= 2:
        flipped = (*shape[:-2], shape[-1], shape[-2])
        return torch.randn(flipped, generator=gen).to(dtype).to(dev).transpose(-1, -2)
    if r == 2 and len(shape) >= 1:
        wide = torch.randn(*shape[:-1], 2 * shape[-1], generator=gen).to(dtype).to(dev)
        return wide[..., ::2]
    return torch.randn(shape, generator=gen).to(dtype).to(dev)


def test_randomized_mse(device, dtype):
    """Seeded random shapes (0 to 3 dims, empty ones included), target or input broadcast over
    the other, layouts and reductions; loss and both gradients as torch's."""
    gen = torch.Generator().manual_seed(fuzz_seed(1357))
    dev = torch_device(device)
    for it in range(30):
        r = lambda k: int(torch.randint(k, (1,), generator=gen))  # noqa: E731
        shape = tuple(r(9) if r(8) else 0 for _ in range(r(4)))
        small = tuple(1 if r(3) == 0 else d for d in shape)[r(2) :]  # broadcasts to shape
        xs, ts = (shape, small) if r(2) else (small, shape)
        x, t = _random_operand(gen, xs, dtype, dev), _random_operand(gen, ts, dtype, dev)
        red = REDUCTIONS[r(3)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # torch's "different to the input size"
            ours = _fwd_bwd(DF.mse_loss, x, t, reduction=red, target_grad=True)
            ref = _ref(F.mse_loss, x, t, reduction=red, target_grad=True)
        what = f"iter {it} {xs} vs {ts} {red}"
        upstream = float(_upstream(ref[0].shape).abs().max()) if ref[0].numel() else 0.0
        if red == "mean" and ref[0].isnan():  # 0 / 0 for empty operands
            assert ours[0].isnan(), what
            ours, ref = (None, *ours[1:]), (None, *ref[1:])
        for a, b, name, size in zip(ours, ref, ("loss", "grad_input", "grad_target"), (None, xs, ts)):
            if b is None:
                continue
            tol = TOL[dtype]
            if size is not None and size != torch.broadcast_shapes(xs, ts):
                # autograd sums the broadcast operand's per-element gradients, each rounded once
                # to the dtype: an error of u |term| each, so u times the sum of |terms|
                # (|term| <= 2 |x - t| max|g| / n, g _fwd_bwd's upstream gradient)
                n = 1 if red != "mean" else max(math.prod(torch.broadcast_shapes(xs, ts)), 1)
                terms = (2 * (x.double() - t.double()).abs() * upstream / n).sum_to_size(size)
                tol = Tol(
                    tol.rtol,
                    tol.atol + (float(terms.max()) if terms.numel() else 0.0) * eps(dtype) / 2,
                    "per-element terms rounded before autograd's sum",
                )
            assert_close(a, b, tol, f"{what} {name}")


def test_mse_empty_and_promotion(any_device):
    e = torch.empty(0, 3, device=torch_device(any_device))
    for red in REDUCTIONS:
        torch.testing.assert_close(
            DF.mse_loss(e, e, reduction=red), F.mse_loss(e, e, reduction=red), equal_nan=True
        )
    x = torch.randn(5, device=torch_device(any_device))
    t = torch.randn(5, dtype=torch.float64, device=torch_device(any_device))
    torch.testing.assert_close(DF.mse_loss(x, t), F.mse_loss(x, t))
    torch.testing.assert_close(DF.mse_loss(x, t.long()), F.mse_loss(x, t.long()))


def test_mse_sum_is_deterministic_across_threads():
    x = torch.randn(300_001)
    t = torch.randn(300_001)
    before = torch.get_num_threads()
    try:
        results = []
        for n in (1, 2, 3, before):
            torch.set_num_threads(n)
            results.append(DF.mse_loss(x, t, reduction="sum"))
    finally:
        torch.set_num_threads(before)
    assert all(torch.equal(r, results[0]) for r in results)


# ---- cross entropy ------------------------------------------------------------------------------

SHAPES = [(1, 1), (3, 5), (8, 10), (5, 17), (4, 64), (3, 100), (2, 1031)]


def _targets(n, c, device, ignore_at=()):
    t = torch.randint(c, (n,), device=torch_device(device))
    for i in ignore_at:
        t[i] = -100
    return t


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_cross_entropy_class_targets(device, dtype, reduction, shape):
    n, c = shape
    x = 3 * torch.randn(n, c, dtype=dtype, device=torch_device(device))
    t = _targets(n, c, device)
    for kw in (
        {},
        {"weight": torch.rand(c, dtype=dtype, device=torch_device(device)) + 0.1},
        {"label_smoothing": 0.1},
    ):
        torch.manual_seed(2)
        ours = _fwd_bwd(DF.cross_entropy, x, t, reduction=reduction, **kw)
        torch.manual_seed(2)
        ref = _ref(F.cross_entropy, x, t, reduction=reduction, **kw)
        _compare(ours, ref, TOL[dtype], f"{shape} {reduction} {list(kw)}")


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_smoothing_with_weights_and_ignore(device, dtype, reduction):
    n, c = 9, 13
    x = 2 * torch.randn(n, c, dtype=dtype, device=torch_device(device))
    w = torch.rand(c, dtype=dtype, device=torch_device(device)) + 0.1
    for ignore_at in [(0,), (n - 1,), (4,), (0, 3, n - 1), tuple(range(n))]:
        t = _targets(n, c, device, ignore_at)
        for ls in (0.0, 0.25, 1.0):
            kw = dict(weight=w, label_smoothing=ls, reduction=reduction)
            torch.manual_seed(3)
            ours = _fwd_bwd(DF.cross_entropy, x, t, **kw)
            torch.manual_seed(3)
            ref = _ref(F.cross_entropy, x, t, **kw)
            if reduction == "mean" and len(ignore_at) == n:
                assert ours[0].isnan() and ref[0].isnan()
                continue
            _compare(ours, ref, TOL[dtype], f"ignore {ignore_at} ls {ls}")


def test_cross_entropy_custom_ignore_index(device):
    x = torch.randn(6, 4, device=torch_device(device))
    t = torch.tensor([0, 3, 2, 3, 1, 3], device=torch_device(device))
    ours = _fwd_bwd(DF.cross_entropy, x, t, ignore_index=3)
    ref = _ref(F.cross_entropy, x, t, ignore_index=3)
    _compare(ours, ref, TOL[torch.float32], "ignore_index=3")


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_soft_targets(device, dtype, reduction):
    for n, c in [(1, 3), (6, 11), (4, 70)]:
        x = 2 * torch.randn(n, c, dtype=dtype, device=torch_device(device))
        q = torch.softmax(torch.randn(n, c, dtype=dtype, device=torch_device(device)), 1)
        for kw in (
            {},
            {"weight": torch.rand(c, dtype=dtype, device=torch_device(device))},
            {"label_smoothing": 0.2},
        ):
            kw["reduction"] = reduction
            if "weight" in kw:
                kw["label_smoothing"] = 0.3
            torch.manual_seed(4)
            ours = _fwd_bwd(DF.cross_entropy, x, q, target_grad=True, **kw)
            torch.manual_seed(4)
            ref = _ref(F.cross_entropy, x, q, target_grad=True, **kw)
            _compare(ours, ref, TOL[dtype], f"soft {(n, c)} {kw}")


@pytest.mark.parametrize("soft", [False, True])
def test_cross_entropy_spatial_and_unbatched(device, soft):
    x = torch.randn(2, 5, 3, 4, device=torch_device(device))
    t = (
        torch.softmax(torch.randn(2, 5, 3, 4, device=torch_device(device)), 1)
        if soft
        else torch.randint(5, (2, 3, 4), device=torch_device(device))
    )
    if not soft:
        t[0, 1, 2] = -100
    w = torch.rand(5, device=torch_device(device))
    for red in REDUCTIONS:
        torch.manual_seed(5)
        ours = _fwd_bwd(DF.cross_entropy, x, t, weight=w, reduction=red, label_smoothing=0.1)
        torch.manual_seed(5)
        ref = _ref(F.cross_entropy, x, t, weight=w, reduction=red, label_smoothing=0.1)
        _compare(ours, ref, TOL[torch.float32], f"spatial {red}")
    x1 = torch.randn(7, device=torch_device(device))
    t1 = (
        torch.softmax(torch.randn(7, device=torch_device(device)), 0)
        if soft
        else torch.tensor(3, device=torch_device(device))
    )
    for red in REDUCTIONS:
        torch.manual_seed(6)
        ours = _fwd_bwd(DF.cross_entropy, x1, t1, reduction=red)
        torch.manual_seed(6)
        ref = _ref(F.cross_entropy, x1, t1, reduction=red)
        _compare(ours, ref, TOL[torch.float32], f"unbatched {red}")


def test_cross_entropy_extreme_logits(device, dtype):
    n, c = 6, 37
    big = 1e4 if dtype != torch.float16 else 2e3  # float16 overflows past 65504
    x = torch.randn(n, c, dtype=dtype, device=torch_device(device))
    x[0, 5] = big
    x[1] = -big
    x[1, 2] = big
    x[2, :10] = float("-inf")
    x[3, 1::2] = float("-inf")
    x[4] = big * torch.randn(c, dtype=dtype, device=torch_device(device))
    t = torch.tensor([5, 2, 11, 0, 3, 7], device=torch_device(device))
    scale = Tol(TOL[dtype].rtol, big * TOL[dtype].rtol, "logits of 1e4: absolute error scales with them")
    for red in REDUCTIONS:
        torch.manual_seed(7)
        ours = _fwd_bwd(DF.cross_entropy, x, t, reduction=red)
        torch.manual_seed(7)
        ref = _ref(F.cross_entropy, x, t, reduction=red)
        _compare(ours, ref, scale, f"extreme {red}")
        assert torch.isfinite(ours[1]).all()


@pytest.mark.parametrize("classes", [1, 3, 10, 16, 17, 37, 70, 257, 300, 70000])
@pytest.mark.parametrize("variant", ["plain", "weight", "smoothing", "soft"])
def test_cross_entropy_nonfinite_rows(device, dtype, classes, variant):
    """A NaN logit makes its row's loss and gradient NaN; a row of -inf logits (the live ones of a
    masked vector too) has lse = -inf and a NaN loss; a +inf logit gives NaN; the other rows stay
    exact. As in torch, at every width around the vector length, and on the CPU in each of the
    rows' kernels: a vector of rows (up to 256 classes), two passes over a row, and rows longer
    than 256 KB in one pass."""
    dev = torch_device(device)
    gen = torch.Generator().manual_seed(classes)
    x = torch.randn(5, classes, dtype=torch.float64, generator=gen).to(dtype=dtype, device=dev)
    x[0, classes // 2] = float("nan")
    x[1] = float("-inf")
    x[2, classes - 1] = float("inf")
    x[4, 0] = float("nan") if classes > 1 else x[4, 0]
    kw = {}
    if variant == "weight":
        kw["weight"] = torch.rand(classes, dtype=torch.float64, generator=gen).to(dtype=dtype, device=dev)
    if variant == "smoothing":
        kw["label_smoothing"] = 0.2
    if variant == "soft":
        q = torch.softmax(torch.randn(5, classes, dtype=torch.float64, generator=gen), 1)
        t = q.to(dtype=dtype, device=dev)
    else:
        t = torch.randint(classes, (5,), generator=gen).to(dev)
    for red in REDUCTIONS:
        torch.manual_seed(3)
        ours = _fwd_bwd(DF.cross_entropy, x, t, reduction=red, **kw)
        torch.manual_seed(3)
        ref = _ref(F.cross_entropy, x, t, reduction=red, **kw)
        _compare(ours, ref, TOL[dtype], f"non-finite {variant} {red}")
        assert ours[1][0].isnan().all() and ours[1][1].isnan().all() and torch.isfinite(ours[1][3]).all()


@pytest.mark.parametrize("classes", [3, 21, 256, 300])
@pytest.mark.parametrize("layout", ["rows", "positions"])
def test_cross_entropy_ignored_rows_have_zero_gradient(device, dtype, classes, layout):
    """An ignored row's gradient is exactly zero whatever its logits (NaN, +inf, 1e4), in every
    kernel: a vector of rows, a row at a time, a vector of positions. A deliberate difference:
    torch's log_softmax backward gives NaN there for a NaN or +inf logit (README, Guarantees)."""
    dev = torch_device(device)
    gen = torch.Generator().manual_seed(classes)
    x = torch.randn(19, classes, dtype=torch.float64, generator=gen).to(dtype)
    t = torch.randint(classes, (19,), generator=gen)
    t[[0, 1, 2, 17]] = -100
    x[0, classes // 2] = float("nan")
    x[1, 0] = float("inf")
    x[2, classes - 1] = 1e4
    if layout == "positions":  # (1, C, 19): the positions kernels
        x, t = x.T.unsqueeze(0).contiguous(), t.unsqueeze(0)
    x = x.to(dev).requires_grad_()
    for red in REDUCTIONS:
        (g,) = torch.autograd.grad(DF.cross_entropy(x, t.to(dev), reduction=red).sum(), x)
        g = g.cpu() if layout == "rows" else g.cpu()[0].T
        assert torch.equal(g[[0, 1, 2, 17]], torch.zeros_like(g[[0, 1, 2, 17]])), red
        assert torch.isfinite(g[3:17]).all(), red


@pytest.mark.parametrize("classes", [1, 2, 10, 21, 64, 65, 100, 255, 256, 257])
def test_cross_entropy_many_rows_few_classes(classes):
    """Rows of up to 256 classes run a vector of rows at a time on the CPU (the rows transposed
    into a tile a vector of classes at a time, the last one partial): row counts around the
    vector length and spanning threads' chunks, ignored rows at block edges, weights and
    smoothing, on every ISA, against torch in float64. The first row whose target is out of
    range is the one reported, whichever block and chunk it is in."""
    gen = torch.Generator().manual_seed(classes)
    for rows in (7, 8, 15, 16, 17, 33, 5003):
        x = 4 * torch.randn(rows, classes, dtype=torch.float64, generator=gen)
        t = torch.randint(classes, (rows,), generator=gen)
        t[[i for i in (0, 7, 8, 15, 16, rows - 1) if i < rows]] = -100
        w = torch.rand(classes, dtype=torch.float64, generator=gen) + 0.1
        for isa in dlkernels.cpu_isas():
            for kw in ({}, {"weight": w}, {"weight": w, "label_smoothing": 0.3}, {"label_smoothing": 0.1}):
                with dlkernels.use_cpu_isa(isa):
                    ours = _fwd_bwd(DF.cross_entropy, x, t, reduction="none", **kw)
                ref = _ref(F.cross_entropy, x, t, reduction="none", **kw)
                _compare(ours, ref, TOL[torch.float64], f"{rows}x{classes} {isa} {list(kw)}")
    x = torch.randn(5003, classes)
    t = torch.randint(classes, (5003,))
    t[4000], t[4900] = classes + 3, -5
    for isa in dlkernels.cpu_isas():
        with (
            dlkernels.use_cpu_isa(isa),
            pytest.raises(IndexError, match=f"Target {classes + 3} is out of bounds"),
        ):
            DF.cross_entropy(x, t)


@pytest.mark.parametrize("classes", [1, 5, 21, 70])
def test_cross_entropy_positions(device, classes):
    """(N, C, d1, ...) logits run with the classes strided: on the CPU a vector of positions at a
    time, on CUDA a thread per position from 32 positions (a warp per position below). Positions
    around the vector length and that switch, ignored positions at lane edges, every variant,
    against torch in float64. channels_last logits go the (rows, classes) way instead, a strided
    view is copied first: the same values."""
    dev = torch_device(device)
    gen = torch.Generator().manual_seed(classes)
    w = (torch.rand(classes, dtype=torch.float64, generator=gen) + 0.1).to(dev)
    variants = ({}, {"weight": w}, {"weight": w, "label_smoothing": 0.3}, {"label_smoothing": 0.1})
    for spatial in ((1,), (7,), (3, 5), (16,), (17,), (33,), (4, 9)):
        x = (4 * torch.randn(3, classes, *spatial, dtype=torch.float64, generator=gen)).to(dev)
        t = torch.randint(classes, (3, *spatial), generator=gen)
        flat = t.view(3, -1)
        for i in (0, 7, 8, 15, 16, flat.shape[1] - 1):
            if i < flat.shape[1]:
                flat[i % 3, i] = -100
        q = torch.softmax(torch.randn(x.shape, dtype=torch.float64, generator=gen), 1).to(dev)
        cases = [(t.to(dev), kw) for kw in variants] + [(q, {}), (q, {"weight": w, "label_smoothing": 0.2})]
        for target, kw in cases:
            soft = target.is_floating_point()
            for red in ("none", "mean"):
                ours = _fwd_bwd(DF.cross_entropy, x, target, reduction=red, target_grad=soft, **kw)
                ref = _ref(F.cross_entropy, x, target, reduction=red, target_grad=soft, **kw)
                _compare(ours, ref, TOL[torch.float64], f"{tuple(x.shape)} {red} soft={soft} {list(kw)}")
    x = torch.randn(2, classes, 6, 7, dtype=torch.float64, generator=gen).to(dev)
    t = torch.randint(classes, (2, 6, 7), generator=gen).to(dev)
    ref = _ref(F.cross_entropy, x, t, reduction="none", weight=w)
    for layout in (x.to(memory_format=torch.channels_last), x.transpose(2, 3).contiguous().transpose(2, 3)):
        ours = _fwd_bwd(DF.cross_entropy, layout, t, reduction="none", weight=w)
        _compare(ours, ref, TOL[torch.float64], f"strides {layout.stride()}")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
def test_cross_entropy_positions_plain_backward(dtype):
    """The position kernel's backward for class targets, no class weights and one scale for every
    row (a mean or a sum), whose lanes are set up in vectors: on every ISA, positions around each
    vector width, ignore_index inside and outside the classes, with and without smoothing. The
    same gradient as the (rows, classes) kernels on the same logits, and torch's."""
    gen = torch.Generator().manual_seed(5)
    classes = 6
    for positions in (1, 2, 3, 5, 8, 15, 16, 17, 33):
        x = 3 * torch.randn(2, classes, positions, dtype=dtype, generator=gen)
        t = torch.randint(classes, (2, positions), generator=gen)
        t[0, positions // 2] = 3
        t[1, -1] = -100
        rows = x.movedim(1, -1).reshape(-1, classes)  # the classes innermost: the row kernels
        options = ({}, {"ignore_index": 3}, {"label_smoothing": 0.2, "ignore_index": 3}, {"reduction": "sum"})
        for isa in dlkernels.cpu_isas():
            for kw in options:
                tk = t if "ignore_index" not in kw else torch.where(t == -100, 3, t)
                with dlkernels.use_cpu_isa(isa):
                    ours = _fwd_bwd(DF.cross_entropy, x, tk, **kw)[1]
                    by_row = _fwd_bwd(DF.cross_entropy, rows, tk.reshape(-1), **kw)[1]
                ref = _fwd_bwd(F.cross_entropy, x, tk, **kw)[1]
                what = f"{isa} {positions} positions {kw}"
                torch.testing.assert_close(ours, by_row.view(2, positions, classes).movedim(-1, 1), msg=what)
                _compare((ours,), (ref,), TOL[dtype], what)


def test_cross_entropy_vector_log_within_one_ulp():
    """The narrow-row and position kernels take the log of each row's sum of exponentials in
    vectors (a series, not libm). Rows of equal logits have the sum C exactly, so their loss is
    log C: within 1 ulp of the correctly rounded value, for sums with every exponent up to 2^11,
    on every ISA; and the lse of random logits in float64 within a few ulp of torch's."""
    import math

    classes = list(range(1, 65)) + [97, 128, 1000, 1023, 1024, 1025, 2047]
    for dtype in (torch.float32, torch.float64):
        ulp_of = torch.finfo(dtype).eps
        for isa in dlkernels.cpu_isas():
            with dlkernels.use_cpu_isa(isa):
                for c in classes:
                    want = math.log(c)
                    for x in (torch.zeros(3, c, dtype=dtype), torch.zeros(1, c, 19, dtype=dtype)):
                        if x.dim() == 2 and c > 256:
                            continue  # the row kernel, libm's log
                        t = torch.zeros(x.shape[:1] + x.shape[2:], dtype=torch.long)
                        got = ops.cross_entropy_forward(x, t, None, 0, -100, 0.0)[0].double()
                        err = ((got - want).abs() / (want * ulp_of if c > 1 else 1.0)).max()
                        assert err <= 1.0, f"{isa} {dtype} C={c} {tuple(x.shape)}: {float(err)} ulp"
            gen = torch.Generator().manual_seed(0)
            x = 5 * torch.randn(64, 37, 40, dtype=torch.float64, generator=gen)
            with dlkernels.use_cpu_isa(isa):
                lse = ops.cross_entropy_forward(x, torch.zeros(64, 40, dtype=torch.long), None, 0, -100, 0.0)[
                    1
                ]
            torch.testing.assert_close(lse, torch.logsumexp(x, 1), rtol=4 * 2.0**-52, atol=0)


def test_cross_entropy_positions_across_threads():
    """A sample's positions cut between threads' chunks (mid-vector), on every ISA: the values are
    torch's, the bits do not depend on the thread count, and the first out-of-range target is the
    one reported, whichever chunk it is in."""
    gen = torch.Generator().manual_seed(8)
    x = 3 * torch.randn(3, 21, 5003, dtype=torch.float64, generator=gen)
    t = torch.randint(21, (3, 5003), generator=gen)
    t[1, ::97] = -100
    w = torch.rand(21, dtype=torch.float64, generator=gen) + 0.1
    ref = _ref(F.cross_entropy, x, t, reduction="none", weight=w, label_smoothing=0.1)
    before = torch.get_num_threads()
    try:
        for isa in dlkernels.cpu_isas():
            sums = []
            for n in (1, 2, 3):
                torch.set_num_threads(n)
                with dlkernels.use_cpu_isa(isa):
                    ours = _fwd_bwd(DF.cross_entropy, x, t, reduction="none", weight=w, label_smoothing=0.1)
                    sums.append(DF.cross_entropy(x.float(), t, weight=w.float()))
                _compare(ours, ref, TOL[torch.float64], f"{isa} {n} threads")
            assert all(torch.equal(s, sums[0]) for s in sums)
    finally:
        torch.set_num_threads(before)
    bad = t.clone()
    bad[2, 4000], bad[2, 4500] = 25, -3
    for isa in dlkernels.cpu_isas():
        with dlkernels.use_cpu_isa(isa), pytest.raises(IndexError, match="Target 25 is out of bounds"):
            DF.cross_entropy(x, bad)


@pytest.mark.parametrize("shape", [(0, 4), (0, 4, 3), (2, 4, 0), (2, 4, 0, 5)], ids=str)
def test_cross_entropy_empty_batch(any_device, shape):
    x = torch.randn(shape, device=torch_device(any_device), requires_grad=True)
    t = torch.zeros(shape[:1] + shape[2:], dtype=torch.long, device=torch_device(any_device))
    for red in REDUCTIONS:
        torch.testing.assert_close(
            DF.cross_entropy(x, t, reduction=red), F.cross_entropy(x, t, reduction=red), equal_nan=True
        )
    DF.cross_entropy(x, t, reduction="sum").backward()
    assert x.grad.shape == shape


def test_cross_entropy_is_deterministic_across_threads():
    x = torch.randn(3000, 33)
    t = torch.randint(33, (3000,))
    before = torch.get_num_threads()
    try:
        results = []
        for n in (1, 2, 3, before):
            torch.set_num_threads(n)
            results.append(DF.cross_entropy(x, t, reduction="sum"))
    finally:
        torch.set_num_threads(before)
    assert all(torch.equal(r, results[0]) for r in results)


def test_nn_layers():
    w = torch.rand(6)
    ours = dlkernels.nn.CrossEntropyLoss(weight=w, ignore_index=2, label_smoothing=0.1)
    ref = torch.nn.CrossEntropyLoss(weight=w, ignore_index=2, label_smoothing=0.1)
    assert isinstance(ours, torch.nn.CrossEntropyLoss)
    x, t = torch.randn(5, 6), torch.randint(6, (5,))
    torch.testing.assert_close(ours(x, t), ref(x, t))
    assert ours.state_dict().keys() == ref.state_dict().keys()
    m = dlkernels.nn.MSELoss(reduction="sum")
    assert isinstance(m, torch.nn.MSELoss)
    torch.testing.assert_close(m(x, x * 2), torch.nn.MSELoss(reduction="sum")(x, x * 2))
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.CrossEntropyLoss())
    assert type(dlkernels.nn.convert(model)[1]) is dlkernels.nn.CrossEntropyLoss


def _random_ce_options(r, gen, x):
    """(target, keyword arguments) drawn for logits x: a reduction, class weights, label smoothing,
    probability targets or class targets with some ignored."""
    n, c, spatial = x.shape[0], x.shape[1], x.shape[2:]
    kw = {"reduction": REDUCTIONS[r(3)]}
    if r(2):
        kw["weight"] = torch.rand(c, generator=gen).to(x)
    if r(2):
        kw["label_smoothing"] = float(torch.rand((), generator=gen))
    if r(3) == 0:
        return torch.softmax(torch.randn(x.shape, generator=gen), 1).to(x), kw
    t = torch.randint(c, (n, *spatial), generator=gen)
    t[torch.rand(t.shape, generator=gen) < 0.2] = -100
    return t.to(x.device), kw


def _compare_random_ce(ours, ref, x, kw, what):
    """A mean over no kept target is NaN on both sides; else within TOL, scaled by the logits."""
    if kw["reduction"] == "mean" and ref[0].isnan():
        assert ours[0].isnan(), what
        return
    dtype = x.dtype
    scale = float(x.abs().max().clamp(min=1))
    _compare(ours, ref, Tol(TOL[dtype].rtol * 10, TOL[dtype].atol * scale, "random scale"), what)


def test_randomized_against_torch():
    """Seeded random shapes, options and values (a few seconds)."""
    gen = torch.Generator().manual_seed(fuzz_seed(1234))
    isas = dlkernels.cpu_isas()
    for it in range(150):
        r = lambda k: int(torch.randint(k, (1,), generator=gen))  # noqa: E731
        dtype = (torch.float32, torch.float64)[r(2)]
        n, c = r(40), 1 + r(300)
        spatial = () if r(3) else tuple(1 + r(40) for _ in range(1 + r(2)))  # (N, C, d1, ...)
        x = (10 ** (r(4) - 1)) * torch.randn(n, c, *spatial, dtype=dtype, generator=gen)
        t, kw = _random_ce_options(r, gen, x)
        if n == 0:
            continue
        with dlkernels.use_cpu_isa(isas[it % len(isas)]):
            torch.manual_seed(it)
            ours = _fwd_bwd(DF.cross_entropy, x, t, **kw)
        torch.manual_seed(it)
        ref = _ref(F.cross_entropy, x, t, **kw)
        _compare_random_ce(ours, ref, x, kw, f"iter {it} {tuple(x.shape)} {dtype} {sorted(kw)}")


def test_randomized_cuda_kernels(cuda_device):
    """The sweep above on the CUDA kernels, every dtype they take, shapes sized for the emulator:
    (N, C) with C past a warp's 32 lanes and (N, C, d...), every option, ignored targets."""
    gen = torch.Generator().manual_seed(fuzz_seed(2468))
    dev = torch_device(cuda_device)
    dtypes = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
    for it in range(40):
        r = lambda k: int(torch.randint(k, (1,), generator=gen))  # noqa: E731
        dtype = dtypes[r(4)]
        n, c = 1 + r(12), 1 + r(70)
        spatial = () if r(2) else tuple(1 + r(6) for _ in range(1 + r(2)))
        x = ((10 ** (r(3) - 1)) * torch.randn(n, c, *spatial, generator=gen)).to(dtype).to(dev)
        t, kw = _random_ce_options(r, gen, x)
        ours = _fwd_bwd(DF.cross_entropy, x, t, **kw)
        ref = _ref(F.cross_entropy, x, t, **kw)
        _compare_random_ce(ours, ref, x, kw, f"iter {it} {tuple(x.shape)} {dtype} {sorted(kw)}")


def test_randomized_nonfinite_against_torch():
    """Seeded random shapes ((N, C) and (N, C, d1)) and options with NaN, +inf and -inf logits at
    random places (whole rows of -inf too): loss and gradients, NaN by position, as torch's on
    every ISA. Class counts around the vector length and around 256 (where the CPU rows go from
    a vector of rows at a time to two passes a row)."""
    gen = torch.Generator().manual_seed(fuzz_seed(4321))
    isas = dlkernels.cpu_isas()
    specials = (float("nan"), float("inf"), float("-inf"))
    for it in range(60):
        r = lambda k: int(torch.randint(k, (1,), generator=gen))  # noqa: E731
        dtype = (torch.float32, torch.float64)[r(2)]
        n, c = 1 + r(12), 1 + r(70) if r(3) else 240 + r(40)
        spatial = () if r(3) else (1 + r(40),)  # (N, C, d1): a row is a position
        x = 3 * torch.randn(n, c, *spatial, dtype=dtype, generator=gen)
        rows = x.movedim(1, -1).reshape(-1, c) if spatial else x  # a view
        for _ in range(1 + r(4)):
            rows[r(rows.shape[0]), r(c)] = specials[r(3)]
        if r(3) == 0:
            rows[r(rows.shape[0])] = float("-inf")
        kw = {"reduction": REDUCTIONS[r(3)]}
        if r(2):
            kw["weight"] = torch.rand(c, dtype=dtype, generator=gen) + 0.1
        if r(2):
            kw["label_smoothing"] = 0.25
        if r(3) == 0:
            t = torch.softmax(torch.randn(x.shape, dtype=dtype, generator=gen), 1)
        else:
            t = torch.randint(c, (n, *spatial), generator=gen)
        with dlkernels.use_cpu_isa(isas[it % len(isas)]):
            torch.manual_seed(it)
            ours = _fwd_bwd(DF.cross_entropy, x, t, **kw)
        torch.manual_seed(it)
        ref = _ref(F.cross_entropy, x, t, **kw)
        _compare(
            ours,
            ref,
            Tol(TOL[dtype].rtol * 10, TOL[dtype].atol * 10, "random"),
            f"iter {it} {tuple(x.shape)} {kw}",
        )


def test_reductions_repeat_bitwise(any_device):
    """Every call gives the same bits (under cuda_sim each launch sees another block and thread
    order, so an order-dependent sum would show here)."""
    dev = torch_device(any_device)
    x, t = torch.randn(50_000, device=dev), torch.randn(50_000, device=dev)
    xl = torch.randn(300, 40, device=dev, requires_grad=True)
    tl = torch.randint(40, (300,), device=dev)
    w = torch.rand(40, device=dev)
    runs = []
    for _ in range(3):
        xl.grad = None
        loss = DF.cross_entropy(xl, tl, weight=w, label_smoothing=0.1)
        loss.backward()
        runs.append((DF.mse_loss(x, t, reduction="sum"), loss.detach(), xl.grad.clone()))
    for r in runs[1:]:
        assert all(torch.equal(a, b) for a, b in zip(r, runs[0]))
