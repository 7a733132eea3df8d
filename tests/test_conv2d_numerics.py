"""Values of the conv2d ops: forward and the three gradients against torch's convolution and the
naive loop reference (conv_reference.py), within error-analysis bounds (conv_cases.py), on every
CPU instruction set, dtype and the shapes that reach each kernel path.

The CUDA kernels' cases (on a GPU and on the emulator) are in test_conv2d_cuda.py."""

import random
import threading
import time

import pytest
import torch
import torch.nn.functional as F
from conv_cases import (
    CASES,
    CASES_BY_ID,
    DTYPES,
    Results,
    assert_within_bound,
    bound,
    case,
    case_param,
    check_results,
    ops,
    references,
    run_ops,
)
from conv_reference import conv2d_naive, conv2d_naive_grads
from helpers import DTYPE_NAMES, assert_unchanged, fuzz_seed

import dlkernels

DF = dlkernels.functional

dtype_param = pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: DTYPE_NAMES[d])


# ---- the references themselves -------------------------------------------------------------------


@case_param()
def test_naive_reference_agrees_with_torch(case):
    """The two references agree in float64 (each within its own error bound), so a failure below
    that names only one of them points at the kernel, not at a reference."""
    ref_torch, ref_naive, absr = references(case, torch.float64)
    n = {
        "output": case.forward_terms,
        "grad_input": case.grad_input_terms,
        "grad_weight": case.grad_weight_terms,
        "grad_bias": case.grad_weight_terms,
    }
    for field, terms in n.items():
        expected = getattr(ref_torch, field)
        if expected is None:
            continue
        allowed = bound(getattr(absr, field), terms, torch.float64, torch.float64)
        assert_within_bound(getattr(ref_naive, field), expected, allowed, f"{case}: naive {field} vs torch")


BOUND_CHECK_CASES = [
    CASES_BY_ID[i]
    for i in ("3x3-pad1", "7x7-stride2-pad3", "depthwise", "groups3", "deep-3x3", "wide-stride2-pad1")
]


@case_param(BOUND_CHECK_CASES)
@dtype_param
def test_bound_rejects_wrong_kernels(case, dtype):
    """The error bound is tight enough to catch the typical kernel bugs: one tap off by one pixel,
    one tap dropped, one input channel of the group ignored, the bias forgotten."""
    x, w, b, _ = case.tensors(dtype)
    _, ref_naive, absr = references(case, dtype)
    allowed = bound(absr.output, case.forward_terms, dtype, torch.float64)
    stride, padding, dilation, groups = case.stride, case.padding, case.dilation, case.groups

    dropped_tap = w.clone()
    dropped_tap[:, :, -1, -1] = 0
    ignored_channel = w.clone()
    ignored_channel[:, -1] = 0
    shifted = torch.roll(x, 1, dims=3)  # every tap reads one column to the left
    wrong = {
        "tap off by one column": conv2d_naive(shifted, w, b, stride, padding, dilation, groups),
        "tap dropped": conv2d_naive(x, dropped_tap, b, stride, padding, dilation, groups),
        "input channel ignored": conv2d_naive(x, ignored_channel, b, stride, padding, dilation, groups),
        "bias forgotten": conv2d_naive(x, w, None, stride, padding, dilation, groups),
    }
    for name, y in wrong.items():
        with pytest.raises(AssertionError, match="outside the error bound"):
            assert_within_bound(y, ref_naive.output, allowed, f"{case}: {name}")


