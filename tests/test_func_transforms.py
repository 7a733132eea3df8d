"""torch.func over the ops: grad, grad of grad, vmap of grad (per-sample gradients), jvp,
jacfwd, hessian (forward over reverse) and plain dual tensors, against the same transforms of
torch's ops. The registered autograd (dlkernels/_ops/_common.py register_autograd) is what makes
these work; torch's own register_autograd raises under torch.func.

Forward mode of every family: jvp against torch's jvp of torch.nn.functional on the same primals
and tangents, with tangents on only some inputs (the others reach the formula as None), through
torch.func.jvp and through dual tensors; hessians of the losses against torch's; gradcheck with
check_forward_ad on the raw ops, their backward ops included (against finite differences)."""

import itertools

import pytest
import torch
import torch.autograd.forward_ad as fwAD
import torch.nn.functional as TF
from helpers import Tol, assert_close
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
