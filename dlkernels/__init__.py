"""dlkernels: hand-written CPU and CUDA kernels for the layers of a convolutional network,
registered as PyTorch operators (``torch.ops.dlkernels``) with autograd, functional and
``torch.nn`` front ends."""

from . import _ext, _ops, autograd, functional, init, nn  # noqa: F401  (load the library, then register its Python half)
from ._build_info import VERSION as __version__
from .cpu import cpu_isa, cpu_isas, set_cpu_isa, use_cpu_isa

ops = _ext.ops

__all__ = [
    "__version__",
    "ops",
    "autograd",
    "functional",
    "init",
    "nn",
    "cpu_isa",
    "cpu_isas",
    "set_cpu_isa",
    "use_cpu_isa",
]
