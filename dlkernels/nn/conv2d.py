import torch
from torch.nn.modules.utils import _pair

from .. import functional as F


class Conv2d(torch.nn.Conv2d):
    """torch.nn.Conv2d on dlkernels' kernels. Non-zero padding modes pad in Python first, as
    torch does."""

    def _conv_forward(self, input, weight, bias):
        if self.padding_mode != "zeros":
            padded = torch.nn.functional.pad(
                input, self._reversed_padding_repeated_twice, mode=self.padding_mode
            )
            return F.conv2d(padded, weight, bias, self.stride, _pair(0), self.dilation, self.groups)
        return F.conv2d(input, weight, bias, self.stride, self.padding, self.dilation, self.groups)