@case_param([c for c in BOUND_CHECK_CASES if c.id != "deep-3x3"])  # its naive gradients are slow
@dtype_param
def test_bound_rejects_wrong_gradients(case, dtype):
    """Likewise for the gradients: grad_input with a tap dropped or grad_output read one column
    off, grad_weight with the input read one column off, grad_weight and grad_bias missing the
    last image."""
    x, w, b, dy = case.tensors(dtype)
    _, ref_naive, absr = references(case, dtype)
    params = (case.stride, case.padding, case.dilation, case.groups)
    dropped_tap = w.clone()
    dropped_tap[:, :, -1, -1] = 0
    last_image_dropped = dy.clone()
    last_image_dropped[-1] = 0

    def grads(x=x, w=w, dy=dy):
        return conv2d_naive_grads(x, w, b, dy, *params)

    wrong = [
        ("grad_input", "tap dropped", grads(w=dropped_tap)[1]),
        ("grad_input", "grad_output one column off", grads(dy=torch.roll(dy, 1, dims=3))[1]),
        ("grad_weight", "input one column off", grads(x=torch.roll(x, 1, dims=3))[2]),
        ("grad_weight", "last image dropped", grads(dy=last_image_dropped)[2]),
        ("grad_bias", "last image dropped", grads(dy=last_image_dropped)[3]),
    ]
    terms = {
        "grad_input": case.grad_input_terms,
        "grad_weight": case.grad_weight_terms,
        "grad_bias": case.grad_weight_terms,
    }
    for field, name, value in wrong:
        allowed = bound(getattr(absr, field), terms[field], dtype, torch.float64)
        with pytest.raises(AssertionError, match="outside the error bound"):
            assert_within_bound(value, getattr(ref_naive, field), allowed, f"{case}: {field}, {name}")


# ---- the ops on every path, ISA and dtype --------------------------------------------------------


@case_param()
@dtype_param
def test_ops_match_references(isa, dtype, case):
    """conv2d, conv2d_grad_input, conv2d_grad_weight and conv2d_grad_bias against torch (same
    inputs and grad_output) and the naive reference; contiguous outputs; inputs untouched."""
    x, w, b, dy = case.tensors(dtype)
    before = [t.clone() if t is not None else None for t in (x, w, b, dy)]
    got = run_ops(case, x, w, b, dy)
    check_results(case, dtype, got, f"raw ops, {isa}")
    for t in (got.output, got.grad_input, got.grad_weight):
        assert t.is_contiguous(), f"{case}: contiguous inputs gave strides {t.stride()}"
    assert got.output.shape == case.output_shape
    for t, t0, name in zip((x, w, b, dy), before, ("input", "weight", "bias", "grad_output")):
        if t is not None:
            assert_unchanged(t, t0, f"{case}: {name}")


@case_param()
@dtype_param
def test_functional_autograd_matches_references(dtype, case):
    """dlkernels.functional.conv2d forward and backward (the same ops behind autograd)."""
    x, w, b, dy = case.tensors(dtype)
    leaves = [t.detach().clone().requires_grad_() if t is not None else None for t in (x, w, b)]
    y = DF.conv2d(*leaves, case.stride, case.padding, case.dilation, case.groups)
    y.backward(dy)
    xl, wl, bl = leaves
    got = Results(y.detach(), xl.grad, wl.grad, bl.grad if bl is not None else None)
    check_results(case, dtype, got, "functional + autograd")


