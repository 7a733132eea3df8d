"""Fake kernels and autograd of the loss ops (csrc/schema/loss.cpp).

mse_loss: d/dx = 2 (x - t) g (/ n for the mean) = mse_loss_backward, d/dt = -d/dx; the backward
op is itself differentiable (double backward). cross_entropy_forward returns (loss, lse,
total_weight); the last two are saved for cross_entropy_backward and are not differentiable.
Its logits are (rows, classes) or (batch, classes, positions): the classes are dim 1 in both, and
a row's values (lse, loss, class target) are shaped as the logits without it, so the formulas
below reduce over dim 1 and broadcast class vectors through `_per_class`. The gradient of
probability targets, d/dq_c = -g w_c (1 - e) (x_c - lse), is formed here from the
saved lse (no kernel needs it on the common path)."""

import torch

from ._common import (
    LIB,
    add_tangents,
    call,
    check_dtype,
    check_like,
    check_same_device,
    direct_backward,
    redispatcher,
    register_autograd,
    route,
    vmap_per_sample,
)

ops = torch.ops.dlkernels
_grad_enabled = torch.is_grad_enabled
NONE, MEAN, SUM = 0, 1, 2


def _stat_dtype(dtype):
    # half and bfloat16 keep their row statistics in float (the CUDA kernels' math type)
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


# ---- fake kernels -------------------------------------------------------------------------------


@torch.library.register_fake(LIB + "mse_loss")
def _mse_fake(x, t, reduction):
    check_dtype("mse_loss", x)
    check_like("mse_loss", x, "self", t, "target")
    return torch.empty_like(x) if reduction == NONE else x.new_empty(())


@torch.library.register_fake(LIB + "mse_loss_backward")
def _mse_backward_fake(g, x, t, reduction):
    check_dtype("mse_loss_backward", x)
    check_like("mse_loss_backward", x, "self", t, "target")
    check_same_device("mse_loss_backward", x, "self", g, "grad_output")
    return torch.empty_like(x)


def _row_shape(x):
    """The shape of a row's values (lse, unreduced loss, class target): the logits' without dim 1."""
    return (x.shape[0], *x.shape[2:])


def _per_class(v, x):
    """A class vector (weight, its tangent) shaped to broadcast over x's dim 1."""
    return v.view(-1, *([1] * (x.dim() - 2)))


def _sum_rows(v):
    """The sum over every row of a tensor shaped like the logits: one value per class."""
    return v.sum(0) if v.dim() == 2 else v.sum((0, 2))


def _check_ce(op, x, target, weight):
    check_dtype(op, x)
    if x.dim() not in (2, 3):
        raise RuntimeError(
            f"{op}: expected logits of shape (rows, classes) or (batch, classes, positions), but got "
            f"{list(x.shape)}"
        )
    check_same_device(op, x, "self", target, "target")
    if target.dtype != torch.int64:
        check_like(op, x, "self", target, "target")
    elif target.shape != _row_shape(x):
        raise RuntimeError(
            f"{op}: expected int64 targets of shape {list(_row_shape(x))}, but got {list(target.shape)}"
        )
    if weight is not None and (weight.dim() != 1 or weight.shape[0] != x.shape[1]):
        raise RuntimeError(
            f"{op}: weight tensor should be defined either for all {x.shape[1]} classes or no classes but "
            f"got weight tensor of shape: {list(weight.shape)}"
        )


@torch.library.register_fake(LIB + "cross_entropy_forward")
def _ce_forward_fake(x, target, weight, reduction, ignore_index, label_smoothing):
    _check_ce("cross_entropy_forward", x, target, weight)
    rows = _row_shape(x)
    stat = _stat_dtype(x.dtype)
    loss = x.new_empty(rows) if reduction == NONE else x.new_empty(())
    return loss, x.new_empty(rows, dtype=stat), x.new_empty((), dtype=stat)


@torch.library.register_fake(LIB + "cross_entropy_backward")
def _ce_backward_fake(g, x, target, weight, lse, total_weight, reduction, ignore_index, label_smoothing):
    _check_ce("cross_entropy_backward", x, target, weight)
    return x.new_empty(x.shape)


# ---- autograd -----------------------------------------------------------------------------------


def _mse_setup(ctx, inputs, output):
    x, t, reduction = inputs
    ctx.save_for_backward(x, t)
    ctx.reduction = reduction


