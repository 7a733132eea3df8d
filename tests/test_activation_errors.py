"""Bad arguments to the activation ops: the exception type and wording torch uses, raised before
anything is written (inputs untouched)."""

import re

import pytest
import torch
import torch.nn.functional as F
from activation_cases import ACTS_BY_OP
from helpers import C10_NAMES, UNSUPPORTED_DTYPES, assert_unchanged, make_input, requires_cuda, torch_device

import dlkernels

DF = dlkernels.functional

# (name in the message, dlkernels call, torch call) for every functional entry point; the in-place
# forms name the in-place op, as torch's do.
FUNCTIONAL = [
    pytest.param("relu", DF.relu, F.relu, id="relu"),
    pytest.param("relu_", DF.relu_, F.relu_, id="relu_"),
    pytest.param(
        "relu_", lambda x: DF.relu(x, inplace=True), lambda x: F.relu(x, inplace=True), id="relu-inplace"
    ),
    pytest.param("leaky_relu", DF.leaky_relu, F.leaky_relu, id="leaky_relu"),
    pytest.param("leaky_relu_", DF.leaky_relu_, F.leaky_relu_, id="leaky_relu_"),
    pytest.param(
        "leaky_relu_",
        lambda x: DF.leaky_relu(x, inplace=True),
        lambda x: F.leaky_relu(x, inplace=True),
        id="leaky_relu-inplace",
    ),
    pytest.param("sigmoid", DF.sigmoid, torch.sigmoid, id="sigmoid"),
]


@pytest.mark.parametrize("value", [[1.0, -2.0], 3.0, None, "x"], ids=lambda v: type(v).__name__)
@pytest.mark.parametrize("name,dl_fn,torch_fn", FUNCTIONAL)
def test_non_tensor_input(name, dl_fn, torch_fn, value):
    """Same TypeError as torch, e.g. "relu(): argument 'input' (position 1) must be Tensor, not list"."""
    expected = f"{name}(): argument 'input' (position 1) must be Tensor, not {type(value).__name__}"
    for fn in (torch_fn, dl_fn):
        with pytest.raises(TypeError, match=re.escape(expected)):
            fn(value)


@pytest.mark.parametrize(
    "layer", [dlkernels.nn.ReLU(), dlkernels.nn.LeakyReLU(), dlkernels.nn.Sigmoid()], ids=repr
)
def test_non_tensor_input_to_layer(layer):
    with pytest.raises(TypeError, match=r"\(\): argument 'input' \(position 1\) must be Tensor, not list"):
        layer([1.0])


@pytest.mark.parametrize("slope", ["0.1", None, [0.1]], ids=repr)
def test_non_number_slope(slope):
    x = torch.randn(5)
    expected = (
        f"leaky_relu(): argument 'negative_slope' (position 2) must be Number, not {type(slope).__name__}"
    )
    for fn in (F.leaky_relu, DF.leaky_relu):
        with pytest.raises(TypeError, match=re.escape(expected)):
            fn(x, slope)


def test_number_like_slopes_accepted():
    """Any real number works as the slope, as in torch: int, bool, 0-dim tensor."""
    x = make_input((9,), torch.float32, "cpu")
    for slope in (2, True, torch.tensor(0.25)):
        torch.testing.assert_close(
            DF.leaky_relu(x, slope), F.leaky_relu(x, slope), rtol=0, atol=0, equal_nan=True
        )


def _dtype_input(dtype, device):
    if dtype == torch.bool:
        return torch.tensor([True, False, True], device=torch_device(device))
    return torch.tensor([-2, 0, 3], device=torch_device(device)).to(dtype)


@pytest.mark.parametrize("act", ACTS_BY_OP, ids=str)
def test_unsupported_dtype(any_device, act):
    """An error naming the op and the dtype, for every entry point; nothing written. The public
    functions raise torch's NotImplementedError; the raw ops (C++ on the stable ABI, which can
    raise only RuntimeError and ValueError) a RuntimeError with the same message."""
    for dtype in UNSUPPORTED_DTYPES[any_device]:
        x = _dtype_input(dtype, any_device)
        before = x.clone()
        calls = [
            (act.name, act.op, RuntimeError),
            (act.name + "_", act.op_, RuntimeError),
            (act.name + "_backward", lambda t: act.op_backward(t, t, t), RuntimeError),
            (act.name, act.functional, NotImplementedError),
        ]
        if act.name != "sigmoid":
            calls.append((act.name + "_", lambda t: act.functional(t, inplace=True), NotImplementedError))
        for op_name, call, error in calls:
            with pytest.raises(
                error, match=f"\"{op_name}\" not implemented for '{C10_NAMES[dtype]}'"
            ) as info:
                call(x)
            assert error is RuntimeError or info.type is error
            assert_unchanged(x, before, f"{op_name} on {dtype}")


@pytest.mark.parametrize("act", ACTS_BY_OP, ids=str)
def test_backward_mismatched_grad_output(any_device, act):
    """The raw backward ops check grad_output against the saved tensor: shape, dtype, saved
    tensor of an unsupported dtype (RuntimeError each: the raw ops' only error type for these)."""
    op = act.name + "_backward"
    saved = make_input((3, 4), torch.float32, any_device)
    cases = [
        (
            make_input((4, 3), torch.float32, any_device),
            saved,
            RuntimeError,
            rf"{op}: expected grad_output of shape \[3, 4\] like \w+, but got \[4, 3\]",
        ),
        (make_input((12,), torch.float32, any_device), saved, RuntimeError, "expected grad_output of shape"),
        (
            make_input((3, 4), torch.float64, any_device),
            saved,
            RuntimeError,
            rf"{op}: expected grad_output to have dtype Float like \w+, but got Double",
        ),
        (
            make_input((3, 4), torch.float32, any_device),
            saved.to(torch.int64),
            RuntimeError,
            f"\"{op}\" not implemented for 'Long'",
        ),
    ]
    for g, s, exc, pattern in cases:
        before = (g.clone(), s.clone())
        with pytest.raises(exc, match=pattern):
            act.op_backward(g, s, s)
        assert_unchanged(g, before[0], f"{op}: grad_output")
        assert_unchanged(s, before[1], f"{op}: saved tensor")


@requires_cuda
@pytest.mark.cuda
@pytest.mark.parametrize("act", ACTS_BY_OP, ids=str)
def test_backward_mixed_devices(act):
    saved = make_input((3, 4), torch.float32, "cuda")
    g = make_input((3, 4), torch.float32, "cpu")
    for a, b in ((g, saved), (g.cuda(), saved.cpu())):
        with pytest.raises(
            RuntimeError, match=f"{act.name}_backward: Expected all tensors to be on the same device"
        ):
            act.op_backward(a, b, b)


@pytest.mark.parametrize("act", ACTS_BY_OP, ids=str)
def test_inplace_on_internally_overlapping_tensor(any_device, act):
    """In place on a tensor whose elements share memory raises torch's error; nothing written."""
    base = torch.full((1,), -3.0, device=torch_device(any_device))
    x = base.expand(4)
    calls = [("raw op", act.op_), ("torch", act.ref_)]
    if act.name != "sigmoid":
        calls.append(("functional", lambda t: act.functional(t, inplace=True)))
    for name, call in calls:
        with pytest.raises(
            RuntimeError, match="more than one element of the written-to tensor refers to a single memory"
        ):
            call(x)
        assert base.item() == -3.0, f"{act} {name} wrote to the overlapping tensor"
