"""Fake kernels, autograd and vmap rules of the linear ops (csrc/schema/linear.cpp).

The fake kernels make the checks of csrc/host/linear.h, with its messages. Autograd records one
gradient op per gradient, as torch's addmm / matmul do, so which results require grad in a double
backward is torch's (linear_backward, all three in one call, is for callers that want them
together; it is differentiable too). Each gradient op is linear in every tensor argument, which
gives the double backward (leading dimensions folded into rows):
  <G, grad_input(dy, w)>  = <dy, linear(G, w)>   d/d dy = linear(G, w),  d/d w = grad_weight(dy, G)
  <H, grad_weight(dy, x)> = <dy, linear(x, H)>   d/d dy = linear(x, H),  d/d x = grad_input(dy, H)
  <h, grad_bias(dy)>      = <dy, h broadcast>    d/d dy = h broadcast to dy's shape
The gradient ops inherit the forward's allow_tf32, as torch's matmul backward follows the flag.
"""

import math

import torch

from ._common import (
    _DIRECT_RECORD,
    LIB,
    add_tangents,
    bilinear_tangent,
    call,
    check_dtype,
    check_same_device,
    direct_backward,
    dtype_name,
    redispatcher,
    register_autograd,
    vmap_per_sample,
)

ops = torch.ops.dlkernels
_grad_enabled = torch.is_grad_enabled

_TORCH_NAMES = {torch.float32: "float", torch.float64: "double"}


def _torch_name(dtype):
    return _TORCH_NAMES.get(dtype, f"c10::{dtype_name(dtype)}")


def _rows(t):
    return math.prod(t.shape[:-1])


# ---- checks, as csrc/host/linear.h makes them ---------------------------------------------------


def check_linear(op, input, weight, bias):
    if input.dim() < 1 or weight.dim() < 1:
        raise RuntimeError(
            "both arguments to linear need to be at least 1D, but they are "
            f"{input.dim()}D and {weight.dim()}D"
        )
    if weight.dim() != 2:
        raise RuntimeError(
            f"{op}: expected a 2-D weight (out_features, in_features), but got weight of size "
            f"{list(weight.shape)}"
        )
    check_same_device(op, input, "input", weight, "weight")
    if bias is not None:
        check_same_device(op, input, "input", bias, "bias")
    check_dtype(op, input)
    if bias is not None and bias.dtype != weight.dtype:
        raise RuntimeError(
            "self and mat2 must have the same dtype, but got "
            f"{dtype_name(bias.dtype)} and {dtype_name(weight.dtype)}"
        )
    if input.dtype != weight.dtype:
        raise RuntimeError(
            f"expected m1 and m2 to have the same dtype, but got: {_torch_name(input.dtype)} != "
            f"{_torch_name(weight.dtype)}"
        )
    if input.shape[-1] != weight.shape[1]:
        raise RuntimeError(
            f"mat1 and mat2 shapes cannot be multiplied ({_rows(input)}x{input.shape[-1]} and "
            f"{weight.shape[1]}x{weight.shape[0]})"
        )
    if bias is not None and (bias.dim() != 1 or bias.shape[0] != weight.shape[0]):
        raise RuntimeError(f"{op}: expected bias of size [{weight.shape[0]}], but got {list(bias.shape)}")


def _check_grad_input(op, dy, w):
    check_same_device(op, dy, "grad_output", w, "weight")
    check_dtype(op, dy)
    if dy.dtype != w.dtype:
        raise RuntimeError(
            f"{op}: expected grad_output and weight to have the same dtype, but got {dtype_name(dy.dtype)} "
            f"and {dtype_name(w.dtype)}"
        )
    if w.dim() != 2:
        raise RuntimeError(f"{op}: expected a 2-D weight, but got weight of size {list(w.shape)}")
    if dy.dim() < 1 or dy.shape[-1] != w.shape[0]:
        raise RuntimeError(
            f"{op}: expected grad_output of size [..., {w.shape[0]}], but got {list(dy.shape)}"
        )


