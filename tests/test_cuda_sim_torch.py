"""dlkernels.testing.cuda_sim(): the emulated CUDA kernels (dlkernels._cuda_sim) behind torch's
dispatcher. That the routing reaches them, forward and backward, below autograd; that the CPU path
is untouched outside it; that the emulated library mirrors the real schemas; and that every
schema and CUDA registration in csrc is written so a new family is emulated with no wiring."""

import glob
import os
import re

import pytest
import torch
from activation_cases import Act
from helpers import CUDA_SIM_MARKS, EXACT, assert_close, make_input, sim_scaled
from torch.utils._python_dispatch import TorchDispatchMode

import dlkernels
from dlkernels.testing import cuda_sim, cuda_sim_available, cuda_sim_ops

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DF = dlkernels.functional
sim = pytest.mark.parametrize("_marks", [pytest.param(None, id="cuda_sim", marks=CUDA_SIM_MARKS)])


class _OpLog(TorchDispatchMode):
    """Records the operators dispatched below it (pushed outside cuda_sim, it sees what cuda_sim
    calls instead of the dlkernels ops)."""

    def __init__(self):
        super().__init__()
        self.names = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.names.append(f"{func.namespace}::{func._opname}")
        return func(*args, **(kwargs or {}))


@sim
def test_relu_float16_bitwise_and_ops_listed(_marks):
    """relu on float16 CPU tensors (no CPU kernel takes them) matches torch's bit for bit. Finite,
    non-zero inputs: a NaN's payload and the sign of a zero output are the kernel's own (the value
    tests compare those by value)."""
    assert {"relu", "leaky_relu", "sigmoid"} <= cuda_sim_ops()
    x = make_input((37, 41), torch.float16, "cpu", specials=False)
    with cuda_sim():
        y = DF.relu(x)
    assert y.dtype == torch.float16 and y.device.type == "cpu"
    assert torch.equal(y.view(torch.int16), torch.relu(x).view(torch.int16))


@sim
def test_forward_and_backward_run_emulated(_marks):
    """Autograd records the dlkernels ops as usual; both forward and backward kernel calls land on
    dlkernels_sim, and nothing of dlkernels' own reaches a kernel."""
    x = make_input((5, 9), torch.float32, "cpu", specials=False).requires_grad_()
    log = _OpLog()
    with log, cuda_sim():
        y = DF.sigmoid(DF.leaky_relu(x, 0.1))
        y.sum().backward()
    names = set(log.names)
    assert {"dlkernels_sim::leaky_relu", "dlkernels_sim::sigmoid"} <= names, names
    assert {"dlkernels_sim::leaky_relu_backward", "dlkernels_sim::sigmoid_backward"} <= names, names
    assert not any(n.startswith("dlkernels::") for n in names), names
    ref = x.detach().clone().requires_grad_()
    torch.sigmoid(torch.nn.functional.leaky_relu(ref, 0.1)).sum().backward()
    tol = Act("sigmoid").grad_tol(torch.float32, "cuda_sim", torch.ones(1))
    assert_close(x.grad, ref.grad, tol, "gradient through the emulated kernels")


@sim
def test_inplace_bumps_version_and_keeps_identity(_marks):
    x = make_input((4, 33), torch.bfloat16, "cpu", specials=False)
    expected = torch.relu(x)
    version = x._version
    with cuda_sim():
        assert DF.relu_(x) is x
    assert x._version > version
    assert torch.equal(x.view(torch.int16), expected.view(torch.int16))


@sim
def test_cpu_path_untouched_outside(_marks):
    """Outside the block float16 is refused on the CPU, as before; inside, the raw op takes it."""
    x = make_input((8,), torch.float16, "cpu")
    with pytest.raises(NotImplementedError, match="not implemented for 'Half' on cpu"):
        DF.relu(x)
    with pytest.raises(RuntimeError, match="not implemented for 'Half' on cpu"):
        dlkernels.ops.relu(x)
    with cuda_sim():
        dlkernels.ops.relu(x)
    with pytest.raises(NotImplementedError):
        DF.sigmoid(x)


