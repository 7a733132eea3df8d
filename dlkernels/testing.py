"""Run the CUDA kernels without a GPU: dlkernels' CUDA code compiled by g++ for a SIMT emulator
(csrc/cuda/sim: CUDA's thread, barrier and warp semantics on the CPU), called on CPU tensors.

    from dlkernels.testing import cuda_sim, cuda_sim_ops

    with cuda_sim():
        y = dlkernels.functional.relu(x.half())  # x on the CPU: the CUDA kernel runs, emulated
        y.sum().backward()                        # and the CUDA backward kernel too

Inside ``cuda_sim()`` every ``torch.ops.dlkernels`` operator called on CPU tensors whose CUDA kernel
the emulated library has (``cuda_sim_ops()``) runs that kernel instead of the CPU one, forward and
backward (the switch sits below autograd, so autograd, in-place version counters and the Python
layer are the ones of a real call), and ``dlkernels.functional`` admits CUDA's dtypes (float16,
bfloat16) for those ops. Other operators keep their CPU kernels. The emulation checks indexing,
bounds, synchronisation, arithmetic and dtype handling of the CUDA code, not its speed or its
behaviour under the real memory model (csrc/cuda/sim/README.md); a GPU run is the final word.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from . import _ext
from .functional import _checks

__all__ = ["cuda_sim", "cuda_sim_available", "cuda_sim_ops"]

_SIM_NAMESPACE = "dlkernels_sim"
_PLAIN = (torch.Tensor, torch.nn.Parameter)


def cuda_sim_available() -> bool:
    """Whether the emulated CUDA kernels were built (DLKERNELS_CUDA_SIM) and load here."""
    return _ext.load_cuda_sim()


@functools.cache
def cuda_sim_ops() -> frozenset[str]:
    """Names of the ``torch.ops.dlkernels`` operators whose CUDA kernels are emulated: the forward
    ops (named as in ``dlkernels.functional``, in-place forms included) and their backward ops.
    Read from what the emulated library registered, so a new CUDA family appears by itself."""
    if not cuda_sim_available():
        return frozenset()
    prefix = _SIM_NAMESPACE + "::"
    return frozenset(
        name[len(prefix) :]
        for name in torch._C._dispatch_get_all_op_names()
        if name.startswith(prefix) and torch._C._dispatch_has_kernel_for_dispatch_key(name, "CPU")
    )


def _on_plain_cpu_tensors(args, kwargs) -> bool:
    # Only real CPU tensors: fake, functional or meta tensors (tracing, opcheck) keep their kernels.
    tensors = [t for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
    return bool(tensors) and all(type(t) in _PLAIN and t.device.type == "cpu" for t in tensors)


class _CudaSimMode(TorchDispatchMode):
    """Below autograd: sends dlkernels::<op> on CPU tensors to dlkernels_sim::<op> (same schema)."""

    def __init__(self, ops: frozenset[str], on_fallback: Callable[[str], None] | None):
        super().__init__()
        self._ops = ops
        self._on_fallback = on_fallback

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func.namespace == "dlkernels" and _on_plain_cpu_tensors(args, kwargs):
            name = func._opname
            if name in self._ops:
                sim = getattr(getattr(torch.ops.dlkernels_sim, name), func._overloadname)
                return sim(*args, **kwargs)
            if self._on_fallback is not None:
                self._on_fallback(name)
        return func(*args, **kwargs)


@contextlib.contextmanager
def cuda_sim(*, on_fallback: Callable[[str], None] | None = None) -> Iterator[frozenset[str]]:
    """Within the block, dlkernels ops on CPU tensors run their CUDA kernels on the emulator (see
    the module's doc); yields ``cuda_sim_ops()``. ``on_fallback(op_name)`` is called before an
    operator without an emulated kernel runs its CPU kernel on CPU tensors, by dlkernels.functional
    (before its dtype check) and by the dispatch (so possibly twice per call); a test can skip from
    it. Nests. The redirection is per thread (a torch dispatch mode), the dtype admission of
    dlkernels.functional process-wide."""
    if not cuda_sim_available():
        raise RuntimeError(
            "dlkernels: the emulated CUDA kernels were not built (build with DLKERNELS_CUDA_SIM=1 and g++)"
        )
    ops = cuda_sim_ops()
    before = _checks.CUDA_SIM
    _checks.CUDA_SIM = (ops, on_fallback)
    try:
        with _CudaSimMode(ops, on_fallback):
            yield ops
    finally:
        _checks.CUDA_SIM = before
