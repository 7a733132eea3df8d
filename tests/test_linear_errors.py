"""Bad input to linear: dlkernels.functional raises torch's exception type and message before any
kernel runs, and leaves its inputs untouched; the raw ops raise RuntimeError; the fake (meta)
kernels refuse what the C++ refuses."""

import pytest
import torch
from helpers import UNSUPPORTED_DTYPES

import dlkernels

DF = dlkernels.functional
ops = torch.ops.dlkernels
F = torch.nn.functional


def _cases():
    r = torch.randn
    return {
        "shape mismatch": (r(3, 4), r(5, 6), None),
        "1-D input mismatch": (r(4), r(5, 6), None),
        "3-D input mismatch": (r(2, 3, 4), r(5, 3), None),
        "bias size": (r(3, 4), r(5, 4), r(6)),
        "bias size 3-D input": (r(2, 3, 4), r(5, 4), r(6)),
        "bias 2-D": (r(3, 4), r(5, 4), r(5, 1)),
        "3-D weight": (r(3, 4), r(5, 4, 1), None),
        "0-D input": (r(()), r(5, 4), None),
        "weight dtype": (r(3, 4), r(5, 4).double(), None),
        "input dtype": (r(3, 4).double(), r(5, 4), None),
        "bias dtype": (r(3, 4), r(5, 4), r(5).double()),
        "bias dtype 2": (r(3, 4).double(), r(5, 4).double(), r(5)),
    }


@pytest.mark.parametrize("name", list(_cases()))
def test_functional_raises_like_torch(name):
    x, w, b = _cases()[name]
    before = [t.clone() if t is not None else None for t in (x, w, b)]
    with pytest.raises(Exception) as ref:
        F.linear(x, w, b)
    with pytest.raises(type(ref.value)) as ours:
        DF.linear(x, w, b)
    assert str(ours.value) == str(ref.value)
    for t, t0 in zip((x, w, b), before):
        assert t is None or torch.equal(t, t0)


def test_broadcast_bias_like_torch():
    x, w = torch.randn(3, 4), torch.randn(5, 4)
    for b in (torch.randn(()), torch.randn(1), torch.randn(1, 5)):
        torch.testing.assert_close(DF.linear(x, w, b), F.linear(x, w, b))
    v, u, s = torch.randn(3, 4), torch.randn(4), torch.randn(())
    torch.testing.assert_close(DF.linear(u, u), F.linear(u, u))  # 1-D weight: one feature, dropped
    torch.testing.assert_close(DF.linear(u, u, s), F.linear(u, u, s))
    with pytest.raises(RuntimeError, match="mat2 must be a matrix"):
        DF.linear(v, u, s)


@pytest.mark.parametrize("dtype", UNSUPPORTED_DTYPES["cpu"], ids=str)
def test_unsupported_dtype(dtype):
    x, w = torch.ones(3, 4).to(dtype), torch.ones(5, 4).to(dtype)
    with pytest.raises(NotImplementedError, match="not implemented for"):
        DF.linear(x, w)
    with pytest.raises(RuntimeError, match="not implemented for"):
        ops.linear(x, w, None)


@pytest.mark.parametrize("value,pos", [([1.0], 1), (3, 2), ("b", 3)])
def test_non_tensor_arguments(value, pos):
    args = [torch.randn(3, 4), torch.randn(5, 4), torch.randn(5)]
    args[pos - 1] = value
    with pytest.raises(TypeError) as ref:
        F.linear(*args)
    with pytest.raises(TypeError) as ours:
        DF.linear(*args)
    assert str(ours.value) == str(ref.value)


def _raw_cases():
    r = torch.randn
    return [
        ("linear", (r(3, 4), r(5, 6), None), "cannot be multiplied"),
        ("linear", (r(3, 4), r(5, 4), r(6)), "expected bias of size"),
        ("linear", (r(3, 4), r(4), None), "2-D weight"),
        ("linear", (r(()), r(5, 4), None), "at least 1D"),
        ("linear", (r(3, 4), r(5, 4).double(), None), "same dtype"),
        ("linear_grad_input", (r(3, 5), r(4, 6)), "expected grad_output of size"),
        ("linear_grad_input", (r(3, 5), r(5, 6).double()), "same dtype"),
        ("linear_grad_weight", (r(3, 5), r(4, 6)), "same leading dimensions"),
        ("linear_grad_weight", (r(3, 5), r(3, 6).double()), "same dtype"),
        ("linear_grad_bias", (r(()),), "at least 1 dimension"),
        ("linear_backward", (r(3, 5), r(3, 6), r(4, 6), [True, True, True]), "leading dimensions"),
        ("linear_backward", (r(3, 5), r(3, 6), r(5, 6), [True, True]), "3 values"),
    ]


@pytest.mark.parametrize("name,args,match", _raw_cases(), ids=lambda v: v if isinstance(v, str) else "")
def test_raw_ops_and_fakes_raise(name, args, match):
    op = getattr(ops, name)
    with pytest.raises(RuntimeError, match=match) as cpu:
        op(*args)
    meta = [a.to("meta") if isinstance(a, torch.Tensor) else a for a in args]
    with pytest.raises(RuntimeError, match=match) as fake:
        op(*meta)
    assert str(fake.value) == str(cpu.value)
