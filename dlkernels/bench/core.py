"""What a benchmark suite is made of: cases (one side-by-side comparison each) and suites (a
family of cases, e.g. the activations), plus the registry that ``--suite NAME`` looks in."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

GBPS = "GB/s"  # memory-bound ops: bytes a kernel must move (reads + writes) per second
GFLOPS = "GFLOP/s"  # compute-bound ops


@dataclass
class Reference:
    """A third callable timed in the same rounds as a case, as a ceiling to compare against
    (e.g. ``y.copy_(x)`` at the same size for a memory-bound op). Cases that share a ``key`` share
    one measurement."""

    name: str
    key: Hashable
    fn: Callable[[], Any]
    bytes: int = 0
    flops: int = 0


@dataclass
class Case:
    """One comparison: the same work done by torch and by dlkernels, on the same inputs (same
    dtype, device and memory format). The callables return the result (in-place ops return the
    tensor they changed) so the runner can check that both sides agree before timing them."""

    name: str
    shape: Sequence[int]
    dtype: torch.dtype
    torch_fn: Callable[[], Any]
    dlk_fn: Callable[[], Any]
    bytes: int = 0  # minimal memory traffic of one call (for GB/s)
    flops: int = 0  # arithmetic of one call (for GFLOP/s)
    reference: Reference | None = None
    verify: bool = True
    rtol: float | None = None  # None: torch.testing.assert_close's defaults for the dtype
    atol: float | None = None
    note: str = ""
    op: str = ""  # the dlkernels.functional name the case exercises (groups the plot and tables)
    memory_format: str = "contiguous"  # of the inputs, the same on both sides
    # Replaces the rtol/atol check: compare(actual, expected) raises AssertionError on a mismatch
    # (e.g. a tolerance scaled to each output's magnitude for long reductions).
    compare: Callable[[Any, Any], None] | None = None


@dataclass
class Options:
    """What the user asked for; a suite reads the fields it understands."""

    device: str = "cpu"
    dtypes: Sequence[torch.dtype] = ()  # empty: the suite's default for the device
    sizes: str | None = None  # suite-specific size set (e.g. "64K,1M,16M"); None: the default
    quick: bool = False
    smoke: bool = False  # tiny shapes: checks that every case runs, in seconds (tests)
    extra: dict = field(default_factory=dict)


class Suite:
    """A family of cases. Subclasses set ``name``, ``description`` and ``rate`` (GBPS or GFLOPS)
    and implement ``cases``; ``summary`` may add lines under the table (e.g. a target check)."""

    name: str = ""
    description: str = ""
    rate: str = GBPS
    ops: tuple = ()  # dlkernels.functional names the suite exercises

    def missing(self) -> list:
        """The suite's ops that this build of dlkernels does not have yet: listed in the results
        instead of silently producing no rows."""
        return [op for op in self.ops if not has_op(op)]

    def default_dtypes(self, device: str) -> list:
        return [torch.float32]

    def cases(self, opts: Options) -> Iterator[Case]:
        raise NotImplementedError

    def summary(self, rows: list) -> list:
        return []


def has_op(name: str) -> bool:
    """Whether dlkernels.functional has ``name`` (looked up at call time, so an op that lands
    later, or a test's stand-in, is picked up)."""
    import dlkernels.functional

    return hasattr(dlkernels.functional, name)


def functional(name: str) -> Callable:
    """``dlkernels.functional.<name>``, looked up at each call."""
    import dlkernels.functional

    def call(*args, **kwargs):
        return getattr(dlkernels.functional, name)(*args, **kwargs)

    call.__name__ = name
    return call


_SUITES: dict = {}


def register_suite(cls):
    """Class decorator: makes a Suite available to ``--suite <name>``."""
    suite = cls()
    if not suite.name:
        raise ValueError(f"{cls.__name__} has no name")
    if suite.name in _SUITES:
        raise ValueError(f"benchmark suite {suite.name!r} is registered twice")
    _SUITES[suite.name] = suite
    return cls


def _discover() -> None:
    # Every module in dlkernels/bench/suites registers its suites on import: a new op family
    # plugs in by adding a file there.
    package = importlib.import_module(__name__.rsplit(".", 1)[0] + ".suites")
    for mod in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{mod.name}")


def all_suites() -> dict:
    """name -> Suite, for every registered suite, in name order."""
    if not _SUITES:
        _discover()
    return dict(sorted(_SUITES.items()))


def get_suite(name: str) -> Suite:
    available = all_suites()
    if name not in available:
        raise KeyError(f"unknown benchmark suite {name!r}; available: {', '.join(available)} (or 'all')")
    return available[name]
