"""Bad arguments to conv2d: the exception type torch raises for the same call, a message worded
like torch's, raised before anything is written (every tensor argument untouched)."""

import re

import pytest
import torch
import torch.nn.functional as F
from helpers import C10_NAMES, assert_unchanged

import dlkernels

DF = dlkernels.functional
ops = torch.ops.dlkernels


def t(*shape, dtype=torch.float32):
    g = torch.Generator().manual_seed(sum(shape) + len(shape))
    return torch.randn(shape, generator=g, dtype=torch.float64).to(dtype)


def _check_raises(call, args, kwargs, exc, pattern, what):
    """``call(*args, **kwargs)`` raises ``exc`` matching ``pattern`` and leaves every tensor
    argument's bits as they were."""
    tensors = [a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)]
    before = [a.clone() for a in tensors]
    with pytest.raises(exc, match=pattern):
        call(*args, **kwargs)
    for a, b in zip(tensors, before):
        assert_unchanged(a, b, f"{what}: argument")


def _torch_exception(call, args, kwargs):
    try:
        call(*args, **kwargs)
    except Exception as e:  # noqa: BLE001 - any exception type is what we compare
        return type(e)
    return None


X, W, B = (2, 3, 5, 5), (4, 3, 3, 3), (4,)

# (id, args, kwargs, exception, message pattern, does torch raise the same type for this call):
# dlkernels.functional.conv2d and torch.nn.functional.conv2d get the same arguments.
FUNCTIONAL_ERRORS = [
    (
        "weight-3d",
        (t(*X), t(4, 3, 3)),
        {},
        RuntimeError,
        r"expected a 4-D weight .* but got weight of size \[4, 3, 3\]",
    ),
    (
        "weight-5d",
        (t(*X), t(4, 3, 3, 3, 1)),
        {},
        RuntimeError,
        r"expected a 4-D weight .* size \[4, 3, 3, 3, 1\]",
    ),
    ("weight-2d-same", (t(*X), t(4, 3)), dict(padding="same"), RuntimeError, r"expected a 4-D weight"),
    ("weight-3d-same", (t(*X), t(4, 3, 3)), dict(padding="same"), RuntimeError, r"expected a 4-D weight"),
    (
        "input-2d",
        (t(3, 5), t(*W)),
        {},
        RuntimeError,
        r"Expected 3D \(unbatched\) or 4D \(batched\) input to conv2d, but got input of size: \[3, 5\]",
    ),
    ("input-5d", (t(1, 2, 3, 5, 5), t(*W)), {}, RuntimeError, r"but got input of size: \[1, 2, 3, 5, 5\]"),
    ("input-0d", (torch.tensor(1.0), t(*W)), {}, RuntimeError, r"but got input of size: \[\]"),
    (
        "channel-mismatch",
        (t(2, 4, 5, 5), t(*W)),
        {},
        RuntimeError,
        r"Given groups=1, weight of size \[4, 3, 3, 3\], expected input\[2, 4, 5, 5\] to have 3 channels, "
        r"but got 4 channels instead",
    ),
    (
        "channel-mismatch-unbatched",
        (t(4, 5, 5), t(*W)),
        {},
        RuntimeError,
        r"expected input\[1, 4, 5, 5\] to have 3 channels, but got 4 channels instead",
    ),
    (
        "groups-not-dividing-C",
        (t(2, 3, 5, 5), t(4, 1, 3, 3)),
        dict(groups=2),
        RuntimeError,
        r"Given groups=2, weight of size \[4, 1, 3, 3\], expected input\[2, 3, 5, 5\] to have 2 channels, "
        r"but got 3",
    ),
    (
        "groups-not-dividing-K",
        (t(2, 4, 5, 5), t(3, 2, 3, 3)),
        dict(groups=2),
        RuntimeError,
        r"Given groups=2, expected weight to be divisible by 2 at dimension 0",
    ),
    ("groups-0", (t(*X), t(*W)), dict(groups=0), RuntimeError, r"non-positive groups is not supported"),
    (
        "groups-negative",
        (t(*X), t(*W)),
        dict(groups=-3),
        RuntimeError,
        r"non-positive groups is not supported",
    ),
    (
        "no-output-channels",
        (t(*X), t(0, 3, 3, 3)),
        {},
        RuntimeError,
        r"expected weight to be at least 1 at dimension 0, but got weight of size \[0, 3, 3, 3\]",
    ),
    (
        "kernel-larger-than-input",
        (t(1, 3, 2, 2), t(*W)),
        {},
        RuntimeError,
        r"Calculated padded input size per channel: \(2 x 2\). Kernel size: \(3 x 3\). "
        r"Kernel size can't be greater than actual input size",
    ),
    (
        "dilated-kernel-larger-than-padded-input",
        (t(1, 3, 5, 6), t(*W)),
        dict(dilation=(3, 1), padding=(0, 1)),
        RuntimeError,
        r"Calculated padded input size per channel: \(5 x 8\). Kernel size: \(7 x 3\)",
    ),
    ("stride-0", (t(*X), t(*W)), dict(stride=0), RuntimeError, r"non-positive stride is not supported"),
    (
        "stride-negative",
        (t(*X), t(*W)),
        dict(stride=(1, -1)),
        RuntimeError,
        r"non-positive stride is not supported",
    ),
    (
        "padding-negative",
        (t(*X), t(*W)),
        dict(padding=(0, -1)),
        RuntimeError,
        r"negative padding is not supported",
    ),
    ("dilation-0", (t(*X), t(*W)), dict(dilation=0), RuntimeError, r"non-positive dilation is not supported"),
    (
        "same-dilation-0",
        (t(*X), t(*W)),
        dict(padding="same", dilation=(1, 0)),
        RuntimeError,
        r"non-positive dilation",
    ),
    (
        "same-with-stride",
        (t(*X), t(*W)),
        dict(padding="same", stride=2),
        RuntimeError,
        r"padding='same' is not supported for strided convolutions",
    ),
    (
        "same-with-stride-tuple",
        (t(*X), t(*W)),
        dict(padding="same", stride=(1, 2)),
        RuntimeError,
        r"padding='same' is not supported for strided convolutions",
    ),
    ("padding-string", (t(*X), t(*W)), dict(padding="full"), RuntimeError, r"Invalid padding string: 'full'"),
    (
        "padding-string-case",
        (t(*X), t(*W)),
        dict(padding="SAME"),
        RuntimeError,
        r"Invalid padding string: 'SAME'",
    ),
    (
        "bias-wrong-size",
        (t(*X), t(*W), t(5)),
        {},
        RuntimeError,
        r"Given weight of size \[4, 3, 3, 3\], expected bias to be 1-dimensional with 4 elements, "
        r"but got bias of size \[5\] instead",
    ),
    ("bias-2d", (t(*X), t(*W), t(4, 1)), {}, RuntimeError, r"but got bias of size \[4, 1\] instead"),
    ("bias-0d", (t(*X), t(*W), torch.tensor(1.0)), {}, RuntimeError, r"but got bias of size \[\] instead"),
    (
        "input-weight-dtypes",
        (t(*X), t(*W, dtype=torch.float64)),
        {},
        RuntimeError,
        r"expected input and weight to have the same dtype, "
        r"but got input of dtype Float and weight of dtype Double",
    ),
    (
        "weight-input-dtypes",
        (t(*X, dtype=torch.float64), t(*W)),
        {},
        RuntimeError,
        r"expected input and weight to have the same dtype, "
        r"but got input of dtype Double and weight of dtype Float",
    ),
    (
        "input-bias-dtypes",
        (t(*X), t(*W), t(4, dtype=torch.float64)),
        {},
        RuntimeError,
        r"Input type \(Float\) and bias type \(Double\) should be the same",
    ),
    (
        "bool-dtype",
        (t(*X).bool(), t(*W).bool()),
        {},
        NotImplementedError,
        r"\"conv2d\" not implemented for 'Bool'",
    ),
    (
        "stride-3-values",
        (t(*X), t(*W)),
        dict(stride=(1, 1, 1)),
        RuntimeError,
        r"expected stride to be a single integer value or a list of 2 values to match the convolution "
        r"dimensions, but got stride=\[1, 1, 1\]",
    ),
    ("stride-0-values", (t(*X), t(*W)), dict(stride=()), RuntimeError, r"but got stride=\[\]"),
    (
        "padding-3-values",
        (t(*X), t(*W)),
        dict(padding=[0, 0, 0]),
        RuntimeError,
        r"but got padding=\[0, 0, 0\]",
    ),
    (
        "dilation-3-values",
        (t(*X), t(*W)),
        dict(dilation=(1, 1, 1)),
        RuntimeError,
        r"but got dilation=\[1, 1, 1\]",
    ),
    ("stride-float", (t(*X), t(*W)), dict(stride=1.5), TypeError, r"argument 'stride' must be"),
    (
        "padding-float-element",
        (t(*X), t(*W)),
        dict(padding=(1.0, 1)),
        TypeError,
        r"argument 'padding' must be",
    ),
    ("dilation-none", (t(*X), t(*W)), dict(dilation=None), TypeError, r"argument 'dilation' must be"),
    (
        "groups-float",
        (t(*X), t(*W)),
        dict(groups=1.0),
        TypeError,
        r"argument 'groups' must be int, not float",
    ),
    ("groups-bool", (t(*X), t(*W)), dict(groups=True), TypeError, r"argument 'groups' must be int, not bool"),
    (
        "input-list",
        ([1.0], t(*W)),
        {},
        TypeError,
        r"conv2d\(\): argument 'input' \(position 1\) must be Tensor",
    ),
    (
        "weight-list",
        (t(*X), [1.0]),
        {},
        TypeError,
        r"argument 'weight' \(position 2\) must be Tensor, not list",
    ),
    ("bias-list", (t(*X), t(*W), [0.0] * 4), {}, TypeError, r"argument 'bias' \(position 3\) must be Tensor"),
    (
        "input-none",
        (None, t(*W)),
        {},
        TypeError,
        r"argument 'input' \(position 1\) must be Tensor, not NoneType",
    ),
]


