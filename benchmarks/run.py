#!/usr/bin/env python3
"""Runs the dlkernels benchmark suites and records the results in benchmarks/results/.

    python benchmarks/run.py                          # every suite, CPU, recorded
    python benchmarks/run.py --suite activation --device cuda
    python benchmarks/run.py --alloc fresh            # glibc defaults (times include page faults)
    python benchmarks/run.py --alloc thp              # torch allocator on transparent huge pages
    python benchmarks/run.py --quick --no-save        # smoke run

All options are those of ``python -m dlkernels bench`` (``--help``); this script only points
``--out-dir`` here and saves by default. Each run writes
results/<machine-key>/<date>-<commit>-<suites>[-<N>t][-<alloc>-alloc].json (machine, ceilings,
every case with its per-round times) and the same tables as .md.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

try:
    import dlkernels  # noqa: F401
except ImportError:  # a source checkout built in place (setup.py build_ext --inplace)
    sys.path.insert(0, os.path.dirname(HERE))

from dlkernels.cli import main  # noqa: E402

if __name__ == "__main__":
    args = sys.argv[1:]
    if not any(a == "--out-dir" or a.startswith("--out-dir=") for a in args):
        args += ["--out-dir", os.path.join(HERE, "results")]
    if "--no-save" not in args and "--save" not in args:
        args.append("--save")
    sys.exit(main(["bench", *args]))
