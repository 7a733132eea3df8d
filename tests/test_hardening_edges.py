"""Hardening: smaller divergences from torch at the edges, and one deliberate difference.

Guards against: relu(-0.0) returning +0.0 (torch keeps -0.0); overflowing conv2d arguments given
to the op directly producing garbled messages ("padded input size (-9223372036854775807 x ...)")
instead of naming the argument; a non-number ``negative_slope`` (a 2-element tensor) raising
ValueError where torch raises TypeError, and other argument types raising other errors than
torch's; an output too large to allocate raising the stable ABI's bare "API call failed".
Documents that a conv2d with zero input channels returns the bias-filled output.
"""

from __future__ import annotations

import random

import pytest
import torch
import torch.nn.functional as F
from helpers import bitwise_equal, fuzz_seed

import dlkernels.functional as DF

ops = torch.ops.dlkernels


def signed_values(rng, gen, n, dtype):
    """Random values, about half of them +-0.0, with NaN, +-inf and subnormals mixed in."""
    x = torch.randn(n, generator=gen, dtype=dtype)
    specials = [0.0, -0.0, -0.0, float("nan"), float("inf"), -float("inf"), torch.finfo(dtype).tiny / 4]
    for i in range(n):
        if rng.random() < 0.5:
            x[i] = rng.choice(specials) * rng.choice([1, -1])
    return x


@pytest.mark.parametrize("dtype", (torch.float32, torch.float64), ids=str)
def test_randomized_relu_keeps_torchs_sign_of_zero(isa, dtype):
    """relu and leaky_relu forward (out of place and in place) and backward are bit-identical to
    torch, -0.0 included, for random lengths (vector bodies and tails) on every ISA."""
    rng = random.Random(fuzz_seed(f"{isa}-{dtype}"))
    gen = torch.Generator().manual_seed(fuzz_seed(3))
    for _ in range(60):
        n = rng.randrange(1, 80)
        x = signed_values(rng, gen, n, dtype)
        dy = signed_values(rng, gen, n, dtype)
        slope = rng.choice([0.01, 0.2, 0.0, -0.5, 2.0])
        for ours, theirs in (
            (DF.relu, F.relu),
            (
                lambda t, s=slope, **kw: DF.leaky_relu(t, s, **kw),
                lambda t, s=slope, **kw: F.leaky_relu(t, s, **kw),
            ),
        ):
            assert bitwise_equal(ours(x), theirs(x)), (x, ours(x), theirs(x))
            a, b = x.clone(), x.clone()
            ours(a, inplace=True)
            theirs(b, inplace=True)
            assert bitwise_equal(a, b)
            xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
            (ga,) = torch.autograd.grad(ours(xa), xa, dy)
            (gb,) = torch.autograd.grad(theirs(xb), xb, dy)
            assert bitwise_equal(ga, gb), (x, dy, ga, gb)


def test_relu_of_negative_zero(isa):
    """The fuzzer's case, on its own: torch.relu(-0.0) is -0.0."""
    x = torch.tensor([-0.0] * 37)
    assert ops.relu(x).signbit().all()
    assert DF.relu(x).signbit().all() and torch.relu(x).signbit().all()


SLOPES = [
    torch.tensor([0.1, 0.2]),
    torch.tensor([0.1]),
    torch.tensor([[0.1]]),
    torch.tensor(0.1),
    torch.tensor(0.5, dtype=torch.float64),
    torch.tensor(1),
    torch.tensor(True),
    0.1,
    True,
    3,
    2**63 - 1,
    2**63,
    2**64 - 1,
    2**64,
    -(2**63),
    -(2**63) - 1,
    10**30,
    1 + 0j,
    1 + 2j,
    "0.1",
    None,
    [0.1],
    float("nan"),
    float("inf"),
]


def outcome(fn, x, slope, inplace):
    try:
        fn(x.clone(), slope, inplace)
    except Exception as e:  # noqa: BLE001
        return type(e)
    return None


def test_randomized_negative_slope_arguments_raise_like_torch():
    """Each kind of negative_slope (tensors of several shapes, bools, ints at and past the int64 /
    uint64 limits, complex, strings, None, lists), in random order and through each entry point:
    the same exception type as torch's, or none when torch has none."""
    rng = random.Random(fuzz_seed(11))
    x = torch.randn(5)
    cases = [(s, inplace) for s in SLOPES for inplace in (False, True)]
    rng.shuffle(cases)
    for slope, inplace in cases:
        want = outcome(F.leaky_relu, x, slope, inplace)
        got = outcome(DF.leaky_relu, x, slope, inplace)
        assert got is want, f"negative_slope={slope!r} inplace={inplace}: {got} vs torch's {want}"


