"""Runs a suite: checks that both sides agree, times them interleaved, and collects the rows."""

from __future__ import annotations

import datetime
import re
import sys
from collections.abc import Callable

import torch

from . import alloc, machine
from .ceilings import Ceilings
from .core import GBPS, Case, Options, Suite
from .load import CpuShare, disturbance, loadavg
from .report import fmt_shape
from .timing import geomean, interleaved, median, spread


def _rate(suite: Suite, bytes_: int, flops: int, seconds: float) -> float | None:
    work = bytes_ if suite.rate == GBPS else flops
    if not work or seconds <= 0:
        return None
    return work / seconds / 1e9


def _verify(case: Case) -> None:
    """Both sides must compute the same thing before their times are compared."""
    expected = case.torch_fn()
    actual = case.dlk_fn()
    try:
        if case.compare is not None:
            case.compare(actual, expected)
        else:
            torch.testing.assert_close(actual, expected, rtol=case.rtol, atol=case.atol, equal_nan=True)
    except AssertionError as e:
        raise AssertionError(
            f"benchmark case {case.name} {tuple(case.shape)} {case.dtype}: dlkernels and torch disagree:\n{e}"
        ) from None


def check_device(device: str) -> None:
    if device.startswith("cuda"):
        from dlkernels import _build_info

        if not _build_info.WITH_CUDA:
            raise RuntimeError("dlkernels was built without CUDA kernels; rebuild with DLKERNELS_CUDA=1")
        if not torch.cuda.is_available():
            raise RuntimeError("no CUDA device is visible to torch")
        index = torch.device(device).index
        if index is not None:  # "cuda" alone: the current device
            torch.cuda.set_device(index)
    elif device != "cpu":
        raise ValueError(f"device must be cpu or cuda[:N], not {device!r}")


def size_name(opts: Options) -> str:
    return "smoke" if opts.smoke else "quick" if opts.quick else "full"


