"""Fake kernels and autograd of the pooling ops (csrc/schema/pool2d.cpp).

The fake kernels make the checks of csrc/host/pool2d.h, with its messages; outputs are
channels_last when the data tensor (input, grad_output for the backward ops, indices for the
gather) is. Every backward op is linear in grad_output, which gives the double backward:
  <G, max_pool2d_backward(dy, idx)> = <dy, max_pool2d_gather(G, idx)>   (and the reverse)
  <G, avg_pool2d_backward(dy)>      = <dy, avg_pool2d(G)>
  <G, adaptive_avg_pool2d_backward(dy)> = <dy, adaptive_avg_pool2d(G)>
"""

import torch

from ._common import (
    LIB,
    call,
    check_dtype,
    check_same_device,
    direct_backward,
    dtype_name,
    is_channels_last,
    redispatcher,
    register_autograd,
    route,
)

ops = torch.ops.dlkernels
_grad_enabled = torch.is_grad_enabled
INT64_MAX = 2**63 - 1


def _out_size(size, k, s, p, d, ceil_mode):
    """Output length along one axis, as csrc/common/window2d.h computes it (Python ints cannot
    overflow; the C++ reports what would not fit in int64)."""
    num = size + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)
    out = num // s + 1
    if ceil_mode and out > 0 and (out - 1) * s >= size + p:
        out -= 1
    if size + 2 * p > INT64_MAX or d * (k - 1) > INT64_MAX:
        raise RuntimeError("the output size overflows int64")
    return out


def _check_input(op, shape):
    shape = list(shape)
    if len(shape) != 4:
        raise RuntimeError(f"{op}: expected a 4-D (batched) input, but got input of size: {shape}")
    if min(shape[1:]) <= 0:
        raise RuntimeError(
            f"Expected 3D or 4D (batch mode) tensor with optional 0 dim batch size for input, but got:{shape}"
        )


def geometry(op, shape, kernel, stride, padding, dilation, ceil_mode):
    """Checks a max/avg pool call given the input's shape; returns the output's (OH, OW)."""
    for name, v in (
        ("kernel_size", kernel),
        ("stride", stride),
        ("padding", padding),
        ("dilation", dilation),
    ):
        if len(v) != 2:
            raise RuntimeError(f"{op}: expected {name} to be a list of 2 values, but got {name}={list(v)}")
    _check_input(op, shape)
    if min(kernel) <= 0:
        raise RuntimeError(
            f"kernel size should be greater than zero, but got kH: {kernel[0]} kW: {kernel[1]}"
        )
    if min(stride) <= 0:
        raise RuntimeError(f"stride should be greater than zero, but got dH: {stride[0]} dW: {stride[1]}")
    if min(dilation) <= 0:
        raise RuntimeError(
            f"dilation should be greater than zero, but got dilationH: {dilation[0]} dilationW: {dilation[1]}"
        )
    if min(padding) < 0:
        raise RuntimeError(f"pad must be non-negative, but got pad: {min(padding)}")
    for k, p, d in zip(kernel, padding, dilation):
        if p > (d * (k - 1) + 1) // 2:
            raise RuntimeError(
                f"pad should be at most half of effective kernel size, but got pad={p}, kernel_size={k} and "
                f"dilation={d}"
            )
    c, h, w = shape[1:]
    oh = _out_size(h, kernel[0], stride[0], padding[0], dilation[0], ceil_mode)
    ow = _out_size(w, kernel[1], stride[1], padding[1], dilation[1], ceil_mode)
    if oh <= 0 or ow <= 0:
        raise RuntimeError(
            f"Given input size: ({c}x{h}x{w}). Calculated output size: ({c}x{oh}x{ow}). "
            "Output size is too small"
        )
    return oh, ow


