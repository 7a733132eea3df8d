"""relu, leaky_relu and sigmoid with the signatures of ``torch.nn.functional``."""

from torch import Tensor

from .._ext import ops
from ..autograd.activation import LeakyReLUFunction, ReLUFunction, SigmoidFunction
from ._checks import check_inplace, check_number, check_tensor, needs_grad


def relu(input: Tensor, inplace: bool = False) -> Tensor:
    check_tensor("relu_" if inplace else "relu", input)
    if inplace:
        check_inplace(input)
    if needs_grad(input):
        return ReLUFunction.apply(input, inplace)
    if inplace:
        ops.relu_(input)
        return input
    return ops.relu(input)


def relu_(input: Tensor) -> Tensor:
    return relu(input, inplace=True)


def leaky_relu(input: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    name = "leaky_relu_" if inplace else "leaky_relu"
    check_tensor(name, input)
    negative_slope = check_number(name, negative_slope, "negative_slope", 2)
    if inplace:
        check_inplace(input)
    if needs_grad(input):
        return LeakyReLUFunction.apply(input, negative_slope, inplace)
    if inplace:
        ops.leaky_relu_(input, negative_slope)
        return input
    return ops.leaky_relu(input, negative_slope)


def leaky_relu_(input: Tensor, negative_slope: float = 0.01) -> Tensor:
    return leaky_relu(input, negative_slope, inplace=True)


def sigmoid(input: Tensor) -> Tensor:
    check_tensor("sigmoid", input)
    if needs_grad(input):
        return SigmoidFunction.apply(input, False)
    return ops.sigmoid(input)
