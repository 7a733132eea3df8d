"""torch.func over the ops: grad, grad of grad, vmap of grad (per-sample gradients), jvp,
jacfwd, hessian (forward over reverse) and plain dual tensors, against the same transforms of
torch's ops. The registered autograd (dlkernels/_ops/_common.py register_autograd) is what makes
these work; torch's own register_autograd raises under torch.func.

Forward mode of every family: jvp against torch's jvp of torch.nn.functional on the same primals
and tangents, with tangents on only some inputs (the others reach the formula as None), through
torch.func.jvp and through dual tensors; hessians of the losses against torch's; gradcheck with
check_forward_ad on the raw ops, their backward ops included (against finite differences)."""

import contextlib
import itertools
import os
import tempfile
import warnings

import pytest
import torch
import torch.autograd.forward_ad as fwAD
import torch.nn.functional as TF
from helpers import Tol, assert_close, eps, torch_device
from torch.autograd import gradcheck

import dlkernels.functional as F

ops = torch.ops.dlkernels
D = torch.float64
DTYPES = (torch.float32, torch.float64)

# Our kernels sum in another order than torch's (a few dozen terms of order 1 per entry here):
# about n eps of error, 1e-14 in float64 and 1e-5 in float32; the tolerances leave a margin of
# 100x and 2x, and any wrong term of a formula is of order 1.
TOL = {
    torch.float64: Tol(1e-12, 1e-12, "float64, sums of a few dozen O(1) terms in another order than torch's"),
    torch.float32: Tol(2e-5, 2e-5, "float32, sums of a few dozen O(1) terms in another order than torch's"),
}

_W = torch.linspace(-1.0, 1.0, 24, dtype=D).view(4, 6)
_B = torch.linspace(0.5, -0.5, 4, dtype=D)
_TARGET = torch.linspace(-2.0, 2.0, 18, dtype=D)
_CLASSES = torch.tensor([0, -100, 5])  # one ignored row
_PROBS = torch.softmax(torch.linspace(-1.0, 1.0, 18, dtype=D).view(3, 6).flip(1), 1)
_CW = torch.linspace(0.2, 1.4, 6, dtype=D)

PAIRS = {
    "relu": (F.relu, torch.relu),
    "leaky_relu": (lambda t: F.leaky_relu(t, 0.3), lambda t: TF.leaky_relu(t, 0.3)),
    "sigmoid": (F.sigmoid, torch.sigmoid),
    "conv2d": (
        lambda t: F.conv2d(t.view(1, 2, 3, 3), torch.arange(8.0, dtype=D).view(2, 2, 1, 2) / 8, padding=1),
        lambda t: TF.conv2d(t.view(1, 2, 3, 3), torch.arange(8.0, dtype=D).view(2, 2, 1, 2) / 8, padding=1),
    ),
    "max_pool2d": (
        lambda t: F.max_pool2d(t.view(2, 1, 3, 3), 2, 1, 1),
        lambda t: TF.max_pool2d(t.view(2, 1, 3, 3), 2, 1, 1),
    ),
    "max_pool2d_dilation_ceil": (
        lambda t: F.max_pool2d(t.view(1, 2, 3, 3), 2, 2, 1, dilation=2, ceil_mode=True),
        lambda t: TF.max_pool2d(t.view(1, 2, 3, 3), 2, 2, 1, dilation=2, ceil_mode=True),
    ),
    "avg_pool2d": (
        lambda t: F.avg_pool2d(t.view(1, 2, 3, 3), 2, 1, 1, count_include_pad=False),
        lambda t: TF.avg_pool2d(t.view(1, 2, 3, 3), 2, 1, 1, count_include_pad=False),
    ),
    "avg_pool2d_divisor_ceil": (
        lambda t: F.avg_pool2d(t.view(1, 2, 3, 3), 2, 2, 1, ceil_mode=True, divisor_override=3),
        lambda t: TF.avg_pool2d(t.view(1, 2, 3, 3), 2, 2, 1, ceil_mode=True, divisor_override=3),
    ),
    "adaptive_avg_pool2d": (
        lambda t: F.adaptive_avg_pool2d(t.view(1, 2, 3, 3), (2, 2)),
        lambda t: TF.adaptive_avg_pool2d(t.view(1, 2, 3, 3), (2, 2)),
    ),
    "linear": (lambda t: F.linear(t.view(3, 6), _W, _B), lambda t: TF.linear(t.view(3, 6), _W, _B)),
    "mse_loss": (lambda t: F.mse_loss(t, _TARGET), lambda t: TF.mse_loss(t, _TARGET)),
    "mse_loss_none": (
        lambda t: F.mse_loss(t, _TARGET, reduction="none"),
        lambda t: TF.mse_loss(t, _TARGET, reduction="none"),
    ),
    "cross_entropy": (
        lambda t: F.cross_entropy(t.view(3, 6), _CLASSES, weight=_CW, label_smoothing=0.1),
        lambda t: TF.cross_entropy(t.view(3, 6), _CLASSES, weight=_CW, label_smoothing=0.1),
    ),
    "cross_entropy_soft": (
        lambda t: F.cross_entropy(t.view(3, 6), _PROBS, weight=_CW, reduction="none", label_smoothing=0.2),
        lambda t: TF.cross_entropy(t.view(3, 6), _PROBS, weight=_CW, reduction="none", label_smoothing=0.2),
    ),
}

TRANSFORMS = {
    "grad": lambda f: torch.func.grad(lambda t: f(t).pow(3).sum()),
    "grad_of_grad": lambda f: torch.func.grad(
        lambda t: torch.func.grad(lambda u: f(u).pow(3).sum())(t).pow(2).sum()
    ),
    "jacfwd": lambda f: torch.func.jacfwd(f),
    "jacrev": lambda f: torch.func.jacrev(f),
    "hessian": lambda f: torch.func.hessian(lambda t: f(t).pow(3).sum()),
    "jvp": lambda f: lambda t: torch.func.jvp(f, (t,), (torch.ones_like(t),))[1],
}


def _input():
    torch.manual_seed(0)
    return torch.randn(18, dtype=D)


@pytest.mark.parametrize("name", PAIRS)
@pytest.mark.parametrize("transform", TRANSFORMS)
def test_transform_matches_torch(name, transform):
    ours, theirs = PAIRS[name]
    x = _input()
    torch.testing.assert_close(TRANSFORMS[transform](ours)(x), TRANSFORMS[transform](theirs)(x))


