"""Drop-in counterparts of ``torch.nn.functional``: same names, signatures, defaults and errors."""

from .activation import leaky_relu, leaky_relu_, relu, relu_, sigmoid
from .conv2d import conv2d
from .linear import linear
from .loss import cross_entropy, mse_loss
from .pool2d import adaptive_avg_pool2d, avg_pool2d, max_pool2d

__all__ = [
    "relu",
    "relu_",
    "leaky_relu",
    "leaky_relu_",
    "sigmoid",
    "conv2d",
    "max_pool2d",
    "avg_pool2d",
    "adaptive_avg_pool2d",
    "linear",
    "mse_loss",
    "cross_entropy",
]
