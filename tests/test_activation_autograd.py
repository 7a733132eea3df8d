"""Autograd of the activation ops: gradients against torch's through every API surface, in-place
semantics (aliasing, version counters, leaves, views), gradcheck / gradgradcheck, opcheck."""

import random

import pytest
import torch
import torch.nn.functional as F
from activation_cases import ACTS, ACTS_BY_OP, Act, ops
from helpers import (
    ELEMENTWISE_SHAPES,
    EXACT,
    LAYOUTS,
    Tol,
    assert_close,
    assert_unchanged,
    expanded,
    fuzz_seed,
    make_input,
    torch_device,
    with_layout,
)
from torch.autograd import gradcheck, gradgradcheck
from torch.library import opcheck

import dlkernels

act_param = pytest.mark.parametrize("act", ACTS, ids=str)
DF = dlkernels.functional


def _forward_backward(fn, x, g):
    """(output, x.grad) of fn on a fresh leaf copy of x, backpropagating g."""
    leaf = x.detach().clone().requires_grad_()
    y = fn(leaf)
    y.backward(g)
    return y.detach(), leaf.grad


@act_param
def test_autograd_matches_torch(device, dtype, act):
    """functional forward + backward against torch's, with the same grad_output, special values in
    the input."""
    for shape in ELEMENTWISE_SHAPES:
        x = make_input(shape, dtype, device)
        g = make_input(shape, dtype, device, specials=False, generator_seed=1)
        y, grad = _forward_backward(act.functional, x, g)
        y_ref, grad_ref = _forward_backward(act.ref, x, g)
        what = f"{act}, shape {shape}"
        assert_close(y, y_ref, act.forward_tol(dtype, device), f"{what}: output")
        assert_close(grad, grad_ref, act.grad_tol(dtype, device, g), f"{what}: input gradient")


@act_param
def test_api_surfaces_agree(any_device, act):
    """Raw op (C++ autograd kernel), autograd.Function, functional and nn module: identical
    outputs and gradients, all matching torch."""
    dtype = torch.float32
    x = make_input((6, 35), dtype, any_device)
    g = make_input((6, 35), dtype, any_device, specials=False, generator_seed=1)
    y_ref, grad_ref = _forward_backward(act.ref, x, g)
    y0, grad0 = _forward_backward(act.op, x, g)
    assert_close(y0, y_ref, act.forward_tol(dtype, any_device), f"{act} raw op output")
    assert_close(grad0, grad_ref, act.grad_tol(dtype, any_device, g), f"{act} raw op gradient")
    for name, fn in [("Function", act.function), ("functional", act.functional), ("module", act.module())]:
        y, grad = _forward_backward(fn, x, g)
        assert_close(y, y0, EXACT, f"{act} {name} output vs raw op")
        assert_close(grad, grad0, EXACT, f"{act} {name} gradient vs raw op")


@act_param
def test_direct_path_node(act):
    """The functional call on plain tensors records the op's lean node (the direct path's), whose
    gradient, and double backward (create_graph: the registered formula), are the raw op's bits."""
    x = make_input((4, 9), torch.float64, "cpu", specials=False)
    g = make_input((4, 9), torch.float64, "cpu", specials=False, generator_seed=1)
    h = make_input((4, 9), torch.float64, "cpu", specials=False, generator_seed=2)
    results = []
    for fn in (act.functional, act.op):
        leaf = x.clone().requires_grad_()
        y = fn(leaf)
        (gx,) = torch.autograd.grad(y, leaf, g, create_graph=True)
        (ggx,) = torch.autograd.grad(gx, leaf, h, allow_unused=True, materialize_grads=True)
        results.append((type(y.grad_fn).__name__, y, gx, ggx))
    assert results[0][0] == f"_{act.name}Backward", results[0][0]
    for what, ours, raw in zip(("output", "gradient", "double backward"), results[0][1:], results[1][1:]):
        assert_close(ours, raw, EXACT, f"{act} {what}: lean node vs the raw op's")