def run_suite(
    suite: Suite,
    opts: Options,
    *,
    rounds: int = 5,
    min_run_time: float = 0.2,
    threads: int | None = None,
    pattern: str | None = None,
    verify: bool = True,
    busy_limit: float | None = 0.1,
    attempts: int = 3,
    progress: Callable[[str], None] | None = None,
    ceilings: Ceilings | None = None,
) -> dict:
    """Measures every case of ``suite`` (those whose name matches ``pattern``, a regex) and returns
    the result: machine, settings, the ceilings its rates are read against, one row per case, and
    the suite's ops that dlkernels does not have yet (``missing``).

    A case measured while other processes used more than ``busy_limit`` of the CPUs' time is
    measured again, up to ``attempts`` times in all (the least disturbed attempt is kept; each
    row records its attempts and their disturbance). ``busy_limit=None`` measures once. A shared
    reference (e.g. the copy at one size) is reused only while its measurement looks sound, and
    measured again with the next case otherwise (``_reference_ok``)."""
    if progress is None:

        def progress(line: str) -> None:
            print(line, file=sys.stderr, flush=True)

    check_device(opts.device)
    if threads:
        torch.set_num_threads(threads)
    threads = torch.get_num_threads()
    if not opts.dtypes:
        opts.dtypes = suite.default_dtypes(opts.device)
    regex = re.compile(pattern) if pattern else None
    if ceilings is None:
        ceilings = Ceilings(opts.device, threads=threads, busy_limit=busy_limit, size=size_name(opts))

    desc = machine.describe(opts.device)
    result = {
        "suite": suite.name,
        "description": suite.description,
        "rate_unit": suite.rate,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine_tag": machine.tag(desc, opts.device),
        "machine": desc,
        "config": {
            "device": opts.device,
            "dtypes": [str(d).replace("torch.", "") for d in opts.dtypes],
            "sizes": opts.sizes or size_name(opts),
            "threads": threads,
            "rounds": rounds,
            "min_run_time_s": min_run_time,
            "filter": pattern,
            "busy_limit": busy_limit,
            "alloc": alloc.current(),
            "grad_mode": torch.is_grad_enabled(),
            # Other processes on a small machine stall multi-threaded kernels (a parallel region
            # waits for its slowest thread): the load before and after says whether that happened.
            "load_average_start": loadavg(),
            "timing": "torch.utils.benchmark.Timer.blocked_autorange per round; sides interleaved "
            "(order reversed every other round); median over rounds",
        },
        "ops": list(suite.ops),
        "missing": suite.missing(),
        "rows": [],
    }
    ref_cache: dict = {}
    share = CpuShare()
    for case in suite.cases(opts):
        if regex and not regex.search(case.name):
            continue
        if verify and case.verify:
            _verify(case)
        ref = case.reference
        cached = ref_cache.get(ref.key) if ref is not None else None
        # A reference measured under load, or implausibly slow, is measured again with this case.
        new_ref = ref is not None and (cached is None or not cached["ok"])
        fns = [case.torch_fn, case.dlk_fn] + ([ref.fn] if new_ref else [])
        best = None
        for tries in range(1, max(1, attempts) + 1):
            case_share = CpuShare()
            times = interleaved(
                fns, rounds=rounds, min_run_time=min_run_time, threads=threads, device=opts.device
            )
            used = case_share.result()
            elsewhere = disturbance(used)
            if best is None or elsewhere < best[1]:
                best = (times, elsewhere, used, tries)
            if busy_limit is None or used is None or elsewhere <= busy_limit:
                break
            getattr(progress, "note", progress)(
                f"  {_label(case.name, case.note)} {fmt_shape(case.shape)}: other processes took "
                f"{100 * elsewhere:.0f}% of the CPUs, measuring again"
            )
        times, elsewhere, used, tries = best
        disturbed = bool(busy_limit is not None and used and elsewhere > busy_limit)
        t_torch, t_dlk = median(times[0]), median(times[1])
        if new_ref:
            fresh = {"s": median(times[2]), "rounds_s": times[2], "disturbed": disturbed}
            fresh["ok"] = _reference_ok(fresh, ref, case, t_torch, t_dlk)
            # Keep the sounder of the two measurements, then the faster (load only slows a copy).
            if cached is None or (not cached["ok"], cached["s"]) > (not fresh["ok"], fresh["s"]):
                ref_cache[ref.key] = fresh
        row = {
            "case": case.name,
            "op": case.op or suite.name,
            "shape": list(case.shape),
            "numel": int(torch.Size(case.shape).numel()),
            "dtype": str(case.dtype).replace("torch.", ""),
            "itemsize": torch.empty((), dtype=case.dtype).element_size(),
            "memory_format": case.memory_format,
            "torch_s": t_torch,
            "dlkernels_s": t_dlk,
            "ratio": t_torch / t_dlk,
            "torch_spread_s": spread(times[0]),
            "dlkernels_spread_s": spread(times[1]),
            # Per-round ratios: the rounds interleave the sides, so each round is a fair pair.
            "ratio_spread": spread([a / b for a, b in zip(times[0], times[1])]),
            "torch_rate": _rate(suite, case.bytes, case.flops, t_torch),
            "dlkernels_rate": _rate(suite, case.bytes, case.flops, t_dlk),
            "rate_unit": suite.rate,
            "bytes": case.bytes,
            "flops": case.flops,
            "torch_rounds_s": times[0],
            "dlkernels_rounds_s": times[1],
            "note": case.note,
            "attempts": tries,
            "cpu_used_elsewhere": used,
            "disturbed": disturbed,
        }
        if ref is not None:
            got = ref_cache[ref.key]
            row["reference"] = ref.name
            row["reference_s"] = got["s"]
            row["reference_rate"] = _rate(suite, ref.bytes, ref.flops, got["s"])
            row["reference_ok"] = got["ok"]
        _apply_ceiling(row, *ceilings.for_rate(suite.rate, case.dtype))
        result["rows"].append(row)
        progress(_progress_line(row, suite.rate))
        del case, fns, times
    result["config"]["load_average_end"] = loadavg()
    # Fractions of all CPUs' time during the run used by other processes / stolen by the host.
    result["config"]["cpu_used_elsewhere"] = share.result()
    result["ceilings"] = ceilings.as_dict()
    result["geomean"] = geomeans(result["rows"])
    result["summary"] = suite.summary(result["rows"])
    return result