def adaptive_geometry(op, shape, output_size):
    shape = list(shape)
    if len(output_size) != 2:
        raise RuntimeError(
            f"{op}: expected output_size to be a list of 2 values, but got output_size={list(output_size)}"
        )
    if len(shape) != 4:
        raise RuntimeError(f"{op}: expected a 4-D (batched) input, but got input of size: {shape}")
    for d in (1, 2, 3):
        if shape[d] <= 0:
            raise RuntimeError(
                "adaptive_avg_pool2d(): Expected input to have non-zero size for non-batch dimensions, but "
                f"input has sizes {shape} with dimension {d} being empty"
            )
    if output_size[0] < 0 or output_size[1] < 0:
        raise RuntimeError(
            "adaptive_avg_pool2d: elements of output_size must be greater than or equal to 0 but received "
            f"{{{output_size[0]}, {output_size[1]}}}"
        )
    if (shape[2] + 1) * (output_size[0] + 1) > INT64_MAX or (shape[3] + 1) * (output_size[1] + 1) > INT64_MAX:
        raise RuntimeError(f"{op}: output_size {list(output_size)} is too large for input of size {shape}")
    return tuple(output_size)


def _check_grad_output(op, grad_output, expected, name="grad_output"):
    if list(grad_output.shape) != list(expected):
        raise RuntimeError(
            f"{op}: expected {name} of size {list(expected)}, but got {list(grad_output.shape)}"
        )


def _check_indices(op, grad_output, indices):
    check_same_device(op, grad_output, "grad_output", indices, "indices")
    if indices.dtype != torch.int64:
        raise RuntimeError(f"{op}: expected indices of dtype Long, but got {dtype_name(indices.dtype)}")
    if indices.shape != grad_output.shape:
        raise RuntimeError(
            f"{op}: expected indices of shape {list(grad_output.shape)}, but got {list(indices.shape)}"
        )


def _new(like, shape, channels_last, dtype=None):
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return torch.empty(shape, dtype=dtype or like.dtype, device=like.device, memory_format=fmt)


# ---- fake kernels -------------------------------------------------------------------------------


@torch.library.register_fake(LIB + "max_pool2d")
def _max_fake(self, kernel_size, stride, padding, dilation, ceil_mode):
    check_dtype("max_pool2d", self)
    oh, ow = geometry("max_pool2d", self.shape, kernel_size, stride, padding, dilation, ceil_mode)
    return _new(self, (self.shape[0], self.shape[1], oh, ow), is_channels_last(self))


@torch.library.register_fake(LIB + "max_pool2d_with_indices")
def _max_indices_fake(self, kernel_size, stride, padding, dilation, ceil_mode):
    op = "max_pool2d_with_indices"
    check_dtype(op, self)
    oh, ow = geometry(op, self.shape, kernel_size, stride, padding, dilation, ceil_mode)
    shape, cl = (self.shape[0], self.shape[1], oh, ow), is_channels_last(self)
    return _new(self, shape, cl), _new(self, shape, cl, torch.int64)


@torch.library.register_fake(LIB + "max_pool2d_backward")
def _max_backward_fake(grad_output, indices, input_size, kernel_size, stride, padding, dilation, ceil_mode):
    op = "max_pool2d_backward"
    check_dtype(op, grad_output)
    _check_indices(op, grad_output, indices)
    oh, ow = geometry(op, input_size, kernel_size, stride, padding, dilation, ceil_mode)
    _check_grad_output(op, grad_output, (input_size[0], input_size[1], oh, ow))
    return _new(grad_output, tuple(input_size), is_channels_last(grad_output))


@torch.library.register_fake(LIB + "max_pool2d_gather")
def _gather_fake(self, indices, kernel_size, stride, padding, dilation, ceil_mode):
    op = "max_pool2d_gather"
    check_dtype(op, self)
    oh, ow = geometry(op, self.shape, kernel_size, stride, padding, dilation, ceil_mode)
    check_same_device(op, self, "self", indices, "indices")
    if indices.dtype != torch.int64:
        raise RuntimeError(f"{op}: expected indices of dtype Long, but got {dtype_name(indices.dtype)}")
    _check_grad_output(op, indices, (self.shape[0], self.shape[1], oh, ow), "indices")
    return _new(self, tuple(indices.shape), is_channels_last(indices))


