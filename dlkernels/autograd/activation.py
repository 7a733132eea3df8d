"""Autograd for the activations. In-place variants mark their input dirty and save the output,
as torch's own in-place activations do."""

import torch

from .._ext import ops


class ReLUFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, input, inplace=False):
        if inplace:
            ctx.mark_dirty(input)
            ops.relu_(input)
            output = input
        else:
            output = ops.relu(input)
        ctx.save_for_backward(output)
        return output

    @staticmethod
    def backward(ctx, grad_output):
        (output,) = ctx.saved_tensors
        return ops.relu_backward(grad_output, output), None


class LeakyReLUFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, input, negative_slope=0.01, inplace=False):
        ctx.negative_slope = negative_slope
        if inplace:
            # The backward then sees only the output, whose sign equals the input's only for a
            # slope >= 0 (torch has the same restriction).
            if negative_slope < 0:
                raise RuntimeError(
                    "In-place leaky_relu backward is not supported with a negative slope: the "
                    "input's sign cannot be recovered from the output. Use inplace=False."
                )
            ctx.mark_dirty(input)
            ops.leaky_relu_(input, negative_slope)
            output = input
            ctx.save_for_backward(output)
        else:
            output = ops.leaky_relu(input, negative_slope)
            ctx.save_for_backward(input)
        return output

    @staticmethod
    def backward(ctx, grad_output):
        (saved,) = ctx.saved_tensors
        return ops.leaky_relu_backward(grad_output, saved, ctx.negative_slope), None, None


class SigmoidFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, input, inplace=False):
        if inplace:
            ctx.mark_dirty(input)
            ops.sigmoid_(input)
            output = input
        else:
            output = ops.sigmoid(input)
        ctx.save_for_backward(output)
        return output

    @staticmethod
    def backward(ctx, grad_output):
        (output,) = ctx.saved_tensors
        return ops.sigmoid_backward(grad_output, output), None


# The raw out-of-place ops are differentiable too (torch.ops.dlkernels.relu(x).sum().backward()
# works), through the same backward ops. In-place ops go through the Functions above.
def _save_output(ctx, inputs, output):
    ctx.save_for_backward(output)


def _save_input_and_slope(ctx, inputs, output):
    ctx.save_for_backward(inputs[0])
    ctx.negative_slope = inputs[1]


torch.library.register_autograd(
    "dlkernels::relu",
    lambda ctx, grad: ops.relu_backward(grad, ctx.saved_tensors[0]),
    setup_context=_save_output,
)
torch.library.register_autograd(
    "dlkernels::sigmoid",
    lambda ctx, grad: ops.sigmoid_backward(grad, ctx.saved_tensors[0]),
    setup_context=_save_output,
)
torch.library.register_autograd(
    "dlkernels::leaky_relu",
    lambda ctx, grad: (ops.leaky_relu_backward(grad, ctx.saved_tensors[0], ctx.negative_slope), None),
    setup_context=_save_input_and_slope,
)


# The backward ops are differentiable too, so double backward (torch.autograd.grad(...,
# create_graph=True), gradgradcheck, gradient penalties) is exact instead of silently taking their
# derivative as zero. relu/leaky_relu backward are linear in grad_output with a piecewise-constant
# factor: their second derivative through the saved tensor is zero almost everywhere, as in torch.
def _save_backward_inputs(ctx, inputs, output):
    ctx.save_for_backward(inputs[0], inputs[1])
    ctx.negative_slope = inputs[2] if len(inputs) > 2 else None


def _relu_backward_backward(ctx, grad):
    _, result = ctx.saved_tensors
    return ops.relu_backward(grad, result), None


def _leaky_relu_backward_backward(ctx, grad):
    _, saved = ctx.saved_tensors
    return ops.leaky_relu_backward(grad, saved, ctx.negative_slope), None, None


def _sigmoid_backward_backward(ctx, grad):
    # sigmoid_backward(g, y) = g * (1 - y) * y: d/dg = (1 - y) y, d/dy = g (1 - 2 y).
    grad_output, result = ctx.saved_tensors
    grad_grad_output = ops.sigmoid_backward(grad, result) if ctx.needs_input_grad[0] else None
    grad_result = grad * grad_output * (1 - 2 * result) if ctx.needs_input_grad[1] else None
    return grad_grad_output, grad_result


torch.library.register_autograd(
    "dlkernels::relu_backward", _relu_backward_backward, setup_context=_save_backward_inputs
)
torch.library.register_autograd(
    "dlkernels::leaky_relu_backward", _leaky_relu_backward_backward, setup_context=_save_backward_inputs
)
torch.library.register_autograd(
    "dlkernels::sigmoid_backward", _sigmoid_backward_backward, setup_context=_save_backward_inputs
)