def _check_grad_weight(op, dy, x):
    check_same_device(op, dy, "grad_output", x, "input")
    check_dtype(op, dy)
    if dy.dtype != x.dtype:
        raise RuntimeError(
            f"{op}: expected grad_output and input to have the same dtype, but got {dtype_name(dy.dtype)} "
            f"and {dtype_name(x.dtype)}"
        )
    if dy.dim() < 1 or dy.dim() != x.dim() or dy.shape[:-1] != x.shape[:-1]:
        raise RuntimeError(
            f"{op}: expected grad_output and input with the same leading dimensions, but got "
            f"{list(dy.shape)} and {list(x.shape)}"
        )


def _check_grad_bias(op, dy):
    check_dtype(op, dy)
    if dy.dim() < 1:
        raise RuntimeError(
            f"{op}: expected grad_output of at least 1 dimension, but got size {list(dy.shape)}"
        )


# ---- fake kernels -------------------------------------------------------------------------------


@torch.library.register_fake(LIB + "linear")
def _linear_fake(input, weight, bias, allow_tf32=False):
    check_linear("linear", input, weight, bias)
    return input.new_empty((*input.shape[:-1], weight.shape[0]))


@torch.library.register_fake(LIB + "linear_grad_input")
def _grad_input_fake(grad_output, weight, allow_tf32=False):
    _check_grad_input("linear_grad_input", grad_output, weight)
    return grad_output.new_empty((*grad_output.shape[:-1], weight.shape[1]))


@torch.library.register_fake(LIB + "linear_grad_weight")
def _grad_weight_fake(grad_output, input, allow_tf32=False):
    _check_grad_weight("linear_grad_weight", grad_output, input)
    return input.new_empty((grad_output.shape[-1], input.shape[-1]))


@torch.library.register_fake(LIB + "linear_grad_bias")
def _grad_bias_fake(grad_output):
    _check_grad_bias("linear_grad_bias", grad_output)
    return grad_output.new_empty((grad_output.shape[-1],))


@torch.library.register_fake(LIB + "linear_backward")
def _backward_fake(grad_output, input, weight, output_mask, allow_tf32=False):
    if len(output_mask) != 3:
        raise RuntimeError("linear_backward: expected output_mask of 3 values")
    if (
        grad_output.dim() != input.dim()
        or weight.dim() != 2
        or input.dim() < 1
        or grad_output.shape[-1] != weight.shape[0]
        or grad_output.shape[:-1] != input.shape[:-1]
    ):
        raise RuntimeError(
            "linear_backward: expected grad_output of the input's leading dimensions and weight.size(0) "
            f"features, but got grad_output {list(grad_output.shape)}, input {list(input.shape)} and weight "
            f"{list(weight.shape)}"
        )
    none = grad_output.new_empty((0,))
    return (
        _grad_input_fake(grad_output, weight) if output_mask[0] else none,
        _grad_weight_fake(grad_output, input) if output_mask[1] else none.clone(),
        _grad_bias_fake(grad_output) if output_mask[2] else none.clone(),
    )


# ---- autograd -----------------------------------------------------------------------------------


def _tf32(inputs, n):
    """The op's allow_tf32 argument (the n-th), False where the call left it out."""
    return bool(inputs[n]) if len(inputs) > n else False


def _linear_setup(ctx, inputs, output):
    input, weight, bias = inputs[:3]
    ctx.save_for_backward(input, weight)
    ctx.has_bias = bias is not None
    ctx.tf32 = _tf32(inputs, 3)


def _linear_bwd(ctx, grad_output):
    input, weight = ctx.saved_tensors
    return (*_linear_grads(ctx.needs_input_grad, ctx.has_bias, ctx.tf32, grad_output, input, weight), None)


def _grad_mask(needs, has_bias):
    """linear_backward's output mask: the gradients autograd wants (a bias's only if there is one)."""
    return [needs[0], needs[1], has_bias and needs[2]]


