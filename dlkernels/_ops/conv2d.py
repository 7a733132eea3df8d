"""Fake kernels, autograd and vmap rules of the conv2d ops (csrc/schema/conv2d.cpp).

The fake kernels make the checks of csrc/host/conv2d.h, with its messages, and follow its layout
rule: the output is channels_last when the data tensor (input, or grad_output for the data
gradient) or the weight is. Autograd records conv2d_backward, one node for the three gradients
as torch's convolution_backward, so which results require grad in a double backward is torch's.
Each gradient op is linear in every tensor argument, which gives the double backward:
  <G, grad_input(dy, w)>  = <dy, conv2d(G, w)>   d/d dy = conv2d(G, w),  d/d w = grad_weight(dy, G)
  <H, grad_weight(dy, x)> = <dy, conv2d(x, H)>   d/d dy = conv2d(x, H),  d/d x = grad_input(dy, H)
  <h, grad_bias(dy)>      = <dy, h broadcast>    d/d dy = h broadcast to dy's shape
"""

import torch

from ._common import (
    LIB,
    add_tangents,
    bilinear_tangent,
    call,
    check_dtype,
    check_same_device,
    dtype_name,
    is_channels_last,
    register_autograd,
    vmap_per_sample,
)

ops = torch.ops.dlkernels

# ---- checks, as csrc/host/conv2d.h makes them ---------------------------------------------------

_INT64_MAX = 2**63 - 1


def _out_size(size, k, s, p, d):
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def geometry(op, input, weight, stride, padding, dilation, groups):
    """Checks a conv2d call given the input's and weight's shapes; returns the output's (P, Q)."""
    for name, v in (("stride", stride), ("padding", padding), ("dilation", dilation)):
        if len(v) != 2:
            raise RuntimeError(f"{op}: expected {name} to be a list of 2 values, but got {name}={list(v)}")
    if stride[0] <= 0 or stride[1] <= 0:
        raise RuntimeError("non-positive stride is not supported")
    if padding[0] < 0 or padding[1] < 0:
        raise RuntimeError("negative padding is not supported")
    if dilation[0] <= 0 or dilation[1] <= 0:
        raise RuntimeError("non-positive dilation is not supported")
    if groups <= 0:
        raise RuntimeError("non-positive groups is not supported")
    input, weight = list(input), list(weight)
    if len(input) != 4:
        raise RuntimeError(f"{op}: expected a 4-D (batched) input, but got input of size: {input}")
    if len(weight) != 4:
        raise RuntimeError(
            f"{op}: expected a 4-D weight (out_channels, in_channels / groups, kH, kW), "
            f"but got weight of size {weight}"
        )
    if weight[2] <= 0 or weight[3] <= 0:
        raise RuntimeError(f"{op}: expected a kernel of at least 1 x 1, but got weight of size {weight}")
    if input[2] <= 0 or input[3] <= 0:
        raise RuntimeError(
            f"Only zero batch or zero channel inputs are supported, but got input shape: {input}"
        )
    if weight[0] <= 0:
        raise RuntimeError(
            f"Given groups={groups}, expected weight to be at least 1 at dimension 0, but got weight of size "
            f"{weight} instead"
        )
    if weight[0] % groups != 0:
        raise RuntimeError(
            f"Given groups={groups}, expected weight to be divisible by {groups} at dimension 0, "
            f"but got weight of size {weight} instead"
        )
    if input[1] != weight[1] * groups:
        raise RuntimeError(
            f"Given groups={groups}, weight of size {weight}, expected input{input} to have "
            f"{weight[1] * groups} channels, but got {input[1]} channels instead"
        )
    # Overflow as csrc/common/conv2d_geometry.h complete_geometry sees it (int64 there).
    hp, wp = input[2] + 2 * padding[0], input[3] + 2 * padding[1]
    if max(padding) > _INT64_MAX // 2 or max(hp, wp) > _INT64_MAX:
        raise RuntimeError(
            f"Given padding={list(padding)}, expected padding to be at most {_INT64_MAX // 2} "
            "and the padded input size (input + 2 * padding) to fit in int64"
        )
    kh, kw = dilation[0] * (weight[2] - 1) + 1, dilation[1] * (weight[3] - 1) + 1
    if max(kh, kw) > _INT64_MAX:
        raise RuntimeError(
            f"Given dilation={list(dilation)} and weight of size {weight}, the kernel extent "
            "dilation * (kernel size - 1) + 1 does not fit in int64. Kernel size can't be greater than "
            "actual input size"
        )
    if hp < kh or wp < kw:
        raise RuntimeError(
            f"Calculated padded input size per channel: ({hp} x {wp}). Kernel size: ({kh} x {kw}). "
            "Kernel size can't be greater than actual input size"
        )
    p = _out_size(input[2], weight[2], stride[0], padding[0], dilation[0])
    q = _out_size(input[3], weight[3], stride[1], padding[1], dilation[1])
    if input[0] * weight[0] * p * q > _INT64_MAX:
        raise RuntimeError(
            f"{op}: the output of size [{input[0]}, {weight[0]}, {p}, {q}] has more than "
            f"{_INT64_MAX} elements"
        )
    return p, q