@pytest.mark.parametrize("name", [n for n in PAIRS if n not in ("relu", "leaky_relu", "sigmoid", "conv2d")])
def test_jacfwd_equals_jacrev(name):
    """Forward and reverse mode agree with each other and with torch's (reverse) Jacobian."""
    ours, theirs = PAIRS[name]
    x = _input()
    fwd = torch.func.jacfwd(ours)(x)
    assert_close(fwd, torch.func.jacrev(ours)(x), TOL[D], name)
    assert_close(fwd, torch.func.jacrev(theirs)(x), TOL[D], name)


def test_per_sample_gradients_of_a_convnet():
    """vmap(grad) over the batch: each sample's weight gradient, as a loop of torch's would give."""
    torch.manual_seed(0)
    x = torch.randn(5, 3, 6, 6, dtype=D)
    w = torch.randn(4, 3, 3, 3, dtype=D)

    def loss(mod, w, xi):
        return mod.sigmoid(mod.leaky_relu(mod.conv2d(xi.unsqueeze(0), w, padding=1), 0.1)).sum()

    ours = torch.func.vmap(torch.func.grad(lambda w, xi: loss(F, w, xi)), in_dims=(None, 0))(w, x)
    for i in range(x.shape[0]):
        ref = torch.func.grad(lambda w, xi=x[i]: loss(TF, w, xi))(w)
        torch.testing.assert_close(ours[i], ref)


def test_dual_tensors():
    """Plain forward-mode AD: the tangent is propagated (guards against the fast no-autograd
    path dropping it, which returned a tangent of None)."""
    x, t = _input(), torch.ones(18, dtype=D)
    for name, (ours, theirs) in PAIRS.items():
        tangents = []
        for f in (ours, theirs):
            with fwAD.dual_level():
                tangents.append(fwAD.unpack_dual(f(fwAD.make_dual(x, t))).tangent)
        assert tangents[0] is not None, name
        torch.testing.assert_close(tangents[0], tangents[1])


# ---- forward mode with tangents on some inputs --------------------------------------------------


def _tangents(primals, which, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return {i: torch.randn(primals[i].shape, generator=gen, dtype=primals[i].dtype) for i in which}


def _func_jvp(fn, primals, tangents):
    """torch.func.jvp of fn in the primals that have a tangent; the others are constants (their
    tangent reaches the formula as None)."""
    which = sorted(tangents)

    def partial(*moving):
        args = list(primals)
        for i, a in zip(which, moving):
            args[i] = a
        return fn(*args)

    return torch.func.jvp(partial, tuple(primals[i] for i in which), tuple(tangents[i] for i in which))


def _dual_jvp(fn, primals, tangents):
    with fwAD.dual_level():
        args = [fwAD.make_dual(p, tangents[i]) if i in tangents else p for i, p in enumerate(primals)]
        out = fn(*args)
        return fwAD.unpack_dual(out).primal.clone(), fwAD.unpack_dual(out).tangent


def _check_jvp(ours, theirs, primals, which, what=""):
    """Our jvp, through torch.func and through dual tensors, against torch's on the same primals
    and tangents."""
    tangents = _tangents(primals, which)
    tol = TOL[primals[0].dtype]
    out_ref, t_ref = _func_jvp(theirs, primals, tangents)
    for how, jvp in (("torch.func.jvp", _func_jvp), ("dual tensors", _dual_jvp)):
        out, t = jvp(ours, primals, tangents)
        assert_close(out, out_ref, tol, f"{what} {how}: output")
        assert t is not None, f"{what} {how}: no tangent"
        assert_close(t, t_ref, tol, f"{what} {how}: tangent")


def _subsets(n):
    return [s for k in range(1, n + 1) for s in itertools.combinations(range(n), k)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(3, 5), (2, 3, 5), (5,), (0, 5)], ids=["2d", "3d", "1d", "empty"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
def test_linear_jvp(dtype, shape, bias):
    torch.manual_seed(0)
    x, w, b = torch.randn(shape, dtype=dtype), torch.randn(4, 5, dtype=dtype), torch.randn(4, dtype=dtype)
    primals = (x, w, b) if bias else (x, w)
    for which in _subsets(len(primals)):
        _check_jvp(F.linear, TF.linear, primals, which, f"tangents of {which}")


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
def test_linear_hessian(bias):
    """Forward over reverse through linear and its gradient ops, in every argument."""
    torch.manual_seed(0)
    primals = (torch.randn(2, 3, dtype=D), torch.randn(2, 3, dtype=D), torch.randn(2, dtype=D))[
        : 3 if bias else 2
    ]
    argnums = tuple(range(len(primals)))

    def h(mod):
        return torch.func.hessian(lambda *a: mod.linear(*a).pow(3).sum(), argnums=argnums)(*primals)

    assert_close(h(F), h(TF), TOL[D])


_POOLS = {
    "max_3x3_s2_p1": lambda m: lambda x: m.max_pool2d(x, 3, 2, 1),
    "max_dilation_ceil": lambda m: lambda x: m.max_pool2d(x, 2, 2, 1, dilation=2, ceil_mode=True),
    "max_indices": lambda m: lambda x: m.max_pool2d(x, (2, 3), (1, 2), return_indices=True)[0],
    "avg_3x3_s2_p1_ceil_exclude_pad": lambda m: (
        lambda x: m.avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False)
    ),
    "avg_include_pad": lambda m: lambda x: m.avg_pool2d(x, 2, 1, 1, count_include_pad=True),
    "avg_divisor_override": lambda m: lambda x: m.avg_pool2d(x, (2, 3), 2, divisor_override=5),
    "adaptive_3x2": lambda m: lambda x: m.adaptive_avg_pool2d(x, (3, 2)),
    "adaptive_global": lambda m: lambda x: m.adaptive_avg_pool2d(x, 1),
    "adaptive_upsample": lambda m: lambda x: m.adaptive_avg_pool2d(x, (7, 9)),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "unbatched"])
@pytest.mark.parametrize("pool", _POOLS)
def test_pool_jvp(dtype, layout, pool):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 5, 6, dtype=dtype)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    elif layout == "unbatched":
        x = x[0]
    _check_jvp(_POOLS[pool](F), _POOLS[pool](TF), (x,), (0,), pool)


@pytest.mark.parametrize("pool", _POOLS)
def test_pool_hessian(pool):
    """Forward over reverse through the pooling backward ops (max pooling's gather included)."""
    torch.manual_seed(0)
    x = torch.randn(1, 2, 4, 5, dtype=D)

    def h(mod):
        return torch.func.hessian(lambda u: _POOLS[pool](mod)(u).pow(3).sum())(x)

    assert_close(h(F), h(TF), TOL[D], pool)


