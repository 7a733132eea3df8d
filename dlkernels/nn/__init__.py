"""Drop-in ``torch.nn`` layers. Each subclasses its torch twin (same constructor, attributes,
``state_dict`` keys and ``extra_repr``; ``isinstance`` checks keep working) and replaces only the
computation. :func:`convert` swaps them into an existing model."""

from .activation import LeakyReLU, ReLU, Sigmoid
from .conv2d import Conv2d
from .convert import convert, register_twins
from .linear import Linear
from .loss import CrossEntropyLoss, MSELoss
from .pool2d import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d

__all__ = [
    "Conv2d",
    "ReLU",
    "LeakyReLU",
    "Sigmoid",
    "MaxPool2d",
    "AvgPool2d",
    "AdaptiveAvgPool2d",
    "Linear",
    "MSELoss",
    "CrossEntropyLoss",
    "convert",
]

register_twins(globals()[name] for name in __all__)