def _mse_bwd(ctx, grad):
    x, t = ctx.saved_tensors
    gx = call(ops.mse_loss_backward, grad, x, t, ctx.reduction)
    return (
        gx if ctx.needs_input_grad[0] else None,
        -gx if ctx.needs_input_grad[1] else None,
        None,
    )


def _mse_backward_setup(ctx, inputs, output):
    g, x, t, reduction = inputs
    ctx.save_for_backward(g, x, t)
    ctx.reduction = reduction


def _mse_backward_bwd(ctx, gg):
    # dx = c g (x - t) with c = 2 (2 / n for the mean)
    g, x, t = ctx.saved_tensors
    red = ctx.reduction
    c = 2.0 / x.numel() if red == MEAN and x.numel() else 2.0
    d_g = d_x = None
    if ctx.needs_input_grad[0]:
        d_g = ops.mse_loss_backward(gg, x, t, NONE)
        if red != NONE:
            d_g = d_g.sum() * (c / 2.0)
    if ctx.needs_input_grad[1] or ctx.needs_input_grad[2]:
        d_x = gg * g * c
    return (
        d_g,
        d_x if ctx.needs_input_grad[1] else None,
        -d_x if ctx.needs_input_grad[2] else None,
        None,
    )


# Forward mode: the loss moves with d = dx - dt; mse_loss_backward is linear in grad_output and
# in x - t.


def _difference(tx, tt):
    if tt is None:
        return tx
    return -tt if tx is None else tx - tt


def _jvp_mse(inputs, out, tx, tt, *_):
    x, t, reduction = inputs
    d = _difference(tx, tt)
    if d is None:
        return None
    per_element = ops.mse_loss_backward(d, x, t, NONE)  # 2 (x - t) d
    if reduction == NONE:
        return per_element
    return per_element.mean() if reduction == MEAN else per_element.sum()


def _jvp_mse_backward(inputs, out, tg, tx, tt, *_):
    g, x, t, reduction = inputs
    c = 2.0 / x.numel() if reduction == MEAN and x.numel() else 2.0
    d = _difference(tx, tt)
    return add_tangents(
        None if tg is None else ops.mse_loss_backward(tg, x, t, reduction),
        None if d is None else c * g * d,
    )


register_autograd("mse_loss", _mse_bwd, _mse_setup, _jvp_mse)
register_autograd("mse_loss_backward", _mse_backward_bwd, _mse_backward_setup, _jvp_mse_backward)


def _ce_setup(ctx, inputs, output):
    x, target, weight, reduction, ignore_index, label_smoothing = inputs
    _, lse, total = output
    ctx.mark_non_differentiable(lse, total)
    ctx.set_materialize_grads(False)  # no zero tensors for the lse and total weight (backward reads neither)
    ctx.save_for_backward(x, target, weight, lse, total)
    ctx.args = (reduction, ignore_index, label_smoothing)


def _ce_bwd(ctx, grad_loss, grad_lse, grad_total):
    x, target, weight, lse, total = ctx.saved_tensors
    return _ce_grads(ctx.needs_input_grad, grad_loss, x, target, weight, lse, total, ctx.args)


def _ce_grads(needs, grad_loss, x, target, weight, lse, total, args):
    """The gradients of the logits, targets and weight (those in `needs`) for the loss's
    gradient grad_loss; lse and total are the forward's, args its (reduction, ignore_index,
    label_smoothing)."""
    reduction, ignore_index, label_smoothing = args
    if grad_loss is None:
        grad_loss = x.new_zeros(()) if reduction != NONE else x.new_zeros(_row_shape(x))
    gx = gt = gw = None
    if needs[0]:
        gx = call(ops.cross_entropy_backward, grad_loss, x, target, weight, lse, total, *args)
    soft = target.is_floating_point()
    if needs[2] and not soft:
        raise RuntimeError(_CLASS_WEIGHT_GRAD)
    if (needs[1] and soft) or needs[2]:
        # Probability targets: d/dq = -(1 - e) w log p and d/dw = -sum_rows q' log p, with
        # q' = (1 - e) q + e / C and log p = x - lse, in the lse's dtype (float for half types:
        # x - lse cancels, half would keep few bits of it).
        stat = lse.dtype
        log_p = _log_probs(x, lse)
        scale = _row_scale(grad_loss, total, reduction, stat)
        if needs[1]:
            gt = -(1.0 - label_smoothing) * scale * log_p
            if weight is not None:
                gt = gt * _per_class(weight.to(stat), x)
            gt = gt.to(x.dtype)
        if needs[2]:
            q = (1.0 - label_smoothing) * target.to(stat) + label_smoothing / x.shape[1]
            gw = (-_sum_rows(scale * q * log_p)).to(weight.dtype)
    return gx, gt, gw, None, None, None