@pytest.mark.parametrize(
    "args,kwargs,exc,pattern", [c[1:] for c in FUNCTIONAL_ERRORS], ids=[c[0] for c in FUNCTIONAL_ERRORS]
)
def test_functional_errors_like_torch(args, kwargs, exc, pattern):
    """dlkernels.functional.conv2d raises ``exc`` with the expected message, torch raises the same
    exception type for the same call, and no tensor argument is modified."""
    _check_raises(DF.conv2d, args, kwargs, exc, pattern, "functional")
    torch_exc = _torch_exception(F.conv2d, args, kwargs)
    assert torch_exc is not None, "torch accepts this call"
    assert issubclass(torch_exc, exc), f"torch raises {torch_exc.__name__}, dlkernels {exc.__name__}"


@pytest.mark.parametrize("dtype", list(C10_NAMES), ids=lambda d: str(d).split(".")[-1])
def test_unsupported_dtypes(dtype):
    """An error naming the op and the dtype, from every entry point and gradient op.
    (torch's CPU convolution computes in integers and float16; only bool fails there too.)"""

    def make(*shape):
        x = t(*shape)
        return x.bool() if dtype == torch.bool else x.to(dtype)

    x, w, b, dy = make(*X), make(*W), make(*B), make(2, 4, 3, 3)
    params = ([1, 1], [0, 0], [1, 1], 1)
    # The public entry points raise torch's NotImplementedError; the raw ops (C++ on the stable
    # ABI) a RuntimeError with the same message.
    calls = [
        ("conv2d", DF.conv2d, (x, w, b), NotImplementedError),
        ("conv2d", DF.conv2d, (x, w), NotImplementedError),
        ("conv2d", dlkernels.autograd.Conv2dFunction.apply, (x, w, b, *params), NotImplementedError),
        ("conv2d", ops.conv2d, (x, w, b, *params), RuntimeError),
        ("conv2d_grad_input", ops.conv2d_grad_input, (dy, w, list(X), *params), RuntimeError),
        ("conv2d_grad_weight", ops.conv2d_grad_weight, (dy, x, list(W), *params), RuntimeError),
        ("conv2d_grad_bias", ops.conv2d_grad_bias, (dy,), RuntimeError),
        ("conv2d_backward", ops.conv2d_backward, (dy, x, w, *params, [True, True, True]), RuntimeError),
    ]
    for name, call, args, exc in calls:
        _check_raises(
            call,
            args,
            {},
            exc,
            f"\"{name.replace('_backward', '_grad_input')}\" not implemented for '{C10_NAMES[dtype]}'",
            name,
        )


