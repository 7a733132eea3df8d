"""Values of the activation ops against torch: forward, in place and backward, every dtype, shape,
special value, memory layout and (on the CPU) instruction set."""

import contextlib

import numpy as np
import pytest
import torch
from activation_cases import ACTS, ACTS_BY_OP, ops, sigmoid_accuracy_tol
from helpers import (
    ELEMENTWISE_SHAPES,
    EXACT,
    LAYOUTS,
    assert_close,
    assert_only_view_written,
    assert_unchanged,
    expanded,
    is_channels_last,
    make_input,
    requires_cuda,
    storage_snapshot,
    torch_device,
    with_layout,
)

import dlkernels

act_param = pytest.mark.parametrize("act", ACTS, ids=str)


# ---- forward -------------------------------------------------------------------------------------


@act_param
def test_forward_matches_torch(device, dtype, act):
    tol = act.forward_tol(dtype, device)
    for shape in ELEMENTWISE_SHAPES:
        x = make_input(shape, dtype, device)
        before = x.clone()
        y = act.op(x)
        what = f"{act} forward, shape {shape}"
        assert y.shape == x.shape and y.dtype == dtype and y.device == x.device, what
        assert y.numel() == 0 or y.data_ptr() != x.data_ptr(), f"{what}: output aliases the input"
        assert_close(y, act.ref(x), tol, what, check_stride=True)
        assert_unchanged(x, before, f"{what}: input")


@act_param
def test_inplace_matches_torch(device, dtype, act):
    tol = act.forward_tol(dtype, device)
    for shape in ELEMENTWISE_SHAPES:
        x = make_input(shape, dtype, device)
        expected = act.ref(x)
        ptr, stride = x.data_ptr(), x.stride()
        assert act.op_(x) is None, "in-place ops return nothing (see csrc/ops.cpp)"
        what = f"{act} in place, shape {shape}"
        assert x.data_ptr() == ptr and x.stride() == stride, what
        assert_close(x, expected, tol, what)


def test_zero_sign(isa):
    """relu and leaky_relu keep the sign of zero like torch on every ISA (relu(-0.0) = -0.0,
    -0.0 * slope = -0.0; the values compare equal, so the value tests cannot see this)."""
    x = torch.tensor([-0.0, 0.0, -0.0, 0.0] * 9)  # 36 elements: vector body and tail
    for act in ACTS:
        if act.name in ("relu", "leaky_relu"):
            y = act.op(x)
            assert torch.equal(y.signbit(), act.ref(x).signbit()), f"{act}: {y}"


@pytest.mark.parametrize("act", ACTS_BY_OP, ids=str)
def test_functional_without_grad_matches_op(device, dtype, act):
    """Without autograd the functional API calls the raw op directly: same values, in place too."""
    x = make_input((5, 7), dtype, device)
    assert_close(act.functional(x), act.op(x), EXACT, f"{act} functional")
    if act.name != "sigmoid":
        expected = act.op(x)
        assert act.functional(x, inplace=True) is x
        assert_close(x, expected, EXACT, f"{act} functional in place")


# ---- sigmoid at its limits -----------------------------------------------------------------------


def test_sigmoid_exact_points(device, dtype):
    inf, nan = float("inf"), float("nan")
    x = torch.tensor(
        [0.0, -0.0, inf, -inf, nan, 1000.0, -1000.0, 100.0, -1e30, 1e30],
        dtype=dtype,
        device=torch_device(device),
    )
    expected = torch.tensor(
        [0.5, 0.5, 1.0, 0.0, nan, 1.0, 0.0, 1.0, 0.0, 1.0], dtype=dtype, device=torch_device(device)
    )
    assert_close(ops.sigmoid(x), expected, EXACT, "sigmoid at points with exact results")
    y = ops.sigmoid(make_input((4099,), dtype, device, scale=300.0))
    finite = y[~y.isnan()]
    assert ((finite >= 0) & (finite <= 1)).all(), "sigmoid left [0, 1]"


