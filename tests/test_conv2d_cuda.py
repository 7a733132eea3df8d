"""conv2d's CUDA kernels (csrc/cuda/conv2d.cu), on a GPU and on the emulator (the ``cuda_device``
fixture): the five ops against torch's convolution and the naive loop reference within the
error-analysis bounds of conv_cases.py, in every CUDA dtype, on every case of the CPU suite;
layouts, empty shapes, non-finite values, determinism, autograd through dlkernels.functional and
nn.Conv2d, gradcheck in float64, a randomized differential test and bad input.

Half types are read into float, multiplied exactly and summed in float, then rounded once: their
bound is the float32 sum's plus one rounding to the dtype (not gamma_n of the half type, which
exceeds 1 for the weight gradient's thousands of terms)."""

import functools
import random
import time

import pytest
import torch
import torch.nn.functional as F
from conv_cases import (
    CASES_BY_ID,
    Results,
    abs_results,
    assert_within_bound,
    bound,
    case,
    case_param,
    opcheck_samples,
    run_ops,
)
from conv_reference import conv2d_naive, conv2d_naive_grads
from helpers import DTYPE_NAMES, assert_unchanged, bitwise_equal, fuzz_seed, gamma, tiny, torch_device
from torch.library import opcheck
from torch.utils._python_dispatch import _disable_current_modes

import dlkernels

DF = dlkernels.functional
ops = torch.ops.dlkernels

CUDA_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
dtype_param = pytest.mark.parametrize("dtype", CUDA_DTYPES, ids=lambda d: DTYPE_NAMES[d])
HALF = (torch.float16, torch.bfloat16)


@functools.cache
def _naive(c, dtype):
    """The naive reference in float64 on ``c.tensors(dtype)`` and the |terms| sums."""
    x, w, b, dy = c.tensors(dtype)

    def d(t):
        return t.double() if t is not None else None

    return Results(*conv2d_naive_grads(d(x), d(w), d(b), d(dy), c.stride, c.padding, c.dilation, c.groups)), (
        abs_results(c, x, w, b, dy)
    )


def cuda_bound(abs_sum, expected, n, dtype):
    """Allowed |ours - float64 reference| for a sum of n terms: the dtype's own sum (float32 and
    float64), or for half types the float sum plus one rounding to the dtype."""
    if dtype not in HALF:
        return bound(abs_sum, n, dtype, torch.float64)
    u = torch.finfo(dtype).eps / 2
    return (
        (gamma(n, torch.float32) + gamma(n, torch.float64)) * abs_sum * (1 + u)
        + u * expected.abs()
        + tiny(dtype)
    )


def check(c, dtype, got: Results, what: str):
    """Every result of ``got`` (on the device) within its bound of the naive reference, and for
    float32 / float64 of torch's CPU convolution too (the bound of both computations)."""
    ref, absr = _naive(c, dtype)
    terms = {
        "output": c.forward_terms,
        "grad_input": c.grad_input_terms,
        "grad_weight": c.grad_weight_terms,
        "grad_bias": c.grad_weight_terms,
    }
    x, w, b, dy = c.tensors(dtype)
    torch_ref = None
    if dtype not in HALF:
        gi, gw, gb = torch.ops.aten.convolution_backward(
            dy, x, w, [c.K] if c.bias else None, *c.params[:3], False, [0, 0], c.groups, [True, True, c.bias]
        )
        torch_ref = Results(F.conv2d(x, w, b, *c.params), gi, gw, gb)
    for field, n in terms.items():
        actual = getattr(got, field)
        if actual is None:
            continue
        name = f"{what} [{c}, {DTYPE_NAMES[dtype]}]: {field}"
        assert actual.dtype == dtype, f"{name}: dtype {actual.dtype}"
        actual = actual.cpu()
        expected = getattr(ref, field)
        assert_within_bound(
            actual, expected, cuda_bound(getattr(absr, field), expected, n, dtype), f"{name} vs naive"
        )
        if torch_ref is not None:
            allowed = bound(getattr(absr, field), n, dtype, dtype)
            assert_within_bound(actual, getattr(torch_ref, field), allowed, f"{name} vs torch")