def _row_scale(g, total, reduction, stat):
    """Each row's factor on its gradient, in `stat`, shaped to broadcast over the classes: the
    upstream gradient (per row when unreduced), over the total weight for the mean."""
    s = g.to(stat) / total if reduction == MEAN else g.to(stat)
    return s.unsqueeze(1) if reduction == NONE else s


def _log_probs(x, lse):
    """log p = x - lse in the lse's dtype. Under create_graph the lse is recomputed so that it
    carries its derivative in x (the saved one is a constant to autograd): row r's loss against
    class 0 is lse_r - x_r0."""
    xs = x.to(lse.dtype)
    if torch.is_grad_enabled() and x.shape[1] > 0:
        zeros = torch.zeros(_row_shape(x), dtype=torch.int64, device=x.device)
        lse = ops.cross_entropy_forward(xs, zeros, None, NONE, -1, 0.0)[0] + xs[:, 0]
    return xs - lse.unsqueeze(1)


_CLASS_WEIGHT_GRAD = (
    "The function 'cross_entropy_forward' is not differentiable with respect to argument 'weight' "
    "for class-index targets. This input cannot have requires_grad True."
)


# Forward mode. Row r's loss is -sum_c a[r, c] log p[r, c] with log p = x - lse and the target
# weights a = w (1 - e) onehot(y) + w e / C on kept rows (class targets) or a = w ((1 - e) q + e / C)
# (probabilities); the mean divides by the total weight T (sum of w[y] over kept rows, or the row
# count). So d/dx = A p - a per row (A = sum_c a, the backward op's gradient), d/da = -log p, and
# a tangent of w moves T too. The lse and total weight passed to cross_entropy_backward are those
# of x, target and weight by contract: their change is derived from x's, target's and weight's
# tangents (they carry none, being non-differentiable outputs).


def _ce_target_weights(x, target, weight, ignore_index, label_smoothing, t_target, t_weight, stat):
    """(a, da, dT): the target weights, their tangent (None without tangents of target or
    weight) and the total weight's tangent (None unless a class-target weight has one)."""
    classes = x.shape[1]
    w = None if weight is None else _per_class(weight.to(stat), x)
    t_weight = None if t_weight is None else _per_class(t_weight, x)
    if target.is_floating_point():
        base = (1.0 - label_smoothing) * target.to(stat) + label_smoothing / classes
        d_base, dT = None if t_target is None else (1.0 - label_smoothing) * t_target.to(stat), None
    else:
        keep = (target != ignore_index).unsqueeze(1)
        onehot = target.unsqueeze(1) == _per_class(torch.arange(classes, device=x.device), x)
        base = ((1.0 - label_smoothing) * onehot.to(stat) + label_smoothing / classes) * keep
        d_base = None
        dT = None if t_weight is None else (t_weight.to(stat) * (onehot & keep)).sum()
    a = base if w is None else base * w
    da = add_tangents(
        None if d_base is None else (d_base if w is None else d_base * w),
        None if t_weight is None else base * t_weight.to(stat),
    )
    return a, da, dT


def _jvp_ce(inputs, outs, tx, t_target, t_weight, *_):
    x, target, weight, reduction, ignore_index, label_smoothing = inputs
    loss, lse, total = outs
    stat = lse.dtype
    rows = []  # per-row terms, scaled as the reduction scales the rows
    dT = None
    if tx is not None:
        gx = ops.cross_entropy_backward(torch.ones_like(loss), *inputs[:3], lse, total, *inputs[3:])
        rows.append((gx.to(stat) * tx.to(stat)).sum(1))
    if t_target is not None or t_weight is not None:
        _, da, dT = _ce_target_weights(
            x, target, weight, ignore_index, label_smoothing, t_target, t_weight, stat
        )
        d_rows = -(da * (x.to(stat) - lse.unsqueeze(1))).sum(1)
        rows.append(d_rows / total if reduction == MEAN else d_rows)
    t = add_tangents(*rows)
    if t is not None and reduction != NONE:
        t = t.sum()
    if dT is not None and reduction == MEAN:  # the mean's divisor moves with the weight
        t = t - loss.to(stat) * dT / total
    # lse and total weight are not differentiable: no tangent
    return None if t is None else t.to(x.dtype), None, None