@dtype_param
def test_randomized_differential(dtype):
    """Seeded random configurations: channels per group (1 included) and groups, output channels,
    window, stride, padding, dilation, batch, bias and input layout, on every ISA in turn; the four
    raw ops within the error bound of torch and the naive reference. Covers the data gradient's forms
    (the transposed forward, the GEMM with the flat or the run-wise scatter) and the weight
    gradient's (the GEMM, the per-channel sums). At most ~8 s per dtype."""
    rng = random.Random(fuzz_seed(4321))
    isas = dlkernels.cpu_isas()
    deadline = time.monotonic() + 8
    done = 0
    while done < 60 and time.monotonic() < deadline:
        groups = rng.choice([1, 1, 1, 2, 3])
        cg, kg = rng.choice([1, 1, 2, 3, 5, 9, 16]), rng.choice([1, 2, 3, 8, 17])
        r, s = rng.randint(1, 4), rng.randint(1, 4)
        stride, dilation = (rng.randint(1, 3), rng.randint(1, 2)), (rng.randint(1, 2), rng.randint(1, 2))
        padding = (rng.randint(0, r), rng.randint(0, s))
        h, w = rng.randint(1, 14), rng.randint(1, 14)
        c = case(
            f"random-{done}",
            rng.randint(1, 3),
            groups * cg,
            h,
            w,
            groups * kg,
            r,
            s,
            stride,
            padding,
            dilation,
            groups,
            bias=rng.random() < 0.7,
        )
        if c.P < 1 or c.Q < 1:
            continue
        x, w, b, dy = c.tensors(dtype)
        layout = rng.choice(["contiguous", "contiguous", "channels_last"])  # NHWC forward too
        if layout == "channels_last":
            x = x.contiguous(memory_format=torch.channels_last)
        with dlkernels.use_cpu_isa(isas[done % len(isas)]):
            got = run_ops(c, x, w, b, dy)
        check_results(c, dtype, got, f"random {layout} {c.input_shape} w{c.weight_shape} {c.params}")
        done += 1
    assert done >= 20


THREAD_CASES = [
    CASES_BY_ID[i] for i in ("NPQ-105", "3x3-pad1", "depthwise-multiplier2", "deep-3x3", "groups3")
]


@case_param(THREAD_CASES)
@pytest.mark.parametrize("threads", [1, 3, 5])
def test_thread_counts(isa, case, threads):
    """The kernels split work by the thread count and size per-thread scratch by it: every count
    gives results within the bound (and the same bits: the next test)."""
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        x, w, b, dy = case.tensors(torch.float32)
        got = run_ops(case, x, w, b, dy)
    finally:
        torch.set_num_threads(old)
    check_results(case, torch.float32, got, f"{threads} threads, {isa}")


@case_param(THREAD_CASES)
def test_thread_counts_give_the_same_bits(isa, case):
    """How the work is split (grad_weight's reduction over images included) depends on the shape
    alone: 1, 2, 3 and 5 threads give the same bits."""
    old = torch.get_num_threads()
    runs = []
    try:
        for threads in (1, 2, 3, 5):
            torch.set_num_threads(threads)
            runs.append(run_ops(case, *case.tensors(torch.float32)))
    finally:
        torch.set_num_threads(old)
    for field in ("output", "grad_input", "grad_weight", "grad_bias"):
        for threads, got in zip((2, 3, 5), runs[1:]):
            assert torch.equal(getattr(runs[0], field), getattr(got, field)), f"{field}, {threads} threads"


def test_first_layer_weight_gradient_same_bits_on_any_thread_count():
    """A first layer (3 input channels, few output channels) has too few weight-gradient tiles to
    share out, so its images are split into parts: a fixed split, the same bits on 1 and 2 threads."""
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(4, 3, 32, 32, generator=gen)
    w = torch.randn(8, 3, 3, 3, generator=gen)
    dy = torch.randn(4, 8, 32, 32, generator=gen)
    old = torch.get_num_threads()
    got = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            got.append(torch.ops.dlkernels.conv2d_grad_weight(dy, x, w.shape, [1, 1], [1, 1], [1, 1], 1))
    finally:
        torch.set_num_threads(old)
    assert torch.equal(got[0], got[1])


def test_repeated_calls_are_deterministic(isa):
    """Same inputs, same bits: no state (workspace contents) leaks from one call into the next,
    also after a call of another shape has reused the workspace."""
    a, b = CASES_BY_ID["deep-3x3"], CASES_BY_ID["depthwise-stride2"]
    first = run_ops(a, *a.tensors(torch.float32))
    run_ops(b, *b.tensors(torch.float32))
    again = run_ops(a, *a.tensors(torch.float32))
    for field in ("output", "grad_input", "grad_weight", "grad_bias"):
        assert torch.equal(getattr(first, field), getattr(again, field)), field