def _apply_ceiling(row: dict, name: str, ceiling: dict | None) -> None:
    if not ceiling:
        return
    row["ceiling"] = name
    row["ceiling_rate"] = ceiling["rate"]
    row["ceiling_disturbed"] = ceiling.get("disturbed", False)
    for side in ("torch", "dlkernels"):
        rate = row[f"{side}_rate"]
        row[f"{side}_pct_of_ceiling"] = None if rate is None else 100 * rate / ceiling["rate"]


def remeasure_ceilings(results: list, ceilings: Ceilings) -> list:
    """At the end of a run: ceilings measured under load are measured again, and so are those a
    case beat (read in a slow phase of a shared host, which the load counters do not see: 315
    GFLOP/s once against 415-450 in later runs), and the rows' percentages follow the sounder
    value. Returns the names measured again."""
    beaten = {
        row["ceiling"]
        for result in results
        for row in result["rows"]
        if row.get("ceiling")
        and any((row.get(f"{side}_pct_of_ceiling") or 0) > 100 for side in ("torch", "dlkernels"))
    }
    again = ceilings.retry_disturbed(also=beaten)
    if again:
        values = ceilings.as_dict()
        for result in results:
            for row in result["rows"]:
                if row.get("ceiling") in again:
                    _apply_ceiling(row, row["ceiling"], values.get(row["ceiling"]))
            result["ceilings"] = values
    return again


# A reference is a ceiling for the cases that share it: one that moves its bytes this many times
# slower than the faster side of its case moves the case's was disturbed, whatever the load
# counters said (they miss stalls inside the hypervisor).
REFERENCE_SLACK = 4.0


def _reference_ok(meas: dict, ref, case: Case, t_torch: float, t_dlk: float) -> bool:
    if meas["disturbed"]:
        return False
    rounds = meas["rounds_s"]
    if len(rounds) > 1 and max(rounds) > 2 * min(rounds):  # rounds 2x apart: the machine changed
        return False
    work_ref, work_case = ref.bytes or ref.flops, case.bytes or case.flops
    if work_ref and work_case and meas["s"] > 0:
        if work_ref / meas["s"] * REFERENCE_SLACK < work_case / min(t_torch, t_dlk):
            return False
    return True


def geomeans(rows: list) -> dict:
    """Geometric mean of torch/dlkernels over all rows, and per dtype."""
    if not rows:  # None rather than NaN, which strict JSON readers reject
        return {"all": None}
    out = {"all": geomean([r["ratio"] for r in rows])}
    for dtype in dict.fromkeys(r["dtype"] for r in rows):
        out[dtype] = geomean([r["ratio"] for r in rows if r["dtype"] == dtype])
    return out


def _label(name: str, note: str) -> str:
    return f"{name} [{note}]" if note else name


def _progress_line(row: dict, unit: str) -> str:
    rate = row["dlkernels_rate"]
    rate_txt = f", {rate:.1f} {unit}" if rate else ""
    flag = " (disturbed)" if row["disturbed"] else ""
    if row.get("reference_ok") is False:
        flag += f" ({row['reference']} reference disturbed)"
    return (
        f"  {_label(row['case'], row['note']):<36} {fmt_shape(row['shape']):<18} {row['dtype']:<8} "
        f"torch {row['torch_s'] * 1e6:10.1f} us  dlkernels {row['dlkernels_s'] * 1e6:10.1f} us  "
        f"{row['ratio']:5.2f}x{rate_txt}{flag}"
    )
