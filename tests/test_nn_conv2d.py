"""dlkernels.nn.Conv2d as a drop-in torch.nn.Conv2d (every constructor argument, repr, state_dict,
padding modes), and dlkernels.nn.convert on models with convolutions."""

import copy
import pickle

import pytest
import torch
from conv_cases import assert_within_bound, bound
from helpers import is_channels_last

import dlkernels

dnn = dlkernels.nn

# (args, kwargs) accepted by both constructors: every argument and its forms.
CONSTRUCTIONS = [
    ((3, 4, 3), {}),
    ((3, 4, 3), dict(bias=False)),
    ((3, 4, (3, 5)), dict(stride=(2, 1), padding=(1, 2))),
    ((3, 4, 3), dict(stride=2, padding=1)),
    ((3, 4, 3), dict(stride=3)),
    ((3, 4, 3), dict(dilation=2, padding=2)),
    ((3, 4, 3), dict(dilation=(1, 2), padding=(1, 2))),
    ((6, 4, 3), dict(groups=2, padding=1)),
    ((6, 6, 3), dict(groups=6, padding=1)),  # depthwise
    ((4, 8, 5), dict(groups=4, padding=2, stride=2)),  # depthwise with multiplier 2
    ((3, 4, 3), dict(padding="same")),
    ((3, 4, (2, 4)), dict(padding="same", dilation=(1, 3))),  # asymmetric 'same'
    ((3, 4, 3), dict(padding="valid")),
    ((3, 4, 3), dict(padding=1, padding_mode="reflect")),
    ((3, 4, 3), dict(padding=(2, 1), padding_mode="replicate")),
    ((3, 4, 3), dict(padding=1, padding_mode="circular", stride=2)),
    ((3, 4, (2, 3)), dict(padding="same", padding_mode="reflect")),
    ((3, 4, 3), dict(padding="same", padding_mode="circular", dilation=2)),
    ((6, 6, 3), dict(padding=1, padding_mode="replicate", groups=3, bias=False)),
    ((3, 4, 1), dict()),
]


def _id(c):
    args, kwargs = c
    return (
        ",".join(map(str, args)) + ("-" if kwargs else "") + ",".join(f"{k}={v}" for k, v in kwargs.items())
    )


def _pair(make_args, dtype=torch.float32):
    """The dlkernels and torch layers built with the same arguments and initial parameters."""
    args, kwargs = make_args
    torch.manual_seed(0)
    layer = dnn.Conv2d(*args, **kwargs, dtype=dtype)
    torch.manual_seed(0)
    ref = torch.nn.Conv2d(*args, **kwargs, dtype=dtype)
    return layer, ref


def _abs_twin(layer):
    """A torch layer like ``layer`` with |weight| and |bias|: run on |x| it gives the sums of
    |terms| of every output (the padding modes only copy values), its backward with |dy| those of
    the gradients."""
    twin = torch.nn.Conv2d(
        layer.in_channels,
        layer.out_channels,
        layer.kernel_size,
        layer.stride,
        layer.padding,
        layer.dilation,
        layer.groups,
        layer.bias is not None,
        layer.padding_mode,
        dtype=torch.float64,
    )
    with torch.no_grad():
        twin.weight.copy_(layer.weight.abs())
        if layer.bias is not None:
            twin.bias.copy_(layer.bias.abs())
    return twin


def check_layer_like_torch(layer, ref, x, what):
    """Forward and backward (input, weight, bias gradients) of two layers with equal parameters,
    within the error bound of both (conv_cases)."""
    dtype = x.dtype
    dy = torch.randn(ref(x).shape, dtype=dtype, generator=torch.Generator().manual_seed(5))
    outs = []
    for m in (layer, ref):
        m.zero_grad()
        xl = x.clone().requires_grad_()
        y = m(xl)
        y.backward(dy)
        outs.append((y.detach(), xl.grad, m.weight.grad, m.bias.grad if m.bias is not None else None))

    twin = _abs_twin(ref)
    xa = x.double().abs().requires_grad_()
    ya = twin(xa)
    ya.backward(dy.double().abs())
    abs_sums = (ya.detach(), xa.grad, twin.weight.grad, twin.bias.grad if twin.bias is not None else None)

    cg, k = layer.in_channels // layer.groups, layer.out_channels // layer.groups
    taps = layer.kernel_size[0] * layer.kernel_size[1]
    pixels = y.numel() // layer.out_channels
    # A padding mode copies each pixel to up to 2 places per dimension, adding their gradients.
    terms = (cg * taps + 1, 4 * k * taps, pixels, pixels)
    for name, got, expected, a, n in zip(
        ("output", "grad_input", "grad_weight", "grad_bias"), *outs, abs_sums, terms
    ):
        if expected is None:
            assert got is None, f"{what}: {name}"
            continue
        assert_within_bound(got, expected, bound(a, n, dtype, dtype), f"{what}: {name}")