@act_param
def test_noncontiguous_grad_output(device, dtype, act):
    """grad_output strided, misaligned, permuted, channels_last or expanded (as from .sum())."""
    shape = (2, 3, 5, 7)
    x = make_input(shape, dtype, device)
    g0 = make_input(shape, dtype, device, specials=False, generator_seed=1)
    grads = [(layout, with_layout(g0, layout)) for layout in LAYOUTS]
    grads.append(("expanded", expanded(make_input(shape[1:], dtype, device, specials=False), 2)))
    for layout, g in grads:
        y, grad = _forward_backward(act.functional, x, g)
        _, grad_ref = _forward_backward(act.ref, x, g)
        assert_close(grad, grad_ref, act.grad_tol(dtype, device, g), f"{act}, {layout} grad_output")


@act_param
def test_noncontiguous_input_autograd(device, dtype, act):
    """Gradients reach a non-contiguous input (the kernel then works on a copy)."""
    x0 = make_input((2, 3, 5, 7), dtype, device)
    g = make_input((2, 3, 5, 7), dtype, device, specials=False, generator_seed=1)
    for layout in LAYOUTS:
        leaf = with_layout(x0, layout).detach().requires_grad_()
        act.functional(leaf).backward(g)
        _, grad_ref = _forward_backward(act.ref, x0, g)
        assert_close(leaf.grad, grad_ref, act.grad_tol(dtype, device, g), f"{act}, {layout} input")


# ---- in place ------------------------------------------------------------------------------------


@pytest.mark.parametrize("act", [a for a in ACTS if a.has_inplace_backward], ids=str)
def test_inplace_autograd_on_non_leaf(device, dtype, act):
    """In place on an intermediate tensor: same result, same graph (the output becomes the
    tensor's new version), same gradients as torch's in-place op."""
    a = make_input((3, 67), dtype, device)
    w = make_input((3, 67), dtype, device, specials=False, generator_seed=1)

    def run(inplace_fn):
        leaf = a.detach().clone().requires_grad_()
        h = leaf * 2
        version = h._version
        out = inplace_fn(h)
        assert out is h, "the in-place form returns its input"
        assert h._version > version, "the version counter was not bumped"
        (h * w).sum().backward()
        return h.detach(), leaf.grad

    h, grad = run(lambda t: act.functional(t, inplace=True))
    h_ref, grad_ref = run(act.ref_)
    assert_close(h, h_ref, act.forward_tol(dtype, device), f"{act} in place: values")
    assert_close(grad, grad_ref, act.grad_tol(dtype, device, 2 * w), f"{act} in place: gradient")


@pytest.mark.parametrize("act", [a for a in ACTS_BY_OP if a.name != "sigmoid"], ids=str)
def test_inplace_on_strided_view_of_non_leaf(device, dtype, act):
    """In place on a strided view: only the view changes, and autograd rebases the base's history
    like torch's (the elements outside the view keep their identity gradient)."""
    a = make_input((4, 10), dtype, device)
    w = make_input((4, 10), dtype, device, specials=False, generator_seed=1)

    def run(inplace_fn):
        leaf = a.detach().clone().requires_grad_()
        h = leaf * 1.5
        inplace_fn(h[:, 1::3])
        (h * w).sum().backward()
        return h.detach(), leaf.grad

    h, grad = run(lambda t: act.functional(t, inplace=True))
    h_ref, grad_ref = run(act.ref_)
    assert_close(h, h_ref, EXACT, f"{act} in place on a view: values")
    assert_close(grad, grad_ref, EXACT, f"{act} in place on a view: gradient")


