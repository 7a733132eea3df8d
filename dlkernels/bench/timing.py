"""Timing two (or more) callables side by side.

Each measurement is ``torch.utils.benchmark.Timer.blocked_autorange``: it warms up, picks a
block size so that timer overhead is negligible, synchronises the accelerator before reading the
clock (so asynchronous CUDA work is timed to its end) and returns the median time per call over
the blocks. The callables are measured in turn, round after round (a, b, a, b, ...; the order is
reversed every other round so neither side always runs first), and each side's time is the
median over its rounds. On a small, shared machine the speed drifts by tens of percent over
seconds; interleaving puts both sides in the same conditions, the medians drop outliers.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.utils.benchmark import Timer


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def measure(fn: Callable[[], Any], *, min_run_time: float, threads: int) -> float:
    """Median seconds per call of ``fn`` (one blocked_autorange)."""
    # Timer runs with num_threads=1 unless told otherwise: pass the thread count explicitly.
    timer = Timer(stmt="fn()", globals={"fn": fn}, num_threads=threads)
    return timer.blocked_autorange(min_run_time=min_run_time).median


def interleaved(
    fns: Sequence[Callable[[], Any]],
    *,
    rounds: int,
    min_run_time: float,
    threads: int,
    device: str = "cpu",
) -> list:
    """Per callable, its per-round median seconds per call (``rounds`` values each)."""
    for fn in fns:  # warm-up: first-call costs (allocations, lazy init) stay out of the timing
        fn()
    _sync(device)
    times: list = [[] for _ in fns]
    for r in range(rounds):
        order = range(len(fns)) if r % 2 == 0 else reversed(range(len(fns)))
        for i in order:
            times[i].append(measure(fns[i], min_run_time=min_run_time, threads=threads))
    return times


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def geomean(values: Sequence[float]) -> float:
    values = [v for v in values if v > 0]
    if not values:
        return float("nan")
    return statistics.geometric_mean(values)


def spread(values: Sequence[float]) -> dict:
    """Median, min, max and interquartile range of per-round values: what a comparison of two
    runs needs to tell a change from the run's own noise."""
    vals = sorted(values)
    if not vals:
        return {"median": float("nan"), "min": float("nan"), "max": float("nan"), "iqr": float("nan")}
    if len(vals) >= 4:
        q = statistics.quantiles(vals, n=4, method="inclusive")
        iqr = q[2] - q[0]
    else:  # too few rounds for quartiles: the full range is the honest spread
        iqr = vals[-1] - vals[0]
    return {"median": statistics.median(vals), "min": vals[0], "max": vals[-1], "iqr": iqr}
