"""conv2d with inputs, weights and grad_outputs in every memory layout (permuted, strided, sliced
views with storage offsets, channels_last, expanded): the same values as contiguous ones, nothing
written to any of them, and the output layout rule of csrc/host/conv2d.h (channels_last input ->
channels_last output, grad_input follows grad_output)."""

import pytest
import torch
import torch.nn.functional as F
from conv_cases import CASES_BY_ID, DTYPES, Results, case_param, check_results, ops
from helpers import (
    DTYPE_NAMES,
    GAP_SENTINEL,
    LAYOUTS,
    assert_only_view_written,
    assert_unchanged,
    is_channels_last,
    storage_snapshot,
    with_layout,
)

import dlkernels

DF = dlkernels.functional

dtype_param = pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: DTYPE_NAMES[d])


def sliced(x: torch.Tensor, layout: str = "contiguous") -> torch.Tensor:
    """``x`` as a view into a larger tensor (stored with ``layout``): a storage offset and gaps in
    every dimension, the gaps filled with GAP_SENTINEL."""
    big_shape = tuple(2 * s + 1 for s in x.shape)
    big = with_layout(torch.full(big_shape, GAP_SENTINEL, dtype=x.dtype, device=x.device), layout)
    view = big[tuple(slice(1, 1 + 2 * s, 2) if s > 1 else slice(1, 1 + s) for s in x.shape)]
    view.copy_(x)
    return view


def variants(x: torch.Tensor) -> list:
    """(name, tensor equal to x) for each layout; 4-D tensors only."""
    out = [("contiguous", x.contiguous())]
    out += [(layout, with_layout(x, layout)) for layout in LAYOUTS]
    out += [("sliced", sliced(x)), ("sliced-channels_last", sliced(x, "channels_last"))]
    out.append(
        (
            "nhwc-permuted",
            x.permute(0, 2, 3, 1)
            .contiguous()
            .permute(0, 3, 1, 2)
            .transpose(2, 3)
            .contiguous()
            .transpose(2, 3),
        )
    )
    return out


LAYOUT_CASES = [
    CASES_BY_ID[i]
    for i in (
        "1x1",  # the input is its own plane: a non-contiguous input must not be read in place
        "3x3-pad1",
        "groups3-stride2",
        "depthwise",  # depthwise 3x3 pad 1, stride 1
        "depthwise-multiplier2",
        "wide-stride2-pad1",
    )
]


@case_param(LAYOUT_CASES)
@dtype_param
def test_layouts_give_the_same_values(isa, dtype, case):
    """Each of input, weight and grad_output in each layout (the others contiguous): all four ops
    within the bound of the references, and no element of any argument's storage written."""
    x0, w0, b0, dy0 = case.tensors(dtype)
    for arg in ("input", "weight", "grad_output"):
        base = {"input": x0, "weight": w0, "grad_output": dy0}[arg]
        for name, t in variants(base):
            x, w, dy = (
                t if arg == a else v for a, v in (("input", x0), ("weight", w0), ("grad_output", dy0))
            )
            snapshots = [(s, storage_snapshot(s)) for s in (x, w, dy)]
            what = f"{arg} {name} (strides {t.stride()}, offset {t.storage_offset()}), {isa}"
            y = ops.conv2d(x, w, b0, *case.params)
            gi = ops.conv2d_grad_input(dy, w, list(x.shape), *case.params)
            gw = ops.conv2d_grad_weight(dy, x, list(w.shape), *case.params)
            gb = ops.conv2d_grad_bias(dy)
            check_results(case, dtype, Results(y, gi, gw, gb), what)
            for s, snap in snapshots:
                assert_only_view_written(s, snap, what)
            assert_unchanged(t, base, what)


