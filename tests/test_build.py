"""The build as a user meets it: the torch-version guard on import, and the CUDA sources compiling
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


@pytest.mark.parametrize("built,running", [("2.13.0", "2.13.1"), ("2.13.0+cpu", "2.13.0+cu130")])
def test_same_minor_version_is_accepted(built, running):
    _ext.check_torch_version(built, running)


@pytest.mark.parametrize("built,running", [("2.13.0", "2.11.0"), ("2.13.0", "3.13.0")])
def test_other_minor_version_is_refused_with_a_clear_message(built, running):
    with pytest.raises(ImportError, match=rf"built against torch {built}, but torch {running} is installed"):
        _ext.check_torch_version(built, running)


def test_import_of_a_mismatched_build_fails_before_loading_the_library(tmp_path):
    """A copy of the package whose build info names another torch: importing it raises the
    guard's ImportError, not the dynamic loader's undefined-symbol error."""
    pkg = os.path.dirname(dlkernels.__file__)
    shutil.copytree(pkg, tmp_path / "dlkernels", ignore=shutil.ignore_patterns("__pycache__", "data"))
    info = tmp_path / "dlkernels" / "_build_info.py"
    info.write_text(info.read_text().replace("TORCH_VERSION = ", "TORCH_VERSION = '2.1.0'  # "))
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
    assert "ImportError: dlkernels was built against torch 2.1.0" in proc.stdout


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