REDUCTIONS = ("none", "mean", "sum")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_mse_jvp(dtype, reduction):
    torch.manual_seed(0)
    primals = (torch.randn(3, 5, dtype=dtype), torch.randn(3, 5, dtype=dtype))
    for which in _subsets(2):
        _check_jvp(
            lambda a, b: F.mse_loss(a, b, reduction=reduction),
            lambda a, b: TF.mse_loss(a, b, reduction=reduction),
            primals,
            which,
            f"tangents of {which}",
        )


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_mse_hessian(reduction):
    torch.manual_seed(0)
    primals = (torch.randn(2, 3, dtype=D), torch.randn(2, 3, dtype=D))

    def h(mod):
        return torch.func.hessian(
            lambda a, b: mod.mse_loss(a, b, reduction=reduction).pow(2).sum(), argnums=(0, 1)
        )(*primals)

    assert_close(h(F), h(TF), TOL[D])


def _ce_case(dtype, target, weighted, rows=4, classes=5, shape=None):
    """Logits, target (class indices with an ignored row, or probabilities) and class weights."""
    torch.manual_seed(0)
    x = torch.randn(shape or (rows, classes), dtype=dtype)
    if target == "class":
        t = torch.randint(classes, x.shape[:1] + x.shape[2:] if x.dim() > 1 else ())
        if t.dim():
            t.view(-1)[1] = -100
    else:
        t = torch.softmax(torch.randn(x.shape, dtype=dtype), 1 if x.dim() > 1 else 0)
    w = torch.rand(classes, dtype=dtype) + 0.2 if weighted else None
    return x, t, w


def _ce(mod, reduction, label_smoothing, ignore_index=-100):
    return lambda x, t, w=None: mod.cross_entropy(
        x, t, weight=w, reduction=reduction, label_smoothing=label_smoothing, ignore_index=ignore_index
    )


def _finite_difference(fn, primals, tangents, h=1e-6):
    """Central difference of torch's function along the tangents (float64): error h^2 f''' + eps / h,
    about 1e-10 here."""
    plus = [p + h * tangents[i] if i in tangents else p for i, p in enumerate(primals)]
    minus = [p - h * tangents[i] if i in tangents else p for i, p in enumerate(primals)]
    return (fn(*plus) - fn(*minus)) / (2 * h)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("target", ["class", "soft"])
@pytest.mark.parametrize("weighted", [False, True], ids=["no_weight", "weight"])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.25])
def test_cross_entropy_jvp(reduction, target, weighted, label_smoothing):
    x, t, w = _ce_case(D, target, weighted)
    ours, theirs = _ce(F, reduction, label_smoothing), _ce(TF, reduction, label_smoothing)
    primals = (x, t, w) if weighted else (x, t)
    movable = [0] + ([1] if target == "soft" else []) + ([2] if weighted else [])
    for which in _subsets(len(movable)):
        which = tuple(movable[i] for i in which)
        if target == "class" and 2 in which:
            # torch's forward mode drops the class weight's tangent with class targets (and its
            # reverse mode refuses it): compare with finite differences of torch's loss instead
            tangents = _tangents(primals, which)
            expected = _finite_difference(theirs, primals, tangents)
            for how, jvp in (("torch.func.jvp", _func_jvp), ("dual tensors", _dual_jvp)):
                assert_close(
                    jvp(ours, primals, tangents)[1],
                    expected,
                    Tol(1e-8, 1e-8, "central difference, about 1e-10"),
                    f"tangents of {which}, {how}",
                )
            continue
        _check_jvp(ours, theirs, primals, which, f"tangents of {which}")


@pytest.mark.parametrize("target", ["class", "soft"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_jvp_float32(target, reduction):
    x, t, w = _ce_case(torch.float32, target, True)
    which = (0, 1) if target == "soft" else (0,)
    _check_jvp(_ce(F, reduction, 0.1), _ce(TF, reduction, 0.1), (x, t, w), which)


@pytest.mark.parametrize(
    "shape", [(5,), (2, 5, 3), (2, 5, 2, 3)], ids=["unbatched", "spatial_1d", "spatial_2d"]
)
@pytest.mark.parametrize("target", ["class", "soft"])
def test_cross_entropy_jvp_layouts(shape, target):
    x, t, w = _ce_case(D, target, True, shape=shape)
    which = (0, 1) if target == "soft" else (0,)
    for reduction in REDUCTIONS:
        _check_jvp(_ce(F, reduction, 0.1), _ce(TF, reduction, 0.1), (x, t, w), which, reduction)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_jvp_ignore_index(reduction):
    """A non-default ignore_index, and every row ignored but one."""
    x, _, w = _ce_case(D, "class", True)
    t = torch.tensor([2, 2, 4, 2])
    _check_jvp(
        _ce(F, reduction, 0.3, ignore_index=2), _ce(TF, reduction, 0.3, ignore_index=2), (x, t, w), (0,)
    )


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("target", ["class", "soft"])
@pytest.mark.parametrize("weighted", [False, True], ids=["no_weight", "weight"])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.25])
def test_cross_entropy_hessian(reduction, target, weighted, label_smoothing):
    """Forward over reverse: cross_entropy_backward's forward mode, the lse's change derived
    from the logits' tangent."""
    x, t, w = _ce_case(D, target, weighted, rows=3, classes=4)

    def h(mod):
        f = _ce(mod, reduction, label_smoothing)
        return torch.func.hessian(lambda u: f(u, t, w).pow(2).sum())(x)

    assert_close(h(F), h(TF), TOL[D])


def test_cross_entropy_hessian_logits_and_probabilities():
    x, t, _ = _ce_case(D, "soft", False, rows=3, classes=4)

    def h(mod):
        return torch.func.hessian(lambda a, b: mod.cross_entropy(a, b), argnums=(0, 1))(x, t)

    assert_close(h(F), h(TF), TOL[D])


def test_hessian_of_a_small_classifier():
    """The loss of a small convnet head (max and average pooling, linear, cross entropy) in its
    input, weight and bias: forward over reverse through every op and its backward op."""
    torch.manual_seed(0)
    x = torch.randn(2, 1, 4, 4, dtype=D)
    y = torch.tensor([1, 2])
    w, b = torch.randn(3, 4, dtype=D), torch.randn(3, dtype=D)

    def h(mod):
        def loss(x, w, b):
            feats = mod.avg_pool2d(mod.max_pool2d(x, 2), 1).flatten(1)
            return mod.cross_entropy(mod.linear(feats, w, b), y, label_smoothing=0.1)

        return torch.func.hessian(loss, argnums=(0, 1, 2))(x, w, b)

    assert_close(h(F), h(TF), TOL[D])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize(
    "target, weighted, smoothing",
    [("class", False, 0.0), ("class", True, 0.2), ("soft", False, 0.0), ("soft", True, 0.3)],
)
def test_cross_entropy_double_backward_matches_torch(reduction, target, weighted, smoothing):
    """Reverse over reverse: the gradient of a function of the first gradients (logits, and the
    probability targets and class weight where they have one) against torch's."""
    x, t, w = _ce_case(D, target, weighted)
    v = torch.randn(x.shape, dtype=D, generator=torch.Generator().manual_seed(5))

    def second(mod):
        leaves = [x.clone().requires_grad_()]
        tt, ww = t, w
        if target == "soft":
            tt = t.clone().requires_grad_()
            leaves.append(tt)
            if weighted:
                ww = w.clone().requires_grad_()
                leaves.append(ww)
        loss = _ce(mod, reduction, smoothing)(leaves[0], tt, ww)
        firsts = torch.autograd.grad(loss.pow(2).sum(), leaves, create_graph=True)
        inner = sum((f * v.sum(0) if f.dim() == 1 else f * v).sum() for f in firsts)
        return torch.autograd.grad(inner, leaves)

    for ours, ref in zip(second(F), second(TF)):
        assert_close(ours, ref, TOL[D])


