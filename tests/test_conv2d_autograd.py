"""Autograd of conv2d: every API surface (raw op with its C++ autograd kernel, Conv2dFunction, functional,
nn.Conv2d) gives the same gradients, only the gradients autograd asks for are computed,
gradcheck / gradgradcheck in float64, opcheck of the four ops, torch.compile."""

import itertools
import re

import pytest
import torch
from conv_cases import CASES_BY_ID, Results, case_param, check_results, opcheck_samples, ops
from helpers import DEFAULT_TOL, assert_close, with_layout
from torch.autograd import gradcheck, gradgradcheck
from torch.library import opcheck
from torch.utils._python_dispatch import TorchDispatchMode

import dlkernels

DF = dlkernels.functional
Conv2dFunction = dlkernels.autograd.Conv2dFunction

SURFACE_CASES = [
    CASES_BY_ID[i] for i in ("3x3-pad1", "groups3-stride2", "depthwise-multiplier2", "dilation2")
]


def _surfaces(case):
    """(name, fn(x, w, b)) for every way to call conv2d with autograd."""
    stride, padding, dilation, groups = case.params

    def module(x, w, b):
        layer = dlkernels.nn.Conv2d(
            case.C, case.K, (case.R, case.S), stride, padding, dilation, groups, b is not None, dtype=w.dtype
        )
        with torch.no_grad():
            layer.weight.copy_(w)
            if b is not None:
                layer.bias.copy_(b)
        y = layer(x)
        return y, layer

    return [
        ("raw op", lambda x, w, b: ops.conv2d(x, w, b, stride, padding, dilation, groups)),
        ("Function", lambda x, w, b: Conv2dFunction.apply(x, w, b, stride, padding, dilation, groups)),
        ("functional", lambda x, w, b: DF.conv2d(x, w, b, case.stride, case.padding, case.dilation, groups)),
        ("nn.Conv2d", module),
    ]


@case_param(SURFACE_CASES)
def test_api_surfaces_agree(case):
    """Identical outputs and gradients (same ops underneath) through every surface, and those
    match the references."""
    x0, w0, b0, dy = case.tensors(torch.float64)
    results = {}
    for name, fn in _surfaces(case):
        x, w, b = (t.clone().requires_grad_() for t in (x0, w0, b0))
        out = fn(x, w, b)
        if isinstance(out, tuple):  # the module: gradients land on its parameters
            y, layer = out
            y.backward(dy)
            results[name] = Results(y.detach(), x.grad, layer.weight.grad, layer.bias.grad)
        else:
            out.backward(dy)
            results[name] = Results(out.detach(), x.grad, w.grad, b.grad)
    check_results(case, torch.float64, results["raw op"], "raw op")
    for name, r in results.items():
        for field in ("output", "grad_input", "grad_weight", "grad_bias"):
            assert torch.equal(getattr(r, field), getattr(results["raw op"], field)), f"{name}: {field}"


class OpLog(TorchDispatchMode):
    """Records the dlkernels ops that run; conv2d_backward (what autograd records, one node for
    the three gradients) as the gradient ops its output_mask asks for."""

    GRAD_OPS = ("conv2d_grad_input", "conv2d_grad_weight", "conv2d_grad_bias")

    def __init__(self):
        super().__init__()
        self.names = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.namespace == "dlkernels":
            if func._opname == "conv2d_backward":
                self.names += [op for op, m in zip(self.GRAD_OPS, args[-1]) if m]
            else:
                self.names.append(func._opname)
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("surface", ["raw op", "Function", "functional"])
def test_only_requested_gradients_are_computed(surface):
    """For every subset of (input, weight, bias) that requires grad, backward runs exactly the
    gradient ops for that subset, and their values equal those of a full backward."""
    case = CASES_BY_ID["3x3-pad1"]
    fn = dict(_surfaces(case))[surface]
    x0, w0, b0, dy = case.tensors(torch.float64)
    full = [t.clone().requires_grad_() for t in (x0, w0, b0)]
    fn(*full).backward(dy)
    op_of = ["conv2d_grad_input", "conv2d_grad_weight", "conv2d_grad_bias"]
    for mask in itertools.product([False, True], repeat=3):
        if not any(mask):
            continue
        leaves = [t.clone().requires_grad_(m) for t, m in zip((x0, w0, b0), mask)]
        y = fn(*leaves)
        with OpLog() as log:
            y.backward(dy)
        assert sorted(log.names) == sorted(op for op, m in zip(op_of, mask) if m), f"mask {mask}: {log.names}"
        for leaf, ref, m in zip(leaves, full, mask):
            assert (leaf.grad is not None) == m
            if m:
                assert torch.equal(leaf.grad, ref.grad)


