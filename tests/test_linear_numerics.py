"""linear forward and gradients against a float64 product, on every device and CPU ISA: odd
shapes (primes, 1, empty leading dimensions, zero features), leading dimensions, layouts
(transposed, strided, expanded; read in place by the packers) and a seeded randomized sweep.

Tolerance from error analysis, as tests/test_gemm_core.py: any summation order of K products
gives |c_hat - c| <= gamma_K (|A| |B|) elementwise, gamma_K = K u / (1 - K u), u = eps / 2; a
bias adds one more rounding (u |c| with |c| <= |A| |B| + |b|); the float64 reference carries its
own gamma (helpers.product_bound). Checked elementwise, so a wrong
element cannot hide behind a norm.
"""

import random
import time

import pytest
import torch
from helpers import fuzz_seed, product_bound, torch_device

import dlkernels

DF = dlkernels.functional
ops = torch.ops.dlkernels

# (leading dims of the input, in features, out features)
SHAPES = [
    ((), 1, 1),
    ((), 7, 5),  # 1-D input
    ((1,), 1, 1),
    ((13,), 17, 5),
    ((9,), 257, 49),  # one past an AVX-512 micro-tile in every dimension
    ((64,), 800, 128),  # the seed ConvNet's first classifier layer
    ((3, 5), 31, 11),  # leading dims fold into rows
    ((2, 3, 4), 6, 97),
    ((0,), 4, 3),  # empty leading dims
    ((2, 0), 4, 3),
    ((5,), 0, 3),  # no input features: the output is the bias
    ((4,), 3, 0),  # no output features
    ((37,), 1, 101),
    ((129,), 513, 67),  # several KC blocks, MC row blocks
    # few outputs: dot products of rows on the CPU (up to 12 float / 4 double outputs on AVX-512)
    ((64,), 128, 10),  # the seed ConvNet's second classifier layer
    ((67,), 1030, 1),  # a regression head; rows and features past whole vectors
    ((5, 3), 3, 12),  # fewer features than a vector
    ((6,), 19, 4),
]


_LOW = (torch.float16, torch.bfloat16)


def _bound(a, b, bias=None, tf32=False):
    """Elementwise error bound of a @ b (+ bias) computed in a's dtype, from float64 operands,
    against the float64 product (helpers.product_bound: both are rounded). On CUDA, float16 /
    bfloat16 (and float32 as TF32) accumulate in float32 and round once at the end (u of the
    dtype times |c|, |c| <= |a| |b| + |b|); TF32 first rounds each operand to 11 bits (relative
    error 2^-11 each, so 2 * 2^-11 |a| |b| more)."""
    acc = torch.float32 if a.dtype in _LOW or tf32 else a.dtype
    k = a.shape[-1]
    mag = a.double().abs() @ b.double().abs()
    if bias is not None:
        mag = mag + bias.double().abs()
    extra = torch.finfo(a.dtype).eps / 2 if a.dtype in _LOW else 0.0
    if tf32:
        extra += 2 * 2.0**-11
    return product_bound(k + 1, acc, mag) + extra * mag + torch.finfo(a.dtype).smallest_normal


def _assert_within(actual, expected, bound, what):
    assert actual.shape == expected.shape, f"{what}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    if actual.numel() == 0:
        return
    err = (actual.double() - expected).abs()
    ok = err <= bound
    worst = (err / bound).argmax()  # the element furthest past its bound
    assert torch.all(ok), (
        f"{what}: error {err.flatten()[worst]:.3g} at flat index {int(worst)}, bound there "
        f"{bound.flatten()[worst]:.3g} ({int((~ok).sum())} elements out of bound)"
    )