def on(device, c, dtype, seed=0):
    return tuple(t.to(torch_device(device)) if t is not None else None for t in c.tensors(dtype, seed=seed))


# ---- the ops on every case and dtype -------------------------------------------------------------


@case_param()
@dtype_param
def test_ops_match_references(cuda_device, dtype, case):
    """conv2d and its three gradient ops within the bound; contiguous outputs; inputs untouched."""
    x, w, b, dy = on(cuda_device, case, dtype)
    before = [t.clone() if t is not None else None for t in (x, w, b, dy)]
    got = run_ops(case, x, w, b, dy)
    check(case, dtype, got, "raw ops")
    for t in (got.output, got.grad_input, got.grad_weight):
        assert t.is_contiguous()
    for t, t0, name in zip((x, w, b, dy), before, ("input", "weight", "bias", "grad_output")):
        if t is not None:
            assert_unchanged(t, t0, f"{case}: {name}")


BACKWARD_CASES = [CASES_BY_ID[i] for i in ("3x3-pad1", "groups3-stride2", "depthwise-multiplier2", "N0")]


@case_param(BACKWARD_CASES)
@pytest.mark.parametrize(
    "mask", [(True, True, True), (True, False, False), (False, True, True), (False, False, True)]
)
def test_backward_op_gives_the_masked_gradients(cuda_device, case, mask):
    """conv2d_backward: the requested gradients, with the bits of the single gradient ops; empty
    tensors for the others."""
    x, w, b, dy = on(cuda_device, case, torch.float32)
    got = ops.conv2d_backward(dy, x, w, *case.params, list(mask))
    single = run_ops(case, x, w, b if b is not None else torch.zeros(case.K, device=x.device), dy)
    for want, t, ref in zip(mask, got, (single.grad_input, single.grad_weight, single.grad_bias)):
        if want:
            assert bitwise_equal(t, ref)
        else:
            assert t.numel() == 0


@dtype_param
def test_repeated_calls_give_the_same_bits(cuda_device, dtype):
    """No atomics and one fixed order per result: equal bits on every call."""
    c = CASES_BY_ID["C17-K5"]
    x, w, b, dy = on(cuda_device, c, dtype)
    first = run_ops(c, x, w, b, dy)
    again = run_ops(c, x, w, b, dy)
    for a, r in zip(again.__dict__.values(), first.__dict__.values()):
        assert bitwise_equal(a, r)


# ---- layouts -------------------------------------------------------------------------------------


@dtype_param
@pytest.mark.parametrize("layout", ["channels_last", "channels_last_weight", "sliced", "expanded_weight"])
def test_layouts_give_the_contiguous_bits_in_torchs_layout(cuda_device, dtype, layout):
    """channels_last and strided arguments: the values of the contiguous call (the kernels read
    NCHW copies), each result in the layout torch's convolution gives it."""
    c = CASES_BY_ID["groups3-stride2"]
    x, w, b, dy = on(cuda_device, c, dtype)
    ref = run_ops(c, x, w, b, dy)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
        dy = dy.contiguous(memory_format=torch.channels_last)
    elif layout == "channels_last_weight":
        w = w.contiguous(memory_format=torch.channels_last)
    elif layout == "sliced":
        x = torch.cat([x, x], dim=3)[..., : c.W]
        dy = torch.cat([dy, dy], dim=2)[:, :, : c.P]
        assert not x.is_contiguous() and not dy.is_contiguous()
    else:
        w = w[:1].expand(w.shape) if c.K > 1 else w
        ref = run_ops(c, x, w.contiguous(), b, dy)
    got = run_ops(c, x, w, b, dy)
    for field in ("output", "grad_input", "grad_weight", "grad_bias"):
        a, r = getattr(got, field), getattr(ref, field)
        assert bitwise_equal(a.contiguous(), r), f"{layout}: {field} differs from the contiguous call"
    cl = layout.startswith("channels_last")
    for t in (got.output, got.grad_input):
        assert t.is_contiguous(memory_format=torch.channels_last if cl else torch.contiguous_format)