@sim
def test_non_emulated_op_keeps_its_cpu_kernel(_marks, monkeypatch):
    """An op without an emulated kernel runs on the CPU with the CPU's dtypes, and on_fallback
    hears. Every public op has a CUDA kernel now, so conv2d's family is hidden from the emulated
    set, as a new family's ops are before their CUDA kernels land."""
    import dlkernels.testing as testing

    emulated = cuda_sim_ops()
    assert "conv2d" in emulated
    monkeypatch.setattr(testing, "cuda_sim_ops", lambda: frozenset(n for n in emulated if "conv2d" not in n))
    seen = []
    x, w = torch.randn(1, 2, 6, 6), torch.randn(3, 2, 3, 3)
    with cuda_sim(on_fallback=seen.append):
        y = DF.conv2d(x, w)
        with pytest.raises(NotImplementedError, match="'Half' on cpu"):
            DF.conv2d(x.half(), w.half())
    assert set(seen) == {"conv2d"}
    assert_close(y, DF.conv2d(x, w), EXACT, "conv2d under cuda_sim")


@sim
def test_sim_schemas_mirror_dlkernels(_marks):
    """Every emulated op has the real op's schema (the same csrc/schema source, other namespace)."""
    for name in cuda_sim_ops():
        real = getattr(torch.ops.dlkernels, name).default._schema
        emulated = getattr(torch.ops.dlkernels_sim, name).default._schema
        assert str(emulated).replace("dlkernels_sim::", "dlkernels::", 1) == str(real), name


def test_unavailable_is_an_error_not_a_silent_cpu_run(monkeypatch):
    monkeypatch.setattr(dlkernels.testing, "cuda_sim_available", lambda: False)
    with pytest.raises(RuntimeError, match="DLKERNELS_CUDA_SIM"):
        with cuda_sim():
            pass
    assert isinstance(cuda_sim_available(), bool)


def test_sim_scaled():
    assert sim_scaled((1021, 1031), "cpu") == (1021, 1031)
    assert sim_scaled((1021, 1031), "cuda_sim") == (1021, 516)
    assert sim_scaled((1021, 1031), "cuda_sim", max_numel=1 << 18) == (511, 258)
    assert sim_scaled((7, 5), "cuda_sim") == (7, 5)
    assert sim_scaled((), "cuda_sim") == ()


def _registrations(pattern):
    for path in sorted(glob.glob(os.path.join(ROOT, "csrc", pattern))):
        with open(path) as f:
            for m in re.finditer(r"STABLE_TORCH_LIBRARY\w*\(([^)]*)\)", f.read()):
                yield os.path.relpath(path, ROOT), [a.strip() for a in m.group(1).split(",")]


def test_registrations_take_the_sim_namespace():
    """dlkernels._cuda_sim compiles csrc/schema/*.cpp and csrc/cuda/*.cpp again with
    DLK_NAMESPACE=dlkernels_sim and DLK_CUDA_KEY=CPU: a literal namespace or key there would
    register twice in dlkernels (the library then fails to load) or not be emulated."""
    bad = []
    for path, args in _registrations("schema/*.cpp"):
        if path.endswith("library.cpp"):
            continue  # the dlkernels DEF (the macro cannot take a macro), not built into the sim
        if args[0] != "DLK_NAMESPACE":
            bad.append((path, args))
    for path, args in _registrations("cuda/*.cpp"):
        if path.endswith("sim_module.cpp"):
            continue  # the dlkernels_sim DEF
        if args[0] != "DLK_NAMESPACE" or (len(args) > 2 and args[1] != "DLK_CUDA_KEY"):
            bad.append((path, args))
    assert not bad, (
        "write STABLE_TORCH_LIBRARY_FRAGMENT(DLK_NAMESPACE, m) in csrc/schema and "
        f"STABLE_TORCH_LIBRARY_IMPL(DLK_NAMESPACE, DLK_CUDA_KEY, m) in csrc/cuda: {bad}"
    )
