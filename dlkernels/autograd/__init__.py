"""One ``torch.autograd.Function`` per op family; forward and backward call only
``torch.ops.dlkernels.*``."""

from .activation import LeakyReLUFunction, ReLUFunction, SigmoidFunction
from .conv2d import Conv2dFunction

__all__ = ["ReLUFunction", "LeakyReLUFunction", "SigmoidFunction", "Conv2dFunction"]
