"""The activations as torch.autograd.Functions: the differentiable entry point of the in-place
forms, which mark their input dirty and save the output, as torch's own in-place activations do.
The out-of-place ops' own autograd is registered with the ops (dlkernels/_ops/activation.py);
these Functions call the same backward ops."""

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