@pytest.mark.parametrize("act", [a for a in ACTS_BY_OP if a.name != "sigmoid"], ids=str)
def test_inplace_on_leaf_requiring_grad_raises_like_torch(any_device, act):
    """torch refuses in-place ops on a leaf that requires grad (or a view of one) before writing;
    so must dlkernels, with the same message and the leaf untouched."""
    for view in (False, True):
        messages = []
        for fn in (act.ref_, lambda t: act.functional(t, inplace=True)):
            leaf = make_input((3, 5), torch.float32, any_device).requires_grad_()
            before = leaf.detach().clone()
            with pytest.raises(RuntimeError, match="leaf Variable that requires grad") as info:
                fn(leaf[:2] if view else leaf)
            messages.append(str(info.value))
            assert_unchanged(leaf.detach(), before, f"{act} leaf (view={view})")
        assert messages[0] == messages[1]

    leaf = make_input((3, 5), torch.float32, any_device).requires_grad_()
    expected = act.ref(leaf.detach())
    with torch.no_grad():  # allowed without grad mode, as in torch
        assert act.functional(leaf, inplace=True) is leaf
    assert_close(leaf.detach(), expected, EXACT, f"{act} in place on a leaf under no_grad")


@pytest.mark.parametrize("slope", [-0.2, -1.0])
def test_inplace_leaky_relu_negative_slope_requiring_grad_raises(any_device, slope):
    """The backward of an in-place leaky_relu only has the output, whose sign differs from the
    input's for a negative slope: refused up front (torch raises at backward), input untouched.
    Without grad it is fine."""
    h = make_input((4, 9), torch.float32, any_device).requires_grad_() * 1.0
    before = h.detach().clone()
    with pytest.raises(RuntimeError, match="negative slope"):
        DF.leaky_relu(h, slope, inplace=True)
    assert_unchanged(h.detach(), before)
    with pytest.raises(RuntimeError, match="negative slope"):
        dlkernels.nn.LeakyReLU(slope, inplace=True)(h)
    assert_unchanged(h.detach(), before)

    x = before.clone()
    assert DF.leaky_relu_(x, slope) is x
    assert_close(x, F.leaky_relu(before, slope), EXACT, "leaky_relu_ with a negative slope, no grad")


@pytest.mark.parametrize("act", ACTS_BY_OP, ids=str)
def test_inplace_bumps_version_counter(any_device, act):
    """Every in-place path bumps the version counter, so autograd sees the write."""
    paths = [("raw op", act.op_)]
    if act.name != "sigmoid":
        paths += [
            ("functional", lambda t: act.functional(t, inplace=True)),
            ("module", act.module(inplace=True)),
        ]
    for name, fn in paths:
        x = make_input((4, 5), torch.float32, any_device)
        version = x._version
        fn(x)
        assert x._version > version, f"{act} {name}: version {x._version} (was {version})"


@pytest.mark.parametrize("act", ACTS_BY_OP, ids=str)
def test_overwriting_a_saved_tensor_is_detected(any_device, act):
    """A tensor autograd saved for backward, overwritten in place by a dlkernels op, must make
    backward raise like torch does, not return gradients computed from the new values."""
    for fn in (act.ref_, act.op_):
        a = make_input((8,), torch.float32, any_device).requires_grad_()
        w = make_input((8,), torch.float32, any_device, generator_seed=1)
        loss = (a * w).sum()  # saves w
        fn(w)
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            loss.backward()


@pytest.mark.parametrize("act", ACTS_BY_OP, ids=str)
def test_raw_inplace_op_refuses_tensor_requiring_grad(any_device, act):
    """The raw in-place ops record no autograd history: on a tensor that requires grad they raise
    instead of letting backward treat them as the identity; under no_grad they run."""
    h = make_input((4, 9), torch.float32, any_device).requires_grad_() * 1.0
    before = h.detach().clone()
    with pytest.raises(RuntimeError, match="records no autograd history"):
        act.op_(h)
    assert_unchanged(h.detach(), before)
    with torch.no_grad():
        act.op_(h)
    assert_close(
        h.detach(), act.ref(before), act.forward_tol(torch.float32, any_device), f"{act}_ under no_grad"
    )


# ---- gradcheck -----------------------------------------------------------------------------------


