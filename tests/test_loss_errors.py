"""Bad arguments raise torch's exception types from dlkernels.functional (before C++), and the raw
ops raise RuntimeError / ValueError / IndexError with the offending value."""

import pytest
import torch
import torch.nn.functional as F
from helpers import torch_device

import dlkernels

DF = dlkernels.functional
ops = torch.ops.dlkernels


def _same_error(fn, *args, **kw):
    with pytest.raises(Exception) as ref:
        getattr(F, fn)(*args, **kw)
    with pytest.raises(ref.type) as ours:
        getattr(DF, fn)(*args, **kw)
    return ref.value, ours.value


CE_CASES = {
    "target out of range": (torch.randn(4, 3), torch.tensor([0, 1, 2, 5]), {}),
    "negative target": (torch.randn(4, 3), torch.tensor([0, -1, 2, 1]), {}),
    "out of range with weight": (torch.randn(4, 3), torch.tensor([0, 1, 3, 1]), {"weight": torch.ones(3)}),
    "spatial out of range": (torch.randn(2, 3, 2), torch.tensor([[0, 1], [7, 0]]), {}),
    "batch mismatch": (torch.randn(4, 3), torch.tensor([0, 1, 2]), {}),
    "int32 target": (torch.randn(4, 3), torch.tensor([0, 1, 2, 1], dtype=torch.int32), {}),
    "2-D class target": (torch.randn(4, 3), torch.zeros(4, 2, dtype=torch.long), {}),
    "spatial target shape": (torch.randn(2, 3, 4), torch.zeros(2, 5, dtype=torch.long), {}),
    "weight size": (torch.randn(4, 3), torch.tensor([0, 1, 2, 1]), {"weight": torch.ones(4)}),
    "weight dtype": (
        torch.randn(4, 3),
        torch.tensor([0, 1, 2, 1]),
        {"weight": torch.ones(3, dtype=torch.float64)},
    ),
    "unknown reduction": (torch.randn(4, 3), torch.tensor([0, 1, 2, 1]), {"reduction": "avg"}),
    "label smoothing": (torch.randn(4, 3), torch.tensor([0, 1, 2, 1]), {"label_smoothing": 1.5}),
    "soft batch mismatch": (torch.randn(4, 3), torch.rand(3, 3), {}),
    "input not a tensor": ([1.0, 2.0], torch.tensor([0]), {}),
}


@pytest.mark.parametrize("case", CE_CASES, ids=str)
def test_cross_entropy_errors(case):
    x, t, kw = CE_CASES[case]
    ref, ours = _same_error("cross_entropy", x, t, **kw)
    if isinstance(ref, (IndexError, ValueError)):
        assert str(ours) == str(ref)


# Inputs and targets of every rank and dtype around the valid ones: torch decides probability
# targets by shape (the input's), class indices otherwise, and checks in an order of its own.
_CE_INPUTS = {"(4,5)": (4, 5), "(5,)": (5,), "(2,5,3)": (2, 5, 3), "(0,5)": (0, 5)}
_CE_TARGETS = {
    "long(4,)": lambda: torch.tensor([0, 1, 2, 3]),
    "long()": lambda: torch.tensor(1),
    "long(1,)": lambda: torch.tensor([1]),
    "long(2,)": lambda: torch.tensor([0, 1]),
    "long(0,)": lambda: torch.zeros(0, dtype=torch.long),
    "long(4,1)": lambda: torch.zeros(4, 1, dtype=torch.long),
    "long(4,5)": lambda: torch.zeros(4, 5, dtype=torch.long),
    "long(2,3)": lambda: torch.zeros(2, 3, dtype=torch.long),
    "int32(4,)": lambda: torch.tensor([0, 1, 2, 3], dtype=torch.int32),
    "float()": lambda: torch.tensor(0.5),
    "float(4,)": lambda: torch.rand(4),
    "float(5,)": lambda: torch.rand(5),
    "float(2,3)": lambda: torch.rand(2, 3),
    "float(4,5)": lambda: torch.rand(4, 5),
    "float(2,5,3)": lambda: torch.rand(2, 5, 3),
}


@pytest.mark.parametrize("target", _CE_TARGETS)
@pytest.mark.parametrize("shape", _CE_INPUTS)
def test_cross_entropy_target_checks_follow_torch(shape, target):
    """Every pairing: torch's result shape, or its exception type with its message."""
    x = torch.randn(_CE_INPUTS[shape])
    t = _CE_TARGETS[target]()
    try:
        expected = F.cross_entropy(x, t)
    except Exception as e:  # noqa: BLE001 (any of torch's types is the expected one)
        with pytest.raises(type(e)) as ours:
            DF.cross_entropy(x, t)
        assert str(ours.value) == str(e)
        return
    assert DF.cross_entropy(x, t).shape == expected.shape


@pytest.mark.parametrize("reduction", [[1], None, 1, "avg"])
@pytest.mark.parametrize("fn", ["mse_loss", "cross_entropy"])
def test_reduction_of_any_type_is_torchs_value_error(fn, reduction):
    x = torch.randn(4, 3)
    t = torch.tensor([0, 1, 2, 1]) if fn == "cross_entropy" else torch.randn(4, 3)
    ref, ours = _same_error(fn, x, t, reduction=reduction)
    assert isinstance(ref, ValueError) and str(ours) == str(ref)