@pytest.mark.parametrize("make_args", CONSTRUCTIONS, ids=_id)
def test_layer_looks_like_torch(make_args):
    """Same class name, attributes, repr, parameters and state_dict as torch's layer."""
    layer, ref = _pair(make_args)
    assert isinstance(layer, torch.nn.Conv2d) and type(layer) is not torch.nn.Conv2d
    assert type(layer).__name__ == "Conv2d"
    assert repr(layer) == repr(ref)
    assert layer.extra_repr() == ref.extra_repr()
    for attr in (
        "in_channels",
        "out_channels",
        "kernel_size",
        "stride",
        "padding",
        "dilation",
        "groups",
        "padding_mode",
        "transposed",
        "output_padding",
        "_reversed_padding_repeated_twice",
    ):
        assert getattr(layer, attr) == getattr(ref, attr), attr
    sd, sd_ref = layer.state_dict(), ref.state_dict()
    assert list(sd) == list(sd_ref)
    for key in sd:
        assert torch.equal(sd[key], sd_ref[key]), key
    assert [n for n, _ in layer.named_parameters()] == [n for n, _ in ref.named_parameters()]


@pytest.mark.filterwarnings("ignore:Using padding=.same. with even kernel lengths")
@pytest.mark.parametrize("make_args", CONSTRUCTIONS, ids=_id)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
def test_layer_forward_backward_like_torch(make_args, dtype):
    layer, ref = _pair(make_args, dtype)
    x = torch.randn(2, layer.in_channels, 9, 11, dtype=dtype)
    check_layer_like_torch(layer, ref, x, f"{layer}")


@pytest.mark.parametrize("make_args", [CONSTRUCTIONS[i] for i in (0, 8, 13, 16)], ids=_id)
def test_layer_unbatched_input(make_args):
    """A (C, H, W) input gives a (K, P, Q) output, as torch's layer does, padding modes included."""
    layer, ref = _pair(make_args, torch.float64)
    x = torch.randn(layer.in_channels, 7, 8, dtype=torch.float64)
    y, y_ref = layer(x), ref(x)
    assert y.shape == y_ref.shape and y.dim() == 3
    n = layer.in_channels // layer.groups * layer.kernel_size[0] * layer.kernel_size[1] + 1
    abs_sum = _abs_twin(ref)(x.abs()).detach()
    assert_within_bound(y, y_ref, bound(abs_sum, n, torch.float64, torch.float64), "unbatched output")


def test_load_state_dict_from_torch():
    """A torch layer's state_dict loads into the dlkernels layer (and back): same outputs."""
    ref = torch.nn.Conv2d(4, 6, 3, padding=1, groups=2)
    layer = dnn.Conv2d(4, 6, 3, padding=1, groups=2)
    assert not torch.equal(layer.weight, ref.weight)
    layer.load_state_dict(ref.state_dict())
    assert torch.equal(layer.weight, ref.weight) and torch.equal(layer.bias, ref.bias)
    check_layer_like_torch(layer, ref, torch.randn(2, 4, 8, 9), "after load_state_dict")
    back = torch.nn.Conv2d(4, 6, 3, padding=1, groups=2)
    back.load_state_dict(layer.state_dict())
    assert torch.equal(back.weight, layer.weight)


def test_layer_copies_and_pickles():
    layer = dnn.Conv2d(3, 4, 3, padding=1, padding_mode="reflect")
    x = torch.randn(1, 3, 6, 6)
    for clone in (copy.deepcopy(layer), pickle.loads(pickle.dumps(layer))):
        assert type(clone) is dnn.Conv2d and repr(clone) == repr(layer)
        assert torch.equal(clone(x), layer(x))


