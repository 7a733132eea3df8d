"""python -m dlkernels info / bench, and the benchmark suites: every suite's cases run, both sides
agree (the runner checks that before timing), and the rows carry positive times and ratios."""

import subprocess
import sys

import pytest
import torch

import dlkernels
from dlkernels import bench


def _run(*args):
    return subprocess.run(
        [sys.executable, "-m", "dlkernels", *args], capture_output=True, text=True, timeout=300
    )


def test_info_reports_build_and_cpu():
    proc = _run("info")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert dlkernels.__version__ in out
    assert torch.__version__ in out
    assert dlkernels.cpu_isa() in out


def test_bench_lists_every_suite():
    proc = _run("bench", "--list")
    assert proc.returncode == 0, proc.stderr
    for name in ("activation", "conv2d"):
        assert name in proc.stdout


@pytest.mark.parametrize("suite", ["activation", "conv2d"])
def test_quick_suite_runs_and_both_sides_agree(suite):
    opts = bench.Options(device="cpu", dtypes=[torch.float32], quick=True)
    result = bench.run_suite(
        bench.get_suite(suite),
        opts,
        rounds=1,
        min_run_time=0.001,
        busy_limit=None,
        progress=lambda line: None,
    )
    rows = result["rows"]
    assert rows, "the suite produced no cases"
    for row in rows:
        assert row["torch_s"] > 0 and row["dlkernels_s"] > 0 and row["ratio"] > 0, row


def test_unknown_subcommand_fails():
    assert _run("nonsense").returncode != 0