# ---- gradcheck of the raw ops, forward mode included --------------------------------------------


def _gradcheck_cases():
    torch.manual_seed(0)

    def r(*shape):
        return torch.randn(*shape, dtype=D)

    x = r(1, 2, 4, 5)
    conf = ([2, 2], [1, 2], [1, 0], [1, 1], True)
    _, idx = ops.max_pool2d_with_indices(x, *conf)
    g = r(*idx.shape)
    avg = ([3, 2], [2, 1], [1, 1], True, False, None)
    g_avg = r(*ops.avg_pool2d(x, *avg).shape)
    yield "max_pool2d", lambda a: ops.max_pool2d(a, *conf), (x,)
    yield "max_pool2d_with_indices", lambda a: ops.max_pool2d_with_indices(a, *conf)[0], (x,)
    yield "max_pool2d_backward", lambda a: ops.max_pool2d_backward(a, idx, list(x.shape), *conf), (g,)
    yield "max_pool2d_gather", lambda a: ops.max_pool2d_gather(a, idx, *conf), (x,)
    yield "avg_pool2d", lambda a: ops.avg_pool2d(a, *avg), (x,)
    yield "avg_pool2d_divisor", lambda a: ops.avg_pool2d(a, [2, 2], [2, 2], [0, 0], False, True, 3), (x,)
    yield "avg_pool2d_backward", lambda a: ops.avg_pool2d_backward(a, list(x.shape), *avg), (g_avg,)
    yield "adaptive_avg_pool2d", lambda a: ops.adaptive_avg_pool2d(a, [3, 2]), (x,)
    yield (
        "adaptive_avg_pool2d_backward",
        lambda a: ops.adaptive_avg_pool2d_backward(a, list(x.shape)),
        (r(1, 2, 3, 2),),
    )

    xl, wl, bl, dy = r(2, 3, 4), r(5, 4), r(5), r(2, 3, 5)
    yield "linear", lambda a, b, c: ops.linear(a, b, c), (xl, wl, bl)
    yield "linear_no_bias", lambda a, b: ops.linear(a, b, None), (xl, wl)
    yield "linear_grad_input", ops.linear_grad_input, (dy, wl)
    yield "linear_grad_weight", ops.linear_grad_weight, (dy, xl)
    yield "linear_grad_bias", ops.linear_grad_bias, (dy,)
    for mask in ([True, True, True], [True, False, False], [False, True, False], [False, False, True]):
        name = "linear_backward_" + "".join("1" if m else "0" for m in mask)
        yield name, lambda a, b, c, m=mask: ops.linear_backward(a, b, c, m), (dy, xl, wl)

    xm, tm = r(3, 4), r(3, 4)
    for red in (0, 1, 2):
        yield f"mse_loss_{red}", lambda a, b, red=red: ops.mse_loss(a, b, red), (xm, tm)
        gm = r(3, 4) if red == 0 else r(())
        yield (
            f"mse_loss_backward_{red}",
            lambda a, b, c, red=red: ops.mse_loss_backward(a, b, c, red),
            (gm, xm, tm),
        )

    y = torch.tensor([1, -100, 3])
    q = torch.softmax(r(3, 4), 1)
    cw = torch.rand(4, dtype=D) + 0.2
    for red, soft in itertools.product((0, 1, 2), (False, True)):
        target = q if soft else y
        args = (red, -100, 0.2)
        gl = r(3) if red == 0 else r(())

        # the lse and total weight the forward saves are computed inside, so they follow x and w
        def ce(a, *rest, target=target, args=args):
            t, cw_ = (rest[0], rest[1]) if len(rest) == 2 else (target, rest[0])
            return ops.cross_entropy_forward(a, t, cw_, *args)[0]

        def ce_backward(gl_, a, *rest, target=target, args=args):
            t, cw_ = (rest[0], rest[1]) if len(rest) == 2 else (target, rest[0])
            _, lse, total = ops.cross_entropy_forward(a, t, cw_, *args)
            return ops.cross_entropy_backward(gl_, a, t, cw_, lse, total, *args)

        moving = (r(3, 4), q, cw) if soft else (r(3, 4), cw)
        kind = "soft" if soft else "class"
        yield f"cross_entropy_forward_{kind}_{red}", ce, moving
        yield f"cross_entropy_backward_{kind}_{red}", ce_backward, (gl, *moving)


_CASES = {name: (fn, args) for name, fn, args in _gradcheck_cases()}
# reverse mode gives no gradient for the class weight, and cross_entropy_backward has no reverse
# derivative: forward mode only there
_FORWARD_ONLY = ("cross_entropy",)


@pytest.mark.parametrize("name", _CASES)
def test_gradcheck_forward_ad(name):
    fn, args = _CASES[name]
    args = tuple(a.clone().requires_grad_() for a in args)
    assert gradcheck(fn, args, check_forward_ad=True, check_backward_ad=not name.startswith(_FORWARD_ONLY))


# ---- vmap rules ---------------------------------------------------------------------------------
# The pooling and loss ops have vmap rules (dlkernels/_ops/pool2d.py, loss.py): torch.vmap over
# them, and the transforms built on it (jacrev, jacfwd, hessian, vmap of grad), makes one folded
# kernel call instead of torch's per-sample fallback loop, which warns "There is a performance
# drop". Each result is checked against torch.vmap of torch.nn.functional (or of torch's aten
# backward op) on the same inputs, or a loop of torch's calls where torch's vmap cannot run the
# case, and no call of ours may take the fallback.

B = 3  # the vmapped size
REDUCTION_CODES = {"none": 0, "mean": 1, "sum": 2}


