"""Drop-in ``torch.nn`` layers. Each subclasses its torch twin (same constructor, attributes,
``state_dict`` keys and ``extra_repr``; ``isinstance`` checks keep working) and replaces only the
computation. :func:`convert` swaps them into an existing model."""

from .activation import LeakyReLU, ReLU, Sigmoid
from .convert import convert

__all__ = ["ReLU", "LeakyReLU", "Sigmoid", "convert"]