def _away_from_kinks(shape, device, generator_seed=0):
    """float64 values at least 0.1 from zero, where relu/leaky_relu are not differentiable
    (gradcheck's finite differences use steps of 1e-6)."""
    x = make_input(shape, torch.float64, device, specials=False, generator_seed=generator_seed, scale=1.0)
    return torch.where(x >= 0, x + 0.1, x - 0.1)


@act_param
def test_gradcheck(device, act):
    x = _away_from_kinks((3, 7), device).requires_grad_()
    xt = _away_from_kinks((7, 3), device).t().requires_grad_()  # non-contiguous
    for name, fn in [("functional", act.functional), ("raw op", act.op), ("module", act.module())]:
        assert gradcheck(fn, (x,)), f"{act} {name}"
        assert gradcheck(fn, (xt,)), f"{act} {name}, transposed input"
    if act.has_inplace_backward:
        # In place on a non-leaf (a fresh clone each call).
        assert gradcheck(lambda t: act.functional(t.clone(), inplace=True), (x,)), f"{act} in place"


@act_param
def test_gradgradcheck(device, act):
    """Double backward (create_graph=True): the backward ops are differentiable too."""
    x = _away_from_kinks((3, 7), device).requires_grad_()
    for name, fn in [("functional", act.functional), ("raw op", act.op)]:
        assert gradgradcheck(fn, (x,)), f"{act} {name}"
    if act.has_inplace_backward:
        assert gradgradcheck(lambda t: act.functional(t.clone(), inplace=True), (x,)), f"{act} in place"


@pytest.mark.parametrize("act", ACTS_BY_OP, ids=str)
def test_gradcheck_backward_ops(device, act):
    """The raw backward ops, differentiated w.r.t. grad_output and the saved tensor."""
    g = make_input((4, 6), torch.float64, device, specials=False, generator_seed=1).requires_grad_()
    if act.name == "sigmoid":
        saved = torch.rand(
            (4, 6), dtype=torch.float64, device=torch_device(device)
        ).requires_grad_()  # an output in (0, 1)
    else:
        saved = _away_from_kinks((4, 6), device).requires_grad_()
    fn = lambda go, s: act.op_backward(go, s, s)  # noqa: E731
    assert gradcheck(fn, (g, saved))
    assert gradgradcheck(fn, (g, saved))


# ---- opcheck -------------------------------------------------------------------------------------


def _opcheck_samples(device):
    """Inputs for opcheck: contiguous, requiring grad, transposed, channels_last, 0-dim, empty.
    No NaNs: opcheck compares outputs with equal_nan=False."""

    def t(*shape, grad=False, layout=None):
        x = make_input(shape, torch.float32, device, specials=False)
        if layout:
            x = with_layout(x, layout)
        return x.requires_grad_() if grad else x

    def shapes():
        return [t(3, 4), t(3, 4, layout="transposed"), t(2, 3, 4, 5, layout="channels_last"), t(), t(0, 3)]

    forward = shapes() + [t(3, 4, grad=True), t(2, 3, 4, 5, grad=True, layout="channels_last")]
    return {
        "relu": [(x,) for x in forward],
        "leaky_relu": [(x, s) for x in forward for s in (0.01, -0.2)],
        "sigmoid": [(x,) for x in forward],
        # In-place ops refuse tensors that require grad (see test_raw_inplace_op_refuses_...).
        "relu_": [(x,) for x in shapes()],
        "leaky_relu_": [(x, s) for x in shapes() for s in (0.01, -0.2)],
        "sigmoid_": [(x,) for x in shapes()],
        "relu_backward": [(g, y) for g, y in zip(shapes(), shapes())] + [(t(3, 4, grad=True), t(3, 4))],
        "leaky_relu_backward": [(g, x, 0.1) for g, x in zip(shapes(), shapes())]
        + [(t(3, 4, grad=True), t(3, 4), 1.5)],
        "sigmoid_backward": [(g, y) for g, y in zip(shapes(), shapes())]
        + [(t(3, 4, grad=True), torch.rand(3, 4, device=torch_device(device), requires_grad=True))],
    }


