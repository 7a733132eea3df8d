"""python -m dlkernels info / bench: the command line covers every op family (measuring those
dlkernels has, listing the rest as missing), writes the run as JSON with its machine, ceilings
and per-case spread, plots it, and compares two runs with an exit status CI can use."""

import copy
import json
import math
import os
import subprocess
import sys

import pytest
import torch

import dlkernels
from dlkernels import bench

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAMILIES = (
    "conv2d",
    "max_pool2d",
    "avg_pool2d",
    "adaptive_avg_pool2d",
    "relu",
    "leaky_relu",
    "sigmoid",
    "linear",
    "mse_loss",
    "cross_entropy",
)


def _run(*args, timeout=120):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run(
        [sys.executable, "-m", "dlkernels", *args], capture_output=True, text=True, timeout=timeout, env=env
    )


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """One `bench --smoke --json` over every suite, shared by the tests that read its output."""
    path = tmp_path_factory.mktemp("bench") / "smoke.json"
    proc = _run("bench", "--smoke", "--json", str(path), "--busy-limit", "-1", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    with open(path) as f:
        return proc, json.load(f)


def test_info_reports_build_and_cpu():
    proc = _run("info")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert dlkernels.__version__ in out
    assert torch.__version__ in out
    assert dlkernels.cpu_isa() in out


def test_bench_lists_every_suite_and_its_ops():
    proc = _run("bench", "--list")
    assert proc.returncode == 0, proc.stderr
    for name in ("activation", "conv2d", "gemm", "linear", "loss", "pool"):
        assert name in proc.stdout
    for op in FAMILIES:
        assert op in proc.stdout
        if not hasattr(dlkernels.functional, op):
            assert f"{op} (missing)" in proc.stdout


def test_smoke_covers_every_family(smoke_run):
    """Every op family is either measured or listed as missing; none silently dropped."""
    proc, run = smoke_run
    measured = {r["op"] for s in run["suites"] for r in s["rows"]}
    missing = {m["op"] for m in run["missing"]}
    for op in FAMILIES:
        if hasattr(dlkernels.functional, op):
            assert op in measured, op
        else:
            assert op in missing, op
            assert op in proc.stdout  # said on the console too
    assert not measured & missing


def test_json_has_machine_ceilings_and_spread(smoke_run):
    _, run = smoke_run
    m = run["machine"]
    for key in ("cpu", "cpu_vendor", "cpu_family", "cpu_model", "cpus", "cpu_isa", "torch", "torch_threads"):
        assert key in m, key
    assert m["cpu_isa"] == dlkernels.cpu_isa()
    assert {"tf32_matmul", "tf32_cudnn", "torch_cuda", "gpu"} <= set(m)
    assert run["machine_key"] == bench.machine.cpu_key()
    assert run["dlkernels"]["version"] == dlkernels.__version__ and run["dlkernels"]["commit"]
    assert run["ceilings"]["copy"]["rate"] > 0
    if hasattr(torch.ops.dlkernels, "_gemm_peak"):
        assert run["ceilings"]["gemm_float32"]["rate"] > 0
    assert isinstance(run["noisy"], bool)
    rows = [r for s in run["suites"] for r in s["rows"]]
    assert rows
    for r in rows:
        assert r["torch_s"] > 0 and r["dlkernels_s"] > 0 and r["ratio"] > 0, r
        assert r["torch_spread_s"]["min"] <= r["torch_s"] <= r["torch_spread_s"]["max"]
        assert r["ratio_spread"]["min"] <= r["ratio_spread"]["max"]
        assert r["memory_format"]
        assert r["dlkernels_rate"] and r["dlkernels_pct_of_ceiling"] > 0


def test_smoke_tables_name_shapes_and_passes(smoke_run):
    """Progress lines show a conv case's shape (not the product of its dims) and which pass."""
    proc, run = smoke_run
    conv = next(s for s in run["suites"] if s["suite"] == "conv2d")
    row = conv["rows"][0]
    shape = bench.report.fmt_shape(row["shape"])
    lines = [ln for ln in proc.stderr.splitlines() if row["case"] in ln and shape in ln]
    assert any("[fwd]" in ln for ln in lines) and any("[fwd+bwd]" in ln for ln in lines), proc.stderr
    assert str(torch.Size(row["shape"]).numel()) not in proc.stderr
    assert "Times are in" in proc.stdout  # torch.utils.benchmark.Compare's footer


@pytest.mark.parametrize("suite", ["activation", "conv2d", "linear", "loss", "pool"])
def test_suites_run_once_their_ops_exist(suite, monkeypatch):
    """Ops not built yet: torch's own function stands in, so the suite's cases (shapes, work
    counts, verification) are exercised today and run unchanged when the op lands."""
    s = bench.get_suite(suite)
    for op in s.missing():
        monkeypatch.setattr(dlkernels.functional, op, getattr(torch.nn.functional, op), raising=False)
    assert not s.missing()
    opts = bench.Options(device="cpu", dtypes=[torch.float32], smoke=True)
    result = bench.run_suite(
        s, opts, rounds=1, min_run_time=0.001, busy_limit=None, progress=lambda line: None
    )
    assert {r["op"] for r in result["rows"]} == set(s.ops)
    for r in result["rows"]:
        assert r["ratio"] > 0 and (r["bytes"] or r["flops"]), r


def test_gemm_suite_is_for_cuda_and_its_cases_check_out():
    """No cases on the CPU; a case's two sides (built here for the CPU core, its one tile) compute
    the same product, and the tolerance catches a wrong one."""
    from dlkernels.bench.suites import gemm

    s = bench.get_suite("gemm")
    assert s.default_dtypes("cuda") == [torch.bfloat16, torch.float16, torch.float32]
    assert list(s.cases(bench.Options(device="cpu", dtypes=[torch.float32], smoke=True))) == []
    (case,) = gemm._cases(gemm.SMOKE[0], torch.float32, "cpu")
    assert case.note == "rule" and case.flops == 2 * 16 * 24 * 8
    expected = case.torch_fn()
    case.compare(case.dlk_fn(), expected)
    with pytest.raises(AssertionError):
        case.compare(expected * (1 + 1e-3), expected)


def test_quick_shapes_are_defined_for_every_suite():
    """--quick has a shape set of its own in every suite, smaller than the full one."""
    from dlkernels.bench.suites import conv2d, linear, loss, pool

    assert len(conv2d.QUICK) < len(conv2d.RESNET50 + conv2d.SEED + conv2d.DEPTHWISE)
    assert len(pool.QUICK) < len(pool.FULL) and len(linear.QUICK) < len(linear.FULL)

    def largest(specs):
        return max(math.prod(loss.ce_logits_shape(spec)) for spec in specs)

    assert largest(loss.CE_QUICK) < largest(loss.CE_FULL)
    assert {spec[1] for spec in pool.QUICK} == set(pool.PoolSuite.ops)


def test_plot(smoke_run, tmp_path):
    pytest.importorskip("matplotlib")
    _, run = smoke_run
    src = tmp_path / "run.json"
    src.write_text(json.dumps(run))
    out = bench.plot.plot_run(bench.report.load_run(str(src)), str(tmp_path / "run.png"))
    with open(out, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_plot_without_matplotlib_says_how_to_get_it(tmp_path):
    try:
        import matplotlib  # noqa: F401

        pytest.skip("matplotlib is installed")
    except ImportError:
        pass
    proc = _run("bench", "--smoke", "--suite", "activation", "--plot", str(tmp_path / "x.png"))
    assert proc.returncode != 0
    assert "dlkernels[plot]" in proc.stderr and "matplotlib" in proc.stderr
    assert not (tmp_path / "x.png").exists()


def _scaled(run, factor, pick=lambda i: i == 0):
    """A copy of `run` whose chosen rows' dlkernels times are `factor` times longer."""
    out = copy.deepcopy(run)
    i = 0
    for s in out["suites"]:
        for r in s["rows"]:
            if pick(i):
                r["dlkernels_s"] *= factor
                r["dlkernels_rounds_s"] = [t * factor for t in r["dlkernels_rounds_s"]]
                r["ratio"] = r["torch_s"] / r["dlkernels_s"]
                sp = r["ratio_spread"]
                r["ratio_spread"] = {k: v / factor for k, v in sp.items()}
            i += 1
    return out


def test_compare_flags_a_planted_regression_and_not_noise(smoke_run, tmp_path):
    _, run = smoke_run
    old, noise, slow = tmp_path / "old.json", tmp_path / "noise.json", tmp_path / "slow.json"
    old.write_text(json.dumps(run))
    noise.write_text(json.dumps(_scaled(run, 1.02, pick=lambda i: True)))  # 2%: within the band
    slow.write_text(json.dumps(_scaled(run, 1.5)))  # the first case a third slower
    first = bench.report.case_key(run["suites"][0]["suite"], run["suites"][0]["rows"][0])

    proc = _run("bench", "--compare", str(old), str(noise))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "REGRESSED" not in proc.stdout and "0 regressed" in proc.stdout

    proc = _run("bench", "--compare", str(old), str(slow), "--json", str(tmp_path / "cmp.json"))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "1 regressed" in proc.stdout
    assert next(ln for ln in proc.stdout.splitlines() if first in ln).rstrip().endswith("REGRESSED")
    with open(tmp_path / "cmp.json") as f:
        assert json.load(f)["regressed"] == [first]

    proc = _run("bench", "--compare", str(slow), str(old))  # the way back is an improvement
    assert proc.returncode == 0 and "1 improved" in proc.stdout


def test_compare_reads_results_of_the_earlier_layout(tmp_path):
    """The committed single-suite files still compare (against themselves: nothing changed)."""
    path = os.path.join(ROOT, "benchmarks", "results", "amd-f25-m17", "2026-11-26-6c2b5bdbc50d-conv2d.json")
    proc = _run("bench", "--compare", path, path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 regressed, 0 improved, 40 within" in proc.stdout


def test_unknown_subcommand_fails():
    assert _run("nonsense").returncode != 0
