"""dlkernels.nn activation layers as drop-in torch.nn layers, dlkernels.nn.convert, and
torch.compile of models built from them."""

import copy
import re

import pytest
import torch
from activation_cases import ACTS, ACTS_BY_OP
from helpers import DEFAULT_TOL, EXACT, assert_close, make_input

import dlkernels

dnn = dlkernels.nn

CONSTRUCTIONS = [
    # (dlkernels layer, torch layer) built with the same arguments
    (lambda: dnn.ReLU(), lambda: torch.nn.ReLU()),
    (lambda: dnn.ReLU(inplace=True), lambda: torch.nn.ReLU(inplace=True)),
    (lambda: dnn.ReLU(True), lambda: torch.nn.ReLU(True)),
    (lambda: dnn.LeakyReLU(), lambda: torch.nn.LeakyReLU()),
    (lambda: dnn.LeakyReLU(0.2), lambda: torch.nn.LeakyReLU(0.2)),
    (lambda: dnn.LeakyReLU(-0.5, True), lambda: torch.nn.LeakyReLU(-0.5, True)),
    (
        lambda: dnn.LeakyReLU(negative_slope=1.5, inplace=False),
        lambda: torch.nn.LeakyReLU(negative_slope=1.5),
    ),
    (lambda: dnn.Sigmoid(), lambda: torch.nn.Sigmoid()),
]


@pytest.mark.parametrize("make_dl,make_torch", CONSTRUCTIONS)
def test_layer_looks_like_torch(make_dl, make_torch):
    """Same class name, attributes, repr/extra_repr, state_dict, isinstance."""
    layer, ref = make_dl(), make_torch()
    assert isinstance(layer, type(ref)) and type(layer) is not type(ref)
    assert type(layer).__name__ == type(ref).__name__
    assert repr(layer) == repr(ref)
    assert layer.extra_repr() == ref.extra_repr()
    for attr in ("inplace", "negative_slope"):
        assert getattr(layer, attr, None) == getattr(ref, attr, None), attr
    assert list(layer.state_dict()) == list(ref.state_dict())
    assert list(layer.parameters()) == [] and list(layer.buffers()) == []


def test_layer_defaults_like_torch():
    assert dnn.LeakyReLU().negative_slope == torch.nn.LeakyReLU().negative_slope == 0.01
    assert dnn.ReLU().inplace is False and dnn.LeakyReLU().inplace is False


@pytest.mark.parametrize("act", ACTS, ids=str)
def test_layer_forward_backward(any_device, act):
    x = make_input((4, 33), torch.float32, any_device)
    g = make_input((4, 33), torch.float32, any_device, specials=False, generator_seed=1)
    outs = []
    for layer in (act.module(), act.torch_module()):
        leaf = x.clone().requires_grad_()
        y = layer(leaf)
        y.backward(g)
        outs.append((y.detach(), leaf.grad))
    assert_close(outs[0][0], outs[1][0], act.forward_tol(torch.float32, any_device), f"{act} layer output")
    assert_close(outs[0][1], outs[1][1], act.grad_tol(torch.float32, any_device, g), f"{act} layer gradient")


@pytest.mark.parametrize("act", [a for a in ACTS if a.name != "sigmoid"], ids=str)
def test_inplace_layer_returns_its_input(any_device, act):
    x = make_input((3, 17), torch.float32, any_device)
    expected = act.ref(x)
    assert act.module(inplace=True)(x) is x
    assert_close(x, expected, EXACT, f"{act} in-place layer")


# ---- convert -------------------------------------------------------------------------------------


class MyReLU(torch.nn.ReLU):
    """A user's subclass: convert must leave it alone (its forward may differ)."""

    def forward(self, input):
        return super().forward(input) * 2


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.act = torch.nn.LeakyReLU(0.2)
        self.seq = torch.nn.Sequential(torch.nn.Conv2d(4, 4, 1), torch.nn.ReLU(inplace=True), MyReLU())
        self.shared = torch.nn.Sigmoid()
        self.bn = torch.nn.BatchNorm2d(4)

    def forward(self, x):
        x = self.act(self.conv(x))
        x = self.bn(self.seq(x))
        return self.shared(self.shared(x) - 0.5)


def _model():
    torch.manual_seed(0)
    m = torch.nn.Sequential(Block(), torch.nn.Flatten(), torch.nn.Linear(4 * 5 * 6, 3), torch.nn.ReLU())
    return m.eval()


EXPECTED_SWAPS = {
    torch.nn.Conv2d: dnn.Conv2d,
    torch.nn.ReLU: dnn.ReLU,
    torch.nn.LeakyReLU: dnn.LeakyReLU,
    torch.nn.Sigmoid: dnn.Sigmoid,
    torch.nn.Linear: dnn.Linear,
}


def _types(model):
    return {name: type(m) for name, m in model.named_modules()}


def test_convert_swaps_exact_types_only():
    model = _model()
    before = _types(model)
    converted = dnn.convert(model)
    after = _types(converted)
    assert after.keys() == before.keys()
    for name, t in before.items():
        assert after[name] is EXPECTED_SWAPS.get(t, t), f"{name}: {t.__name__} became {after[name].__name__}"
    assert after["0.seq.2"] is MyReLU
    assert converted[0].act.negative_slope == 0.2 and converted[0].seq[1].inplace is True
    assert converted[0].shared is dict(converted.named_modules())["0.shared"]