@dtype_param
def test_bias_layouts(isa, dtype):
    """A strided bias and one at a storage offset."""
    case = CASES_BY_ID["3x3-pad1"]
    x, w, b, _ = case.tensors(dtype)
    expected = ops.conv2d(x, w, b, *case.params)
    for bias in (with_layout(b, "strided"), with_layout(b, "offset")):
        snap = storage_snapshot(bias)
        y = ops.conv2d(x, w, bias, *case.params)
        assert torch.equal(y, expected), f"bias strides {bias.stride()}, offset {bias.storage_offset()}"
        assert_only_view_written(bias, snap, "bias")


def test_expanded_arguments(isa):
    """Stride-0 (expanded) arguments: a weight shared by every output channel, a grad_output as
    from y.sum(), an input broadcast over the batch. Read correctly, results not aliased."""
    case = CASES_BY_ID["3x3-pad1"]
    x, w, b, dy = case.tensors(torch.float32)
    w_exp = w[:1].expand_as(w)
    dy_exp = torch.ones(()).expand(case.output_shape)
    x_exp = x[:1].expand_as(x)
    for xe, we, dye in ((x_exp, w, dy), (x, w_exp, dy), (x, w, dy_exp)):
        got = Results(
            ops.conv2d(xe, we, b, *case.params),
            ops.conv2d_grad_input(dye, we, list(x.shape), *case.params),
            ops.conv2d_grad_weight(dye, xe, list(w.shape), *case.params),
            ops.conv2d_grad_bias(dye),
        )
        c = [xe.contiguous(), we.contiguous(), dye.contiguous()]
        ref = Results(
            ops.conv2d(c[0], c[1], b, *case.params),
            ops.conv2d_grad_input(c[2], c[1], list(x.shape), *case.params),
            ops.conv2d_grad_weight(c[2], c[0], list(w.shape), *case.params),
            ops.conv2d_grad_bias(c[2]),
        )
        for field in ("output", "grad_input", "grad_weight", "grad_bias"):
            a, e = getattr(got, field), getattr(ref, field)
            assert torch.equal(a, e), f"{field} with strides {xe.stride()}, {we.stride()}, {dye.stride()}"
        got.output.view(-1)[0] = 7.0  # would raise if the output aliased itself
        assert got.output.view(-1)[1:].ne(7.0).any()


# ---- output layout -------------------------------------------------------------------------------


def _format(t: torch.Tensor) -> str:
    if t.is_contiguous():
        return "contiguous"
    if t.is_contiguous(memory_format=torch.channels_last):
        return "channels_last"
    return f"other {t.stride()}"


OUTPUT_LAYOUT_SHAPES = [
    # (input shape, weight shape, stride, padding, groups)
    ((2, 3, 7, 8), (4, 3, 3, 3), 1, 1, 1),
    ((2, 3, 7, 8), (4, 3, 3, 3), 2, 0, 1),
    ((1, 6, 5, 5), (6, 1, 3, 3), 1, 1, 6),
    ((2, 4, 1, 1), (5, 4, 1, 1), 1, 0, 1),  # 1x1 images: contiguous and channels_last coincide
    ((2, 1, 6, 6), (3, 1, 3, 3), 1, 0, 1),  # C = 1 input
]


@pytest.mark.parametrize("shapes", OUTPUT_LAYOUT_SHAPES, ids=str)
def test_output_layout_follows_input_like_torch(shapes):
    """The forward output is channels_last exactly when torch's is for the same dense input
    (contiguous weight): channels_last inputs, and not the others."""
    shape, wshape, stride, padding, groups = shapes
    x0, w = torch.randn(shape), torch.randn(wshape)
    for name, x in variants(x0):
        if name == "sliced-channels_last":
            continue  # test_output_layout_of_channels_last_views
        y = DF.conv2d(x, w, None, stride, padding, 1, groups)
        y_ref = F.conv2d(x, w, None, stride, padding, 1, groups)
        assert _format(y) == _format(y_ref), (
            f"input {name} {x.stride()}: {y.stride()} vs torch {y_ref.stride()}"
        )
        if is_channels_last(x) and is_channels_last(y_ref):
            assert is_channels_last(y)


