"""The seed article's small ConvNet, built from one library's layers and initialised by one
library's init functions: ``torch.nn`` / ``torch.nn.init`` for the reference, ``dlkernels.nn`` /
``dlkernels.init`` for the network on dlkernels' kernels. Both have the same structure,
``state_dict`` keys and initial distribution, so the two train comparably from one seed.
"""

import functools

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
    ``torch.relu``) so that every one of them is a layer of the chosen library.

    ``layers`` is the namespace the layers come from (``torch.nn`` or ``dlkernels.nn``, which
    share constructor arguments), ``init`` the one the He initialisation comes from
    (``torch.nn.init`` or ``dlkernels.init``).
    """

    def __init__(
        self, in_channels: int = 1, image_size: int = 28, num_classes: int = 10, layers=nn, init=nn.init
    ):
        super().__init__()
        self.conv1 = layers.Conv2d(in_channels, 16, kernel_size=3)
        self.relu1 = layers.ReLU()
        self.pool1 = layers.MaxPool2d(kernel_size=2, stride=2)
        self.conv2 = layers.Conv2d(16, 32, kernel_size=3)
        self.relu2 = layers.ReLU()
        self.pool2 = layers.MaxPool2d(kernel_size=2, stride=2)

        size = image_size
        for kernel, stride in ((3, 1), (2, 2), (3, 1), (2, 2)):
            size = conv_output_size(size, kernel, stride)
        if size < 1:
            raise ValueError(f"ConvNet needs images of at least 10x10 pixels, got {image_size}x{image_size}")
        self.flat_features = 32 * size * size

        self.fc1 = layers.Linear(self.flat_features, 128)
        self.relu3 = layers.ReLU()
        self.fc2 = layers.Linear(128, num_classes)
        init_he_(self, init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(self.relu1(self.conv1(x)))
        x = self.pool2(self.relu2(self.conv2(x)))
        x = torch.flatten(x, 1)  # a view: no kernel runs here
        return self.fc2(self.relu3(self.fc1(x)))


def init_he_(model: nn.Module, init=nn.init) -> nn.Module:
    """The article's He initialisation: weights ~ N(0, 2 / fan_in), biases zero, drawn by
    ``init`` (``torch.nn.init`` or ``dlkernels.init``, whose ``he_normal_`` is the article's name
    for torch's ``kaiming_normal_(mode='fan_in', nonlinearity='relu')``).

    Every conv and linear layer gets it, as in the article (the last layer feeds softmax rather
    than ReLU; He scaling there only makes the first logits a little larger).
    """
    he_normal_ = getattr(init, "he_normal_", None) or functools.partial(
        init.kaiming_normal_, mode="fan_in", nonlinearity="relu"
    )
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):  # dlkernels' layers subclass these
            he_normal_(m.weight)
            if m.bias is not None:
                init.zeros_(m.bias)
    return model