def test_convert_keeps_state_and_outputs():
    model = _model()
    x = make_input((2, 3, 5, 6), torch.float32, "cpu", specials=False)
    with torch.no_grad():
        expected = model(x)
    converted = dnn.convert(model)
    assert list(converted.state_dict()) == list(model.state_dict())
    for k, v in model.state_dict().items():
        assert_close(converted.state_dict()[k], v, EXACT, k)
    with torch.no_grad():
        out = converted(x)
    # The converted convolution sums its 27 products per output in another order than torch's, and
    # the sigmoid differs by its forward tolerance; the Linear then mixes 120 of those values.
    # torch.testing's float32 default (for results computed in another order) covers that.
    assert_close(out, expected, DEFAULT_TOL[torch.float32], "converted model output")


def test_convert_leaves_original_untouched_unless_inplace():
    model = _model()
    types = _types(model)
    params = {k: v.clone() for k, v in model.state_dict().items()}
    converted = dnn.convert(model)
    assert converted is not model
    assert _types(model) == types, "convert(inplace=False) changed the original model"
    for k, v in model.state_dict().items():
        assert_close(v, params[k], EXACT, k)
        assert v.data_ptr() != converted.state_dict()[k].data_ptr(), f"{k} shared with the copy"

    same = dnn.convert(model, inplace=True)
    assert same is model
    assert type(model[3]) is dnn.ReLU


def test_convert_keeps_hooks_and_root():
    """A hook registered on a torch layer still fires after the swap; a bare layer converts too."""
    layer = torch.nn.ReLU()
    calls = []
    layer.register_forward_hook(lambda mod, inp, out: calls.append(type(mod)))
    converted = dnn.convert(layer)
    assert type(converted) is dnn.ReLU
    converted(torch.randn(3))
    assert calls == [dnn.ReLU]


def test_converted_layer_copies():
    layer = dnn.convert(torch.nn.LeakyReLU(0.3, inplace=True))
    clone = copy.deepcopy(layer)
    assert type(clone) is dnn.LeakyReLU and clone.negative_slope == 0.3 and clone.inplace


# ---- torch.compile -------------------------------------------------------------------------------


class SmallNet(torch.nn.Module):
    def __init__(self, inplace):
        super().__init__()
        self.l1, self.a1 = torch.nn.Linear(8, 16), dnn.ReLU(inplace=inplace)
        self.l2, self.a2 = torch.nn.Linear(16, 16), dnn.LeakyReLU(0.1, inplace=inplace)
        self.l3, self.a3 = torch.nn.Linear(16, 4), dnn.Sigmoid()

    def forward(self, x):
        return self.a3(self.l3(self.a2(self.l2(self.a1(self.l1(x))))))


@pytest.mark.parametrize("inplace", [False, True], ids=["out_of_place", "inplace"])
def test_compile_matches_eager(inplace):
    """fullgraph compile (no graph breaks) calls the dlkernels ops, forward and backward, and
    matches eager mode."""
    from torch._inductor.utils import run_and_get_code

    torch._dynamo.reset()
    torch.manual_seed(0)
    model = SmallNet(inplace)
    x = torch.randn(6, 8)
    g = torch.randn(6, 4)

    y_eager = model(x)
    y_eager.backward(g)
    grads_eager = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()

    compiled = torch.compile(model, fullgraph=True)

    def step():
        y = compiled(x)
        y.backward(g)
        return y

    y, codes = run_and_get_code(step)
    names = set(re.findall(r"dlkernels\.(\w+)", "\n".join(codes)))
    suffix = "_" if inplace else ""
    expected = {
        "relu" + suffix,
        "leaky_relu" + suffix,
        "sigmoid",
        "relu_backward",
        "leaky_relu_backward",
        "sigmoid_backward",
    }
    assert expected <= names, f"compiled code calls {sorted(names)}"

    # Inductor may fuse and reorder the Linear layers' arithmetic: float32 default tolerance.
    tol = DEFAULT_TOL[torch.float32]
    assert_close(y.detach(), y_eager.detach(), tol, "compiled forward")
    for (name, p), ref in zip(model.named_parameters(), grads_eager):
        assert_close(p.grad, ref, tol, f"compiled gradient of {name}")
    torch._dynamo.reset()


@pytest.mark.parametrize("act", [a for a in ACTS_BY_OP if a.name != "sigmoid"], ids=str)
def test_compile_functional_inplace_on_input(act):
    """Compiled in-place activation of a function's input writes through to the caller's tensor,
    as in eager mode."""
    torch._dynamo.reset()
    x = make_input((5, 9), torch.float32, "cpu", specials=False)
    expected = act.ref(x)
    fn = torch.compile(lambda t: act.functional(t, inplace=True), fullgraph=True)
    out = fn(x)
    assert_close(x, expected, EXACT, f"{act}: compiled in-place write")
    assert_close(out, expected, EXACT, f"{act}: compiled in-place result")
    torch._dynamo.reset()
