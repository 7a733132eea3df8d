"""Fake kernels, autograd and vmap rules of the activation ops (csrc/schema/activation.cpp).

The output of an op is ``empty_like(input)`` (dense inputs keep their strides), as
csrc/host/elementwise.h allocates it; in-place ops return nothing. Backward formulas, double
backward included: relu'(x) and leaky_relu'(x) are piecewise constant, so their backward ops are
linear in grad_output with no other derivative; sigmoid_backward(g, y) = g (1 - y) y, so
d/dg = sigmoid_backward(., y) and d/dy = g (1 - 2 y)."""

import torch

from ._common import (
    _DIRECT_RECORD,
    LIB,
    add_tangents,
    call,
    check_dtype,
    check_like,
    direct_backward,
    redispatcher,
    register_autograd,
    register_inplace,
)

ops = torch.ops.dlkernels
_lib = torch.library.Library("dlkernels", "FRAGMENT")

# ---- fake kernels -------------------------------------------------------------------------------


def _fake_forward(name):
    def fake(x, *args):
        check_dtype(name, x)
        return torch.empty_like(x)

    return fake


def _fake_inplace(name):
    def fake(x, *args):
        check_dtype(name, x)

    return fake


def _fake_backward(name, saved_name):
    def fake(grad_output, saved, *args):
        check_dtype(name, saved)
        check_like(name, saved, saved_name, grad_output, "grad_output")
        return torch.empty_like(grad_output)

    return fake


for _name, _saved in (("relu", "result"), ("leaky_relu", "self"), ("sigmoid", "result")):
    torch.library.register_fake(LIB + _name)(_fake_forward(_name))
    torch.library.register_fake(LIB + _name + "_")(_fake_inplace(_name + "_"))
    torch.library.register_fake(LIB + _name + "_backward")(_fake_backward(_name + "_backward", _saved))
    register_inplace(_lib, _name + "_")

# ---- autograd -----------------------------------------------------------------------------------


def _save_output(ctx, inputs, output):
    ctx.save_for_backward(output)


def _save_input_and_slope(ctx, inputs, output):
    ctx.save_for_backward(inputs[0])
    ctx.negative_slope = inputs[1]


def _save_saved(ctx, inputs, output):
    ctx.save_for_backward(inputs[1])
    ctx.extra = inputs[2:]


def _save_sigmoid_backward(ctx, inputs, output):
    ctx.save_for_backward(inputs[0], inputs[1])


def _relu_bwd(ctx, grad):
    return call(ops.relu_backward, grad, ctx.saved_tensors[0])


def _sigmoid_bwd(ctx, grad):
    return call(ops.sigmoid_backward, grad, ctx.saved_tensors[0])


def _leaky_relu_bwd(ctx, grad):
    return call(ops.leaky_relu_backward, grad, ctx.saved_tensors[0], ctx.negative_slope), None


def _relu_backward_bwd(ctx, grad):
    return call(ops.relu_backward, grad, ctx.saved_tensors[0]), None


def _leaky_relu_backward_bwd(ctx, grad):
    return call(ops.leaky_relu_backward, grad, ctx.saved_tensors[0], *ctx.extra), None, None


def _sigmoid_backward_bwd(ctx, grad):
    grad_output, result = ctx.saved_tensors
    d_grad = call(ops.sigmoid_backward, grad, result) if ctx.needs_input_grad[0] else None
    d_result = grad * grad_output * (1 - 2 * result) if ctx.needs_input_grad[1] else None
    return d_grad, d_result


# Forward mode: each op is its derivative applied to the tangent (the backward ops are linear in
# grad_output); sigmoid_backward also depends on the output it was given.


def _jvp_relu(inputs, y, t):
    return None if t is None else ops.relu_backward(t, y)


def _jvp_sigmoid(inputs, y, t):
    return None if t is None else ops.sigmoid_backward(t, y)


def _jvp_leaky_relu(inputs, y, t, _slope=None):
    return None if t is None else ops.leaky_relu_backward(t, inputs[0], inputs[1])