def test_concurrent_calls_from_python_threads():
    """Each calling thread has its own workspace: calls from several Python threads at once,
    forward and backward, give the bits a lone call gives."""
    ids = ("deep-3x3", "depthwise-stride2", "7x7-stride2-pad3", "depthwise-multiplier2-stride2")
    cases = [CASES_BY_ID[i] for i in ids]
    tensors = [c.tensors(torch.float32) for c in cases]
    expected = [run_ops(c, *t) for c, t in zip(cases, tensors)]
    mismatches = []

    def work(k):
        for it in range(12):
            i = (k + it) % len(cases)
            got = run_ops(cases[i], *tensors[i])
            for field in ("output", "grad_input", "grad_weight", "grad_bias"):
                if not torch.equal(getattr(got, field), getattr(expected[i], field)):
                    mismatches.append((ids[i], field))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not mismatches


# ---- zero input channels -------------------------------------------------------------------------


@dtype_param
def test_zero_input_channels_forward_is_bias(isa, dtype):
    """C = 0 (weight K x 0 x R x S): every output is an empty sum, so it equals the bias (torch
    2.13's own convolution returns a 0-channel output here, so the math is the reference)."""
    x, w = torch.randn(2, 0, 5, 5, dtype=dtype), torch.randn(4, 0, 3, 3, dtype=dtype)
    b = torch.arange(4, dtype=dtype)
    y = ops.conv2d(x, w, b, [1, 1], [0, 0], [1, 1], 1)
    assert y.shape == (2, 4, 3, 3), y.shape
    assert torch.equal(y, b.view(1, 4, 1, 1).expand(2, 4, 3, 3))
    assert torch.equal(
        ops.conv2d(x, w, None, [1, 1], [0, 0], [1, 1], 1), torch.zeros(2, 4, 3, 3, dtype=dtype)
    )


@dtype_param
def test_zero_input_channels_gradients(isa, dtype):
    """The gradient ops with C = 0: empty grad_input and grad_weight, grad_bias the sum of
    grad_output (torch 2.13's own convolution returns a 0-channel output here, so it cannot serve
    as the reference)."""
    stride, padding, dilation = [1, 1], [0, 0], [1, 1]
    dy = torch.randn(2, 4, 3, 3, dtype=dtype)
    w = torch.randn(4, 0, 3, 3, dtype=dtype)
    x = torch.randn(2, 0, 5, 5, dtype=dtype)
    gi = ops.conv2d_grad_input(dy, w, [2, 0, 5, 5], stride, padding, dilation, 1)
    gw = ops.conv2d_grad_weight(dy, x, [4, 0, 3, 3], stride, padding, dilation, 1)
    assert gi.shape == (2, 0, 5, 5) and gi.dtype == dtype
    assert gw.shape == (4, 0, 3, 3) and gw.dtype == dtype
    gb = ops.conv2d_grad_bias(dy)
    allowed = bound(dy.double().abs().sum((0, 2, 3)), 18, dtype, torch.float64)
    assert_within_bound(gb, dy.double().sum((0, 2, 3)), allowed, "grad_bias with C = 0")


# ---- non-finite values ---------------------------------------------------------------------------


NONFINITE_CASES = [CASES_BY_ID[i] for i in ("3x3-pad1", "depthwise-stride2", "wide-stride2-pad1", "deep-1x1")]


