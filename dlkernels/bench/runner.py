"""Runs a suite: checks that both sides agree, times them interleaved, and collects the rows."""

from __future__ import annotations

import datetime
import os
import re
import sys
import time
from typing import Callable

import torch

from . import alloc, machine
from .core import GBPS, Case, Options, Suite
from .timing import geomean, interleaved, median


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
) -> dict:
    """Measures every case of ``suite`` (those whose name matches ``pattern``, a regex) and returns
    the result: machine, settings and one row per case.

    A case measured while other processes used more than ``busy_limit`` of the CPUs' time is
    measured again, up to ``attempts`` times in all (the least disturbed attempt is kept; each
    row records its attempts and their disturbance). ``busy_limit=None`` measures once."""
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
            "sizes": opts.sizes or ("quick" if opts.quick else "default"),
            "threads": threads,
            "rounds": rounds,
            "min_run_time_s": min_run_time,
            "filter": pattern,
            "busy_limit": busy_limit,
            "alloc": alloc.current(),
            "grad_mode": torch.is_grad_enabled(),
            # Other processes on a small machine stall multi-threaded kernels (a parallel region
            # waits for its slowest thread): the load before and after says whether that happened.
            "load_average_start": _loadavg(),
            "timing": "torch.utils.benchmark.Timer.blocked_autorange per round; sides interleaved "
            "(order reversed every other round); median over rounds",
        },
        "rows": [],
    }
    ref_cache: dict = {}
    share = CpuShare()
    for case in suite.cases(opts):
        if regex and not regex.search(case.name):
            continue
        if verify and case.verify:
            _verify(case)
        fns = [case.torch_fn, case.dlk_fn]
        ref = case.reference
        new_ref = ref is not None and ref.key not in ref_cache
        if new_ref:
            fns.append(ref.fn)
        best = None
        for tries in range(1, max(1, attempts) + 1):
            case_share = CpuShare()
            times = interleaved(
                fns, rounds=rounds, min_run_time=min_run_time, threads=threads, device=opts.device
            )
            used = case_share.result()
            elsewhere = used["others"] + used["steal"] if used else 0.0
            if best is None or elsewhere < best[1]:
                best = (times, elsewhere, used, tries)
            if busy_limit is None or used is None or elsewhere <= busy_limit:
                break
            progress(
                f"  {case.name} {tuple(case.shape)}: other processes took {100 * elsewhere:.0f}% "
                f"of the CPUs, measuring again"
            )
        times, _, used, _ = best
        if new_ref:
            ref_cache[ref.key] = median(times[2])
        t_torch, t_dlk = median(times[0]), median(times[1])
        row = {
            "case": case.name,
            "shape": list(case.shape),
            "numel": int(torch.Size(case.shape).numel()),
            "dtype": str(case.dtype).replace("torch.", ""),
            "itemsize": torch.empty((), dtype=case.dtype).element_size(),
            "torch_s": t_torch,
            "dlkernels_s": t_dlk,
            "ratio": t_torch / t_dlk,
            "torch_rate": _rate(suite, case.bytes, case.flops, t_torch),
            "dlkernels_rate": _rate(suite, case.bytes, case.flops, t_dlk),
            "bytes": case.bytes,
            "flops": case.flops,
            "torch_rounds_s": times[0],
            "dlkernels_rounds_s": times[1],
            "note": case.note,
            "attempts": tries,
            "cpu_used_elsewhere": used,
        }
        if ref is not None:
            t_ref = ref_cache[ref.key]
            row["reference"] = ref.name
            row["reference_s"] = t_ref
            row["reference_rate"] = _rate(suite, ref.bytes, ref.flops, t_ref)
        result["rows"].append(row)
        progress(_progress_line(row, suite.rate))
        del case, fns, times
    result["config"]["load_average_end"] = _loadavg()
    # Fractions of all CPUs' time during the run used by other processes / stolen by the host.
    result["config"]["cpu_used_elsewhere"] = share.result()
    result["geomean"] = geomeans(result["rows"])
    result["summary"] = suite.summary(result["rows"])
    return result


class CpuShare:
    """How much CPU other processes (and the hypervisor, as steal time) took while we ran: on a
    2-CPU machine any of it stalls a 2-thread kernel, since a parallel region waits for its slowest
    thread. From /proc/stat (Linux); None elsewhere."""

    def __init__(self):
        self.start = self._snapshot()

    @staticmethod
    def _snapshot():
        try:
            with open("/proc/stat") as f:
                fields = [int(v) for v in f.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        hz = os.sysconf("SC_CLK_TCK")
        user, nice, system, idle, iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
        times = os.times()
        return {
            "busy": (user + nice + system + irq + softirq) / hz,
            "steal": steal / hz,
            "self": times.user + times.system,
            "wall": time.monotonic(),
        }

    def result(self) -> dict | None:
        end = self._snapshot()
        if self.start is None or end is None:
            return None
        d = {k: end[k] - self.start[k] for k in end}
        capacity = d["wall"] * (os.cpu_count() or 1)
        if capacity <= 0:
            return None
        return {
            "others": round(max(0.0, d["busy"] - d["self"]) / capacity, 3),
            "steal": round(d["steal"] / capacity, 3),
        }


def _loadavg() -> list | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def geomeans(rows: list) -> dict:
    """Geometric mean of torch/dlkernels over all rows, and per dtype."""
    out = {"all": geomean([r["ratio"] for r in rows])}
    for dtype in dict.fromkeys(r["dtype"] for r in rows):
        out[dtype] = geomean([r["ratio"] for r in rows if r["dtype"] == dtype])
    return out


def _progress_line(row: dict, unit: str) -> str:
    rate = row["dlkernels_rate"]
    rate_txt = f", {rate:.1f} {unit}" if rate else ""
    return (
        f"  {row['case']:<22} {row['numel']:>11} {row['dtype']:<8} torch {row['torch_s'] * 1e6:10.1f} us"
        f"  dlkernels {row['dlkernels_s'] * 1e6:10.1f} us  {row['ratio']:5.2f}x{rate_txt}"
    )
