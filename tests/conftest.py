"""Fixtures shared by every op family's tests (see helpers.py for the building blocks).

* ``device``: "cpu" once per CPU instruction set (the ISA is active for the whole test and
  restored afterwards), "cuda" (marked ``cuda``, skipped without a usable GPU) and "cuda_sim"
  (marked ``cuda_sim``: CPU tensors, the test runs inside dlkernels.testing.cuda_sim(), so the
  CUDA kernels run emulated; it skips when it reaches an op without an emulated CUDA kernel). A
  test that also takes ``dtype`` gets only the dtypes that device supports.
* ``any_device``: "cpu" with the default ISA, "cuda" and "cuda_sim", for tests whose outcome
  cannot depend on the ISA (argument checks, module plumbing).
* ``cuda_device``: "cuda" and "cuda_sim" alone, for tests of the CUDA kernels whose CPU twin is
  another test (the randomized sweeps, sized for the emulator).
* ``isa``: a CPU-only test run once per ISA, with that ISA active.
"""

import os

import helpers
import pytest
import torch

import dlkernels
from dlkernels.testing import cuda_sim


def pytest_report_header(config):
    """The randomized tests' seed offset, when a campaign sets one, so a failure's log says how
    to replay it."""
    seed = os.environ.get("DLKERNELS_TEST_SEED")
    return f"DLKERNELS_TEST_SEED={seed} (randomized tests draw other cases)" if seed else None


def pytest_generate_tests(metafunc):
    names = metafunc.fixturenames
    if "device" in names and "dtype" in names:
        metafunc.parametrize(("device", "dtype"), helpers.device_dtype_params(), indirect=["device"])
    elif "device" in names:
        metafunc.parametrize("device", helpers.device_params(), indirect=True)
    if "any_device" in names:
        metafunc.parametrize("any_device", helpers.device_params(every_isa=False), indirect=True)
    if "cuda_device" in names:
        cuda = [p for p in helpers.device_params(every_isa=False) if p.values[0][0] != "cpu"]
        metafunc.parametrize("cuda_device", cuda, indirect=True)
    if "isa" in names:
        metafunc.parametrize("isa", helpers.CPU_ISAS, indirect=True)


def _not_emulated(op: str) -> None:
    pytest.skip(f"dlkernels::{op} has no emulated CUDA kernel (not in dlkernels.testing.cuda_sim_ops())")


@pytest.fixture
def device(request):
    dev, isa = request.param
    if dev == "cpu":
        with dlkernels.use_cpu_isa(isa) as active:
            assert active == isa
            yield "cpu"
    elif dev == "cuda_sim":
        with cuda_sim(on_fallback=_not_emulated):
            yield dev
    else:
        yield dev


def _device_without_isa(request):
    dev, _ = request.param
    if dev == "cuda_sim":
        with cuda_sim(on_fallback=_not_emulated):
            yield dev
    else:
        yield dev


any_device = pytest.fixture(_device_without_isa, name="any_device")
cuda_device = pytest.fixture(_device_without_isa, name="cuda_device")


@pytest.fixture
def isa(request):
    with dlkernels.use_cpu_isa(request.param) as active:
        assert active == request.param
        yield active


@pytest.fixture(autouse=True)
def _cpu_isa_restored():
    """Every test must leave the process-wide ISA as it found it; otherwise later tests would run
    on another code path than their id says. Restores it and reports the test as an error."""
    before = dlkernels.cpu_isa()
    yield
    after = dlkernels.cpu_isa()
    if after != before:
        dlkernels.set_cpu_isa(before)
        pytest.fail(f"the test left the CPU ISA at {after!r} (was {before!r})")


@pytest.fixture(autouse=True)
def _seeded():
    """Reproducible random inputs in every test, whatever ran before it."""
    torch.manual_seed(0)
