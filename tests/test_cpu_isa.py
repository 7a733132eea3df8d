"""Run-time selection of the CPU instruction set (dlkernels.cpu_isa & co.)."""

import os
import subprocess
import sys
import textwrap

import pytest
import torch
from helpers import CPU_ISAS, make_input

import dlkernels

KNOWN = ("baseline", "avx2", "avx512")


def test_supported_isas():
    assert "baseline" in CPU_ISAS
    assert set(CPU_ISAS) <= set(KNOWN)
    assert list(CPU_ISAS) == [i for i in KNOWN if i in CPU_ISAS], "listed from the narrowest to the widest"
    assert dlkernels.cpu_isa() in CPU_ISAS


def test_set_returns_previous_and_auto_picks_the_widest():
    start = dlkernels.cpu_isa()
    try:
        for name in CPU_ISAS:
            previous = dlkernels.cpu_isa()
            assert dlkernels.set_cpu_isa(name) == previous
            assert dlkernels.cpu_isa() == name
        dlkernels.set_cpu_isa("auto")
        assert dlkernels.cpu_isa() == CPU_ISAS[-1]
    finally:
        dlkernels.set_cpu_isa(start)


def test_unknown_or_unsupported_isa():
    start = dlkernels.cpu_isa()
    with pytest.raises(
        ValueError, match="unknown CPU ISA 'sse9'; expected one of auto, baseline, avx2, avx512"
    ):
        dlkernels.set_cpu_isa("sse9")
    with pytest.raises(ValueError, match="unknown CPU ISA 'AVX2'"):
        dlkernels.set_cpu_isa("AVX2")  # names are case-sensitive
    assert dlkernels.cpu_isa() == start
    missing = [i for i in KNOWN if i not in CPU_ISAS]
    for name in missing:
        with pytest.raises(ValueError, match=f"CPU ISA '{name}' is not supported by this CPU or build"):
            dlkernels.set_cpu_isa(name)
        assert dlkernels.cpu_isa() == start


def test_use_cpu_isa_restores_even_on_error():
    start = dlkernels.cpu_isa()
    with pytest.raises(KeyError):
        with dlkernels.use_cpu_isa("baseline") as active:
            assert active == "baseline" == dlkernels.cpu_isa()
            with dlkernels.use_cpu_isa(CPU_ISAS[-1]):
                assert dlkernels.cpu_isa() == CPU_ISAS[-1]
            assert dlkernels.cpu_isa() == "baseline"
            raise KeyError("boom")
    assert dlkernels.cpu_isa() == start


@pytest.mark.skipif(len(CPU_ISAS) < 2, reason="only the baseline kernels run on this CPU")
def test_isa_switch_reaches_the_kernels():
    """The parametrized tests mean something only if the selection changes the code that runs:
    float32 sigmoid uses libm's expf on the baseline path and a polynomial in the AVX2/AVX-512
    kernels, whose results differ in the last bit for some inputs."""
    x = make_input((100_000,), torch.float32, "cpu", specials=False)
    with dlkernels.use_cpu_isa("baseline"):
        base = dlkernels.ops.sigmoid(x)
    for name in CPU_ISAS[1:]:
        with dlkernels.use_cpu_isa(name):
            wide = dlkernels.ops.sigmoid(x)
        assert not torch.equal(base, wide), f"{name} gave bit-identical results to baseline"


def _run_python(code: str, env_isa: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, DLKERNELS_CPU_ISA=env_isa)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True, timeout=120
    )


def test_environment_variable():
    """DLKERNELS_CPU_ISA picks the ISA at first use; a bad value surfaces as ValueError at a call
    (importing still works)."""
    proc = _run_python(
        """
        import torch, dlkernels
        print(dlkernels.cpu_isa())
        """,
        "baseline",
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "baseline"

    proc = _run_python(
        """
        import torch, dlkernels
        try:
            dlkernels.ops.relu(torch.ones(3))
        except ValueError as e:
            print("ValueError:", e)
        # Choosing an ISA explicitly recovers from the bad setting.
        print("previous:", dlkernels.set_cpu_isa("baseline"))
        print(dlkernels.ops.relu(torch.tensor([-1.0, 2.0])).tolist())
        """,
        "bogus",
    )
    assert proc.returncode == 0, proc.stderr
    assert "ValueError: dlkernels: unknown CPU ISA 'bogus'" in proc.stdout
    assert "previous: " in proc.stdout and "[0.0, 2.0]" in proc.stdout
