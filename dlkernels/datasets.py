"""The image data bundled with dlkernels (see ``dlkernels/data/README.md`` for source and license)."""

import os
from typing import NamedTuple

import numpy as np
import torch

DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
FASHION_MNIST_FILE = os.path.join(DATA_DIR, "fashion_mnist_10k.npz")
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip


class Split(NamedTuple):
    x_train: torch.Tensor  # N x 1 x 28 x 28 float32
    y_train: torch.Tensor  # N int64
    x_test: torch.Tensor
    y_test: torch.Tensor


def load_fashion_mnist(normalize: bool = True) -> Split:
    """The bundled Fashion-MNIST subset: 8000 training and 2000 test images, 10 balanced classes.

    The split is fixed by the file (train from the official training set, test from the official
    test set), so every call returns the same tensors. Images are NCHW float32 in [0, 1]; with
    ``normalize`` they are then standardised with the mean and standard deviation of the
    training images only, so nothing about the test set leaks into the inputs.
    """
    with np.load(FASHION_MNIST_FILE) as npz:
        arrays = {name: npz[name] for name in ("x_train", "y_train", "x_test", "y_test")}
    x_train, x_test = (
        torch.from_numpy(arrays[k]).unsqueeze(1).to(torch.float32).div_(255.0) for k in ("x_train", "x_test")
    )
    if normalize:
        mean, std = x_train.mean(), x_train.std()
        x_train = (x_train - mean) / std
        x_test = (x_test - mean) / std
    y_train, y_test = (torch.from_numpy(arrays[k]).to(torch.int64) for k in ("y_train", "y_test"))
    return Split(x_train.contiguous(), y_train, x_test.contiguous(), y_test)