@contextlib.contextmanager
def _stderr_text():
    """What is written to file descriptor 2 inside the block (c10's log goes there)."""
    text = []
    with tempfile.TemporaryFile() as tmp:
        saved = os.dup(2)
        os.dup2(tmp.fileno(), 2)
        try:
            yield text
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            text.append(tmp.read().decode(errors="replace"))


def _ours(fn, *args):
    """fn(*args), failing if torch's per-sample vmap fallback ran. Its warning is a Python
    warning when the op runs under a Python warning handler (autograd's engine), else a line of
    c10's log on stderr (an op called through torch.ops): both are checked."""
    with _stderr_text() as err, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = fn(*args)
    drops = [str(w.message) for w in caught] + err[0].splitlines()
    drops = [d for d in drops if "performance drop" in d]
    assert not drops, f"vmap fell back to the per-sample loop: {drops[0]}"
    return out


_NO_RULE = torch.library.Library("dlkernels_vmap_test", "DEF")  # an op without a vmap rule
_NO_RULE.define("twice(Tensor x) -> Tensor")
_NO_RULE.impl("twice", lambda x: x * 2, "CPU")


def test_vmap_fallback_is_detected():
    """The check above sees the fallback of an op that has no vmap rule."""
    with pytest.raises(AssertionError, match="fell back"):
        _ours(torch.func.vmap(torch.ops.dlkernels_vmap_test.twice), torch.ones(B, 2))


def _sample(args, dims, i):
    return tuple(a if d is None or a is None else a.select(d, i) for a, d in zip(args, dims))


def _stack(outs):
    return torch.stack(outs) if isinstance(outs[0], torch.Tensor) else tuple(map(torch.stack, zip(*outs)))


def _torch_loop(fn, in_dims, args):
    return _stack([fn(*_sample(args, in_dims, i)) for i in range(B)])


def _torch_vmap(fn, in_dims, args):
    """torch.vmap of torch's function; where torch's vmap cannot run it (its class-target label
    smoothing writes in place and masks by a vmapped tensor), a loop of torch's per-sample calls."""
    try:
        return torch.func.vmap(fn, in_dims=in_dims)(*args)
    except RuntimeError as e:
        if "vmap" not in str(e):
            raise
    return _torch_loop(fn, in_dims, args)


def _batched(shape, dtype, dim=0, seed=0, layout="contiguous"):
    """A (B, *shape) tensor with the vmapped dimension moved to `dim`. Layouts of the samples
    (N, C, H, W): channels_last strides, with the vmapped dimension outermost in memory or
    ("channels_last_interleaved") between N and the planes, where folding it into N takes a copy."""
    gen = torch.Generator().manual_seed(seed)
    if layout == "channels_last":
        n, c, h, w = shape
        t = torch.randn(B, n, h, w, c, generator=gen, dtype=dtype).permute(0, 1, 4, 2, 3)
    elif layout == "channels_last_interleaved":
        n, c, h, w = shape
        t = torch.randn(n, B, h, w, c, generator=gen, dtype=dtype).permute(1, 0, 4, 2, 3)
    else:
        t = torch.randn(B, *shape, generator=gen, dtype=dtype)
    return t.movedim(0, dim)


def _unbatch(args, dims):
    """Each batched argument with its vmapped dimension moved to its in_dim, or its first sample
    where the in_dim is None."""
    return tuple(a if a is None else a[0] if d is None else a.movedim(0, d) for a, d in zip(args, dims))


_VMAP_POOLS = {
    **_POOLS,
    "max_with_indices": lambda m: lambda x: m.max_pool2d(x, 3, 2, 1, return_indices=True),
    "max_dilation_ceil_indices": lambda m: (
        lambda x: m.max_pool2d(x, (2, 3), 2, (1, 0), dilation=(2, 1), ceil_mode=True, return_indices=True)
    ),
    "avg_ceil_include_pad": lambda m: lambda x: m.avg_pool2d(x, 3, 2, 1, ceil_mode=True),
}


def _first(out):
    return out[0] if isinstance(out, tuple) else out


def _pool_loss(pool, mod):
    return lambda u: _first(_VMAP_POOLS[pool](mod)(u)).pow(3).sum()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "layout, dim",
    [
        ("contiguous", 0),
        ("contiguous", 2),
        ("channels_last", 0),
        ("channels_last", 3),
        ("channels_last_interleaved", 0),
        ("unbatched", 1),
    ],
)
@pytest.mark.parametrize("pool", _VMAP_POOLS)
def test_vmap_pool(dtype, layout, dim, pool):
    """Samples of (N, C, H, W) (or (C, H, W)), the vmapped dimension anywhere; a channels_last
    sample keeps a channels_last output, as the op gives one."""
    shape = (3, 5, 6) if layout == "unbatched" else (2, 3, 5, 6)
    x = _batched(shape, dtype, dim, layout=layout if layout != "unbatched" else "contiguous")
    ours = _ours(torch.func.vmap(_VMAP_POOLS[pool](F), in_dims=dim), x)
    assert_close(ours, torch.func.vmap(_VMAP_POOLS[pool](TF), in_dims=dim)(x), TOL[dtype], pool)
    if layout.startswith("channels_last"):
        assert _first(ours)[0].is_contiguous(memory_format=torch.channels_last), pool


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("pool", _VMAP_POOLS)
def test_vmap_pool_transforms(dtype, pool):
    """jacrev and jacfwd (vmap over cotangents and tangents: the backward and gather ops with
    unbatched indices), vmap of grad, of jvp and of hessian (every operand batched), against
    torch's."""
    x = _batched((2, 2, 4, 5), dtype)
    tol = TOL[dtype]

    def out(mod):
        return lambda u: _first(_VMAP_POOLS[pool](mod)(u))

    for name, transform in (("jacrev", torch.func.jacrev), ("jacfwd", torch.func.jacfwd)):
        assert_close(_ours(transform(out(F)), x[0]), transform(out(TF))(x[0]), tol, f"{pool} {name}")
    for name, transform in (
        ("vmap(grad)", lambda mod: torch.func.vmap(torch.func.grad(_pool_loss(pool, mod)))),
        ("vmap(jvp)", lambda mod: torch.func.vmap(lambda u: torch.func.jvp(out(mod), (u,), (u.cos(),))[1])),
        ("vmap(hessian)", lambda mod: torch.func.vmap(torch.func.hessian(_pool_loss(pool, mod)))),
    ):
        xs = x[:, :1, :1] if name == "vmap(hessian)" else x
        assert_close(_ours(transform(F), xs), transform(TF)(xs), tol, f"{pool} {name}")


_MAX_CONF = ([3, 2], [2, 1], [1, 1], [1, 2], True)
_AVG_CONF = ([3, 2], [2, 1], [1, 0], True, False, 4)

