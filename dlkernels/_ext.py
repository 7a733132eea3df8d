"""Loads the compiled operator libraries, with a clear error when they cannot be used.

`_C` holds every schema and the CPU kernels; `_cuda` (when built) the CUDA kernels. Both are built
on torch's stable ABI for `TORCH_TARGET` and newer, so one build serves every such torch; `_cuda`
is loaded only under a CUDA build of torch (it needs libtorch_cuda's current-stream API).
`_cuda_sim` (when built) holds the CUDA kernels compiled for the SIMT emulator, registered for CPU
tensors as `torch.ops.dlkernels_sim.*`; it is loaded on first use by dlkernels.testing."""

import importlib.util

import torch

try:
    from . import _build_info
except ImportError as e:  # a source checkout that was never built
    raise ImportError(
        "dlkernels: the compiled extension is missing. Build it with "
        "`pip install --no-build-isolation .` (or `python setup.py build_ext --inplace`)."
    ) from e


def _major_minor(version: str) -> tuple:
    return tuple(int(part) for part in version.split("+")[0].split(".")[:2])


def check_torch_version(target: tuple, running: str) -> None:
    """The library uses torch's stable ABI as of `target`: any torch from there up can load it;
    an older one lacks some of the functions it calls, so refuse it before the loader fails."""
    if _major_minor(running) < tuple(target):
        raise ImportError(
            f"dlkernels needs torch >= {target[0]}.{target[1]} (its kernels use torch's stable ABI "
            f"of that release), but torch {running} is installed."
        )


check_torch_version(_build_info.TORCH_TARGET, torch.__version__)

try:
    from . import _C  # noqa: F401  (loading it registers torch.ops.dlkernels.*)
except (ImportError, OSError) as e:
    raise ImportError(f"dlkernels: failed to load the compiled library ({e}).") from e


def _load_cuda() -> bool:
    if not _build_info.WITH_CUDA or torch.version.cuda is None:
        return False
    if importlib.util.find_spec(f"{__package__}._cuda") is None:
        return False
    try:
        from . import _cuda  # noqa: F401  (registers the CUDA kernels)
    except (ImportError, OSError) as e:
        raise ImportError(f"dlkernels: failed to load the CUDA kernels ({e}).") from e
    return True


CUDA_LOADED = _load_cuda()
"""Whether the CUDA kernels are registered in this process."""

ops = torch.ops.dlkernels


_cuda_sim_loaded = None


def load_cuda_sim() -> bool:
    """Loads `_cuda_sim` once; False when it was not built. Not at import: only tests need it."""
    global _cuda_sim_loaded
    if _cuda_sim_loaded is None:
        if (
            not getattr(_build_info, "WITH_CUDA_SIM", False)
            or importlib.util.find_spec(f"{__package__}._cuda_sim") is None
        ):
            _cuda_sim_loaded = False
        else:
            try:
                from . import _cuda_sim  # noqa: F401  (registers torch.ops.dlkernels_sim.*)
            except (ImportError, OSError) as e:
                raise ImportError(f"dlkernels: failed to load the emulated CUDA kernels ({e}).") from e
            _cuda_sim_loaded = True
    return _cuda_sim_loaded
