"""Side-by-side benchmarks of dlkernels against PyTorch.

A *suite* (``dlkernels.bench.suites.<family>``) yields *cases*: the same work done by torch and by
dlkernels on the same inputs. The runner checks that both sides agree, times them interleaved
over several rounds (``timing``), and reports torch time / dlkernels time per case, the achieved
GB/s or GFLOP/s, and the geometric mean of the ratios; results are printed as a text table or
Markdown and saved as JSON with a description of the machine (``report``, ``machine``).

Command line: ``python -m dlkernels bench --suite activation`` (``--help`` for the options).
"""

from . import alloc, compare, machine, plot, report, runner
from .ceilings import Ceilings
from .core import (
    GBPS,
    GFLOPS,
    Case,
    Options,
    Reference,
    Suite,
    all_suites,
    functional,
    get_suite,
    has_op,
    register_suite,
)
from .runner import run_suite

__all__ = [
    "GBPS",
    "GFLOPS",
    "Case",
    "Ceilings",
    "Options",
    "Reference",
    "Suite",
    "all_suites",
    "alloc",
    "compare",
    "functional",
    "get_suite",
    "has_op",
    "machine",
    "plot",
    "register_suite",
    "report",
    "runner",
    "run_suite",
]
