"""Side-by-side benchmarks of dlkernels against PyTorch.

A *suite* (``dlkernels.bench.suites.<family>``) yields *cases*: the same work done by torch and by
dlkernels on the same inputs. The runner checks that both sides agree, times them interleaved
over several rounds (``timing``), and reports torch time / dlkernels time per case, the achieved
GB/s or GFLOP/s, and the geometric mean of the ratios; results are printed as a text table or
Markdown and saved as JSON with a description of the machine (``report``, ``machine``).

Command line: ``python -m dlkernels bench --suite activation`` (``--help`` for the options).
"""

from . import alloc, machine, report
from .core import GBPS, GFLOPS, Case, Options, Reference, Suite, all_suites, get_suite, register_suite
from .runner import run_suite

__all__ = [
    "GBPS",
    "GFLOPS",
    "Case",
    "Options",
    "Reference",
    "Suite",
    "all_suites",
    "alloc",
    "get_suite",
    "machine",
    "register_suite",
    "report",
    "run_suite",
]