def _tensors(lead, k, n, dtype, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(*lead, k, generator=g, dtype=torch.float64)
    w = torch.randn(n, k, generator=g, dtype=torch.float64)
    b = torch.randn(n, generator=g, dtype=torch.float64)
    dy = torch.randn(*lead, n, generator=g, dtype=torch.float64)
    return tuple(t.to(dtype).to(torch_device(device)) for t in (x, w, b, dy))


def _check_all(x, w, b, dy, what, tf32=False):
    """Forward and the three gradient ops against float64 products of the same values; ``tf32``
    is passed to the ops as allow_tf32, and widens the bound to TF32's."""
    xd, wd, bd, dyd = (t.double().cpu() for t in (x, w, b, dy))
    k = x.shape[-1]
    rows = x.numel() // k if k else int(torch.tensor(x.shape[:-1]).prod())
    x2, dy2 = xd.reshape(rows, k), dyd.reshape(rows, w.shape[0])

    def bound(a, b_, bias=None):
        return _bound(a.to(x.dtype), b_.to(x.dtype), bias, tf32)

    y = ops.linear(x, w, b, tf32)
    _assert_within(y.cpu(), xd @ wd.T + bd, bound(x2, wd.T, bd).reshape(y.shape), what)
    y0 = ops.linear(x, w, None, tf32)
    _assert_within(y0.cpu(), xd @ wd.T, bound(x2, wd.T).reshape(y.shape), what + " no bias")
    dx = ops.linear_grad_input(dy, w, tf32)
    _assert_within(dx.cpu(), dyd @ wd, bound(dy2, wd).reshape(x.shape), what + " grad_input")
    dw = ops.linear_grad_weight(dy, x, tf32)
    _assert_within(dw.cpu(), dy2.T @ x2, bound(dy2.T, x2), what + " grad_weight")
    db = ops.linear_grad_bias(dy)
    ones = torch.ones(1, dy2.shape[0], dtype=torch.float64)
    _assert_within(
        db.cpu(), dy2.sum(0), _bound(ones.to(x.dtype), dy2.to(x.dtype)).reshape(-1), what + " grad_bias"
    )
    grads = ops.linear_backward(dy, x, w, [True, True, True], tf32)
    for got, want, name in zip(grads, (dx, dw, db), ("grad_input", "grad_weight", "grad_bias")):
        assert torch.equal(got, want), f"{what}: linear_backward's {name} differs from {name}'s"


@pytest.mark.parametrize("lead,k,n", SHAPES, ids=[f"{lead}x{k}>{n}" for lead, k, n in SHAPES])
def test_forward_and_gradients(device, dtype, lead, k, n):
    x, w, b, dy = _tensors(lead, k, n, dtype, device)
    _check_all(x, w, b, dy, f"{lead}x{k}>{n}")


TF32_SHAPES = [((13,), 17, 5), ((9,), 257, 49), ((3, 5), 31, 11), ((129,), 513, 67)]


@pytest.mark.parametrize("lead,k,n", TF32_SHAPES, ids=[f"{lead}x{k}>{n}" for lead, k, n in TF32_SHAPES])
def test_float32_tf32(device, lead, k, n):
    """allow_tf32: on CUDA float32 runs as TF32 on tensor cores (within TF32's bound, and not the
    exact path's values); the CPU ignores it (the same bits as without)."""
    x, w, b, dy = _tensors(lead, k, n, torch.float32, device)
    on_cuda = device in ("cuda", "cuda_sim")
    _check_all(x, w, b, dy, f"tf32 {lead}x{k}>{n}", tf32=on_cuda)
    exact, fast = ops.linear(x, w, b), ops.linear(x, w, b, True)
    assert torch.equal(exact, fast) != on_cuda
    old = torch.backends.cuda.matmul.allow_tf32
    try:
        torch.backends.cuda.matmul.allow_tf32 = True
        assert torch.equal(DF.linear(x, w, b), fast)  # dlkernels.functional passes torch's flag
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old
    assert torch.equal(DF.linear(x, w, b), exact)


def test_autograd_matches_torch(device, dtype):
    """Through dlkernels.functional: output and all three gradients as torch's linear."""
    x, w, b, dy = _tensors((3, 7), 33, 19, dtype, device)
    res = []
    for fn in (DF.linear, torch.nn.functional.linear):
        xs, ws, bs = (t.double().clone().requires_grad_() for t in (x, w, b))
        if fn is DF.linear:
            xs, ws, bs = (t.detach().to(dtype).requires_grad_() for t in (xs, ws, bs))
        y = fn(xs, ws, bs)
        y.backward(dy.to(y.dtype))
        res.append([t.detach().double().cpu() for t in (y, xs.grad, ws.grad, bs.grad)])
    tol = {torch.float32: 1e-4, torch.float64: 1e-12}.get(dtype, 1e-2)
    for a, e, name in zip(*res, ("output", "grad_input", "grad_weight", "grad_bias")):
        torch.testing.assert_close(a, e, rtol=tol, atol=tol, msg=name)


def _layouts(t):
    """Views equal to 2-D ``t`` that the kernels read in place: transposed, strided rows, strided
    columns, offset by one element."""
    big = torch.zeros(t.shape[0] * 2, t.shape[1] * 3, dtype=t.dtype, device=t.device)
    rows = big[::2, : t.shape[1]]
    rows.copy_(t)
    cols = torch.zeros(t.shape[0], t.shape[1] * 2, dtype=t.dtype, device=t.device)[:, ::2]
    cols.copy_(t)
    off = torch.zeros(t.numel() + 1, dtype=t.dtype, device=t.device)[1:].view(t.shape)
    off.copy_(t)
    return {"transposed": t.T.contiguous().T, "row-strided": rows, "col-strided": cols, "offset": off}


@pytest.mark.parametrize("which", ["input", "weight", "grad_output"])
def test_layouts_read_in_place(device, dtype, which):
    x, w, b, dy = _tensors((23,), 41, 29, dtype, device)
    for name, view in _layouts({"input": x, "weight": w, "grad_output": dy}[which]).items():
        args = {"input": x, "weight": w, "grad_output": dy}
        args[which] = view
        _check_all(args["input"], args["weight"], b, args["grad_output"], f"{which} {name}")


def test_batched_layouts(device, dtype):
    """3-D inputs: sliced batches fold into one row stride (in place); a transposed batch does not
    and is copied; an expanded grad_output (stride 0, as from y.sum().backward()) is read in place."""
    x, w, b, dy = _tensors((4, 6), 13, 7, dtype, device)
    sliced = torch.zeros(8, 6, 13, dtype=dtype, device=torch_device(device))[::2]
    sliced.copy_(x)
    batch_t = x.transpose(0, 1).contiguous().transpose(0, 1)
    _check_all(sliced, w, b, dy, "sliced batch")
    _check_all(batch_t, w, b, dy, "transposed batch")
    _check_all(
        x,
        w,
        b,
        torch.ones(1, 1, 7, dtype=dtype, device=torch_device(device)).expand(4, 6, 7),
        "expanded grad_output",
    )


# (rows, in, out, pad): the row-major B operands (the weight for grad_input, the input for
# grad_weight) are read in place by the micro-kernel where their rows spread over the L1: rows
# `pad` elements longer than the matrix (odd strides), partial last panels, 64 rows or fewer
# (each B panel fetched just before its tiles) and more, rows 4 KB apart (packed instead), and
# K long enough to have several K blocks; a weight beyond 2 MB in float64, which grad_input
# packs as B rather than as a column-major A (linear.cpp, kStreamedBytes).
IN_PLACE_B = [
    (64, 200, 128, 3),
    (5, 37, 9, 1),
    (70, 61, 50, 7),
    (33, 1024, 40, 0),
    (64, 130, 1024, 0),
    (9, 49, 300, 5),
    (8, 1024, 520, 0),
]


@pytest.mark.parametrize("rows,k,n,pad", IN_PLACE_B, ids=[f"{r}x{k}>{n}+{p}" for r, k, n, p in IN_PLACE_B])
def test_b_read_in_place(device, dtype, rows, k, n, pad):
    if k * n > 1 << 19 and device != "cpu":
        pytest.skip("a case of the CPU's orientation rule; minutes on the emulator")
    x, w, b, dy = _tensors((rows,), k, n, dtype, device)

    def padded(t, step=1):  # the same values in rows `pad` elements longer, every `step`-th row
        big = torch.zeros(t.shape[0] * step, t.shape[1] + pad, dtype=t.dtype, device=t.device)
        view = big[::step, : t.shape[1]]
        view.copy_(t)
        return view

    _check_all(padded(x), padded(w), b, padded(dy), "padded rows")
    _check_all(x, padded(w, 2), b, dy, "sliced weight")
    _check_all(padded(x, 3), w.T.contiguous().T, b, dy, "transposed weight")


def test_special_values_propagate(device, dtype):
    """inf and NaN in the input reach exactly the outputs that read them, like torch."""
    x, w, b, _ = _tensors((5,), 9, 6, dtype, device)
    x[1, 3] = float("inf")
    x[3, 0] = float("nan")
    y = DF.linear(x, w, b)
    ref = torch.nn.functional.linear(x.double(), w.double(), b.double())
    assert torch.equal(torch.isnan(y), torch.isnan(ref)) and torch.equal(torch.isinf(y), torch.isinf(ref))


FLOATS = pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])