def _jvp_ce_backward(inputs, out, t_grad, tx, t_target, t_weight, *_):
    g, x, target, weight, lse, total, reduction, ignore_index, label_smoothing = inputs
    stat = lse.dtype
    terms = []
    if t_grad is not None:
        terms.append(ops.cross_entropy_backward(t_grad, *inputs[1:]).to(stat))
    if tx is not None or t_target is not None or t_weight is not None:
        # out = s (A p - a), s the row's scale: g (g[r] unreduced), over T for the mean
        a, da, dT = _ce_target_weights(
            x, target, weight, ignore_index, label_smoothing, t_target, t_weight, stat
        )
        s = _row_scale(g, total, reduction, stat)
        p = torch.exp(x.to(stat) - lse.unsqueeze(1))
        if tx is not None:
            tx = tx.to(stat)
            dp = p * (tx - (p * tx).sum(1, keepdim=True))
            terms.append(s * a.sum(1, keepdim=True) * dp)
        if da is not None:
            terms.append(s * (da.sum(1, keepdim=True) * p - da))
        if dT is not None and reduction == MEAN:
            terms.append(-out.to(stat) * dT / total)
    t = add_tangents(*terms)
    return None if t is None else t.to(x.dtype)


def _ce_backward_setup(ctx, inputs, output):
    g, x, target, weight, lse, total, *args = inputs
    ctx.save_for_backward(g, x, target, weight, lse, total)
    ctx.args = tuple(args)


def _ce_backward_bwd(ctx, h):
    # out = s (A p - a) per row (see the forward-mode note above); for an upstream h, with
    # hp = sum_c h_c p_c: d/dx = s A p (h - hp), d/dq_k = s (1 - e) w_k (hp - h_k),
    # d/dw_k = sum_rows s q'_k (hp - h_k), and out is linear in g. lse and total weight are the
    # forward's by contract: their dependence on x is in d/dx, and they get no gradient.
    g, x, target, weight, lse, total = ctx.saved_tensors
    reduction, ignore_index, label_smoothing = ctx.args
    needs = ctx.needs_input_grad
    soft = target.is_floating_point()
    if needs[3] and not soft:
        raise RuntimeError(_CLASS_WEIGHT_GRAD)
    stat = lse.dtype
    hs = h.to(stat)
    p = torch.exp(_log_probs(x, lse))
    a, _, _ = _ce_target_weights(x, target, weight, ignore_index, label_smoothing, None, None, stat)
    big_a = a.sum(1, keepdim=True)
    hp = (hs * p).sum(1, keepdim=True)
    s = _row_scale(g, total, reduction, stat)
    d_g = d_x = d_t = d_w = None
    if needs[0]:
        per_row = ((big_a * p - a) * hs).sum(1)
        d_g = per_row if reduction == NONE else per_row.sum() / total if reduction == MEAN else per_row.sum()
        d_g = d_g.to(g.dtype)
    if needs[1]:
        d_x = (s * big_a * p * (hs - hp)).to(x.dtype)
    if needs[2] and soft:
        w = 1.0 if weight is None else _per_class(weight.to(stat), x)
        d_t = (s * (1.0 - label_smoothing) * w * (hp - hs)).to(target.dtype)
    if needs[3]:
        q = (1.0 - label_smoothing) * target.to(stat) + label_smoothing / x.shape[1]
        d_w = _sum_rows(s * q * (hp - hs)).to(weight.dtype)
    return d_g, d_x, d_t, d_w, None, None, None, None, None


register_autograd("cross_entropy_forward", _ce_bwd, _ce_setup, _jvp_ce)


_ce_forward_kernel = redispatcher(ops.cross_entropy_forward.default)
_ce_backward_kernel = redispatcher(ops.cross_entropy_backward.default)


