"""How large host allocations behave during a benchmark, chosen before the process starts.

A fresh out-of-place result of N bytes comes from the C library's malloc (torch's CPU allocator
does not cache). glibc serves large blocks with mmap (above 128 KB, a threshold that adapts up
to 32 MB) and returns them to the OS on free, so every call of an out-of-place op on a 64 MB
tensor maps new pages and takes one page fault per 4 KB page on first touch. On a virtual machine
that costs more than the kernel itself (measured in benchmarks/README.md), on both sides alike,
and the comparison would be of the page-fault path, not of the kernels.

Three modes, applied equally to torch and dlkernels (they share the allocator):

* ``reuse`` (default): ``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_`` and
  ``MALLOC_TOP_PAD_`` make glibc serve large blocks from its heap and keep freed memory, so a
  call reuses the pages the previous call freed, as a training loop's steady state does with a
  caching allocator. Times are those of the kernels.
* ``fresh``: glibc's defaults; out-of-place times include the allocation and its page faults.
* ``thp``: glibc's defaults plus ``THP_MEM_ALLOC_ENABLE=1``, with which torch's CPU allocator
  asks for transparent huge pages for blocks of 2 MB and more: fresh outputs still fault, but
  once per 2 MB instead of once per 4 KB.

glibc reads these variables once, at start-up, so the mode is set by re-executing the process
with the environment changed (:func:`ensure`). CUDA tensors come from torch's caching allocator
either way; the mode changes nothing there.
"""

from __future__ import annotations

import os
import sys

REUSE_ENV = {
    "MALLOC_MMAP_THRESHOLD_": str(1 << 40),  # never mmap: large blocks come from the heap ...
    "MALLOC_TRIM_THRESHOLD_": str(1 << 40),  # ... and freed ones stay there (no trim to the OS)
    "MALLOC_TOP_PAD_": str(64 << 20),  # grow the heap in 64 MB steps
}
MODE_ENV = {
    "reuse": REUSE_ENV,
    "fresh": {},
    "thp": {"THP_MEM_ALLOC_ENABLE": "1"},
}
MODES = tuple(MODE_ENV)
_MARK = "DLKERNELS_BENCH_ALLOC"  # set on re-exec, so a failed switch cannot loop


def _ours(key: str) -> bool:
    """Environment variables that decide how large host blocks are allocated."""
    return key.startswith("MALLOC_") or key in ("GLIBC_TUNABLES", "THP_MEM_ALLOC_ENABLE")


def current() -> dict:
    """The allocation settings this process runs with, for the results file."""
    env = {k: os.environ[k] for k in sorted(os.environ) if _ours(k)}
    mode = next((m for m, e in MODE_ENV.items() if e == env), "custom")
    return {"mode": mode, "env": env}


def _argv() -> list:
    orig = getattr(sys, "orig_argv", None)  # Python >= 3.10: the exact command line
    if orig:
        return list(orig)
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name:  # started with -m
        name = spec.name[: -len(".__main__")] if spec.name.endswith(".__main__") else spec.name
        return [sys.executable, "-m", name, *sys.argv[1:]]
    return [sys.executable, *sys.argv]


def ensure(mode: str) -> None:
    """Re-executes this process with the malloc environment of ``mode`` unless it already has
    it. Call it first thing in a command-line entry point (it does not return on a switch)."""
    if mode not in MODES:
        raise ValueError(f"allocation mode must be one of {MODES}, not {mode!r}")
    if current()["mode"] == mode:
        return
    if os.environ.get(_MARK) == mode:
        raise RuntimeError(f"could not switch the malloc environment to {mode!r}: {current()}")
    env = {k: v for k, v in os.environ.items() if not _ours(k)}
    env.update(MODE_ENV[mode])
    env[_MARK] = mode
    sys.stdout.flush()
    sys.stderr.flush()
    argv = _argv()
    os.execve(sys.executable, argv, env)