def _check_tensors(op, input, weight, bias=None):
    check_same_device(op, input, "input", weight, "weight")
    check_dtype(op, input)
    if input.dtype != weight.dtype:
        raise RuntimeError(
            f"{op}: expected input and weight to have the same dtype, but got input of dtype "
            f"{dtype_name(input.dtype)} and weight of dtype {dtype_name(weight.dtype)}"
        )
    if bias is not None:
        check_same_device(op, input, "input", bias, "bias")
        if bias.dim() != 1 or bias.shape[0] != weight.shape[0]:
            raise RuntimeError(
                f"Given weight of size {list(weight.shape)}, expected bias to be 1-dimensional with "
                f"{weight.shape[0]} elements, but got bias of size {list(bias.shape)} instead"
            )
        if bias.dtype != input.dtype:
            raise RuntimeError(
                f"{op}: Input type ({dtype_name(input.dtype)}) and bias type ({dtype_name(bias.dtype)}) "
                "should be the same"
            )


def _check_grad_output(op, grad_output, expected):
    if list(grad_output.shape) != list(expected):
        raise RuntimeError(
            f"{op}: expected grad_output of size {list(expected)}, but got {list(grad_output.shape)}"
        )


def _new(like, shape, channels_last):
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return like.new_empty(shape).contiguous(memory_format=fmt)


# ---- fake kernels -------------------------------------------------------------------------------


@torch.library.register_fake(LIB + "conv2d")
def _conv2d_fake(input, weight, bias, stride, padding, dilation, groups):
    _check_tensors("conv2d", input, weight, bias)
    p, q = geometry("conv2d", input.shape, weight.shape, stride, padding, dilation, groups)
    cl = is_channels_last(input) or is_channels_last(weight)
    return _new(input, (input.shape[0], weight.shape[0], p, q), cl)


@torch.library.register_fake(LIB + "conv2d_grad_input")
def _grad_input_fake(grad_output, weight, input_size, stride, padding, dilation, groups):
    op = "conv2d_grad_input"
    _check_tensors(op, grad_output, weight)
    p, q = geometry(op, input_size, weight.shape, stride, padding, dilation, groups)
    _check_grad_output(op, grad_output, (input_size[0], weight.shape[0], p, q))
    cl = is_channels_last(grad_output) or is_channels_last(weight)
    return _new(grad_output, tuple(input_size), cl)


def _check_grad_weight_tensors(op, grad_output, input):
    check_same_device(op, grad_output, "grad_output", input, "input")
    check_dtype(op, grad_output)
    if grad_output.dtype != input.dtype:
        raise RuntimeError(
            f"{op}: expected grad_output and input to have the same dtype, but got "
            f"{dtype_name(grad_output.dtype)} and {dtype_name(input.dtype)}"
        )


@torch.library.register_fake(LIB + "conv2d_grad_weight")
def _grad_weight_fake(grad_output, input, weight_size, stride, padding, dilation, groups):
    op = "conv2d_grad_weight"
    _check_grad_weight_tensors(op, grad_output, input)
    p, q = geometry(op, input.shape, weight_size, stride, padding, dilation, groups)
    _check_grad_output(op, grad_output, (input.shape[0], weight_size[0], p, q))
    return input.new_empty(tuple(weight_size))