@FLOATS
@pytest.mark.parametrize("rows,n", [(1000, 150), (1000, 3), (1000, 1), (5000, 7)])
def test_threads_agree(dtype, rows, n):
    """One thread and all threads: the same values (each C element is one task's, summed in one
    order), for shapes the task planner splits (few outputs: the rows' dot products, the weight
    gradient by rows; the bias gradient over many rows in parts)."""
    x, w, b, dy = _tensors((rows,), 300, n, dtype, "cpu")
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = [ops.linear(x, w, b), ops.linear_grad_input(dy, w), ops.linear_grad_weight(dy, x)]
        one.append(ops.linear_grad_bias(dy))
        torch.set_num_threads(max(2, old))
        many = [ops.linear(x, w, b), ops.linear_grad_input(dy, w), ops.linear_grad_weight(dy, x)]
        many.append(ops.linear_grad_bias(dy))
    finally:
        torch.set_num_threads(old)
    for a, e in zip(one, many):
        assert torch.equal(a, e)


def _for_at_most(seconds, count):
    """range(count), cut short after ``seconds``."""
    deadline = time.monotonic() + seconds
    for i in range(count):
        if time.monotonic() > deadline:
            return
        yield i


def _random_case(rng, dtype, device, max_k, max_n):
    """(x, w, b, dy, its name) drawn from rng: leading dims, features, transposed operands."""
    lead = tuple(rng.choice([1, 2, 3, 7, 16, 33]) for _ in range(rng.randint(0, 2)))
    k, n = rng.randint(1, max_k), rng.randint(1, max_n)
    x, w, b, dy = _tensors(lead, k, n, dtype, device, seed=rng.randint(0, 10**6))
    if x.dim() == 2 and rng.random() < 0.5:
        x = x.T.contiguous().T
    if rng.random() < 0.5:
        w = w.T.contiguous().T
    if dy.dim() == 2 and rng.random() < 0.3:
        dy = dy.T.contiguous().T
    return x, w, b, dy, f"{lead}x{k}>{n}"


