"""The build as a user meets it: the torch-version floor on import, and the CUDA sources compiling
for sm_80 and sm_90 with nvcc on a machine without a GPU (tools/check_cuda.py, also run by CI);
the standalone GEMM harnesses in benchmarks/cpp compiling too."""

import os
import shutil
import subprocess
import sys
import textwrap

import pytest

import dlkernels
from dlkernels import _ext

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("running", ["2.11.0", "2.11.0+cu130", "2.13.1", "2.14.1+cpu", "3.0.0"])
def test_torch_from_the_target_up_is_accepted(running):
    """The stable ABI: a build for 2.11 loads under every later torch (the wheel is checked under
    2.11 and the newest release by .ci/run)."""
    _ext.check_torch_version((2, 11), running)


@pytest.mark.parametrize("running", ["2.10.2", "2.4.0", "1.13.1"])
def test_older_torch_is_refused_with_a_clear_message(running):
    with pytest.raises(
        ImportError, match=rf"dlkernels needs torch >= 2.11 .* but torch {running} is installed"
    ):
        _ext.check_torch_version((2, 11), running)


def test_import_under_too_old_a_torch_fails_before_loading_the_library(tmp_path):
    """A copy of the package whose build info targets a future torch: importing it raises the
    guard's ImportError, not the dynamic loader's undefined-symbol error."""
    pkg = os.path.dirname(dlkernels.__file__)
    shutil.copytree(pkg, tmp_path / "dlkernels", ignore=shutil.ignore_patterns("__pycache__", "data"))
    info = tmp_path / "dlkernels" / "_build_info.py"
    info.write_text(info.read_text().replace("TORCH_TARGET = ", "TORCH_TARGET = (9, 0)  # "))
    code = textwrap.dedent(
        """
        try:
            import dlkernels
        except ImportError as e:
            print("ImportError:", e)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "ImportError: dlkernels needs torch >= 9.0" in proc.stdout


def _nvcc():
    return (
        os.environ.get("NVCC")
        or shutil.which("nvcc")
        or ("/usr/local/cuda/bin/nvcc" if os.path.exists("/usr/local/cuda/bin/nvcc") else None)
    )


@pytest.mark.skipif(_nvcc() is None, reason="nvcc (CUDA toolkit) not installed")
def test_cuda_sources_compile_for_sm80_and_sm90():
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "tools", "check_cuda.py"), "--arch", "80", "--arch", "90"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "FAIL" not in proc.stdout


@pytest.mark.skipif(shutil.which("g++") is None, reason="g++ not installed")
@pytest.mark.parametrize("harness", ["gemm_tune.cpp", "gemm_order_ab.cpp"])
def test_gemm_harnesses_compile(harness):
    """The standalone GEMM tuning harnesses (benchmarks/cpp) still compile against csrc/: they
    include the kernels directly, so a signature or include-order change can break them."""
    src = os.path.join(ROOT, "benchmarks", "cpp", harness)
    proc = subprocess.run(
        ["g++", "-std=c++20", "-fopenmp", "-fsyntax-only", "-I", os.path.join(ROOT, "csrc"), src],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
