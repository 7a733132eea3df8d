"""Drop-in counterparts of ``torch.nn.functional``: same names, signatures, defaults and errors."""

from .activation import leaky_relu, leaky_relu_, relu, relu_, sigmoid
from .conv2d import conv2d
from .loss import cross_entropy, mse_loss

__all__ = ["relu", "relu_", "leaky_relu", "leaky_relu_", "sigmoid", "conv2d", "mse_loss", "cross_entropy"]