class _CrossEntropyLoss(torch.autograd.Function):
    """cross_entropy_forward's node on the direct path when only the loss is wanted (the
    functional layer). Its fixed cost is most of a small call's (64 x 10: the kernels take about
    3 us of 60), so it is lean: one output (a node with three costs about 5 us more per forward +
    backward), the non-tensor arguments in one, the lse and total weight kept on ctx (nothing
    else holds them, so they need no version check), and a backward that runs the grad op
    directly in the common case. The ctx-style forward is fine because the direct path excludes
    torch.func transforms."""

    @staticmethod
    def forward(ctx, x, target, weight, meta):
        loss, lse, total = _ce_forward_kernel(meta[0], x, target, weight, meta[1], meta[2], meta[3])
        ctx.save_for_backward(x, target, weight)
        ctx.meta = meta
        ctx.stats = lse, total
        return loss

    @staticmethod
    def backward(ctx, grad):
        x, target, weight = ctx.saved_tensors
        lse, total = ctx.stats
        meta = ctx.meta
        needs = ctx.needs_input_grad
        if needs[1] or needs[2] or _grad_enabled() or not direct_backward(grad):
            return (*_ce_grads(needs, grad, x, target, weight, lse, total, meta[1:])[:3], None)
        # the logits' gradient alone, no double backward, nothing above the backend: the
        # forward's route holds for the saved tensors
        gx = _ce_backward_kernel(meta[0], grad, x, target, weight, lse, total, meta[1], meta[2], meta[3])
        return gx, None, None, None


_record_loss = super(torch.autograd.Function, _CrossEntropyLoss).apply  # the plain C++ apply


def cross_entropy_loss(x, target, weight, reduction, ignore_index, label_smoothing):
    """The loss output of cross_entropy_forward, by the direct path where it applies."""
    keys, record = route((x, target, weight))
    if keys is None:
        return ops.cross_entropy_forward(x, target, weight, reduction, ignore_index, label_smoothing)[0]
    if not record:
        return _ce_forward_kernel(keys, x, target, weight, reduction, ignore_index, label_smoothing)[0]
    return _record_loss(x, target, weight, (keys, reduction, ignore_index, label_smoothing))


register_autograd("cross_entropy_backward", _ce_backward_bwd, _ce_backward_setup, _jvp_ce_backward)

# ---- vmap ---------------------------------------------------------------------------------------
# Unreduced losses are per element (mse) or per row (cross entropy), so the vmapped dimension
# folds into the elements or rows: one kernel call. A sample's mean or sum is then formed from the
# unreduced call in float64, as the kernels accumulate in double; the cross entropy mean's divisor
# (each sample's total weight) is summed the same way. The backward ops take one scale for every
# row, so a per-sample scale (a vmapped grad_output, or the mean's per-sample total) is passed as
# an unreduced grad_output holding g (or g / total, the kernels' own double division): the same
# bits as a call per sample. Where such a per-sample value is formed outside the kernel, half
# types run the call in float, their kernels' math type, so that it is not rounded to half first.
# Vmapped class weights cannot share a call: one call per sample.


def _batch_first(t, dim, size):
    return t.movedim(dim, 0) if dim is not None else t.expand(size, *t.shape)


def _math_type(*ts):
    """The floating tensors (None kept) in their kernels' math type: float for half types."""
    return tuple(t.to(_stat_dtype(t.dtype)) if t is not None and t.is_floating_point() else t for t in ts)