# name: (our raw op, torch's op, the forward that gives the grad_output's shape and any indices);
# the ops take (grad_output, input[, indices])
_POOL_BACKWARD_OPS = {
    "max_pool2d_backward": (
        lambda g, a, idx: ops.max_pool2d_backward(g, idx, list(a.shape), *_MAX_CONF),
        lambda g, a, idx: torch.ops.aten.max_pool2d_with_indices_backward(g, a, *_MAX_CONF, idx),
        lambda a: TF.max_pool2d(a, *_MAX_CONF[:4], ceil_mode=True, return_indices=True),
    ),
    "max_pool2d_gather": (
        lambda g, a, idx: ops.max_pool2d_gather(a, idx, *_MAX_CONF),
        lambda g, a, idx: a.flatten(2).gather(2, idx.flatten(2)).view_as(idx),
        lambda a: TF.max_pool2d(a, *_MAX_CONF[:4], ceil_mode=True, return_indices=True),
    ),
    "avg_pool2d_backward": (
        lambda g, a: ops.avg_pool2d_backward(g, list(a.shape), *_AVG_CONF),
        lambda g, a: torch.ops.aten.avg_pool2d_backward(g, a, *_AVG_CONF),
        lambda a: TF.avg_pool2d(a, *_AVG_CONF),
    ),
    "adaptive_avg_pool2d_backward": (
        lambda g, a: ops.adaptive_avg_pool2d_backward(g, list(a.shape)),
        lambda g, a: torch.ops.aten._adaptive_avg_pool2d_backward(g, a),
        lambda a: TF.adaptive_avg_pool2d(a, (4, 3)),
    ),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "channels_last_interleaved"])
@pytest.mark.parametrize("name", _POOL_BACKWARD_OPS)
def test_vmap_pool_backward_ops(dtype, layout, name):
    """The raw backward ops with each operand batched or not (indices per sample or shared, the
    vmapped dimension anywhere), against torch's backward ops under torch.vmap."""
    ours, theirs, forward = _POOL_BACKWARD_OPS[name]
    xs = _batched((2, 3, 5, 6), dtype, layout=layout)
    out = torch.func.vmap(forward)(xs)
    out, idxs = out if isinstance(out, tuple) else (out, None)
    gs = _batched(out.shape[1:], dtype, seed=1, layout=layout)
    if idxs is None:
        combos = [(0, None), (0, 0), (None, 0), (3, 1)]
        batched = (gs, xs)
    else:
        combos = [(0, None, None), (0, 0, 0), (None, 0, 0), (2, None, 1), (None, None, 0)]
        batched = (gs, xs, idxs)
    for dims in combos:
        args = _unbatch(batched, dims)
        got = _ours(torch.func.vmap(ours, in_dims=dims), *args)
        assert_close(got, torch.func.vmap(theirs, in_dims=dims)(*args), TOL[dtype], f"in_dims={dims}")


@pytest.mark.parametrize(
    "pool", ["max_dilation_ceil_indices", "avg_3x3_s2_p1_ceil_exclude_pad", "adaptive_3x2"]
)
def test_vmap_pool_nested(pool):
    """vmap of vmap (the outer level over dimension 1): the inner rule's folded call meets the
    outer rule; values and per-sample gradients."""
    x = torch.randn(2, B, 1, 2, 5, 5, generator=torch.Generator().manual_seed(0), dtype=D)
    for mod_fn in (lambda mod: _VMAP_POOLS[pool](mod), lambda mod: torch.func.grad(_pool_loss(pool, mod))):
        ours = _ours(torch.func.vmap(torch.func.vmap(mod_fn(F)), in_dims=1), x)
        assert_close(ours, torch.func.vmap(torch.func.vmap(mod_fn(TF)), in_dims=1)(x), TOL[D], pool)


# losses


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(3, 5), (4,), ()], ids=["2d", "1d", "0d"])
def test_vmap_mse(dtype, reduction, shape):
    """Input, target or both vmapped; the loss and vmap(grad) in either argument and both."""
    batched = (_batched((2, *shape), dtype), _batched((2, *shape), dtype, seed=1))

    def loss(mod):
        return lambda a, b: mod.mse_loss(a, b, reduction=reduction)

    for dims in [(0, 0), (0, None), (None, 0), (1, 0)]:
        args = _unbatch(batched, dims)
        ours = _ours(torch.func.vmap(loss(F), in_dims=dims), *args)
        assert_close(ours, torch.func.vmap(loss(TF), in_dims=dims)(*args), TOL[dtype], f"in_dims={dims}")
        for argnums in (0, 1, (0, 1)):

            def grad(mod, argnums=argnums, dims=dims):
                g = torch.func.grad(lambda a, b: loss(mod)(a, b).pow(2).sum(), argnums=argnums)
                return torch.func.vmap(g, in_dims=dims)

            what = f"grad {argnums}, in_dims={dims}"
            assert_close(_ours(grad(F), *args), grad(TF)(*args), TOL[dtype], what)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_vmap_mse_loss_backward_op(dtype, reduction):
    """The raw backward op, grad_output batched or not (one scale per sample, or one for all),
    against torch's aten.mse_loss_backward under torch.vmap."""
    code = REDUCTION_CODES[reduction]
    g = _batched((2, 3) if reduction == "none" else (), dtype, seed=2)
    batched = (g, _batched((2, 3), dtype), _batched((2, 3), dtype, seed=1))
    for dims in [(0, 0, 0), (None, 0, 0), (0, None, None), (0, 0, None), (None, 1, 0), (None, None, 0)]:
        args = _unbatch(batched, dims)
        got = _ours(torch.func.vmap(lambda *a: ops.mse_loss_backward(*a, code), in_dims=dims), *args)
        ref = torch.func.vmap(lambda *a: torch.ops.aten.mse_loss_backward(*a, code), in_dims=dims)(*args)
        assert_close(got, ref, TOL[dtype], f"in_dims={dims}")


def _ce_batch(dtype, target, weighted, ignore_index=-100, rows=4, classes=5, spatial=()):
    """B samples of logits (rows, classes, *spatial), targets (class indices with ignored rows,
    more in one sample than the others, or probabilities) and class weights, different in each
    sample."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(B, rows, classes, *spatial, generator=gen, dtype=dtype)
    if target == "class":
        t = torch.randint(classes, (B, rows, *spatial), generator=gen)
        t[:, 1] = ignore_index
        t[0, 2] = ignore_index
    else:
        t = torch.softmax(torch.randn(x.shape, generator=gen, dtype=dtype), 2)
    w = torch.rand(B, classes, generator=gen, dtype=dtype) + 0.2 if weighted else None
    return x, t, w


def _ce_in_dims(weighted):
    """in_dims of (logits, target, weight): each vmapped or not (the weight only when there is
    one), and the logits vmapped along their rows' dimension."""
    n = 3 if weighted else 2
    dims = [d for d in itertools.product((0, None), repeat=n) if 0 in d]
    return [(*d, None)[:3] for d in dims] + [(1, 0, 0 if weighted else None)]


