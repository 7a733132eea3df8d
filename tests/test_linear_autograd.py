"""Autograd of linear: gradcheck / gradgradcheck in float64 through dlkernels.functional and each
gradient op, only the requested gradients computed, double-backward requires_grad as torch's,
opcheck of the five ops, torch.compile(fullgraph=True), vmap, and dlkernels.nn.Linear."""

import pickle

import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck
from torch.library import opcheck
from torch.utils._python_dispatch import TorchDispatchMode

import dlkernels

DF = dlkernels.functional
ops = torch.ops.dlkernels


@pytest.fixture
def one_thread():
    """Numerical differentiation calls the ops hundreds of times on tiny tensors, where waking a
    second thread costs far more than the work."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _leaf(*shape, layout=None):
    t = torch.randn(*shape, dtype=torch.float64)
    if layout == "transposed" and t.dim() == 2:
        t = t.T.contiguous().T
    return t.requires_grad_()


CONFIGS = [
    ((5, 7), 3, None),
    ((2, 3, 4), 5, None),
    ((6,), 4, None),
    ((5, 7), 3, "transposed"),
    ((0, 3), 2, None),
]


@pytest.mark.parametrize("shape,out,layout", CONFIGS, ids=[str(c) for c in CONFIGS])
def test_gradcheck(one_thread, shape, out, layout):
    x, w, b = _leaf(*shape, layout=layout), _leaf(out, shape[-1], layout=layout), _leaf(out)
    assert gradcheck(DF.linear, (x, w, b))
    assert gradgradcheck(DF.linear, (x, w, b))
    assert gradcheck(lambda x, w: DF.linear(x, w), (x, w))


def test_gradcheck_gradient_ops(one_thread):
    dy, x, w = _leaf(4, 5), _leaf(4, 3), _leaf(5, 3)
    assert gradcheck(ops.linear_grad_input, (dy, w))
    assert gradcheck(ops.linear_grad_weight, (dy, x))
    assert gradcheck(ops.linear_grad_bias, (dy,))
    assert gradgradcheck(ops.linear_grad_input, (dy, w))
    assert gradgradcheck(ops.linear_grad_weight, (dy, x))
    for mask in ([True, True, True], [True, False, True], [False, True, False]):
        assert gradcheck(
            lambda dy, x, w, mask=mask: tuple(
                g for g, m in zip(ops.linear_backward(dy, x, w, mask), mask) if m
            ),
            (dy, x, w),
        )


class OpLog(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.names = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.__name__.split(".")[0]
        if func.namespace == "dlkernels":
            if name == "linear_backward":
                grads = ("linear_grad_input", "linear_grad_weight", "linear_grad_bias")
                self.names += [g for g, m in zip(grads, args[3]) if m]
            else:
                self.names.append(name)
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize(
    "needs", [(True, True, True), (True, False, False), (False, True, False), (False, False, True)]
)
def test_only_requested_gradients(needs):
    x, w, b = torch.randn(4, 3), torch.randn(2, 3), torch.randn(2)
    for t, n in zip((x, w, b), needs):
        t.requires_grad_(n)
    y = DF.linear(x, w, b)
    with OpLog() as log:
        y.backward(torch.ones_like(y))
    expect = [g for g, n in zip(("linear_grad_input", "linear_grad_weight", "linear_grad_bias"), needs) if n]
    assert log.names == expect


@pytest.mark.parametrize(
    "needs", [(True, True, True), (True, False, False), (False, True, False), (False, False, True)]
)
@pytest.mark.parametrize("bias", [True, False])
def test_direct_backward(needs, bias):
    """The direct path's node (one linear_backward call, with the mask of the inputs that
    require grad): torch's gradients for each subset."""
    x, w, b = torch.randn(4, 3, dtype=torch.float64), torch.randn(2, 3, dtype=torch.float64), torch.randn(2)
    b = b.double() if bias else None
    if not bias and needs == (False, False, True):
        needs = (True, True, False)
    for t, n in zip((x, w, b), needs):
        if t is not None:
            t.requires_grad_(n)
    wanted = [t for t, n in zip((x, w, b), needs) if n and t is not None]
    dy = torch.randn(4, 2, dtype=torch.float64)
    y = DF.linear(x, w, b)
    assert type(y.grad_fn).__name__ == "_LinearBackward"  # the direct path's node
    ours = torch.autograd.grad(y, wanted, dy)
    expect = torch.autograd.grad(torch.nn.functional.linear(x, w, b), wanted, dy)
    for a, e in zip(ours, expect):
        torch.testing.assert_close(a, e)


def test_double_backward_requires_grad_like_torch():
    """Which first-order gradients require grad (and hence what a second backward reaches) is
    torch's: dx depends on w, dw on x, db on neither."""
    for fn in (DF.linear, torch.nn.functional.linear):
        x, w, b = _leaf(3, 4), _leaf(2, 4), _leaf(2)
        dy = torch.randn(3, 2, dtype=torch.float64)
        gx, gw, gb = torch.autograd.grad(fn(x, w, b), (x, w, b), dy, create_graph=True)
        state = (gx.requires_grad, gw.requires_grad, gb.requires_grad)
        if fn is DF.linear:
            ours = state
        else:
            assert ours == state


