"""One ``torch.autograd.Function`` per op family; forward and backward call only
``torch.ops.dlkernels.*``."""

from .activation import LeakyReLUFunction, ReLUFunction, SigmoidFunction

__all__ = ["ReLUFunction", "LeakyReLUFunction", "SigmoidFunction"]