def test_channels_last_outputs_follow_torch(cuda_device):
    """Output and data gradient are channels_last when the data tensor or the weight is, as torch's."""
    c = CASES_BY_ID["3x3-pad1"]
    x, w, b, dy = on(cuda_device, c, torch.float32)
    for xl, wl in ((True, False), (False, True), (True, True)):
        xa = x.contiguous(memory_format=torch.channels_last) if xl else x
        wa = w.contiguous(memory_format=torch.channels_last) if wl else w
        dya = dy.contiguous(memory_format=torch.channels_last) if xl else dy
        y = ops.conv2d(xa, wa, b, *c.params)
        gi = ops.conv2d_grad_input(dya, wa, list(x.shape), *c.params)
        assert y.is_contiguous(memory_format=torch.channels_last)
        assert gi.is_contiguous(memory_format=torch.channels_last)


# ---- empty shapes and non-finite values ----------------------------------------------------------


@dtype_param
def test_zero_input_channels_and_empty_batch(cuda_device, dtype):
    """C = 0: the output is the bias and the weight gradient empty; N = 0: empty outputs, zero
    weight and bias gradients."""
    dev = torch_device(cuda_device)
    x = torch.randn(2, 0, 5, 5, dtype=dtype, device=dev)
    w = torch.randn(3, 0, 3, 3, dtype=dtype, device=dev)
    b = torch.randn(3, dtype=dtype, device=dev)
    y = ops.conv2d(x, w, b, [1, 1], [1, 1], [1, 1], 1)
    assert torch.equal(y, b.view(1, 3, 1, 1).expand(2, 3, 5, 5))
    assert ops.conv2d_grad_weight(torch.randn_like(y), x, [3, 0, 3, 3], [1, 1], [1, 1], [1, 1], 1).shape == (
        3,
        0,
        3,
        3,
    )
    c = CASES_BY_ID["N0"]
    x, w, b, dy = on(cuda_device, c, dtype)
    got = run_ops(c, x, w, b, dy)
    assert got.output.shape == c.output_shape and got.grad_input.shape == c.input_shape
    assert torch.equal(got.grad_weight, torch.zeros_like(w)) and torch.equal(
        got.grad_bias, torch.zeros_like(b)
    )


NONFINITE_CASES = [CASES_BY_ID[i] for i in ("3x3-pad1", "7x7-stride2-pad3", "depthwise-stride2", "dilation2")]