def _ce_ignore(target):
    return 3 if target == "class" else -100  # torch takes no other ignore_index for probabilities


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("target", ["class", "soft"])
@pytest.mark.parametrize("weighted", [False, True], ids=["no_weight", "weight"])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.25])
def test_vmap_cross_entropy(dtype, reduction, target, weighted, label_smoothing):
    """Every combination of vmapped logits, targets and class weights."""
    ignore = _ce_ignore(target)
    batched = _ce_batch(dtype, target, weighted, ignore)
    for dims in _ce_in_dims(weighted):
        args = _unbatch(batched, dims)
        ours = _ours(torch.func.vmap(_ce(F, reduction, label_smoothing, ignore), in_dims=dims), *args)
        ref = _torch_vmap(_ce(TF, reduction, label_smoothing, ignore), dims, args)
        assert_close(ours, ref, TOL[dtype], f"in_dims={dims}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("target", ["class", "soft"])
@pytest.mark.parametrize("weighted", [False, True], ids=["no_weight", "weight"])
def test_vmap_cross_entropy_grad(dtype, reduction, target, weighted):
    """vmap of grad (per-sample gradients: the backward op with a vmapped grad_output and, for the
    mean, per-sample total weights) in the logits and, for probabilities, the targets and the
    weight, against a loop of torch's gradients (its vmap of grad fails with label smoothing)."""
    argnums = (0,) + ((1,) if target == "soft" else ()) + ((2,) if target == "soft" and weighted else ())
    ignore = _ce_ignore(target)
    batched = _ce_batch(dtype, target, weighted, ignore)

    def grad(mod):
        f = _ce(mod, reduction, 0.1, ignore)
        return torch.func.grad(lambda *a: f(*a).pow(2).sum(), argnums=argnums)

    for dims in _ce_in_dims(weighted):
        args = _unbatch(batched, dims)
        ours = _ours(torch.func.vmap(grad(F), in_dims=dims), *args)
        assert_close(ours, _torch_loop(grad(TF), dims, args), TOL[dtype], f"in_dims={dims}")


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("target", ["class", "soft"])
@pytest.mark.parametrize("weighted", [False, True], ids=["no_weight", "weight"])
def test_vmap_cross_entropy_spatial(reduction, target, weighted):
    """(N, C, d1, d2) samples, which run the ops on (batch, classes, positions) logits: vmap of the
    loss and of its gradient, every combination of vmapped operands."""
    ignore = _ce_ignore(target)
    batched = _ce_batch(D, target, weighted, ignore, spatial=(3, 2))
    argnums = (0,) + ((1,) if target == "soft" else ())

    def grad(mod):
        f = _ce(mod, reduction, 0.1, ignore)
        return torch.func.grad(lambda *a: f(*a).pow(2).sum(), argnums=argnums)

    for dims in _ce_in_dims(weighted):
        args = _unbatch(batched, dims)
        ours = _ours(torch.func.vmap(_ce(F, reduction, 0.1, ignore), in_dims=dims), *args)
        assert_close(
            ours, _torch_vmap(_ce(TF, reduction, 0.1, ignore), dims, args), TOL[D], f"in_dims={dims}"
        )
        ours = _ours(torch.func.vmap(grad(F), in_dims=dims), *args)
        assert_close(ours, _torch_loop(grad(TF), dims, args), TOL[D], f"grad, in_dims={dims}")


def _ce_total(x, t, w, ignore_index):
    """torch's total weight of a sample (the mean's divisor): aten.nll_loss_forward's for class
    targets, the row count for probabilities."""
    if t.is_floating_point():
        return torch.tensor(float(x.shape[0]), dtype=x.dtype)
    return torch.ops.aten.nll_loss_forward(torch.log_softmax(x, 1), t, w, 1, ignore_index)[1]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("target", ["class", "soft"])
@pytest.mark.parametrize("weighted", [False, True], ids=["no_weight", "weight"])
def test_vmap_cross_entropy_ops(dtype, reduction, target, weighted):
    """The raw ops. cross_entropy_forward's three outputs against torch's loss, logsumexp and
    nll_loss total weight; cross_entropy_backward with every operand vmapped or not (grad_output
    alone, as jacrev gives; grad_output shared by the samples; per-sample total weights), against
    torch's vjp of its cross entropy."""
    code, ls, ignore = REDUCTION_CODES[reduction], 0.2, _ce_ignore(target)
    batched = _ce_batch(dtype, target, weighted, ignore)
    lse = torch.logsumexp(batched[0], -1)
    g = _batched((4,) if reduction == "none" else (), dtype, seed=3)

    def forward(a, b, c):
        return ops.cross_entropy_forward(a, b, c, code, ignore, ls)

    def torch_forward(a, b, c):
        return _ce(TF, reduction, ls, ignore)(a, b, c), torch.logsumexp(a, 1)

    def backward(gg, a, b, c, lse_, total_):
        return ops.cross_entropy_backward(gg, a, b, c, lse_, total_, code, ignore, ls)

    def torch_backward(gg, a, b, c):
        return torch.func.vjp(lambda u: _ce(TF, reduction, ls, ignore)(u, b, c), a)[1](gg)[0]

    tol = TOL[dtype]
    for dims in _ce_in_dims(weighted):
        args = _unbatch(batched, dims)
        loss, lse_out, total = _ours(torch.func.vmap(forward, in_dims=dims), *args)
        ref_loss, ref_lse = _torch_vmap(torch_forward, dims, args)
        assert_close(loss, ref_loss, tol, f"loss, in_dims={dims}")
        # an ignored row's lse is not computed (nor read by the backward)
        kept = torch.ones_like(lse, dtype=torch.bool) if target == "soft" else batched[1] != ignore
        kept = kept if dims[1] is not None else kept[:1].expand(B, -1)
        assert_close(lse_out[kept], ref_lse[kept], tol, f"lse, in_dims={dims}")
        totals = _torch_loop(lambda *a: _ce_total(*a, ignore), dims, args)
        assert_close(total, totals, tol, f"total, in_dims={dims}")
        # the total weight varies with the class targets and weights only
        total_dim = 0 if target == "class" and (dims[1] is not None or dims[2] is not None) else None
        for g_dim in (0, None):
            all_dims = (g_dim, *dims, dims[0], total_dim)
            g_, lse_, total_ = _unbatch((g, lse, totals), (g_dim, dims[0], total_dim))
            got = _ours(torch.func.vmap(backward, in_dims=all_dims), g_, *args, lse_, total_)
            ref = _torch_vmap(torch_backward, all_dims[:4], (g_, *args))
            assert_close(got, ref, tol, f"backward, in_dims={all_dims}")
    # grad_output alone (jacrev of the loss)
    one = _unbatch(batched, (None, None, None))
    got = _ours(
        torch.func.vmap(backward, in_dims=(0, None, None, None, None, None)),
        g,
        *one,
        lse[0],
        _ce_total(*one, ignore),
    )
    ref = torch.func.vmap(torch_backward, in_dims=(0, None, None, None))(g, *one)
    assert_close(got, ref, tol, "backward, grad_output alone")


def _loss_cases(reduction, w):
    """name: (loss of module, index of the target in the test's tensors)."""
    return {
        "mse": (lambda m: lambda a, b: m.mse_loss(a, b, reduction=reduction), 1),
        "ce": (lambda m: lambda a, b: _ce(m, reduction, 0.0)(a, b, w), 0),
        "ce_soft": (lambda m: lambda a, b: _ce(m, reduction, 0.3)(a, b, w), 1),
    }


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_vmap_losses_nested(reduction):
    """vmap of vmap over the losses (the outer level over dimension 1 of the logits), the target
    vmapped at both levels or at the outer one only; values and vmap(vmap(grad)) against a double
    loop of torch's calls (torch's own nested vmap of mse_loss fails on the second case)."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, B, 4, 5, generator=gen, dtype=D)
    y = torch.randint(5, (2, B, 4), generator=gen)
    y[0, 1, 2] = -100
    q = torch.softmax(torch.randn(2, B, 4, 5, generator=gen, dtype=D), -1)
    w = torch.rand(5, generator=gen, dtype=D) + 0.2
    for name, (loss, which) in _loss_cases(reduction, w).items():
        t = (y, q)[which]

        def grad(mod, loss=loss):
            return torch.func.grad(lambda u, v: loss(mod)(u, v).pow(2).sum())

        for both in (True, False):
            inner, outer = ((0, 0), (1, 1)) if both else ((0, None), (1, 0))
            args = (x, t) if both else (x, t[0])
            for what, fn in (("loss", loss), ("grad", grad)):
                ours = _ours(torch.func.vmap(torch.func.vmap(fn(F), in_dims=inner), in_dims=outer), *args)
                ref = torch.stack(
                    [
                        torch.stack([fn(TF)(x[i, j], t[i, j] if both else t[0, j]) for i in range(2)])
                        for j in range(B)
                    ]
                )
                assert_close(ours, ref, TOL[D], f"{name} {what}, target vmapped at both levels: {both}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_vmap_per_sample_gradients_of_a_classifier(dtype):
    """Per-sample gradients of conv2d -> relu -> max_pool2d -> flatten -> linear -> cross_entropy
    in every parameter, by vmap(grad) over the batch, against torch's vmap(grad) of the same model
    and the gradient of each sample's loss alone; none of the ops falls back to the loop."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(6, 2, 6, 6, generator=gen, dtype=dtype)
    y = torch.tensor([0, 2, 1, 2, 0, 1])
    params = (
        torch.randn(3, 2, 3, 3, generator=gen, dtype=dtype) / 3,
        torch.randn(3, generator=gen, dtype=dtype) / 3,
        torch.randn(3, 27, generator=gen, dtype=dtype) / 5,
        torch.randn(3, generator=gen, dtype=dtype) / 5,
    )

    def loss(mod, cw, cb, lw, lb, xi, yi):
        h = mod.max_pool2d(mod.relu(mod.conv2d(xi.unsqueeze(0), cw, cb, padding=1)), 2)
        return mod.cross_entropy(mod.linear(h.flatten(1), lw, lb), yi.unsqueeze(0), label_smoothing=0.1)

    def grad(mod):
        return torch.func.grad(lambda *a: loss(mod, *a), argnums=(0, 1, 2, 3))

    ours = _ours(torch.func.vmap(grad(F), in_dims=(None, None, None, None, 0, 0)), *params, x, y)
    ref = torch.func.vmap(grad(TF), in_dims=(None, None, None, None, 0, 0))(*params, x, y)
    assert_close(ours, ref, TOL[dtype])
    for i in (0, 5):
        assert_close(tuple(o[i] for o in ours), grad(TF)(*params, x[i], y[i]), TOL[dtype], f"sample {i}")


def test_vmap_losses_on_every_device(device, dtype):
    """vmap of the reduced losses and vmap(grad) on every device and dtype (half types on the
    emulated CUDA kernels), against torch in float64 on the same values. Where the rules form a
    per-sample mean or scale outside the kernel, half types take their kernels' float math: the
    result is that math rounded once to the dtype, within half an ulp of torch's float64."""
    dev = torch_device(device)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(B, 4, 5, generator=gen).to(dev, dtype)
    y = torch.randint(5, (B, 4), generator=gen).to(dev)
    y[0, 1] = -100
    q = torch.softmax(torch.randn(B, 4, 5, generator=gen), -1).to(dev, dtype)
    w = (torch.rand(5, generator=gen) + 0.2).to(dev, dtype)
    if dtype in (torch.float16, torch.bfloat16):
        tol = Tol(eps(dtype) / 2 + 1e-5, 1e-6, "float math rounded once to the dtype: half an ulp")
    else:
        tol = TOL[dtype]
    cases = {
        "mse": (lambda m, r, ww: lambda a, b: m.mse_loss(a, b, reduction=r), q),
        "ce": (lambda m, r, ww: lambda a, b: m.cross_entropy(a, b, ww, reduction=r, label_smoothing=0.1), y),
        "ce_soft": (
            lambda m, r, ww: lambda a, b: m.cross_entropy(a, b, ww, reduction=r, label_smoothing=0.1),
            q,
        ),
    }
    for reduction in ("mean", "sum"):
        for name, (loss, t) in cases.items():
            ours_loss, ref_loss = loss(F, reduction, w), loss(TF, reduction, w.double())
            t64 = t.double() if t.is_floating_point() else t
            got = _ours(torch.func.vmap(ours_loss), x, t)
            ref = _torch_vmap(ref_loss, (0, 0), (x.double(), t64))
            assert_close(got.double(), ref, tol, f"{name} {reduction}")
            got = _ours(torch.func.vmap(torch.func.grad(ours_loss)), x, t)
            ref = _torch_loop(torch.func.grad(ref_loss), (0, 0), (x.double(), t64))
            assert_close(got.double(), ref, tol, f"{name} {reduction} grad")