def test_raw_op_and_functional_agree():
    x, w, b = _leaf(3, 4), _leaf(2, 4), _leaf(2)
    a = DF.linear(x, w, b)
    r = ops.linear(x, w, b)
    assert torch.equal(a, r)


# ---- opcheck -------------------------------------------------------------------------------------


def _samples():
    out = {
        n: []
        for n in ("linear", "linear_grad_input", "linear_grad_weight", "linear_grad_bias", "linear_backward")
    }
    for shape, o in (((5, 7), 3), ((2, 3, 4), 5), ((4,), 2), ((0, 3), 2)):
        for grad in (False, True):
            x = torch.randn(*shape, dtype=torch.float64, requires_grad=grad)
            w = torch.randn(o, shape[-1], dtype=torch.float64, requires_grad=grad)
            b = torch.randn(o, dtype=torch.float64, requires_grad=grad)
            dy = torch.randn(*shape[:-1], o, dtype=torch.float64, requires_grad=grad)
            out["linear"] += [(x, w, b), (x, w, None), (x, w.T.contiguous().T, b)]
            out["linear_grad_input"].append((dy, w))
            out["linear_grad_weight"].append((dy, x))
            out["linear_grad_bias"].append((dy,))
            out["linear_backward"] += [(dy, x, w, [True, True, True]), (dy, x, w, [False, True, False])]
    return out


@pytest.mark.parametrize(
    "name", ["linear", "linear_grad_input", "linear_grad_weight", "linear_grad_bias", "linear_backward"]
)
def test_opcheck(one_thread, name):
    for args in _samples()[name]:
        opcheck(getattr(ops, name).default, args)


# ---- torch.compile and vmap ----------------------------------------------------------------------


class MLP(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = dlkernels.nn.Linear(12, 16)
        self.act = dlkernels.nn.ReLU()
        self.fc2 = dlkernels.nn.Linear(16, 5, bias=False)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


def test_compile_matches_eager():
    torch._dynamo.reset()
    model = MLP()
    x = torch.randn(2, 3, 12, requires_grad=True)
    g = torch.randn(2, 3, 5)
    model(x).backward(g)
    eager = [p.grad.clone() for p in model.parameters()] + [x.grad.clone()]
    model.zero_grad()
    x.grad = None
    compiled = torch.compile(model, fullgraph=True)
    y = compiled(x)
    y.backward(g)
    assert torch.allclose(y, model(x), atol=1e-6)
    for a, e in zip([p.grad for p in model.parameters()] + [x.grad], eager):
        torch.testing.assert_close(a, e)


def test_vmap_matches_loop():
    x, w, b = torch.randn(4, 3, 6), torch.randn(5, 6), torch.randn(5)
    y = torch.vmap(DF.linear, in_dims=(0, None, None))(x, w, b)
    torch.testing.assert_close(y, torch.nn.functional.linear(x, w, b))
    ws = torch.randn(4, 5, 6)
    y = torch.vmap(DF.linear, in_dims=(0, 0, None))(x, ws, b)
    torch.testing.assert_close(y, torch.stack([torch.nn.functional.linear(x[i], ws[i], b) for i in range(4)]))


# ---- dlkernels.nn.Linear -------------------------------------------------------------------------


def test_layer_looks_like_torch():
    torch.manual_seed(3)
    ours = dlkernels.nn.Linear(7, 4, bias=False, dtype=torch.float64)
    torch.manual_seed(3)
    ref = torch.nn.Linear(7, 4, bias=False, dtype=torch.float64)
    assert isinstance(ours, torch.nn.Linear)
    assert ours.extra_repr() == ref.extra_repr() and ours.bias is None
    assert torch.equal(ours.weight, ref.weight)  # torch's default initialisation, same RNG draws
    assert ours.state_dict().keys() == ref.state_dict().keys()
    meta = dlkernels.nn.Linear(3, 2, device="meta")
    assert meta.weight.device.type == "meta" and meta(torch.empty(5, 3, device="meta")).shape == (5, 2)


def test_layer_forward_backward_like_torch():
    ref = torch.nn.Linear(9, 5)
    ours = dlkernels.nn.Linear(9, 5)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(2, 4, 9)
    for m in (ref, ours):
        m(x).square().sum().backward()
    torch.testing.assert_close(ours(x), ref(x))
    torch.testing.assert_close(ours.weight.grad, ref.weight.grad)
    torch.testing.assert_close(ours.bias.grad, ref.bias.grad)
    clone = pickle.loads(pickle.dumps(ours))
    torch.testing.assert_close(clone(x), ours(x))


def test_convert_swaps_linear():
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    converted = dlkernels.nn.convert(model)
    assert type(converted[0]) is dlkernels.nn.Linear and type(converted[2]) is dlkernels.nn.Linear
    x = torch.randn(5, 4)
    torch.testing.assert_close(converted(x), model(x))