@torch.library.register_fake(LIB + "conv2d_grad_bias")
def _grad_bias_fake(grad_output):
    op = "conv2d_grad_bias"
    check_dtype(op, grad_output)
    if grad_output.dim() != 4:
        raise RuntimeError(f"{op}: expected a 4-D grad_output, but got size {list(grad_output.shape)}")
    return grad_output.new_empty((grad_output.shape[1],))


@torch.library.register_fake(LIB + "conv2d_backward")
def _backward_fake(grad_output, input, weight, stride, padding, dilation, groups, output_mask):
    conf = (stride, padding, dilation, groups)
    none = grad_output.new_empty((0,))
    return (
        _grad_input_fake(grad_output, weight, list(input.shape), *conf) if output_mask[0] else none,
        _grad_weight_fake(grad_output, input, list(weight.shape), *conf) if output_mask[1] else none,
        _grad_bias_fake(grad_output) if output_mask[2] else none.clone(),
    )


# ---- autograd -----------------------------------------------------------------------------------


def backward_of_conv2d(grad_output, input, weight, has_bias, conf, needs):
    """Gradients of conv2d for the inputs `needs` marks (input, weight, bias), or None."""
    mask = [bool(needs[0]), bool(needs[1]), bool(has_bias and needs[2])]
    if not any(mask):
        return None, None, None
    grads = call(ops.conv2d_backward, grad_output, input, weight, *conf, mask)
    return tuple(g if m else None for g, m in zip(grads, mask))


def _conv2d_setup(ctx, inputs, output):
    input, weight, bias, *conf = inputs
    ctx.save_for_backward(input, weight)
    ctx.conf = tuple(conf)
    ctx.has_bias = bias is not None


def _conv2d_bwd(ctx, grad_output):
    input, weight = ctx.saved_tensors
    grads = backward_of_conv2d(grad_output, input, weight, ctx.has_bias, ctx.conf, ctx.needs_input_grad)
    return (*grads, None, None, None, None)


def _backward_setup(ctx, inputs, output):
    grad_output, input, weight, *conf, mask = inputs
    ctx.save_for_backward(grad_output, input, weight)
    ctx.conf = tuple(conf)
    ctx.mask = list(mask)
    # an output no later op used gets None, not a zero tensor that a term would then multiply
    ctx.set_materialize_grads(False)


def _backward_bwd(ctx, ggx, ggw, ggb):
    """The derivative of conv2d_backward's outputs (grad_input, grad_weight, grad_bias): the
    incoming gradients of outputs the mask left out are ignored (they are empty placeholders)."""
    dy, x, w = ctx.saved_tensors
    conf, mask, needs = ctx.conf, ctx.mask, ctx.needs_input_grad
    ggx = ggx if mask[0] else None
    ggw = ggw if mask[1] else None
    ggb = ggb if mask[2] else None
    d_x = d_w = None
    # d/d dy: conv2d's own tangent along (ggx, ggw, ggb)
    d_dy = _jvp_conv2d((x, w, None, *conf), dy, ggx, ggw, ggb) if needs[0] else None
    if needs[1] and ggw is not None:
        d_x = ops.conv2d_grad_input(dy, ggw, list(x.shape), *conf)
    if needs[2] and ggx is not None:
        d_w = ops.conv2d_grad_weight(dy, ggx, list(w.shape), *conf)
    return d_dy, d_x, d_w, None, None, None, None, None


def _grad_input_setup(ctx, inputs, output):
    dy, w, input_size, *conf = inputs
    ctx.save_for_backward(dy, w)
    ctx.conf = tuple(conf)


def _grad_input_bwd(ctx, g):
    dy, w = ctx.saved_tensors
    d_dy = ops.conv2d(g, w, None, *ctx.conf) if ctx.needs_input_grad[0] else None
    d_w = ops.conv2d_grad_weight(dy, g, list(w.shape), *ctx.conf) if ctx.needs_input_grad[1] else None
    return d_dy, d_w, None, None, None, None, None


def _grad_weight_setup(ctx, inputs, output):
    dy, x, weight_size, *conf = inputs
    ctx.save_for_backward(dy, x)
    ctx.conf = tuple(conf)