def test_unsupported_dtype_in_a_layer():
    layer = dlkernels.nn.Conv2d(3, 4, 3, dtype=torch.float16)
    with pytest.raises(NotImplementedError, match="\"conv2d\" not implemented for 'Half'"):
        layer(t(*X).half())


# ---- the raw ops ---------------------------------------------------------------------------------

P = ([1, 1], [0, 0], [1, 1], 1)
DY = (2, 4, 3, 3)  # grad_output of X conv W


def _conv_backward(dy, x, w, params=P, mask=(True, True, False)):
    """torch's own gradient op, for comparing exception types."""
    stride, padding, dilation, groups = params
    return torch.ops.aten.convolution_backward(
        dy, x, w, None, stride, padding, dilation, False, [0, 0], groups, list(mask)
    )


# (id, dlkernels call, args, exception, pattern, torch's counterpart or None when torch has none)
RAW_ERRORS = [
    (
        "conv2d-stride-1-value",
        ops.conv2d,
        (t(*X), t(*W), None, [1], [0, 0], [1, 1], 1),
        RuntimeError,
        r"conv2d: expected stride to be a list of 2 values, but got stride=\[1\]",
        None,
    ),
    (
        "conv2d-padding-3-values",
        ops.conv2d,
        (t(*X), t(*W), None, [1, 1], [0, 0, 0], [1, 1], 1),
        RuntimeError,
        r"conv2d: expected padding to be a list of 2 values, but got padding=\[0, 0, 0\]",
        None,
    ),
    (
        "conv2d-input-3d",
        ops.conv2d,
        (t(3, 5, 5), t(*W), None, *P),
        RuntimeError,
        r"conv2d: expected a 4-D \(batched\) input, but got input of size: \[3, 5, 5\]",
        None,
    ),
    (
        "conv2d-weight-3d",
        ops.conv2d,
        (t(*X), t(4, 3, 3), None, *P),
        RuntimeError,
        r"conv2d: expected a 4-D weight",
        (F.conv2d, (t(*X), t(4, 3, 3))),
    ),
    (
        "conv2d-groups-float",
        ops.conv2d,
        (t(*X), t(*W), None, [1, 1], [0, 0], [1, 1], 1.5),
        RuntimeError,  # the dispatcher's schema check; the functional API raises TypeError
        r"Expected a value of type 'int' for argument 'groups'",
        None,
    ),
    (
        "grad_input-grad_output-spatial",
        ops.conv2d_grad_input,
        (t(2, 4, 3, 2), t(*W), list(X), *P),
        RuntimeError,
        r"conv2d_grad_input: expected grad_output of size \[2, 4, 3, 3\], but got \[2, 4, 3, 2\]",
        (_conv_backward, (t(2, 4, 3, 2), t(*X), t(*W))),
    ),
    (
        "grad_input-grad_output-channels",
        ops.conv2d_grad_input,
        (t(2, 5, 3, 3), t(*W), list(X), *P),
        RuntimeError,
        r"conv2d_grad_input: expected grad_output of size \[2, 4, 3, 3\], but got \[2, 5, 3, 3\]",
        (_conv_backward, (t(2, 5, 3, 3), t(*X), t(*W))),
    ),
    (
        "grad_input-grad_output-batch",
        ops.conv2d_grad_input,
        (t(3, 4, 3, 3), t(*W), list(X), *P),
        RuntimeError,
        r"expected grad_output of size \[2, 4, 3, 3\], but got \[3, 4, 3, 3\]",
        None,
    ),
    (
        "grad_input-grad_output-3d",
        ops.conv2d_grad_input,
        (t(4, 3, 3), t(*W), list(X), *P),
        RuntimeError,
        r"expected grad_output of size \[2, 4, 3, 3\], but got \[4, 3, 3\]",
        (_conv_backward, (t(4, 3, 3), t(*X), t(*W))),
    ),
    (
        "grad_input-stride-mismatch",  # grad_output of the stride-1 conv, stride 2 claimed
        ops.conv2d_grad_input,
        (t(*DY), t(*W), list(X), [2, 2], [0, 0], [1, 1], 1),
        RuntimeError,
        r"expected grad_output of size \[2, 4, 2, 2\], but got \[2, 4, 3, 3\]",
        (_conv_backward, (t(*DY), t(*X), t(*W), ([2, 2], [0, 0], [1, 1], 1))),
    ),
    (
        "grad_input-input_size-3",
        ops.conv2d_grad_input,
        (t(*DY), t(*W), [3, 5, 5], *P),
        RuntimeError,
        r"conv2d_grad_input: expected a 4-D \(batched\) input, but got input of size: \[3, 5, 5\]",
        None,
    ),
    (
        "grad_input-input_size-channels",
        ops.conv2d_grad_input,
        (t(*DY), t(*W), [2, 6, 5, 5], *P),
        RuntimeError,
        r"expected input\[2, 6, 5, 5\] to have 3 channels, but got 6 channels instead",
        None,
    ),
    (
        "grad_input-dtypes",
        ops.conv2d_grad_input,
        (t(*DY, dtype=torch.float64), t(*W), list(X), *P),
        RuntimeError,
        r"conv2d_grad_input: expected input and weight to have the same dtype",
        (_conv_backward, (t(*DY, dtype=torch.float64), t(*X), t(*W))),
    ),
    (
        "grad_input-kernel-too-large",
        ops.conv2d_grad_input,
        (t(*DY), t(*W), [2, 3, 2, 2], *P),
        RuntimeError,
        r"Kernel size can't be greater than actual input size",
        None,
    ),
    (
        "grad_weight-grad_output-spatial",
        ops.conv2d_grad_weight,
        (t(2, 4, 3, 4), t(*X), list(W), *P),
        RuntimeError,
        r"conv2d_grad_weight: expected grad_output of size \[2, 4, 3, 3\], but got \[2, 4, 3, 4\]",
        (_conv_backward, (t(2, 4, 3, 4), t(*X), t(*W), P, (False, True, False))),
    ),
    (
        "grad_weight-grad_output-channels",
        ops.conv2d_grad_weight,
        (t(2, 6, 3, 3), t(*X), list(W), *P),
        RuntimeError,
        r"expected grad_output of size \[2, 4, 3, 3\], but got \[2, 6, 3, 3\]",
        (_conv_backward, (t(2, 6, 3, 3), t(*X), t(*W), P, (False, True, False))),
    ),
    (
        "grad_weight-weight_size-3",
        ops.conv2d_grad_weight,
        (t(*DY), t(*X), [4, 3, 3], *P),
        RuntimeError,
        r"conv2d_grad_weight: expected a 4-D weight",
        None,
    ),
    (
        "grad_weight-input-channels",
        ops.conv2d_grad_weight,
        (t(*DY), t(2, 2, 5, 5), list(W), *P),
        RuntimeError,
        r"expected input\[2, 2, 5, 5\] to have 3 channels, but got 2 channels instead",
        None,
    ),
    (
        "grad_weight-dtypes",
        ops.conv2d_grad_weight,
        (t(*DY), t(*X, dtype=torch.float64), list(W), *P),
        RuntimeError,
        r"conv2d_grad_weight: expected grad_output and input to have the same dtype, "
        r"but got Float and Double",
        None,
    ),
    (
        "grad_weight-groups",
        ops.conv2d_grad_weight,
        (t(*DY), t(*X), list(W), [1, 1], [0, 0], [1, 1], 3),
        RuntimeError,
        r"Given groups=3, expected weight to be divisible by 3 at dimension 0",
        None,
    ),
    (
        "grad_bias-3d",
        ops.conv2d_grad_bias,
        (t(4, 3, 3),),
        RuntimeError,
        r"conv2d_grad_bias: expected a 4-D grad_output, but got size \[4, 3, 3\]",
        None,
    ),
]