def test_layer_channels_last_model():
    """model.to(memory_format=torch.channels_last) with a channels_last input: channels_last
    output and input gradient, as torch's layer gives."""
    layer, ref = _pair(((3, 4, 3), dict(padding=1)))
    layer = layer.to(memory_format=torch.channels_last)
    assert is_channels_last(layer.weight)
    x = torch.randn(2, 3, 7, 8).contiguous(memory_format=torch.channels_last).requires_grad_()
    y = layer(x)
    assert is_channels_last(y) and is_channels_last(ref(x))
    y.backward(torch.randn_like(y))
    assert is_channels_last(x.grad)


def test_layer_on_meta_device():
    """Built on the meta device, the layer runs through the ops' fake kernels: shapes only."""
    layer = dnn.Conv2d(3, 4, 3, stride=2, padding=1, device="meta")
    y = layer(torch.empty(2, 3, 9, 10, device="meta"))
    assert y.device.type == "meta" and y.shape == (2, 4, 5, 5)


def test_layer_rejects_what_torch_rejects():
    """Constructor errors are torch's own (the class is torch's)."""
    for kwargs in (dict(padding="same", stride=2), dict(padding_mode="mirror"), dict(groups=2)):
        with pytest.raises(ValueError) as ref_err:
            torch.nn.Conv2d(3, 4, 3, **kwargs)
        with pytest.raises(ValueError, match=str(ref_err.value)):
            dnn.Conv2d(3, 4, 3, **kwargs)


# ---- convert -------------------------------------------------------------------------------------


class MyConv(torch.nn.Conv2d):
    """A user's subclass: convert must leave it alone (its forward may differ)."""

    def forward(self, input):
        return super().forward(input) + 1


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = torch.nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False)
        self.blocks = torch.nn.Sequential(
            torch.nn.Conv2d(8, 8, 3, padding=1, groups=8, padding_mode="reflect"),
            torch.nn.ReLU(),
            MyConv(8, 6, 1),
            torch.nn.Conv2d(6, 6, (1, 3), padding="same", dilation=2),
        )
        self.up = torch.nn.ConvTranspose2d(6, 4, 2, stride=2)  # not a Conv2d: untouched
        self.shared = self.stem  # the same module twice

    def forward(self, x):
        return self.up(self.blocks(self.stem(x)))


def test_convert_swaps_exact_conv2d_only():
    torch.manual_seed(0)
    model = Net()
    converted = dnn.convert(model)
    assert converted is not model and type(model.stem) is torch.nn.Conv2d  # the original is kept
    types = {name: type(m) for name, m in converted.named_modules()}
    assert types["stem"] is dnn.Conv2d
    assert types["blocks.0"] is dnn.Conv2d and types["blocks.3"] is dnn.Conv2d
    assert types["blocks.2"] is MyConv
    assert types["up"] is torch.nn.ConvTranspose2d
    assert converted.shared is converted.stem
    for (n1, p1), (n2, p2) in zip(model.named_parameters(), converted.named_parameters()):
        assert n1 == n2 and torch.equal(p1, p2) and p1 is not p2


def test_convert_keeps_outputs_and_gradients():
    """The converted model computes what the torch model does, forward and backward. Per layer the
    error bound is tested above; through this float64 model (sums of at most ~100 terms, each
    conv off by <= gamma_100 ~ 1.1e-14 of its |terms|, a few layers deep) 1e-12 of the largest
    value leaves a wide margin, while any wrong tap or channel would be off by O(1) of it."""
    torch.manual_seed(0)
    model = Net().double()
    converted = dnn.convert(model)
    x = torch.randn(2, 3, 16, 18, dtype=torch.float64)
    outs = []
    for m in (model, converted):
        y = m(x)
        y.sum().backward()
        outs.append((y.detach(), [p.grad for p in m.parameters()]))
    scale = float(outs[0][0].abs().max())
    torch.testing.assert_close(outs[1][0], outs[0][0], rtol=0, atol=1e-12 * scale)
    for g1, g0 in zip(outs[1][1], outs[0][1]):
        torch.testing.assert_close(g1, g0, rtol=0, atol=1e-12 * float(g0.abs().max()))


def test_convert_in_place_keeps_parameters_and_hooks():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3))
    weight = model[0].weight
    calls = []
    model[0].register_forward_hook(lambda m, i, o: calls.append(type(m)))
    assert dnn.convert(model, inplace=True) is model
    assert type(model[0]) is dnn.Conv2d and model[0].weight is weight
    model(torch.randn(1, 3, 5, 5))
    assert calls == [dnn.Conv2d]