@torch.library.register_fake(LIB + "avg_pool2d")
def _avg_fake(self, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override):
    check_dtype("avg_pool2d", self)
    oh, ow = geometry("avg_pool2d", self.shape, kernel_size, stride, padding, (1, 1), ceil_mode)
    if divisor_override is not None and divisor_override == 0:
        raise RuntimeError("divisor must be not zero")
    return _new(self, (self.shape[0], self.shape[1], oh, ow), is_channels_last(self))


@torch.library.register_fake(LIB + "avg_pool2d_backward")
def _avg_backward_fake(
    grad_output, input_size, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override
):
    op = "avg_pool2d_backward"
    check_dtype(op, grad_output)
    oh, ow = geometry(op, input_size, kernel_size, stride, padding, (1, 1), ceil_mode)
    if divisor_override is not None and divisor_override == 0:
        raise RuntimeError("divisor must be not zero")
    _check_grad_output(op, grad_output, (input_size[0], input_size[1], oh, ow))
    return _new(grad_output, tuple(input_size), is_channels_last(grad_output))


@torch.library.register_fake(LIB + "adaptive_avg_pool2d")
def _adaptive_fake(self, output_size):
    check_dtype("adaptive_avg_pool2d", self)
    oh, ow = adaptive_geometry("adaptive_avg_pool2d", self.shape, output_size)
    return _new(self, (self.shape[0], self.shape[1], oh, ow), is_channels_last(self))


@torch.library.register_fake(LIB + "adaptive_avg_pool2d_backward")
def _adaptive_backward_fake(grad_output, input_size):
    op = "adaptive_avg_pool2d_backward"
    check_dtype(op, grad_output)
    if grad_output.dim() != 4:
        raise RuntimeError(f"{op}: expected a 4-D grad_output, but got size {list(grad_output.shape)}")
    adaptive_geometry(op, input_size, grad_output.shape[2:])
    return _new(grad_output, tuple(input_size), is_channels_last(grad_output))


# ---- autograd -----------------------------------------------------------------------------------


def _save_input(ctx, inputs, output):
    ctx.input_size = list(inputs[0].shape)
    ctx.conf = tuple(inputs[1:])


def _max_setup(ctx, inputs, output):
    # max_pool2d keeps no indices: its backward finds them again (the functional layer calls
    # max_pool2d_with_indices when it records autograd, so this is the path of direct op calls).
    ctx.save_for_backward(inputs[0])
    ctx.conf = tuple(inputs[1:])


def _max_bwd(ctx, grad):
    (x,) = ctx.saved_tensors
    _, idx = ops.max_pool2d_with_indices(x, *ctx.conf)
    return (call(ops.max_pool2d_backward, grad, idx, list(x.shape), *ctx.conf), None, None, None, None, None)


def _max_indices_setup(ctx, inputs, output):
    _save_input(ctx, inputs, output)
    ctx.mark_non_differentiable(output[1])
    ctx.set_materialize_grads(False)  # no int64 zeros the size of the output for the indices
    ctx.save_for_backward(output[1])


def _max_indices_bwd(ctx, grad, _grad_indices):
    (idx,) = ctx.saved_tensors
    if grad is None:
        return None, None, None, None, None, None
    return (call(ops.max_pool2d_backward, grad, idx, ctx.input_size, *ctx.conf), None, None, None, None, None)


def _max_backward_setup(ctx, inputs, output):
    grad_output, indices, input_size, *conf = inputs
    ctx.save_for_backward(indices)
    ctx.input_size = list(input_size)
    ctx.conf = tuple(conf)


def _max_backward_bwd(ctx, gg):
    (idx,) = ctx.saved_tensors
    return (ops.max_pool2d_gather(gg, idx, *ctx.conf), None, None, None, None, None, None, None)


def _gather_setup(ctx, inputs, output):
    ctx.save_for_backward(inputs[1])
    ctx.input_size = list(inputs[0].shape)
    ctx.conf = tuple(inputs[2:])