def test_ignore_index_takes_what_torchs_binding_takes():
    """An int or anything with __index__ (a 0-d integer tensor), not a bool; int64 only."""
    x, t = torch.randn(4, 3), torch.tensor([0, 1, 2, 1])
    ref, ours = _same_error("cross_entropy", x, t, ignore_index=True)
    assert isinstance(ref, TypeError) and str(ours) == str(ref)
    ref, ours = _same_error("cross_entropy", x, t, ignore_index=2**63)
    assert isinstance(ref, ValueError) and str(ours) == str(ref)
    index = torch.tensor(1)
    torch.testing.assert_close(
        DF.cross_entropy(x, t, ignore_index=index), F.cross_entropy(x, t, ignore_index=index)
    )


MSE_CASES = {
    "shape mismatch": (torch.randn(4, 3), torch.randn(3, 3), {}),
    "unknown reduction": (torch.randn(4, 3), torch.randn(4, 3), {"reduction": "avg"}),
}


@pytest.mark.parametrize("case", MSE_CASES, ids=str)
def test_mse_errors(case):
    x, t, kw = MSE_CASES[case]
    ref, ours = _same_error("mse_loss", x, t, **kw)
    if isinstance(ref, ValueError):
        assert str(ours) == str(ref)


def test_non_tensor_target_is_a_type_error():
    with pytest.raises(TypeError, match="must be Tensor"):
        DF.mse_loss(torch.randn(3), 1.0)


def test_unsupported_dtype():
    x = torch.randn(4, 3).half()
    with pytest.raises(NotImplementedError, match="Half"):
        DF.cross_entropy(x, torch.tensor([0, 1, 2, 1]))
    with pytest.raises(NotImplementedError, match="Half"):
        DF.mse_loss(x, x)


def test_raw_ops_raise_runtime_value_index_errors():
    x = torch.randn(4, 3)
    t = torch.tensor([0, 1, 2, 1])
    with pytest.raises(IndexError, match="Target 9 is out of bounds"):
        ops.cross_entropy_forward(x, torch.tensor([0, 9, 2, 1]), None, 1, -100, 0.0)
    with pytest.raises(IndexError, match="Target -3 is out of bounds"):
        ops.cross_entropy_forward(x, torch.tensor([0, 1, -3, 1]), None, 0, -100, 0.0)
    with pytest.raises(ValueError, match="unknown reduction"):
        ops.cross_entropy_forward(x, t, None, 5, -100, 0.0)
    with pytest.raises(ValueError, match="label_smoothing"):
        ops.cross_entropy_forward(x, t, None, 1, -100, -0.5)
    with pytest.raises(RuntimeError, match="weight tensor should be defined"):
        ops.cross_entropy_forward(x, t, torch.ones(2), 1, -100, 0.0)
    with pytest.raises(RuntimeError, match=r"\(rows, classes\) or \(batch, classes, positions\)"):
        ops.cross_entropy_forward(torch.randn(2, 3, 4, 1), t, None, 1, -100, 0.0)
    with pytest.raises(RuntimeError, match="int64 targets"):
        ops.cross_entropy_forward(x, t[:3], None, 1, -100, 0.0)
    x3 = torch.randn(2, 3, 4)
    with pytest.raises(RuntimeError, match=r"int64 targets of shape \[2, 4\]"):
        ops.cross_entropy_forward(x3, t, None, 1, -100, 0.0)
    loss, lse, total = ops.cross_entropy_forward(x3, t.view(2, 2).repeat(1, 2), None, 0, -100, 0.0)
    assert loss.shape == lse.shape == (2, 4)
    with pytest.raises(RuntimeError, match="lse must be the forward's"):
        ops.cross_entropy_backward(
            loss, x3, t.view(2, 2).repeat(1, 2), None, lse.view(8), total, 0, -100, 0.0
        )
    with pytest.raises(RuntimeError, match="does not match the loss"):
        ops.cross_entropy_backward(
            loss.view(8), x3, t.view(2, 2).repeat(1, 2), None, lse, total, 0, -100, 0.0
        )
    with pytest.raises(RuntimeError, match="shape"):
        ops.mse_loss(x, torch.randn(3, 3), 1)
    with pytest.raises(ValueError, match="unknown reduction"):
        ops.mse_loss(x, x, 3)
    with pytest.raises(RuntimeError, match="0-dim grad_output"):
        ops.mse_loss_backward(torch.ones(4, 3), x, x, 1)


def test_target_out_of_range_on_every_device(any_device):
    """The CUDA kernels flag a bad target instead of asserting; the host raises the CPU's
    IndexError for the first offending row, and the next call runs normally."""
    dev = torch_device(any_device)
    x = torch.randn(20, 3, device=dev)
    t = torch.randint(3, (20,), device=dev)
    for bad in ({17: 5, 6: -2}, {0: 3}, {19: 100}):
        tb = t.clone()
        for row, value in bad.items():
            tb[row] = value
        first = bad[min(bad)]
        with pytest.raises(IndexError, match=f"^Target {first} is out of bounds.$"):
            ops.cross_entropy_forward(x, tb, None, 1, -100, 0.0)
        with pytest.raises(IndexError, match=f"^Target {first} is out of bounds.$"):
            DF.cross_entropy(x, tb, reduction="none")
    torch.testing.assert_close(DF.cross_entropy(x, t), F.cross_entropy(x, t))