OPCHECK_OPS = (
    "relu",
    "relu_",
    "relu_backward",
    "leaky_relu",
    "leaky_relu_",
    "leaky_relu_backward",
    "sigmoid",
    "sigmoid_",
    "sigmoid_backward",
)


@pytest.mark.parametrize("name", OPCHECK_OPS)
def test_opcheck(any_device, name):
    """Schema (aliasing, mutation), fake kernel (shapes, dtypes, strides) and autograd
    registration agree with the real kernels; the op traces under AOT dispatch."""
    for args in _opcheck_samples(any_device)[name]:
        opcheck(getattr(ops, name).default, args)


@pytest.mark.parametrize("act", ACTS_BY_OP, ids=str)
def test_inplace_and_inference_mode(any_device, act):
    """In place under torch.inference_mode works on inference and normal tensors (the latter's
    version still bumps, as for torch's ops); writing to an inference tensor outside it raises
    torch's error."""
    with torch.inference_mode():
        x = make_input((4, 7), torch.float32, any_device)
        expected = act.ref(x)
        act.op_(x)
        assert_close(x, expected, act.forward_tol(torch.float32, any_device), f"{act} in inference mode")
    normal = make_input((4, 7), torch.float32, any_device)
    version = normal._version
    with torch.inference_mode():
        act.op_(normal)
    assert normal._version > version
    for fn in (act.ref_, act.op_):
        with pytest.raises(RuntimeError, match="Inplace update to inference tensor outside InferenceMode"):
            fn(x)


def test_randomized_forward_backward(device, dtype):
    """A seeded sweep: every op (leaky_relu with a slope below 0, in [0, 1) and above 1) on random shapes
    (empty and odd included), layouts of the input and of grad_output, special values, and
    whether the input is a leaf or a view of one; output and input gradient against torch's, and
    in float64 the second derivative through create_graph."""
    rng = random.Random(fuzz_seed("activation fwd+bwd"))
    acts = [Act("relu"), Act("sigmoid"), *(Act("leaky_relu", s) for s in (-0.3, 0.01, 0.5, 2.5))]
    for case in range(6 * len(acts)):
        act = acts[case % len(acts)]  # every op and slope, on random shapes and layouts
        shape = rng.choice(ELEMENTWISE_SHAPES)
        layouts = [lay for lay in ("contiguous", *LAYOUTS) if lay != "channels_last" or len(shape) == 4]
        layouts = [lay for lay in layouts if lay != "transposed" or len(shape) >= 2]
        x = with_layout(
            make_input(shape, dtype, device, specials=rng.random() < 0.5, generator_seed=case),
            rng.choice(layouts),
        )
        g = with_layout(
            make_input(shape, dtype, device, specials=False, generator_seed=case + 100), rng.choice(layouts)
        )
        view = rng.random() < 0.5  # the input a non-leaf view of the leaf
        what = f"case {case}: {act}, shape {shape}, layouts {x.stride()} / {g.stride()}, view {view}"
        results = []
        for fn in (act.functional, act.ref):
            leaf = x.detach().clone().requires_grad_()
            inp = leaf * 1 if view else leaf
            y = fn(inp)
            second = dtype == torch.float64
            (gx,) = torch.autograd.grad(y, leaf, g, create_graph=second)
            ggx = None
            if second and gx.requires_grad:
                (ggx,) = torch.autograd.grad(gx.sum(), leaf, allow_unused=True, materialize_grads=True)
            results.append((y.detach(), gx.detach(), ggx))
        (y, gx, ggx), (y_ref, gx_ref, ggx_ref) = results
        assert_close(y, y_ref, act.forward_tol(dtype, device), f"{what}: output")
        assert_close(gx, gx_ref, act.grad_tol(dtype, device, g), f"{what}: input gradient")
        assert (ggx is None) == (ggx_ref is None), f"{what}: the gradient is differentiable in one only"
        if ggx_ref is not None:
            assert_close(
                ggx, ggx_ref, Tol(1e-10, 1e-10, "float64 second derivative"), f"{what}: second derivative"
            )