def test_backward_with_expanded_grad_output():
    """y.sum().backward() hands the backward an expanded (stride-0) grad_output: the gradients are
    those of the same grad_output materialised (the ops read it through a contiguous copy)."""
    x = torch.randn(2, 3, 6, 7, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, dtype=torch.float64, requires_grad=True)
    y = DF.conv2d(x, w, b, padding=1)
    y.sum().backward()
    dense = torch.ones(y.shape, dtype=y.dtype)
    expected = torch.autograd.grad(DF.conv2d(x, w, b, padding=1), (x, w, b), dense)
    for got, ref, name in zip((x.grad, w.grad, b.grad), expected, ("input", "weight", "bias")):
        assert torch.equal(got, ref), name


# ---- gradcheck / gradgradcheck -------------------------------------------------------------------


@pytest.fixture
def one_thread():
    """Numerical differentiation calls the ops hundreds of times on tiny tensors, where waking a
    second thread costs far more than the work (thread counts: test_conv2d_numerics)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


# (input shape, weight shape, kwargs) small enough for numerical differentiation.
GRADCHECK_CONFIGS = [
    ((1, 2, 5, 6), (3, 2, 3, 3), dict(padding=1)),
    ((2, 4, 5, 5), (4, 2, 3, 3), dict(stride=2, groups=2)),
    ((1, 2, 7, 7), (2, 2, 3, 3), dict(dilation=2, padding=(2, 1))),
    ((1, 3, 6, 6), (6, 1, 3, 3), dict(stride=(1, 2), padding=1, groups=3)),  # depthwise, multiplier 2
    ((1, 3, 5, 5), (3, 1, 3, 3), dict(padding=2, groups=3)),  # depthwise, padding beyond the kernel
    ((1, 2, 4, 9), (2, 2, 2, 3), dict(stride=(2, 3), padding=(0, 1))),
]


def _config_id(c):
    return f"{c[0]}-{c[1]}-" + ",".join(f"{k}={v}" for k, v in c[2].items())


def _leaves(config, seed=0):
    shape, wshape, _ = config
    g = torch.Generator().manual_seed(seed)
    return [
        torch.randn(s, generator=g, dtype=torch.float64).requires_grad_()
        for s in (shape, wshape, (wshape[0],))
    ]


def _raw(kwargs):
    def pair(v):
        return [v, v] if isinstance(v, int) else list(v)

    stride, padding = pair(kwargs.get("stride", 1)), pair(kwargs.get("padding", 0))
    dilation, groups = pair(kwargs.get("dilation", 1)), kwargs.get("groups", 1)
    return lambda x, w, b: ops.conv2d(x, w, b, stride, padding, dilation, groups)


@pytest.mark.parametrize("config", GRADCHECK_CONFIGS, ids=_config_id)
def test_gradcheck(one_thread, config):
    kwargs = config[2]
    args = _leaves(config)
    assert gradcheck(lambda x, w, b: DF.conv2d(x, w, b, **kwargs), args)
    assert gradcheck(_raw(kwargs), args)
    assert gradcheck(lambda x, w: DF.conv2d(x, w, None, **kwargs), args[:2])


def test_gradcheck_functional_forms(one_thread):
    """'same' with an even kernel (padded in Python, then the op) and an unbatched input."""
    x, w, b = _leaves(((1, 2, 5, 6), (3, 2, 2, 3), {}))
    assert gradcheck(lambda x, w, b: DF.conv2d(x, w, b, padding="same"), (x, w, b))
    assert gradcheck(lambda x, w, b: DF.conv2d(x[0], w, b, padding=1), (x, w, b))


@pytest.mark.parametrize("config", GRADCHECK_CONFIGS[:4], ids=_config_id)
def test_gradgradcheck(one_thread, config):
    """Double backward (create_graph=True, e.g. gradient penalties): the gradient ops are
    differentiable too, so second derivatives are exact instead of silently missing."""
    kwargs = config[2]
    args = _leaves(config)
    assert gradgradcheck(lambda x, w, b: DF.conv2d(x, w, b, **kwargs), args)
    assert gradgradcheck(_raw(kwargs), args)


def test_gradcheck_gradient_ops(one_thread):
    """The gradient ops themselves, differentiated w.r.t. all their tensor arguments."""
    x, w, _ = _leaves(((2, 4, 5, 6), (6, 2, 3, 3), {}))
    params = ([2, 1], [1, 1], [1, 2], 2)
    y_shape = ops.conv2d(x.detach(), w.detach(), None, *params).shape
    dy = torch.randn(y_shape, dtype=torch.float64, requires_grad=True)
    checks = {
        "grad_input": (lambda g, w: ops.conv2d_grad_input(g, w, list(x.shape), *params), (dy, w)),
        "grad_weight": (lambda g, x: ops.conv2d_grad_weight(g, x, list(w.shape), *params), (dy, x)),
        "grad_bias": (ops.conv2d_grad_bias, (dy,)),
    }
    for name, (fn, args) in checks.items():
        assert gradcheck(fn, args), name
        assert gradgradcheck(fn, args), name


# ---- opcheck -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["conv2d", "conv2d_grad_input", "conv2d_grad_weight", "conv2d_grad_bias"])
def test_opcheck(one_thread, name):
    """Schema, fake kernel (shapes, dtypes, strides: channels_last included) and autograd
    registration agree with the real kernels; the op traces under AOT dispatch."""
    for args in opcheck_samples()[name]:
        opcheck(getattr(ops, name).default, args)


# ---- torch.compile -------------------------------------------------------------------------------


class ConvNet(torch.nn.Module):
    """conv -> relu -> depthwise conv, from dlkernels layers."""

    def __init__(self):
        super().__init__()
        self.conv = dlkernels.nn.Conv2d(3, 8, 3, padding=1)
        self.act = dlkernels.nn.ReLU()
        self.dw = dlkernels.nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8)

    def forward(self, x):
        return self.dw(self.act(self.conv(x)))


@pytest.mark.parametrize("channels_last", [False, True], ids=["contiguous", "channels_last"])
def test_compile_matches_eager(channels_last):
    """fullgraph compile (no graph breaks) calls the dlkernels conv ops forward and backward and
    matches eager mode (same ops: equal up to the inductor's handling of the surrounding code)."""
    from torch._inductor.utils import run_and_get_code

    torch._dynamo.reset()
    torch.manual_seed(0)
    model = ConvNet()
    x = torch.randn(2, 3, 9, 10)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_()
    y_eager = model(x)
    g = torch.randn_like(y_eager)
    y_eager.backward(g)
    grads_eager = [p.grad.clone() for p in model.parameters()] + [x.grad.clone()]
    model.zero_grad()
    x.grad = None

    compiled = torch.compile(model, fullgraph=True)

    def step():
        y = compiled(x)
        y.backward(g)
        return y

    # Compiled fresh: a cached graph of an earlier build of the ops would hide what runs now.
    try:
        with (
            torch._inductor.config.patch(fx_graph_cache=False),
            torch._functorch.config.patch(enable_autograd_cache=False),
        ):
            y, codes = run_and_get_code(step)
    finally:
        torch._dynamo.reset()
    names = set(re.findall(r"dlkernels\.(\w+)", "\n".join(codes)))
    # conv2d's backward is one conv2d_backward node (all three gradients), as torch's own.
    expected = {"conv2d", "relu", "conv2d_backward", "relu_backward"}
    assert expected <= names, f"compiled code calls {sorted(names)}"
    assert y.shape == y_eager.shape and y.stride() == y_eager.stride()
    tol = DEFAULT_TOL[torch.float32]
    assert_close(y.detach(), y_eager.detach(), tol, "compiled forward")
    grads = [p.grad for p in model.parameters()] + [x.grad]
    names = [n for n, _ in model.named_parameters()] + ["input"]
    for name, got, ref in zip(names, grads, grads_eager):
        assert_close(got, ref, tol, f"compiled gradient of {name}")


# ---- fake kernels --------------------------------------------------------------------------------


@case_param()
def test_fake_kernels_match_real(case):
    """Under FakeTensorMode (what torch.compile traces with) every op's output has the real
    output's shape, strides and dtype, for contiguous and channels_last inputs and grad_outputs."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    x0, w, b, dy0 = case.tensors(torch.float32)
    for layout in ("contiguous", "channels_last"):
        x, dy = with_layout(x0, layout), with_layout(dy0, layout)

        def calls(x, w, b, dy):
            return {
                "conv2d": ops.conv2d(x, w, b, *case.params),
                "conv2d_grad_input": ops.conv2d_grad_input(dy, w, list(case.input_shape), *case.params),
                "conv2d_grad_weight": ops.conv2d_grad_weight(dy, x, list(case.weight_shape), *case.params),
                "conv2d_grad_bias": ops.conv2d_grad_bias(dy),
            }

        real = calls(x, w, b, dy)
        with FakeTensorMode() as mode:
            fakes = [mode.from_tensor(t) if t is not None else None for t in (x, w, b, dy)]
            fake = calls(*fakes)
        for name, r in real.items():
            f = fake[name]
            what = f"{case}, {layout}: {name}"
            assert (f.shape, f.dtype) == (r.shape, r.dtype), what
            assert f.stride() == r.stride(), f"{what}: fake strides {f.stride()}, real {r.stride()}"