@case_param(NONFINITE_CASES)
@dtype_param
def test_nonfinite_inputs_propagate(isa, dtype, case):
    """NaN and +-inf in the input reach exactly the outputs that read them, as in the naive
    reference: NaN where a NaN is read or +inf meets -inf, +-inf elsewhere they are read."""
    x, w, b, _ = case.tensors(dtype)
    flat = x.view(-1)
    step = max(1, flat.numel() // 7)
    flat[::step][0::3] = float("nan")
    flat[::step][1::3] = float("inf")
    flat[::step][2::3] = float("-inf")
    y = ops.conv2d(x, w, b, *case.params)
    ref = conv2d_naive(
        x.double(),
        w.double(),
        b.double() if b is not None else None,
        case.stride,
        case.padding,
        case.dilation,
        case.groups,
    )
    for name, pred in (("NaN", torch.isnan), ("+inf", torch.isposinf), ("-inf", torch.isneginf)):
        assert torch.equal(pred(y), pred(ref)), f"{case}: {name} positions differ from the reference"
    assert not torch.isfinite(ref).all(), "the test must put non-finite values where they are read"


# ---- channels_last forward (csrc/cpu/conv2d_nhwc.h) -----------------------------------------------
# Dense convolutions with channels_last input run as a GEMM over NHWC pixels, not through the NCHW
# kernels: cases for each of its branches (padding copy or none, window rows as one run or per tap
# when dilated along W, reductions longer than one 256 block, the 1 x 1 pixel-chunk form, rows and
# output channels that leave partial micro-tiles).
NHWC_CASES = [
    case("nhwc-3x3-pad1", 2, 16, 9, 13, 50, 3, 3, padding=1),
    case("nhwc-stride2-pad", 2, 8, 11, 10, 7, 3, 5, stride=2, padding=(1, 2)),
    case("nhwc-dilated-w", 2, 20, 8, 12, 9, 3, 3, stride=(1, 2), padding=1, dilation=(2, 3)),
    case("nhwc-deep", 1, 300, 5, 6, 20, 3, 3, padding=1),
    case("nhwc-1x1", 3, 24, 5, 7, 70, 1, 1, bias=False),
    case("nhwc-1x1-stride2", 2, 32, 9, 9, 16, 1, 1, stride=2),
]


@case_param(NHWC_CASES)
@dtype_param
def test_channels_last_forward_matches_references(isa, dtype, case):
    """The NHWC forward against torch and the naive reference, channels_last weights too; the
    output is channels_last and the inputs are untouched."""
    x, w, b, dy = case.tensors(dtype)
    xc = x.contiguous(memory_format=torch.channels_last)
    for weight in (w, w.contiguous(memory_format=torch.channels_last)):
        before = [xc.clone(), weight.clone()]
        got = run_ops(case, xc, weight, b, dy)
        check_results(case, dtype, got, f"channels_last ops, {isa}")
        assert got.output.is_contiguous(memory_format=torch.channels_last), got.output.stride()
        assert_unchanged(xc, before[0], f"{case}: input")
        assert_unchanged(weight, before[1], f"{case}: weight")


@case_param(NHWC_CASES[:3])
def test_channels_last_forward_nonfinite(isa, case):
    """NaN and +-inf in a channels_last input and weight land where they do on the NCHW path
    (whose rule, an entry is non-finite only if its definition reads a non-finite value, is
    test_hardening_nonfinite.py's): the padding the NHWC kernel materialises must not turn an
    inf weight's 0 * inf into NaN."""
    x, w, b, _ = case.tensors(torch.float32)
    x.view(-1)[:: max(1, x.numel() // 5)] = float("inf")
    w[:, :, 0, :] = float("-inf")  # the first tap row: it reads the top padding of row 0
    y = ops.conv2d(x.contiguous(memory_format=torch.channels_last), w, b, *case.params)
    nchw = ops.conv2d(x, w, b, *case.params)
    for name, pred in (("NaN", torch.isnan), ("+inf", torch.isposinf), ("-inf", torch.isneginf)):
        assert torch.equal(pred(y), pred(nchw)), f"{case}: {name} positions differ from the NCHW path"
    finite = torch.isfinite(nchw)
    assert finite.any() and torch.isnan(nchw).any() and not finite.all()
    torch.testing.assert_close(y[finite], nchw[finite], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_channels_last_forward_same_bits_on_any_thread_count(threads):
    c = NHWC_CASES[0]
    x, w, b, _ = c.tensors(torch.float32)
    xc = x.contiguous(memory_format=torch.channels_last)
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = ops.conv2d(xc, w, b, *c.params)
        torch.set_num_threads(threads)
        assert torch.equal(ops.conv2d(xc, w, b, *c.params), one)
    finally:
        torch.set_num_threads(previous)


# ---- functional API semantics (int / tuple arguments, 'same', 'valid', unbatched) ----------------


FUNCTIONAL_CALLS = [
    # (input shape, weight shape, kwargs): every argument form torch accepts.
    ((2, 3, 9, 8), (4, 3, 3, 3), {}),
    ((2, 3, 9, 8), (4, 3, 3, 3), dict(stride=2, padding=1, dilation=1)),
    ((2, 3, 9, 8), (4, 3, 3, 3), dict(stride=(2, 1), padding=(1, 0), dilation=(1, 2))),
    ((2, 3, 9, 8), (4, 3, 3, 3), dict(stride=[1, 2], padding=[0, 1], dilation=[2, 1])),
    ((2, 3, 9, 8), (4, 3, 3, 3), dict(stride=(2,), padding=(1,), dilation=(1,))),
    ((2, 3, 9, 8), (4, 3, 3, 3), dict(padding="valid")),
    ((2, 3, 9, 8), (4, 3, 3, 3), dict(padding="same")),
    ((2, 3, 9, 8), (4, 3, 2, 4), dict(padding="same")),  # even kernels: extra row/column after
    ((2, 3, 9, 8), (4, 3, 3, 2), dict(padding="same", dilation=(2, 3))),
    ((2, 3, 2, 3), (4, 3, 5, 4), dict(padding="same")),  # kernel larger than the image
    ((2, 6, 7, 7), (6, 1, 4, 3), dict(padding="same", groups=6)),
    ((6, 9, 8), (6, 2, 3, 3), dict(groups=3, padding=1)),  # unbatched
    ((3, 9, 8), (4, 3, 2, 2), dict(padding="same")),  # unbatched, asymmetric 'same'
    ((2, 6, 7, 7), (4, 3, 3, 3), dict(groups=2, stride=2)),
]


def _call_id(call):
    shape, wshape, kwargs = call
    return (
        "x".join(map(str, shape))
        + "-"
        + "x".join(map(str, wshape))
        + "-"
        + ",".join(f"{k}={v}" for k, v in kwargs.items())
    )


@pytest.mark.filterwarnings("ignore:Using padding=.same. with even kernel lengths")
@pytest.mark.parametrize("call", FUNCTIONAL_CALLS, ids=_call_id)
@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "nobias"])
def test_functional_arguments_like_torch(call, with_bias):
    """dlkernels.functional.conv2d against torch.nn.functional.conv2d for every argument form:
    output shape and values, and the gradients of input, weight and bias."""
    shape, wshape, kwargs = call
    g = torch.Generator().manual_seed(1)
    x = torch.randn(shape, generator=g, dtype=torch.float64)
    w = torch.randn(wshape, generator=g, dtype=torch.float64)
    b = torch.randn(wshape[0], generator=g, dtype=torch.float64) if with_bias else None
    outs = []
    for fn in (DF.conv2d, F.conv2d):
        leaves = [t.clone().requires_grad_() if t is not None else None for t in (x, w, b)]
        y = fn(*leaves[:2], leaves[2], **kwargs)
        dy = torch.randn(y.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
        y.backward(dy)
        outs.append((y.detach(), *(t.grad if t is not None else None for t in leaves)))
    (y, gx, gw, gb), (y_ref, gx_ref, gw_ref, gb_ref) = outs
    assert y.shape == y_ref.shape

    # Sums of |terms| of every result: the same calls on absolute values, backpropagating |dy|
    # (the conv is linear in each argument, so its gradients are those sums).
    leaves = [t.abs().requires_grad_() if t is not None else None for t in (x, w, b)]
    y_abs = F.conv2d(*leaves[:2], leaves[2], **kwargs)
    y_abs.backward(dy.abs())
    x_abs, w_abs, b_abs = leaves

    groups = kwargs.get("groups", 1)
    batch = 1 if len(shape) == 3 else shape[0]
    pixels = batch * y.shape[-2] * y.shape[-1]
    expected = [
        ("output", y, y_ref, y_abs.detach(), wshape[1] * wshape[2] * wshape[3] + 1),
        ("grad_input", gx, gx_ref, x_abs.grad, wshape[0] // groups * wshape[2] * wshape[3]),
        ("grad_weight", gw, gw_ref, w_abs.grad, pixels),
        ("grad_bias", gb, gb_ref, b_abs.grad if b_abs is not None else None, pixels),
    ]
    for name, got, ref, abs_sum, n in expected:
        if ref is None:
            assert got is None, name
            continue
        assert_within_bound(got, ref, bound(abs_sum, n, got.dtype, got.dtype), name)


def test_functional_without_grad_calls_the_op():
    """Without autograd the functional API returns the raw op's result unchanged (no autograd
    node); with it, the same values."""
    x, w, b = torch.randn(2, 3, 6, 6), torch.randn(4, 3, 3, 3), torch.randn(4)
    direct = ops.conv2d(x, w, b, [1, 1], [1, 1], [1, 1], 1)
    y = DF.conv2d(x, w, b, padding=1)
    assert y.grad_fn is None and torch.equal(y, direct)
    y = DF.conv2d(x, w.requires_grad_(), b, padding=1)
    assert y.grad_fn is not None and torch.equal(y.detach(), direct)
    with torch.no_grad():
        assert DF.conv2d(x, w, b, padding=1).grad_fn is None


def test_cases_cover_the_paths():
    """Guards the case list: it reaches each kernel path named in conv_cases.CASES' comment."""

    def depthwise(c):
        return c.C // c.groups == 1 and c.groups > 1

    def grad_input_as_forward(c, mr=8):  # mr: rows of the AVX-512 float32 micro-tile
        reaches = c.stride == (1, 1) and all(
            p <= d * (k - 1) for p, d, k in zip(c.padding, c.dilation, (c.R, c.S))
        )
        return reaches and (depthwise(c) or 2 * (c.C // c.groups) > mr)

    assert any(depthwise(c) and c.K == 2 * c.C for c in CASES)
    assert any(depthwise(c) and c.stride != (1, 1) for c in CASES)
    assert any(depthwise(c) and not grad_input_as_forward(c) and c.stride == (1, 1) for c in CASES)
    assert any(not depthwise(c) and c.groups > 1 and c.K == c.groups and c.C > c.groups for c in CASES)
    assert any(not depthwise(c) and not grad_input_as_forward(c) for c in CASES)
    assert any(not depthwise(c) and grad_input_as_forward(c) for c in CASES)
    # Stride 1, few input channels: GEMM + col2im on every ISA (mr 6 or 8), and the forward form.
    assert any(not depthwise(c) and c.stride == (1, 1) and c.C // c.groups <= 3 for c in CASES)
    assert any(not depthwise(c) and grad_input_as_forward(c, mr=6) for c in CASES)
    assert any(c.W >= 64 and c.stride[1] == 2 and c.padding[1] % 2 == 1 for c in CASES)
    assert any(c.W >= 64 and c.stride[1] == 2 and c.padding[1] % 2 == 0 for c in CASES)
    assert any(c.N * c.P * c.Q % 48 != 0 for c in CASES)
    assert any((c.C // c.groups) * c.R * c.S > 256 for c in CASES)
    assert any(c.N * c.P * c.Q > 2048 for c in CASES)
    assert any(c.P * c.Q > 2048 and c.stride != (1, 1) for c in CASES)