def _exact_sigmoid(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """sigmoid(x) rounded to ``dtype``, from a computation with more precision than ``dtype``:
    float64 for float32 and below, the x87 80-bit long double for float64."""
    if dtype != torch.float64:
        return torch.sigmoid(x.double()).to(dtype)
    if np.finfo(np.longdouble).eps > 2.0**-60:
        pytest.skip("numpy's longdouble has no more precision than float64 here")
    xl = x.cpu().numpy().astype(np.longdouble)
    # exp(-x) for x >= 0 and exp(x) for x < 0 keep the intermediate finite, as in the kernel.
    e = np.exp(-np.abs(xl))
    r = np.where(xl >= 0, 1 / (1 + e), e / (1 + e))
    return torch.from_numpy(r.astype(np.float64)).to(x.device)


def test_sigmoid_accuracy(device, dtype):
    """Against the exactly rounded sigmoid, over the whole range where it is neither 0 nor 1,
    including the subnormal results far left (torch's float32 sigmoid flushes those to 0)."""
    low = {torch.float16: -20.0, torch.bfloat16: -100.0, torch.float32: -110.0, torch.float64: -750.0}[dtype]
    grid = torch.linspace(low, 45.0, 300_001, dtype=torch.float64)
    x = torch.cat([grid, torch.randn(100_000, dtype=torch.float64) * 8]).to(dtype).to(torch_device(device))
    assert_close(
        ops.sigmoid(x), _exact_sigmoid(x, dtype), sigmoid_accuracy_tol(dtype, device), "sigmoid vs exact"
    )


# ---- backward ------------------------------------------------------------------------------------


@act_param
def test_backward_op_matches_torch(device, dtype, act):
    """The raw backward op against torch's for the same saved tensors and grad_output, special
    values included in both."""
    tol = act.backward_op_tol(dtype, device)
    for shape in ELEMENTWISE_SHAPES:
        x = make_input(shape, dtype, device)
        y = act.ref(x)
        g = make_input(shape, dtype, device, generator_seed=1)
        clones = [t.clone() for t in (g, x, y)]
        what = f"{act} backward op, shape {shape}"
        grad = act.op_backward(g, x, y)
        assert_close(grad, act.ref_backward(g, x, y), tol, what)
        for t, c, name in zip((g, x, y), clones, ("grad_output", "input", "output")):
            assert_unchanged(t, c, f"{what}: {name}")


@pytest.mark.parametrize("act", [a for a in ACTS if a.name == "leaky_relu" and a.slope >= 0], ids=str)
def test_leaky_relu_backward_from_output(device, dtype, act):
    """With a slope >= 0 the output has the input's sign, so the in-place backward, which only has
    the output, gives the same gradient as the one from the input."""
    x = make_input((1021, 3), dtype, device)
    g = make_input((1021, 3), dtype, device, generator_seed=1)
    y = act.op(x)
    assert_close(ops.leaky_relu_backward(g, y, act.slope), act.op_backward(g, x, y), EXACT, str(act))


# ---- memory layouts ------------------------------------------------------------------------------

LAYOUT_SHAPE = (2, 3, 5, 7)  # 4-D for channels_last; 210 elements, a multiple of no vector width


@act_param
def test_forward_layouts(device, dtype, act):
    """Out of place: same values and the same output strides as torch (channels_last stays
    channels_last, a dense permutation keeps its strides); in place: only the view's elements
    change and the strides stay."""
    tol = act.forward_tol(dtype, device)
    base = make_input(LAYOUT_SHAPE, dtype, device)
    for layout in LAYOUTS:
        x = with_layout(base, layout)
        before = storage_snapshot(x)
        what = f"{act}, {layout} input {tuple(x.stride())} offset {x.storage_offset()}"
        y = act.op(x)
        assert_close(y, act.ref(x), tol, f"{what}, out of place", check_stride=True)
        if layout == "channels_last":
            assert is_channels_last(y), f"{what}: output strides {y.stride()}"
        assert_only_view_written(x, before, f"{what}, out of place")  # and the view itself: unchanged
        assert_unchanged(x, base, what)

        expected = act.ref(x)
        stride = x.stride()
        act.op_(x)
        assert x.stride() == stride, what
        assert_close(x, expected, tol, f"{what}, in place")
        assert_only_view_written(x, before, f"{what}, in place")


@act_param
def test_forward_expanded_input(device, dtype, act):
    """A stride-0 (expanded) input is read correctly and gives a fresh, non-aliased output."""
    x = expanded(make_input((5, 7), dtype, device), 3)
    y = act.op(x)
    assert_close(y, act.ref(x), act.forward_tol(dtype, device), f"{act}, expanded input", check_stride=True)
    y.view(-1)[0] = 7.0  # would raise or leak into other elements if y aliased itself
    assert_close(y[1:], act.ref(x)[1:], act.forward_tol(dtype, device), f"{act}: output elements alias")


@act_param
def test_backward_layouts(device, dtype, act):
    """Backward op with grad_output and the saved tensor in different layouts (one misaligned,
    strided or permuted, the other contiguous, and an expanded grad_output as from .sum())."""
    tol = act.backward_op_tol(dtype, device)
    x0 = make_input(LAYOUT_SHAPE, dtype, device)
    g0 = make_input(LAYOUT_SHAPE, dtype, device, generator_seed=1)
    cases = [(layout, "contiguous") for layout in LAYOUTS] + [("contiguous", layout) for layout in LAYOUTS]
    for g_layout, s_layout in cases:
        g, x = with_layout(g0, g_layout), with_layout(x0, s_layout)
        y = act.ref(x)
        grad = act.op_backward(g, x, y)
        assert_close(
            grad, act.ref_backward(g, x, y), tol, f"{act} backward, grad_output {g_layout}, saved {s_layout}"
        )
    g = torch.ones((), dtype=dtype, device=torch_device(device)).expand(LAYOUT_SHAPE)
    y = act.ref(x0)
    assert_close(
        act.op_backward(g, x0, y), act.ref_backward(g, x0, y), tol, f"{act} backward, expanded grad_output"
    )


@act_param
@pytest.mark.parametrize("n", [2, 17, 1000, 70_001])
def test_backward_one_value_grad(device, dtype, act, n):
    """grad_output one value expanded (all strides 0, the gradient of a sum or mean): read once,
    not copied out, on every ISA; the result and its (contiguous) layout as torch's. A saved
    tensor that is not contiguous takes the general path."""
    dev = torch_device(device)
    x0 = make_input((n,), dtype, device)
    for value in (-2.5, 0.0, 3.0):
        g = torch.full((), value, dtype=dtype, device=dev).expand(n)
        for x in (x0, make_input((2 * n,), dtype, device)[::2]):
            y = act.ref(x)
            for isa in dlkernels.cpu_isas() if device == "cpu" else [None]:
                with dlkernels.use_cpu_isa(isa) if isa else contextlib.nullcontext():
                    grad = act.op_backward(g, x, y)
                assert grad.is_contiguous()
                assert_close(
                    grad,
                    act.ref_backward(g, x, y),
                    act.backward_op_tol(dtype, device),
                    f"{act} {value} {isa}",
                )
    g2 = torch.full((1, 1), -1.5, dtype=dtype, device=dev).expand(3, n)
    x2 = make_input((3, n), dtype, device)
    y2 = act.ref(x2)
    assert_close(
        act.op_backward(g2, x2, y2), act.ref_backward(g2, x2, y2), act.backward_op_tol(dtype, device), "2-D"
    )


@act_param
def test_misaligned_views(device, dtype, act):
    """Views starting 1..8 elements into their storage (every misalignment of a 16-, 32- or 64-byte
    vector), with lengths around the vector widths, in and out of place."""
    tol = act.forward_tol(dtype, device)
    storage = make_input((4200,), dtype, device)
    for offset in range(1, 9):
        for n in (1, 3, 8, 15, 17, 33, 4099):
            x = storage.clone()[offset : offset + n]
            what = f"{act}, offset {offset}, {n} elements"
            assert_close(act.op(x), act.ref(x), tol, what)
            before = storage_snapshot(x)
            expected = act.ref(x)
            act.op_(x)
            assert_close(x, expected, tol, f"{what}, in place")
            assert_only_view_written(x, before, f"{what}, in place")
            g = storage[:n].clone()
            assert_close(
                act.op_backward(x, g, g),
                act.ref_backward(x, g, g),
                act.backward_op_tol(dtype, device),
                f"{what}, backward with misaligned grad_output",
            )


# ---- 64-bit indexing -----------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.cuda
@requires_cuda
@pytest.mark.parametrize("act", ACTS_BY_OP, ids=str)
def test_more_than_2_31_elements_cuda(act):
    """A float16 tensor of 2**31 + 17 elements: indices past 2**31 must not wrap (the kernels use
    64-bit indices), forward, in place and backward."""
    n = 2**31 + 17
    dtype = torch.float16
    # x, y, grad_output, grad_input: four tensors of n half values, plus a chunk of scratch space.
    needed = 4 * 2 * n + (2 << 30)
    free, _ = torch.cuda.mem_get_info()
    if free < needed:
        pytest.skip(f"needs {needed / 2**30:.1f} GiB of free GPU memory, {free / 2**30:.1f} GiB free")
    torch.cuda.empty_cache()
    x = torch.randn(n, dtype=dtype, device="cuda")
    x[-1] = -3.0  # the last element sits past 2**31: a wrapped index would leave it as it is
    y = act.op(x)
    g = torch.ones((), dtype=dtype, device="cuda").expand(n)
    grad = act.op_backward(g, x, y)
    chunk = 1 << 28
    for start in range(0, n, chunk):
        sl = slice(start, min(start + chunk, n))
        what = f"{act}, elements {sl.start}..{sl.stop}"
        assert_close(y[sl], act.ref(x[sl]), act.forward_tol(dtype, "cuda"), what)
        assert_close(
            grad[sl],
            act.ref_backward(g[sl], x[sl], y[sl]),
            act.backward_op_tol(dtype, "cuda"),
            f"{what}, backward",
        )
    del grad, g
    act.op_(x)
    for start in range(0, n, chunk):
        sl = slice(start, min(start + chunk, n))
        assert_close(x[sl], y[sl], EXACT, f"{act} in place, elements {sl.start}..{sl.stop}")
