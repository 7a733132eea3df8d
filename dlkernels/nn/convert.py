"""Swap the supported ``torch.nn`` layers of a model for their dlkernels twins."""

import copy

import torch

# torch class -> dlkernels class, filled by dlkernels/nn/__init__.py from its layers (each
# subclasses its torch twin directly). Exact types only: a user's subclass of torch.nn.ReLU may
# override forward, and swapping it would silently drop that.
SUPPORTED = {}


def register_twins(layers) -> None:
    for cls in layers:
        if isinstance(cls, type) and issubclass(cls, torch.nn.Module):
            base = cls.__bases__[0]
            assert base.__module__.startswith("torch.nn"), f"{cls.__name__} must subclass its torch.nn twin"
            SUPPORTED[base] = cls


def convert(module: torch.nn.Module, inplace: bool = False) -> torch.nn.Module:
    """Returns ``module`` with every supported layer replaced by its dlkernels twin.

    Parameters, buffers and hooks are kept (the twins add no state of their own); other modules
    are left alone. With ``inplace=False`` (default) the model is deep-copied first.
    """
    if not inplace:
        module = copy.deepcopy(module)
    for m in module.modules():
        twin = SUPPORTED.get(type(m))
        if twin is not None:
            m.__class__ = twin
    return module
