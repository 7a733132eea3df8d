"""Which CPU instruction set the kernels use.

The library carries its CPU kernels compiled for AVX-512, AVX2 and a portable baseline and picks
the best the CPU supports. ``DLKERNELS_CPU_ISA`` (auto, avx512, avx2, baseline) or
:func:`set_cpu_isa` override that, e.g. to test or benchmark the portable path.
"""

import contextlib
from collections.abc import Iterator

from ._ext import ops


def cpu_isa() -> str:
    """The instruction set the CPU kernels run with now."""
    return ops._cpu_isa()


def cpu_isas() -> list:
    """The instruction sets this build and this CPU both support."""
    return list(ops._cpu_isas())


_ISA_INDEX = {"auto": -1, "baseline": 0, "avx2": 1, "avx512": 2}  # csrc/cpu/isa.h Isa


def set_cpu_isa(name: str) -> str:
    """Selects the CPU instruction set ('auto' for the best); returns the previous one."""
    if name not in _ISA_INDEX:
        raise ValueError(f"dlkernels: unknown CPU ISA '{name}'; expected one of auto, baseline, avx2, avx512")
    if name != "auto" and name not in cpu_isas():
        raise ValueError(
            f"dlkernels: CPU ISA '{name}' is not supported by this CPU or build; "
            f"supported: {', '.join(cpu_isas())}"
        )
    return ops._set_cpu_isa(_ISA_INDEX[name])


@contextlib.contextmanager
def use_cpu_isa(name: str) -> Iterator[str]:
    """Runs a block with the CPU kernels of one instruction set."""
    previous = set_cpu_isa(name)
    try:
        yield cpu_isa()
    finally:
        set_cpu_isa(previous)
