"""Swap the supported ``torch.nn`` layers of a model for their dlkernels twins."""

import copy

import torch

from . import activation, conv2d

# torch class -> dlkernels class. Exact types only: a user's subclass of torch.nn.ReLU may
# override forward, and swapping it would silently drop that.
SUPPORTED = {
    torch.nn.Conv2d: conv2d.Conv2d,
    torch.nn.ReLU: activation.ReLU,
    torch.nn.LeakyReLU: activation.LeakyReLU,
    torch.nn.Sigmoid: activation.Sigmoid,
}


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