@FLOATS
def test_randomized_differential(dtype):
    """Seeded random shapes and layouts on every ISA, for ~8 s at most per dtype."""
    rng = random.Random(fuzz_seed(1234))
    cases = 0
    for _ in _for_at_most(8, 200):
        isa = rng.choice(dlkernels.cpu_isas())
        x, w, b, dy, name = _random_case(rng, dtype, "cpu", 300, 130)
        with dlkernels.use_cpu_isa(isa):
            _check_all(x, w, b, dy, f"{isa} {name}")
        cases += 1
    assert cases >= 10


@FLOATS
def test_randomized_nonfinite(dtype):
    """Seeded random shapes (few outputs and many, every CPU path: rows' dot products, the
    micro-kernel and its row variants, the weight gradient by rows) and layouts, on every ISA,
    with a few NaN / inf / -inf in the input, the weight or grad_output: the forward and the
    three gradients are NaN and inf exactly where torch's float64 ones are, and close elsewhere."""
    rng = random.Random(fuzz_seed(4321))
    specials = (float("nan"), float("inf"), float("-inf"))
    cases = 0
    for _ in _for_at_most(6, 120):
        isa = rng.choice(dlkernels.cpu_isas())
        x, w, b, dy, name = _random_case(rng, dtype, "cpu", 70, rng.choice([3, 14, 40]))
        for t in rng.sample([x, w, dy], rng.randint(1, 2)):
            for _ in range(rng.randint(1, 3) if t.numel() else 0):
                t[tuple(rng.randrange(n) for n in t.shape)] = rng.choice(specials)
        with dlkernels.use_cpu_isa(isa):
            got = (
                ops.linear(x, w, b),
                ops.linear_grad_input(dy, w),
                ops.linear_grad_weight(dy, x),
                ops.linear_grad_bias(dy),
            )
        xd, wd, bd, dyd = (t.double() for t in (x, w, b, dy))
        k = x.shape[-1]
        x2, dy2 = xd.reshape(-1, k), dyd.reshape(-1, w.shape[0])
        want = (xd @ wd.T + bd, dyd @ wd, dy2.T @ x2, dy2.sum(0))
        # error bounds from the operands with their non-finite entries as 0 (the finite outputs
        # read none of them)
        f = [t.nan_to_num(0.0, 0.0, 0.0).to(dtype) for t in (x2, wd, dy2)]
        ones = torch.ones(1, dy2.shape[0], dtype=dtype)
        bounds = (
            _bound(f[0], f[1].T, bd),
            _bound(f[2], f[1]),
            _bound(f[2].T, f[0]),
            _bound(ones, f[2]).reshape(-1),
        )
        for g, e, bnd, what in zip(got, want, bounds, ("linear", "grad_input", "grad_weight", "grad_bias")):
            msg = f"{isa} {name} {what}"
            assert torch.equal(g.isnan(), e.isnan()), msg
            assert torch.equal(g.isinf(), e.isinf()) and torch.equal(g[g.isinf()].double(), e[e.isinf()]), msg
            fin = e.isfinite()
            _assert_within(g[fin], e[fin], bnd.reshape(e.shape)[fin], msg)
        cases += 1
    assert cases >= 10


def test_randomized_cuda_kernels(cuda_device):
    """The sweep above on the CUDA GEMM: every dtype (tensor cores for float16 / bfloat16, float32
    as TF32 or exact at random), shapes sized for the emulator (~10 s at most)."""
    rng = random.Random(fuzz_seed(8642))
    cases = 0
    for _ in _for_at_most(10, 60):
        dtype = rng.choice([torch.float32, torch.float64, torch.float16, torch.bfloat16])
        x, w, b, dy, name = _random_case(rng, dtype, cuda_device, 160, 72)
        tf32 = dtype == torch.float32 and rng.random() < 0.5
        _check_all(x, w, b, dy, f"{dtype} {name} tf32={tf32}", tf32=tf32)
        cases += 1
    assert cases >= 5