@pytest.mark.parametrize(
    "call,args,exc,pattern,torch_call", [c[1:] for c in RAW_ERRORS], ids=[c[0] for c in RAW_ERRORS]
)
def test_raw_op_errors(call, args, exc, pattern, torch_call):
    """The raw ops check their arguments (the gradient ops: grad_output against the geometry
    their other arguments imply); where torch has the same call, it raises the same type."""
    _check_raises(call, args, {}, exc, pattern, "raw op")
    if torch_call is not None:
        fn, targs = torch_call
        torch_exc = _torch_exception(fn, targs, {})
        assert torch_exc is not None, "torch accepts this call"
        assert issubclass(torch_exc, exc), f"torch raises {torch_exc.__name__}, dlkernels {exc.__name__}"


def test_errors_through_autograd_and_layer():
    """The same checks fire through Conv2dFunction, the raw op with autograd and nn.Conv2d, and a
    failed call leaves no gradient behind."""
    x = t(2, 4, 5, 5).requires_grad_()
    w = t(*W).requires_grad_()
    pattern = r"expected input\[2, 4, 5, 5\] to have 3 channels"
    for call in (
        lambda: dlkernels.autograd.Conv2dFunction.apply(x, w, None, [1, 1], [0, 0], [1, 1], 1),
        lambda: ops.conv2d(x, w, None, [1, 1], [0, 0], [1, 1], 1),
        lambda: DF.conv2d(x, w),
        lambda: dlkernels.nn.Conv2d(3, 4, 3)(x),
    ):
        with pytest.raises(RuntimeError, match=pattern):
            call()
    assert x.grad is None and w.grad is None


# ---- accepted by the checks but doubtful ---------------------------------------------------------


def test_zero_size_kernel_is_rejected():
    x, w = t(*X), torch.randn(4, 3, 0, 3)
    assert _torch_exception(F.conv2d, (x, w), {}) is RuntimeError
    with pytest.raises(RuntimeError):
        DF.conv2d(x, w)


# ---- no kernel for a backend ---------------------------------------------------------------------


def test_backend_without_kernel_raises_not_implemented():
    """An op called with tensors of a backend it has no kernel for gets the dispatcher's
    NotImplementedError naming the op and the backend. Shown with sparse tensors."""
    x = t(*X).to_sparse()
    with pytest.raises(
        NotImplementedError,
        match=re.escape("Could not run 'dlkernels::conv2d' with arguments from the 'SparseCPU'"),
    ):
        ops.conv2d(x, t(*W), None, *P)