def _gather_bwd(ctx, grad):
    (idx,) = ctx.saved_tensors
    return call(ops.max_pool2d_backward, grad, idx, ctx.input_size, *ctx.conf), *(None,) * 6


def _avg_bwd(ctx, grad):
    return call(ops.avg_pool2d_backward, grad, ctx.input_size, *ctx.conf), *(None,) * 6


def _avg_backward_setup(ctx, inputs, output):
    ctx.conf = tuple(inputs[2:])


def _avg_backward_bwd(ctx, gg):
    return (ops.avg_pool2d(gg, *ctx.conf), None, None, None, None, None, None, None)


def _adaptive_bwd(ctx, grad):
    return ops.adaptive_avg_pool2d_backward(grad, ctx.input_size), None


def _adaptive_backward_setup(ctx, inputs, output):
    ctx.output_size = list(inputs[0].shape[2:])


def _adaptive_backward_bwd(ctx, gg):
    return ops.adaptive_avg_pool2d(gg, ctx.output_size), None


# Forward mode: every op is linear in its one differentiable argument, so the tangent is the op
# applied to the tangent; max pooling's is the tangent gathered at the maxima's indices.


def _jvp_max(inputs, out, t, *_):
    if t is None:
        return None
    x, *conf = inputs
    _, idx = ops.max_pool2d_with_indices(x, *conf)
    return ops.max_pool2d_gather(t, idx, *conf)


def _jvp_max_indices(inputs, outs, t, *_):
    # the indices are not differentiable: no tangent
    return (None if t is None else ops.max_pool2d_gather(t, outs[1], *inputs[1:])), None


def _jvp_max_backward(inputs, out, t_grad, *_):
    return None if t_grad is None else ops.max_pool2d_backward(t_grad, *inputs[1:])


def _jvp_gather(inputs, out, t, *_):
    return None if t is None else ops.max_pool2d_gather(t, *inputs[1:])


def _jvp_avg(inputs, out, t, *_):
    return None if t is None else ops.avg_pool2d(t, *inputs[1:])


def _jvp_avg_backward(inputs, out, t_grad, *_):
    return None if t_grad is None else ops.avg_pool2d_backward(t_grad, *inputs[1:])


def _jvp_adaptive(inputs, out, t, *_):
    return None if t is None else ops.adaptive_avg_pool2d(t, inputs[1])


def _jvp_adaptive_backward(inputs, out, t_grad, *_):
    return None if t_grad is None else ops.adaptive_avg_pool2d_backward(t_grad, inputs[1])


register_autograd("max_pool2d", _max_bwd, _max_setup, _jvp_max)
register_autograd("max_pool2d_with_indices", _max_indices_bwd, _max_indices_setup, _jvp_max_indices)
register_autograd("max_pool2d_backward", _max_backward_bwd, _max_backward_setup, _jvp_max_backward)
register_autograd("max_pool2d_gather", _gather_bwd, _gather_setup, _jvp_gather)
register_autograd("avg_pool2d", _avg_bwd, _save_input, _jvp_avg)
register_autograd("avg_pool2d_backward", _avg_backward_bwd, _avg_backward_setup, _jvp_avg_backward)
register_autograd("adaptive_avg_pool2d", _adaptive_bwd, _save_input, _jvp_adaptive)
register_autograd(
    "adaptive_avg_pool2d_backward", _adaptive_backward_bwd, _adaptive_backward_setup, _jvp_adaptive_backward
)

_max_indices_kernel = redispatcher(ops.max_pool2d_with_indices.default)
_max_backward_kernel = redispatcher(ops.max_pool2d_backward.default)