def test_two_element_negative_slope_is_a_type_error():
    """The fuzzer's case: a 2-element tensor raised ValueError."""
    with pytest.raises(TypeError, match="must be Number, not Tensor"):
        DF.leaky_relu(torch.randn(4), torch.tensor([0.1, 0.2]))


OP_OVERFLOWS = [
    (dict(padding=[2**62, 0]), "padding"),
    (dict(padding=[0, 2**63 - 1]), "padding"),
    (dict(dilation=[2**62, 1]), "dilation"),
    (dict(dilation=[1, 2**63 - 1]), "dilation"),
    (dict(padding=[2**61, 2**61]), "output"),
]


@pytest.mark.parametrize("kw,name", OP_OVERFLOWS, ids=str)
def test_op_overflow_messages_name_the_argument(kw, name):
    """Arguments that overflow int64 arithmetic, given to the ops directly (no Python checks in
    front): a RuntimeError naming the argument, never a wrapped-around negative size."""
    args = dict(stride=[1, 1], padding=[0, 0], dilation=[1, 1], groups=1)
    args.update(kw)
    x, w = torch.randn(1, 1, 4, 4), torch.randn(1, 1, 3, 3)
    a = (args["stride"], args["padding"], args["dilation"], args["groups"])
    calls = (
        (ops.conv2d, (x, w, None)),
        (ops.conv2d_grad_input, (torch.randn(1, 1, 2, 2), w, [1, 1, 4, 4])),
        (ops.conv2d_grad_weight, (torch.randn(1, 1, 2, 2), x, [1, 1, 3, 3])),
    )
    for op, head in calls:
        with pytest.raises(RuntimeError) as err:
            op(*head, *a)
        msg = str(err.value)
        assert name in msg, msg
        assert "-9223372036854775" not in msg and "-4611686018427387" not in msg, msg


def test_zero_input_channels_return_the_bias():
    """Deliberate difference: with C = 0 input channels (weight K x 0 x R x S) the output is
    N x K x P x Q filled with the bias (each output is an empty sum plus its bias) and grad_bias
    sums grad_output. torch returns an N x 0 x P x Q tensor instead, which has lost the K output
    channels the weight asks for (and its grad_bias is zeros)."""
    x = torch.randn(2, 0, 5, 6, requires_grad=True)
    w = torch.randn(3, 0, 3, 3, requires_grad=True)
    b = torch.randn(3, requires_grad=True)
    y = DF.conv2d(x, w, b, padding=1)
    assert y.shape == (2, 3, 5, 6)
    assert torch.equal(y, b[None, :, None, None].expand(2, 3, 5, 6).detach())
    assert F.conv2d(x, w, b, padding=1).shape == (2, 0, 5, 6)  # torch's, for comparison
    gy = torch.randn(y.shape)
    gx, gw, gb = torch.autograd.grad(y, (x, w, b), gy)
    assert gx.shape == x.shape and gw.shape == w.shape
    torch.testing.assert_close(gb, gy.sum((0, 2, 3)))


@pytest.mark.parametrize(
    "call",
    [
        lambda: DF.conv2d(torch.randn(1, 1, 1, 1), torch.randn(1, 1, 1, 1), padding=2**24),
        lambda: torch.ops.dlkernels.adaptive_avg_pool2d_backward(
            torch.randn(1, 1, 2, 2), [1, 1, 2**40, 2**10]
        ),
    ],
    ids=["conv2d padding 2**24", "raw adaptive_avg_pool2d_backward"],
)
def test_unallocatable_output_names_its_size(call):
    """An output of 4.5e15 bytes (more than any address space holds, so it fails everywhere)
    raises a RuntimeError naming its dtype and size; the allocator's own message does not cross
    the stable ABI of the 2.11 target, which said only that an API call failed."""
    with pytest.raises(
        RuntimeError,
        match=r"could not allocate a Float tensor of size \[1, 1, \d+, \d+\] \(4.5\d*e\+15 bytes\)",
    ):
        call()
