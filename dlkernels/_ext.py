"""Loads the compiled operator library, with a clear error when it cannot be used."""

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


def check_torch_version(built: str, running: str) -> None:
    """The C++ ABI of torch changes between minor releases: refuse a mismatch up front, before
    the dynamic loader fails with an undefined symbol."""
    if _major_minor(built) != _major_minor(running):
        raise ImportError(
            f"dlkernels was built against torch {built}, but torch {running} is installed. "
            "Its compiled operators use torch's C++ ABI, which changes between minor releases: "
            f"install torch {'.'.join(map(str, _major_minor(built)))}.x or rebuild dlkernels "
            "(`pip install --no-build-isolation --force-reinstall --no-deps .`)."
        )


check_torch_version(_build_info.TORCH_VERSION, torch.__version__)

try:
    from . import _C  # noqa: F401  (loading it registers torch.ops.dlkernels.*)
except (ImportError, OSError) as e:
    raise ImportError(
        f"dlkernels: failed to load the compiled library ({e}). It was built against torch "
        f"{_build_info.TORCH_VERSION} (running {torch.__version__}); rebuild it against this torch."
    ) from e

ops = torch.ops.dlkernels