def _linear_grads(needs, has_bias, tf32, grad_output, input, weight):
    # One op per gradient, not linear_backward: torch's linear (addmm / matmul) records separate
    # nodes, so grad_bias does not require grad through x or w in a double backward. Without
    # grad mode nothing records, and linear_backward gives the same bits in one call (3 us per
    # call saved; the seed ConvNet's fc2 takes about 60 us forward and backward).
    mask = _grad_mask(needs, has_bias)
    if not _grad_enabled() and sum(mask) > 1:
        grads = call(ops.linear_backward, grad_output, input, weight, mask, tf32)
        return tuple(g if m else None for g, m in zip(grads, mask))
    dx = call(ops.linear_grad_input, grad_output, weight, tf32) if needs[0] else None
    dw = call(ops.linear_grad_weight, grad_output, input, tf32) if needs[1] else None
    db = call(ops.linear_grad_bias, grad_output) if has_bias and needs[2] else None
    return dx, dw, db


def _backward_setup(ctx, inputs, output):
    grad_output, input, weight, mask = inputs[:4]
    ctx.save_for_backward(grad_output, input, weight)
    ctx.mask = list(mask)
    ctx.tf32 = _tf32(inputs, 4)
    # an output no later op used gets None, not a zero tensor that a term would then multiply
    ctx.set_materialize_grads(False)


def _backward_bwd(ctx, ggx, ggw, ggb):
    """The derivative of linear_backward's outputs; the incoming gradients of outputs the mask
    left out are ignored (they are empty placeholders)."""
    dy, x, w = ctx.saved_tensors
    mask, needs, tf32 = ctx.mask, ctx.needs_input_grad, ctx.tf32
    ggx = ggx if mask[0] else None
    ggw = ggw if mask[1] else None
    ggb = ggb if mask[2] else None
    d_x = d_w = None
    # d/d dy: linear's own tangent along (ggx, ggw, ggb)
    d_dy = _jvp_linear((x, w, None, tf32), dy, ggx, ggw, ggb) if needs[0] else None
    if needs[1] and ggw is not None:
        d_x = ops.linear_grad_input(dy, ggw, tf32)
    if needs[2] and ggx is not None:
        d_w = ops.linear_grad_weight(dy, ggx, tf32)
    return d_dy, d_x, d_w, None, None


def _grad_op_setup(ctx, inputs, output):
    # linear_grad_input (dy, w) and linear_grad_weight (dy, x): both tensors, and allow_tf32
    ctx.save_for_backward(*inputs[:2])
    ctx.tf32 = _tf32(inputs, 2)


def _grad_input_bwd(ctx, g):
    dy, w = ctx.saved_tensors
    d_dy = ops.linear(g, w, None, ctx.tf32) if ctx.needs_input_grad[0] else None
    d_w = ops.linear_grad_weight(dy, g, ctx.tf32) if ctx.needs_input_grad[1] else None
    return d_dy, d_w, None


def _grad_weight_bwd(ctx, h):
    dy, x = ctx.saved_tensors
    d_dy = ops.linear(x, h, None, ctx.tf32) if ctx.needs_input_grad[0] else None
    d_x = ops.linear_grad_input(dy, h, ctx.tf32) if ctx.needs_input_grad[1] else None
    return d_dy, d_x, None


def _grad_bias_setup(ctx, inputs, output):
    ctx.shape = inputs[0].shape


def _grad_bias_bwd(ctx, h):
    return h.expand(ctx.shape)


# Forward mode: every op is linear in each tensor argument, so a tangent is the op applied to
# one argument's tangent at a time, summed; linear's bias tangent rides on the first term's bias.


def _jvp_linear(inputs, out, tx, tw, tb, *_):
    x, w = inputs[:2]
    tf32 = _tf32(inputs, 3)
    if tx is not None:
        return add_tangents(
            ops.linear(tx, w, tb, tf32), None if tw is None else ops.linear(x, tw, None, tf32)
        )
    if tw is not None:
        return ops.linear(x, tw, tb, tf32)
    return None if tb is None else tb.expand(out.shape)


def _jvp_grad_input(inputs, out, t_dy, t_w, *_):
    return bilinear_tangent(ops.linear_grad_input, *inputs[:2], t_dy, t_w, _tf32(inputs, 2))