def _grad_weight_bwd(ctx, h):
    dy, x = ctx.saved_tensors
    d_dy = ops.conv2d(x, h, None, *ctx.conf) if ctx.needs_input_grad[0] else None
    d_x = ops.conv2d_grad_input(dy, h, list(x.shape), *ctx.conf) if ctx.needs_input_grad[1] else None
    return d_dy, d_x, None, None, None, None, None


def _grad_bias_setup(ctx, inputs, output):
    ctx.shape = inputs[0].shape


def _grad_bias_bwd(ctx, h):
    return h.view(1, -1, 1, 1).expand(ctx.shape)


# Forward mode: every op is linear in each tensor argument, so a tangent is the op applied to
# one argument's tangent at a time, summed.


def _jvp_conv2d(inputs, out, tx, tw, tb, *_):
    x, w, b, *conf = inputs
    return add_tangents(
        None if tx is None else ops.conv2d(tx, w, None, *conf),
        None if tw is None else ops.conv2d(x, tw, None, *conf),
        None if tb is None else tb.view(1, -1, 1, 1).expand(out.shape),
    )


def _jvp_grad_input(inputs, out, t_dy, t_w, *_):
    dy, w, size, *conf = inputs
    return bilinear_tangent(ops.conv2d_grad_input, dy, w, t_dy, t_w, size, *conf)


def _jvp_grad_weight(inputs, out, t_dy, t_x, *_):
    dy, x, size, *conf = inputs
    return bilinear_tangent(ops.conv2d_grad_weight, dy, x, t_dy, t_x, size, *conf)


def _jvp_grad_bias(inputs, out, t_dy):
    return None if t_dy is None else ops.conv2d_grad_bias(t_dy)


def _jvp_backward(inputs, outs, t_dy, t_x, t_w, *_):
    dy, x, w, *conf, mask = inputs
    conf = tuple(conf)
    gi = _jvp_grad_input((dy, w, list(x.shape), *conf), None, t_dy, t_w) if mask[0] else None
    gw = _jvp_grad_weight((dy, x, list(w.shape), *conf), None, t_dy, t_x) if mask[1] else None
    gb = _jvp_grad_bias((dy,), None, t_dy) if mask[2] else None
    return tuple(torch.zeros_like(o) if t is None else t for t, o in zip((gi, gw, gb), outs))


register_autograd("conv2d", _conv2d_bwd, _conv2d_setup, _jvp_conv2d)
register_autograd("conv2d_backward", _backward_bwd, _backward_setup, _jvp_backward)
register_autograd("conv2d_grad_input", _grad_input_bwd, _grad_input_setup, _jvp_grad_input)
register_autograd("conv2d_grad_weight", _grad_weight_bwd, _grad_weight_setup, _jvp_grad_weight)
register_autograd("conv2d_grad_bias", _grad_bias_bwd, _grad_bias_setup, _jvp_grad_bias)

# ---- vmap ---------------------------------------------------------------------------------------
# A batched input with an unbatched weight is one convolution over batch x N images; anything
# else (per-sample weights, as in per-sample gradients of the weight) runs one call per sample.


def _fold(t, dim):
    t = t.movedim(dim, 0)
    return t.reshape(t.shape[0] * t.shape[1], *t.shape[2:]), t.shape[0]


@torch.library.register_vmap(LIB + "conv2d")
def _conv2d_vmap(info, in_dims, input, weight, bias, *conf):
    if in_dims[0] is not None and in_dims[1] is None and (len(in_dims) < 3 or in_dims[2] is None):
        x, b = _fold(input, in_dims[0])
        y = ops.conv2d(x, weight, bias, *conf)
        return y.reshape(b, -1, *y.shape[1:]), 0
    return vmap_per_sample(info, in_dims, ops.conv2d, (input, weight, bias, *conf))


for _name in ("conv2d_grad_input", "conv2d_grad_weight", "conv2d_grad_bias", "conv2d_backward"):
    _op = getattr(ops, _name)
    torch.library.register_vmap(
        LIB + _name, lambda info, in_dims, *args, _op=_op: vmap_per_sample(info, in_dims, _op, args)
    )
