"""The benchmark framework's own logic: machine keys, a shared reference measured under load is
measured again (not reused for every later row), README tables come from the saved results."""

import os
import subprocess
import sys
import time

import torch

from dlkernels import bench
from dlkernels.bench import machine
from dlkernels.bench.core import Case, Reference, Suite

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_machine_keys_name_vendor_family_and_model():
    assert machine.cpu_key({"vendor": "amd", "family": 25, "model": 17}) == "amd-f25-m17"
    assert machine.cpu_key({"vendor": "intel", "family": 6, "model": 143}) == "intel-f6-m143"
    assert machine.key_from_name("AMD EPYC (family 25, model 17)") == "amd-f25-m17"
    assert machine.key_from_name("Intel(R) Xeon(R) Processor (family 6, model 143)") == "intel-f6-m143"
    desc = machine.describe()
    assert machine.tag(desc) == desc["cpu_key"] == machine.cpu_key()
    assert machine.tag(dict(desc, gpu="NVIDIA H200"), "cuda") == "cuda-nvidia-h200"


class _SlowFirstReference(Suite):
    """Three cases of one size sharing one copy reference, which is very slow while the first
    case is measured (as under load the counters did not see), and normal afterwards."""

    name = "test-ref"
    rate = bench.GBPS

    def cases(self, opts):
        x = torch.randn(1 << 12)
        y = torch.empty_like(x)
        state = {"slow": True}

        def ref():
            if state["slow"]:
                time.sleep(0.002)
            return y.copy_(x)

        reference = Reference("copy", "n", ref, bytes=2 * x.numel() * 4)
        for i in range(3):
            yield Case(
                f"neg{i}",
                (x.numel(),),
                x.dtype,
                lambda: torch.neg(x),
                lambda: torch.neg(x),
                bytes=8 * x.numel(),
                reference=reference,
            )
            state["slow"] = False


def test_a_disturbed_reference_is_measured_again():
    result = bench.run_suite(
        _SlowFirstReference(),
        bench.Options(),
        rounds=1,
        min_run_time=0.005,
        busy_limit=None,
        progress=lambda line: None,
    )
    first, second, third = result["rows"]
    assert first["reference_ok"] is False  # flagged, not trusted
    assert second["reference_ok"] and third["reference_ok"]
    assert second["reference_s"] < first["reference_s"] / 5  # re-measured, not the cached value
    assert third["reference_s"] == second["reference_s"]  # a sound one is reused
    text = bench.report.text(result)
    assert "?" in text and "reference was disturbed" in text


def test_readme_performance_tables_match_the_saved_results():
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "readme_tables.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_run_under_load_is_marked_noisy():
    quiet = {
        "suite": "s",
        "rows": [],
        "config": {"busy_limit": None, "cpu_used_elsewhere": {"others": 0.01, "steal": 0}},
    }
    loaded = {
        "suite": "s",
        "rows": [],
        "config": {"busy_limit": None, "cpu_used_elsewhere": {"others": 0.6, "steal": 0}},
    }
    row = {"disturbed": True}
    assert not bench.report.make_run([quiet], ceilings={})["noisy"]
    assert bench.report.make_run([loaded], ceilings={})["noisy"]
    assert bench.report.make_run([dict(quiet, rows=[row])], ceilings={})["noisy"]
    assert bench.report.make_run([quiet], ceilings={"copy": {"disturbed": True}})["noisy"]


class _RisingCeilings(bench.Ceilings):
    """A GEMM ceiling whose next measurement reads 400 GFLOP/s."""

    def gemm(self, dtype):
        return self._measured("gemm_float32", lambda: {"rate": 400.0, "unit": "GFLOP/s", "what": "test"})


def _ceiling_row(ceilings, torch_rate, dlk_rate):
    row = {"torch_rate": torch_rate, "dlkernels_rate": dlk_rate}
    bench.runner._apply_ceiling(row, "gemm_float32", ceilings.values["gemm_float32"])
    return row


def test_ceiling_a_case_beat_is_measured_again():
    """A ceiling below a case's rate was read in a slow phase: measured again at the end of the
    run, the higher reading kept, the rows' percentages recomputed; one no case beat stays."""
    ceilings = _RisingCeilings(busy_limit=None)
    ceilings.values["gemm_float32"] = {"rate": 300.0, "unit": "GFLOP/s", "disturbed": False}
    kept = {"rows": [_ceiling_row(ceilings, 250.0, 290.0)]}
    assert bench.runner.remeasure_ceilings([kept], ceilings) == []
    assert kept["rows"][0]["ceiling_rate"] == 300.0
    beaten = {"rows": [_ceiling_row(ceilings, 250.0, 350.0)]}
    assert bench.runner.remeasure_ceilings([beaten], ceilings) == ["gemm_float32"]
    row = beaten["rows"][0]
    assert row["ceiling_rate"] == 400.0 and abs(row["dlkernels_pct_of_ceiling"] - 87.5) < 1e-9