def _jvp_relu_backward(inputs, out, t_grad, t_result):
    return None if t_grad is None else ops.relu_backward(t_grad, inputs[1])


def _jvp_leaky_relu_backward(inputs, out, t_grad, t_self, _slope=None):
    return None if t_grad is None else ops.leaky_relu_backward(t_grad, inputs[1], inputs[2])


def _jvp_sigmoid_backward(inputs, out, t_grad, t_result):
    grad_output, result = inputs
    return add_tangents(
        None if t_grad is None else ops.sigmoid_backward(t_grad, result),
        None if t_result is None else grad_output * (1 - 2 * result) * t_result,
    )


register_autograd("relu", _relu_bwd, _save_output, _jvp_relu)
register_autograd("sigmoid", _sigmoid_bwd, _save_output, _jvp_sigmoid)
register_autograd("leaky_relu", _leaky_relu_bwd, _save_input_and_slope, _jvp_leaky_relu)
register_autograd("relu_backward", _relu_backward_bwd, _save_saved, _jvp_relu_backward)
register_autograd("leaky_relu_backward", _leaky_relu_backward_bwd, _save_saved, _jvp_leaky_relu_backward)
register_autograd("sigmoid_backward", _sigmoid_backward_bwd, _save_sigmoid_backward, _jvp_sigmoid_backward)

_grad_enabled = torch.is_grad_enabled


def _lean_node(name, saves_output):
    """The op's node on the direct path (call, with autograd recording), lean as linear's
    (_ops/linear.py): the forward runs the backend kernel and saves the output (relu, sigmoid) or
    the input (leaky_relu, with its slope); the backward runs the backward op's kernel directly
    where nothing records and nothing sits above the backend, else the registered formula (which
    records, for a double backward). relu of 64K float32 forward + backward, one thread, Zen 5:
    36.7 -> 32.8 us (torch 27.1); of 16 elements 21.4 -> 20.1 us."""
    op, backward_op = getattr(ops, name), getattr(ops, name + "_backward")
    kernel, backward_kernel = redispatcher(op.default), redispatcher(backward_op.default)

    def forward(ctx, x, extra, keys):  # extra: the op's non-tensor arguments (leaky_relu's slope)
        y = kernel(keys, x, *extra)
        ctx.save_for_backward(y if saves_output else x)
        ctx.meta = keys, extra
        return y

    def backward(ctx, grad):
        (saved,) = ctx.saved_tensors
        keys, extra = ctx.meta
        if _grad_enabled() or not direct_backward(grad):
            return call(backward_op, grad, saved, *extra), None, None
        return backward_kernel(keys, grad, saved, *extra), None, None

    node = type(
        f"_{name}",
        (torch.autograd.Function,),
        {"forward": staticmethod(forward), "backward": staticmethod(backward)},
    )
    record = super(torch.autograd.Function, node).apply  # the plain C++ apply
    _DIRECT_RECORD[op] = lambda keys, x, *extra: record(x, extra, keys)


_lean_node("relu", saves_output=True)
_lean_node("sigmoid", saves_output=True)
_lean_node("leaky_relu", saves_output=False)

# ---- vmap ---------------------------------------------------------------------------------------
# Elementwise: the batch dimension is one more dimension of the same op. Operands of a backward op
# must share their shape, so an unbatched one is expanded to the batch first.


def _vmap_unary(op):
    def rule(info, in_dims, x, *args):
        return op(x, *args), in_dims[0]

    return rule


def _vmap_binary(op):
    def rule(info, in_dims, a, b, *args):
        da, db = in_dims[0], in_dims[1]
        a = a.movedim(da, 0) if da is not None else a.unsqueeze(0).expand(info.batch_size, *a.shape)
        b = b.movedim(db, 0) if db is not None else b.unsqueeze(0).expand(info.batch_size, *b.shape)
        return op(a, b, *args), 0

    return rule


for _name in ("relu", "leaky_relu", "sigmoid"):
    torch.library.register_vmap(LIB + _name, _vmap_unary(getattr(ops, _name)))
    torch.library.register_vmap(LIB + _name + "_backward", _vmap_binary(getattr(ops, _name + "_backward")))