def test_output_layout_of_channels_last_views():
    """Views of a channels_last tensor, as from splitting its channels: torch keeps channels_last."""
    w = torch.randn(4, 3, 3, 3)
    base = torch.randn(2, 5, 7, 8).contiguous(memory_format=torch.channels_last)
    for name, x in (
        ("channel slice", base[:, 1:4]),
        ("row slice", base[:, :3, 1:]),
        ("every other", sliced(base[:, :3], "channels_last")),
    ):
        y, y_ref = DF.conv2d(x, w, padding=1), F.conv2d(x, w, padding=1)
        assert _format(y_ref) == "channels_last", name
        assert _format(y) == "channels_last", f"{name} {x.stride()}: {y.stride()} vs torch {y_ref.stride()}"


def test_output_layout_follows_the_weight_layout_like_torch():
    """torch's CPU convolution returns channels_last when the input or the weight is
    channels_last (csrc/host/conv2d.h conv_output_format follows the same rule)."""
    x, w = torch.randn(2, 3, 7, 8), torch.randn(4, 3, 3, 3)
    w_cl = w.contiguous(memory_format=torch.channels_last)
    assert is_channels_last(w_cl)
    for xi in (x, x.contiguous(memory_format=torch.channels_last)):
        y, y_ref = ops.conv2d(xi, w_cl, None, [1, 1], [1, 1], [1, 1], 1), F.conv2d(xi, w_cl, None, 1, 1)
        assert _format(y_ref) == "channels_last"
        assert _format(y) == "channels_last"
    assert _format(ops.conv2d(x, w, None, [1, 1], [1, 1], [1, 1], 1)) == "contiguous"


@pytest.mark.parametrize("empty", [False, True], ids=["nonempty", "N0"])
def test_gradient_layouts(empty):
    """grad_input follows grad_output's layout (whatever the input's), grad_weight and grad_bias
    are contiguous; also for an empty batch."""
    n = 0 if empty else 2
    x, w = torch.randn(n, 3, 7, 8), torch.randn(4, 3, 3, 3)
    params = ([1, 1], [1, 1], [1, 1], 1)
    for dy_layout in ("contiguous", "channels_last", "transposed"):
        dy = with_layout(torch.randn(n, 4, 7, 8), dy_layout)
        for x_layout in ("contiguous", "channels_last"):
            xl = with_layout(x, x_layout)
            gi = ops.conv2d_grad_input(dy, w, list(x.shape), *params)
            gw = ops.conv2d_grad_weight(dy, xl, list(w.shape), *params)
            # An empty tensor counts as contiguous in every format, as in torch.
            expected = "channels_last" if dy_layout == "channels_last" and not empty else "contiguous"
            assert _format(gi) == expected, f"grad_output {dy_layout}, input {x_layout}: {gi.stride()}"
            assert gw.is_contiguous()
    assert ops.conv2d_grad_bias(
        torch.randn(n, 4, 7, 8).contiguous(memory_format=torch.channels_last)
    ).is_contiguous()


def test_autograd_gradient_layouts():
    """Through autograd: a channels_last forward gives a channels_last output, whose backward
    (with a channels_last grad_output) gives channels_last input gradients."""
    x = torch.randn(2, 3, 7, 8).contiguous(memory_format=torch.channels_last).requires_grad_()
    w = torch.randn(4, 3, 3, 3, requires_grad=True)
    y = DF.conv2d(x, w, padding=1)
    assert is_channels_last(y)
    y.backward(torch.randn_like(y))
    assert is_channels_last(x.grad) and w.grad.is_contiguous()


def test_empty_batch_layouts():
    """N = 0: an empty tensor is contiguous in every format, so the output is contiguous, as
    torch's is."""
    x = torch.randn(0, 3, 7, 8).contiguous(memory_format=torch.channels_last)
    w = torch.randn(4, 3, 3, 3)
    y = ops.conv2d(x, w, None, [1, 1], [1, 1], [1, 1], 1)
    assert y.shape == (0, 4, 7, 8)
    assert y.stride() == F.conv2d(x, w, padding=1).stride() == (224, 56, 8, 1)