@case_param(NONFINITE_CASES)
def test_nonfinite_inputs_reach_exactly_the_outputs_that_read_them(cuda_device, case):
    """NaN and +-inf in the input: NaN, +inf and -inf at the naive reference's positions."""
    x, w, b, _ = on(cuda_device, case, torch.float32)
    flat = x.view(-1)
    step = max(1, flat.numel() // 7)
    flat[::step][0::3] = float("nan")
    flat[::step][1::3] = float("inf")
    flat[::step][2::3] = float("-inf")
    y = ops.conv2d(x, w, b, *case.params).cpu()
    ref = conv2d_naive(x.cpu().double(), w.cpu().double(), b.cpu().double(), *case.params[:3], case.groups)
    for name, pred in (("NaN", torch.isnan), ("+inf", torch.isposinf), ("-inf", torch.isneginf)):
        assert torch.equal(pred(y), pred(ref)), f"{case}: {name} positions differ"
    assert not torch.isfinite(ref).all()


@case_param(NONFINITE_CASES)
def test_nonfinite_weight_next_to_padding_matches_the_cpu_kernels(cuda_device, case):
    """An infinite weight and gradient: padding taps are skipped, not multiplied by zero, so the
    non-finite positions are the CPU kernels' (which recompute such entries by definition)."""
    x, w, b, dy = case.tensors(torch.float32)
    w.view(-1)[:: max(1, w.numel() // 3)] = float("inf")
    dy.view(-1)[:: max(1, dy.numel() // 5)] = float("-inf")
    with _disable_current_modes():  # the CPU kernels, also under the emulator's dispatch mode
        cpu = run_ops(case, x, w, b, dy)
    dev = torch_device(cuda_device)
    got = run_ops(case, x.to(dev), w.to(dev), b.to(dev), dy.to(dev))
    for field in ("output", "grad_input", "grad_weight", "grad_bias"):
        a, r = getattr(got, field).cpu(), getattr(cpu, field)
        for pred in (torch.isnan, torch.isposinf, torch.isneginf):
            assert torch.equal(pred(a), pred(r)), f"{case}: {field}"


# ---- autograd, nn, gradcheck ---------------------------------------------------------------------


AUTOGRAD_CASES = [
    CASES_BY_ID[i] for i in ("3x3-pad1", "groups3", "depthwise-multiplier2-stride2", "non-square")
]


@case_param(AUTOGRAD_CASES)
@dtype_param
def test_functional_autograd_matches_references(cuda_device, dtype, case):
    x, w, b, dy = on(cuda_device, case, dtype)
    leaves = [t.detach().clone().requires_grad_() if t is not None else None for t in (x, w, b)]
    y = DF.conv2d(*leaves, case.stride, case.padding, case.dilation, case.groups)
    y.backward(dy)
    xl, wl, bl = leaves
    check(case, dtype, Results(y.detach(), xl.grad, wl.grad, bl.grad if bl is not None else None), "autograd")


@pytest.mark.parametrize("padding_mode", ["zeros", "reflect", "circular"])
def test_nn_conv2d_matches_torch(cuda_device, padding_mode):
    """dlkernels.nn.Conv2d with torch's weights gives torch's output and gradients."""
    dev = torch_device(cuda_device)
    torch.manual_seed(0)
    ref = torch.nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2, padding_mode=padding_mode).double()
    ours = (
        dlkernels.nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2, padding_mode=padding_mode)
        .double()
        .to(dev)
    )
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(2, 4, 9, 10, dtype=torch.float64)
    xr, xo = x.clone().requires_grad_(), x.to(dev).requires_grad_()
    yr, yo = ref(xr), ours(xo)
    torch.testing.assert_close(yo.cpu(), yr)
    yr.sum().backward()
    yo.sum().backward()
    torch.testing.assert_close(xo.grad.cpu(), xr.grad)
    torch.testing.assert_close(ours.weight.grad.cpu(), ref.weight.grad)
    torch.testing.assert_close(ours.bias.grad.cpu(), ref.bias.grad)


GRADCHECK = [
    dict(stride=1, padding=1, dilation=1, groups=1),
    dict(stride=2, padding=(1, 0), dilation=(1, 2), groups=2),
    dict(stride=1, padding=1, dilation=1, groups=4),
]


@pytest.mark.parametrize("kw", GRADCHECK, ids=lambda kw: "-".join(f"{k}{v}" for k, v in kw.items()))
def test_gradcheck(cuda_device, kw):
    """gradcheck and gradgradcheck in float64 (the double backward runs the forward and both
    gradient ops on the device)."""
    dev = torch_device(cuda_device)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, 4, 5, 4, generator=g, dtype=torch.float64).to(dev).requires_grad_()
    w = torch.randn(4, 4 // kw["groups"], 3, 2, generator=g, dtype=torch.float64).to(dev).requires_grad_()
    b = torch.randn(4, generator=g, dtype=torch.float64).to(dev).requires_grad_()

    def fn(x, w, b):
        return DF.conv2d(x, w, b, **kw)

    assert torch.autograd.gradcheck(fn, (x, w, b))
    assert torch.autograd.gradgradcheck(fn, (x, w, b))


# ---- randomized differential test ----------------------------------------------------------------


@dtype_param
def test_randomized_differential(cuda_device, dtype):
    """Seeded random configurations (channels per group and groups, window, stride, padding,
    dilation, batch, bias, input layout): the four ops within their bounds. At most ~6 s."""
    rng = random.Random(fuzz_seed(8765))
    deadline = time.monotonic() + 6
    done = 0
    while done < 40 and time.monotonic() < deadline:
        groups = rng.choice([1, 1, 2, 3])
        cg, kg = rng.choice([1, 1, 2, 3, 5]), rng.choice([1, 2, 3, 7])
        r, s = rng.randint(1, 4), rng.randint(1, 4)
        stride, dilation = (rng.randint(1, 3), rng.randint(1, 3)), (rng.randint(1, 2), rng.randint(1, 2))
        padding = (rng.randint(0, r + 1), rng.randint(0, s + 1))
        c = case(
            f"random-{done}",
            rng.randint(1, 3),
            groups * cg,
            rng.randint(1, 12),
            rng.randint(1, 12),
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
        x, w, b, dy = on(cuda_device, c, dtype)
        if rng.random() < 0.3:
            x = x.contiguous(memory_format=torch.channels_last)
        check(c, dtype, run_ops(c, x, w, b, dy), f"random {c.input_shape} w{c.weight_shape} {c.params}")
        done += 1
    assert done >= 10


# ---- bad input -----------------------------------------------------------------------------------


def test_bad_input_raises_before_writing(cuda_device):
    """Mixed dtypes, a wrong grad_output shape and integer tensors: torch's exception types, the
    arguments untouched."""
    dev = torch_device(cuda_device)
    x = torch.randn(1, 2, 5, 5, device=dev)
    w = torch.randn(3, 2, 3, 3, device=dev)
    before = x.clone(), w.clone()
    with pytest.raises(RuntimeError, match="same dtype"):
        ops.conv2d(x, w.double(), None, [1, 1], [0, 0], [1, 1], 1)
    with pytest.raises(RuntimeError, match="expected grad_output of size"):
        ops.conv2d_grad_input(torch.randn(1, 3, 2, 2, device=dev), w, [1, 2, 5, 5], [1, 1], [0, 0], [1, 1], 1)
    with pytest.raises(NotImplementedError, match="Int"):
        DF.conv2d(x.int(), w.int())
    with pytest.raises(RuntimeError, match="Given groups=2"):
        DF.conv2d(x, w, groups=2)
    assert_unchanged(x, before[0])
    assert_unchanged(w, before[1])


@pytest.mark.cuda
def test_device_mix_is_refused():
    """A CUDA input with a CPU weight (or bias): torch's RuntimeError, naming both devices."""
    from helpers import CUDA_USABLE

    if not CUDA_USABLE:
        pytest.skip("needs a GPU")
    x = torch.randn(1, 2, 5, 5, device="cuda")
    with pytest.raises(RuntimeError, match="same device"):
        ops.conv2d(x, torch.randn(3, 2, 3, 3), None, [1, 1], [0, 0], [1, 1], 1)
    with pytest.raises(RuntimeError, match="same device"):
        ops.conv2d(x, torch.randn(3, 2, 3, 3, device="cuda"), torch.randn(3), [1, 1], [0, 0], [1, 1], 1)


@pytest.mark.parametrize("name", ["conv2d", "conv2d_grad_input", "conv2d_grad_weight", "conv2d_grad_bias"])
def test_opcheck(cuda_device, name):
    """Schema, fake kernel (shapes, dtypes, strides: channels_last included) and autograd
    registration agree with the CUDA kernels; the op traces under AOT dispatch."""
    for args in opcheck_samples(torch_device(cuda_device))[name]:
        opcheck(getattr(ops, name).default, args)