def _jvp_grad_weight(inputs, out, t_dy, t_x, *_):
    return bilinear_tangent(ops.linear_grad_weight, *inputs[:2], t_dy, t_x, _tf32(inputs, 2))


def _jvp_grad_bias(inputs, out, t_dy):
    return None if t_dy is None else ops.linear_grad_bias(t_dy)


def _jvp_backward(inputs, outs, t_dy, t_x, t_w, *_):
    dy, x, w, mask = inputs[:4]
    tf32 = _tf32(inputs, 4)
    gi = _jvp_grad_input((dy, w, tf32), None, t_dy, t_w) if mask[0] else None
    gw = _jvp_grad_weight((dy, x, tf32), None, t_dy, t_x) if mask[1] else None
    gb = _jvp_grad_bias((dy,), None, t_dy) if mask[2] else None
    # outputs the mask left out are empty placeholders: their tangent is as empty
    return tuple(torch.zeros_like(o) if t is None else t for t, o in zip((gi, gw, gb), outs))


register_autograd("linear", _linear_bwd, _linear_setup, _jvp_linear)

_linear_kernel = redispatcher(ops.linear.default)
_linear_backward_kernel = redispatcher(ops.linear_backward.default)


class _Linear(torch.autograd.Function):
    """linear's node on the direct path (call, with autograd recording), lean as cross entropy's
    (_ops/loss.py): the forward runs the backend kernel, the backward its linear_backward in one
    call where nothing records and nothing sits above the backend, else the general formula. The
    ctx-style forward is fine because the direct path excludes torch.func transforms and
    forward-mode levels. 64x128 -> 10 forward + backward: 38-43 -> 35-40 us (torch 37-47), Zen 5."""

    @staticmethod
    def forward(ctx, x, w, b, meta):
        ctx.save_for_backward(x, w)
        ctx.meta = meta
        ctx.has_bias = b is not None
        return _linear_kernel(meta[0], x, w, b, meta[1])

    @staticmethod
    def backward(ctx, grad):
        x, w = ctx.saved_tensors
        keys, tf32 = ctx.meta
        needs = ctx.needs_input_grad
        if _grad_enabled() or not direct_backward(grad):
            return (*_linear_grads(needs, ctx.has_bias, tf32, grad, x, w), None)
        mask = _grad_mask(needs, ctx.has_bias)
        grads = _linear_backward_kernel(keys, grad, x, w, mask, tf32)
        return (*(g if m else None for g, m in zip(grads, mask)), None)


_record_linear = super(torch.autograd.Function, _Linear).apply  # the plain C++ apply
_DIRECT_RECORD[ops.linear] = lambda keys, x, w, b, tf32=False: _record_linear(x, w, b, (keys, bool(tf32)))
register_autograd("linear_backward", _backward_bwd, _backward_setup, _jvp_backward)
register_autograd("linear_grad_input", _grad_input_bwd, _grad_op_setup, _jvp_grad_input)
register_autograd("linear_grad_weight", _grad_weight_bwd, _grad_op_setup, _jvp_grad_weight)
register_autograd("linear_grad_bias", _grad_bias_bwd, _grad_bias_setup, _jvp_grad_bias)

# ---- vmap ---------------------------------------------------------------------------------------
# A batched input with an unbatched weight and bias is one call with one more leading dimension;
# anything else (per-sample weights) runs one call per sample.


@torch.library.register_vmap(LIB + "linear")
def _linear_vmap(info, in_dims, input, weight, bias, allow_tf32=False):
    if in_dims[0] is not None and in_dims[1] is None and in_dims[2] is None:
        return ops.linear(input.movedim(in_dims[0], 0), weight, bias, allow_tf32), 0
    return vmap_per_sample(info, in_dims, ops.linear, (input, weight, bias, allow_tf32))


for _name in ("linear_grad_input", "linear_grad_weight", "linear_grad_bias", "linear_backward"):
    _op = getattr(ops, _name)
    torch.library.register_vmap(
        LIB + _name, lambda info, in_dims, *args, _op=_op: vmap_per_sample(info, in_dims, _op, args)
    )