def _sample_sums(values, size):
    """Each sample's sum of its unreduced losses, in float64 (values: the batch first)."""
    return values.reshape(size, values.numel() // size).to(torch.float64).sum(1)


def _scaled(g, divisor):
    """g / divisor in float64, as the kernels divide, back in g's dtype."""
    return (g.to(torch.float64) / divisor).to(g.dtype)


@torch.library.register_vmap(LIB + "mse_loss")
def _mse_vmap(info, in_dims, x, t, reduction):
    b = info.batch_size
    x, t = _batch_first(x, in_dims[0], b), _batch_first(t, in_dims[1], b)
    if reduction == NONE:
        return ops.mse_loss(x, t, NONE), 0
    out = ops.mse_loss(*_math_type(x, t), NONE)
    s = _sample_sums(out, b)
    if reduction == MEAN:
        s = s / (out.numel() // b)  # 0 / 0 = NaN for empty samples, as the kernel gives
    return s.to(x.dtype), 0


@torch.library.register_vmap(LIB + "mse_loss_backward")
def _mse_backward_vmap(info, in_dims, g, x, t, reduction):
    b = info.batch_size
    x, t = _batch_first(x, in_dims[1], b), _batch_first(t, in_dims[2], b)
    if reduction == NONE:
        return ops.mse_loss_backward(_batch_first(g, in_dims[0], b), x, t, NONE), 0
    dtype = x.dtype
    if reduction == MEAN:
        # 2 T(g / n) = T(2 g / n): the sum's scale given g / n is the mean's
        g, x, t = _math_type(g, x, t)
        g = _scaled(g, max(x.numel() // b, 1))
    if in_dims[0] is None:  # one scale for all samples
        return ops.mse_loss_backward(g, x, t, SUM).to(dtype), 0
    g = g.movedim(in_dims[0], 0).reshape(b, *([1] * (x.dim() - 1))).expand(x.shape)
    return ops.mse_loss_backward(g, x, t, NONE).to(dtype), 0


def _ce_totals(target, weight, ignore_index, rows):
    """Each sample's total weight in float64, as the kernel forms it: the row count (`rows` per
    sample) for probability targets, else the class weights (or the count) of the rows not
    ignored (target: the batch first)."""
    if target.is_floating_point():
        return torch.full(target.shape[:1], float(rows), dtype=torch.float64, device=target.device)
    keep = target != ignore_index
    if weight is None:
        return keep.to(torch.float64).flatten(1).sum(1)
    return (weight.to(torch.float64)[target.where(keep, 0)] * keep).flatten(1).sum(1)


@torch.library.register_vmap(LIB + "cross_entropy_forward")
def _ce_forward_vmap(info, in_dims, x, target, weight, reduction, ignore_index, label_smoothing):
    if in_dims[2] is not None:
        args = (x, target, weight, reduction, ignore_index, label_smoothing)
        return vmap_per_sample(info, in_dims, ops.cross_entropy_forward, args)
    b = info.batch_size
    x, target = _batch_first(x, in_dims[0], b), _batch_first(target, in_dims[1], b)
    dtype = x.dtype
    if reduction != NONE:
        x, target, weight = _math_type(x, target, weight)
    # the samples' batches (dim 1) become one: (b * rows, classes[, positions])
    loss, lse, _ = ops.cross_entropy_forward(
        x.flatten(0, 1), target.flatten(0, 1), weight, NONE, ignore_index, label_smoothing
    )
    rows = (b, *_row_shape(x[0]))
    loss, lse = loss.view(rows), lse.view(rows)
    # after the kernel's call, which reports a target out of range
    total = _ce_totals(target, weight, ignore_index, lse[0].numel())
    if reduction != NONE:
        s = _sample_sums(loss, b)
        loss = (s / total if reduction == MEAN else s).to(dtype)
    # the total weight is not differentiable (it moved the mean above)
    return (loss, lse, total.detach().to(lse.dtype)), (0, 0, 0)


@torch.library.register_vmap(LIB + "cross_entropy_backward")
def _ce_backward_vmap(
    info, in_dims, g, x, target, weight, lse, total, reduction, ignore_index, label_smoothing
):
    if in_dims[3] is not None:
        args = (g, x, target, weight, lse, total, reduction, ignore_index, label_smoothing)
        return vmap_per_sample(info, in_dims, ops.cross_entropy_backward, args)
    b = info.batch_size
    x, target, lse = (_batch_first(a, in_dims[i], b) for i, a in ((1, x), (2, target), (4, lse)))
    dtype = x.dtype

    def flat(t):  # the samples' batches as one
        return t.flatten(0, 1)

    one_total = total if in_dims[5] is None else total.select(in_dims[5], 0)  # read by the mean only
    if reduction != NONE and in_dims[0] is None and (reduction == SUM or in_dims[5] is None):
        # one scale (g, or g / total) for every row of every sample: the reduced kernel as it is
        grad, red = g, reduction
    else:
        g = _batch_first(g, in_dims[0], b)
        if reduction == MEAN:
            g, x, target, weight = _math_type(g, x, target, weight)
            g = _scaled(g, _batch_first(total, in_dims[5], b).to(torch.float64))
        if reduction != NONE:  # the sample's scale on each of its rows
            g = g.view(b, *([1] * (lse.dim() - 1))).expand(lse.shape)
        grad, red = flat(g), NONE
    dx = ops.cross_entropy_backward(
        grad, flat(x), flat(target), weight, flat(lse), one_total, red, ignore_index, label_smoothing
    )
    return dx.view(x.shape).to(dtype), 0
