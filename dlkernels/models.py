"""The seed article's small ConvNet, built from plain ``torch.nn`` layers.

It is built from torch layers on purpose: :func:`dlkernels.nn.convert` then swaps in every layer
dlkernels implements, and the rest keeps running on torch, so the same model serves as the
reference and as the converted network.
"""

import torch
from torch import nn


def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """Spatial size after a convolution or pooling window (floor rounding, as torch uses)."""
    return (size + 2 * padding - kernel) // stride + 1


class ConvNet(nn.Module):
    """conv3x3(C->16) -> relu -> maxpool2 -> conv3x3(16->32) -> relu -> maxpool2 -> fc(->128) -> relu
    -> fc(->classes), the article's network.

    The article flattens to 7*7*32 for a 32x32 input, which does not match its own layers: with
    unpadded 3x3 convolutions 32 -> 30 -> 15 -> 13 -> 6, i.e. 6*6*32 = 1152 features. Here the
    flatten size is computed from the input size (28x28: 26 -> 13 -> 11 -> 5, 5*5*32 = 800).
    Each activation and pooling is its own module (the article shares one pool and calls
    ``torch.relu``) so that :func:`dlkernels.nn.convert` can see and swap every one of them.
    """

    def __init__(self, in_channels: int = 1, image_size: int = 28, num_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 16, kernel_size=3)
        self.relu1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(kernel_size=2, stride=2)
        self.conv2 = nn.Conv2d(16, 32, kernel_size=3)
        self.relu2 = nn.ReLU()
        self.pool2 = nn.MaxPool2d(kernel_size=2, stride=2)

        size = image_size
        for kernel, stride in ((3, 1), (2, 2), (3, 1), (2, 2)):
            size = conv_output_size(size, kernel, stride)
        if size < 1:
            raise ValueError(f"ConvNet needs images of at least 10x10 pixels, got {image_size}x{image_size}")
        self.flat_features = 32 * size * size

        self.fc1 = nn.Linear(self.flat_features, 128)
        self.relu3 = nn.ReLU()
        self.fc2 = nn.Linear(128, num_classes)
        init_he_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(self.relu1(self.conv1(x)))
        x = self.pool2(self.relu2(self.conv2(x)))
        x = torch.flatten(x, 1)  # a view: no kernel runs here
        return self.fc2(self.relu3(self.fc1(x)))


def init_he_(model: nn.Module) -> nn.Module:
    """The article's He initialisation: weights ~ N(0, 2 / fan_in), biases zero.

    Every conv and linear layer gets it, as in the article (the last layer feeds softmax rather
    than ReLU; He scaling there only makes the first logits a little larger).
    """
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return model