class _MaxPool2d(torch.autograd.Function):
    """max_pool2d's node on the direct path when only the output is wanted (the functional layer
    without return_indices), lean as cross entropy's (_ops/loss.py): one output, the indices
    kept on ctx (nothing else holds them, so they need no version check), and a backward that
    runs the backend kernel itself when nothing records and nothing sits above the backend.
    2x4x8x8, 2x2, forward + backward (.sum().backward()): 39.8 -> 35.1 us (torch 27-29), Zen 5."""

    @staticmethod
    def forward(ctx, x, meta):
        out, ctx.indices = _max_indices_kernel(meta[0], x, *meta[1])
        ctx.meta = meta
        ctx.input_size = list(x.shape)
        return out

    @staticmethod
    def backward(ctx, grad):
        keys, conf = ctx.meta
        if _grad_enabled() or not direct_backward(grad):
            return call(ops.max_pool2d_backward, grad, ctx.indices, ctx.input_size, *conf), None
        return _max_backward_kernel(keys, grad, ctx.indices, ctx.input_size, *conf), None


_record_max = super(torch.autograd.Function, _MaxPool2d).apply  # the plain C++ apply


def max_pool2d_output(x, conf):
    """The output of max_pool2d_with_indices(x, *conf) with autograd, by the lean node where the
    direct path applies."""
    keys, record = route((x,))
    if keys is None or not record:
        return call(ops.max_pool2d_with_indices, x, *conf)[0]
    return _record_max(x, (keys, conf))


# ---- vmap ---------------------------------------------------------------------------------------
# Every pooling op works plane by plane, and max pooling's indices count within a plane, so the
# vmapped dimension folds into N: one call over batch x N images. An unbatched operand of a
# two-tensor op (the indices, in jacrev/jacfwd) is expanded to the batch first.


def _batch_first(t, dim, size):
    return t.movedim(dim, 0) if dim is not None else t.expand(size, *t.shape)


def _fold(t):
    """(B, N, C, H, W) -> (B * N, C, H, W), keeping a channels_last sample channels_last (the
    ops' outputs follow their input's layout)."""
    b, n, c, h, w = t.shape
    if is_channels_last(t.select(0, 0)):
        return t.permute(0, 1, 3, 4, 2).reshape(b * n, h, w, c).permute(0, 3, 1, 2)
    return t.reshape(b * n, c, h, w)


def _unfold(t, b, n):
    return t.reshape(b, n, *t.shape[1:])


def _folded_size(size, input_size):
    return [size * input_size[0], *input_size[1:]]


def _vmap_pool(op):
    """Rule of an op whose tensor arguments lead (data, then max pooling's indices)."""

    def rule(info, in_dims, *args):
        b = info.batch_size
        tensors = [i for i, a in enumerate(args) if isinstance(a, torch.Tensor)]
        args = list(args)
        for i in tensors:
            args[i] = _batch_first(args[i], in_dims[i], b)
        n = args[0].shape[1]
        for i in tensors:
            args[i] = _fold(args[i])
        if op is ops.max_pool2d_backward:
            args[2] = _folded_size(b, args[2])
        out = op(*args)
        if isinstance(out, tuple):
            return tuple(_unfold(o, b, n) for o in out), (0,) * len(out)
        return _unfold(out, b, n), 0

    return rule


def _vmap_pool_backward(op):
    """Rule of avg_pool2d_backward and adaptive_avg_pool2d_backward(grad_output, input_size, ...)."""

    def rule(info, in_dims, grad_output, input_size, *conf):
        b = info.batch_size
        g = _batch_first(grad_output, in_dims[0], b)
        n = g.shape[1]
        return _unfold(op(_fold(g), _folded_size(b, input_size), *conf), b, n), 0

    return rule


for _name in ("max_pool2d", "max_pool2d_with_indices", "max_pool2d_backward", "max_pool2d_gather"):
    torch.library.register_vmap(LIB + _name, _vmap_pool(getattr(ops, _name)))
torch.library.register_vmap(LIB + "avg_pool2d", _vmap_pool(ops.avg_pool2d))
torch.library.register_vmap(LIB + "adaptive_avg_pool2d", _vmap_pool(ops.adaptive_avg_pool2d))
for _name in ("avg_pool2d_backward", "adaptive_avg_pool2d_backward"):
    torch.library.register_vmap(LIB + _name, _vmap_pool_backward(getattr(ops, _name)))
