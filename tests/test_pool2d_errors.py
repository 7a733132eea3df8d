"""Bad pooling arguments: torch's exception type and message from dlkernels.functional, inputs
untouched; huge arguments give torch's result or a clear error; the nn layers and convert."""

import pytest
import torch
import torch.nn.functional as F

import dlkernels
import dlkernels.functional as D

x = torch.randn(2, 3, 5, 5)
BAD = [
    ("max_pool2d", (x, 0, 1), {}),
    ("max_pool2d", (x, 2, 0), {}),
    ("max_pool2d", (x, 2, 1, -1), {}),
    ("max_pool2d", (x, 2), {"padding": 2}),
    ("max_pool2d", (x, 7), {}),
    ("max_pool2d", (x, 2), {"dilation": 0}),
    ("max_pool2d", (x, (2, 2, 2)), {}),
    ("max_pool2d", (x, 2.0), {}),
    ("max_pool2d", (x, 2**31), {}),
    ("max_pool2d", (x, 2), {"stride": 2**63 - 1}),
    ("max_pool2d", (torch.randn(2, 3, 0, 4), 2), {}),
    ("max_pool2d", (torch.randn(2, 3, 4, 5, 6), 2), {}),
    ("avg_pool2d", (x, 0, 1), {}),
    ("avg_pool2d", (x, 2), {"padding": 2}),
    ("avg_pool2d", (x, 2), {"divisor_override": 0}),
    ("avg_pool2d", (x, 7), {}),
    ("avg_pool2d", (torch.randn(2, 3, 0, 4), 2), {}),
    ("avg_pool2d", (x, 3), {"padding": 1, "stride": 2**63 - 1, "ceil_mode": True}),
    ("adaptive_avg_pool2d", (x, (-1, 2)), {}),
    ("adaptive_avg_pool2d", (x, (2, 3, 4)), {}),
    ("adaptive_avg_pool2d", (torch.randn(2, 3, 0, 4), 2), {}),
    ("adaptive_avg_pool2d", (torch.randn(3, 4), 2), {}),
    ("adaptive_avg_pool2d", (x, 2**40), {}),
    # torch's binding: bools only, int64 only; adaptive sizes by len() unless an int
    ("max_pool2d", (x, 2), {"ceil_mode": None}),
    ("max_pool2d", (x, 2), {"ceil_mode": 1}),
    ("max_pool2d", (x, 2), {"ceil_mode": "yes", "return_indices": True}),
    ("max_pool2d", (x, 2**63), {}),
    ("avg_pool2d", (x, 2), {"padding": 2**63}),
    ("avg_pool2d", (x, 2), {"divisor_override": 2**63}),
    ("adaptive_avg_pool2d", (x, None), {}),
    ("adaptive_avg_pool2d", (x, torch.tensor(2)), {}),
    ("adaptive_avg_pool2d", (x, 2**63), {}),
    ("adaptive_avg_pool2d", (torch.randn(3, 4), (2, 2)), {}),
]


@pytest.mark.parametrize("case", BAD, ids=lambda c: f"{c[0]}-{c[2]}")
def test_bad_arguments_like_torch(case):
    name, args, kwargs = case
    before = args[0].clone()
    with pytest.raises(Exception) as ref:
        getattr(F, name)(*args, **kwargs)
    with pytest.raises(type(ref.value)) as ours:
        getattr(D, name)(*args, **kwargs)
    assert str(ours.value) == str(ref.value)
    assert torch.equal(args[0], before)


@pytest.mark.parametrize("kw", [{"ceil_mode": None}, {"ceil_mode": 0}, {"count_include_pad": "no"}], ids=str)
def test_avg_pool_flags_are_bools(kw):
    """torch's TypeError (its message names a position only for a positional argument)."""
    with pytest.raises(TypeError, match="must be bool, not"):
        F.avg_pool2d(x, 2, **kw)
    with pytest.raises(TypeError, match=f"avg_pool2d\\(\\): argument '{next(iter(kw))}' .*must be bool, not"):
        D.avg_pool2d(x, 2, **kw)


def test_overflowing_window_element_is_a_type_error():
    for fn in (F.max_pool2d, D.max_pool2d):
        with pytest.raises(TypeError, match="argument 'kernel_size' failed to unpack the object at pos 2"):
            fn(x, (2, 2**63))


@pytest.mark.parametrize("dtype", [torch.int32, torch.int64, torch.float16])
def test_unsupported_dtype(dtype):
    t = torch.ones(1, 1, 4, 4, dtype=dtype)
    for fn, a in ((D.max_pool2d, 2), (D.avg_pool2d, 2), (D.adaptive_avg_pool2d, 2)):
        with pytest.raises(NotImplementedError):
            fn(t, a)


def test_raw_ops_raise_runtime_error():
    ops = torch.ops.dlkernels
    with pytest.raises(RuntimeError, match="Output size is too small"):
        ops.max_pool2d(x, [7, 7], [1, 1], [0, 0], [1, 1], False)
    with pytest.raises(RuntimeError, match="pad should be at most half"):
        ops.max_pool2d(x, [2**62, 2], [1, 1], [2**62, 0], [4, 1], False)  # the span overflows int64
    with pytest.raises(RuntimeError, match="divisor must be not zero"):
        ops.avg_pool2d(x, [2, 2], [1, 1], [0, 0], False, True, 0)
    y, i = ops.max_pool2d_with_indices(x, [2, 2], [2, 2], [0, 0], [1, 1], False)
    with pytest.raises(RuntimeError, match="out of bounds"):
        ops.max_pool2d_gather(x, i + 100, [2, 2], [2, 2], [0, 0], [1, 1], False)
    with pytest.raises(RuntimeError, match="dtype Long"):
        ops.max_pool2d_backward(y, i.int(), list(x.shape), [2, 2], [2, 2], [0, 0], [1, 1], False)


def test_huge_stride_matches_torch():
    for kw in (
        {"kernel_size": 2, "stride": 2**31 - 1},
        {"kernel_size": 3, "stride": 2**30, "padding": 1, "ceil_mode": True},
    ):
        torch.testing.assert_close(D.max_pool2d(x, **kw), F.max_pool2d(x, **kw))
        torch.testing.assert_close(D.avg_pool2d(x, **kw), F.avg_pool2d(x, **kw))


def test_layers_and_convert():
    layers = [
        (dlkernels.nn.MaxPool2d(3, 2, 1, ceil_mode=True), torch.nn.MaxPool2d(3, 2, 1, ceil_mode=True)),
        (dlkernels.nn.MaxPool2d(2, return_indices=True), torch.nn.MaxPool2d(2, return_indices=True)),
        (
            dlkernels.nn.AvgPool2d(3, 2, 1, count_include_pad=False),
            torch.nn.AvgPool2d(3, 2, 1, count_include_pad=False),
        ),
        (dlkernels.nn.AdaptiveAvgPool2d((None, 2)), torch.nn.AdaptiveAvgPool2d((None, 2))),
    ]
    t = torch.randn(2, 3, 9, 8)
    for ours, ref in layers:
        assert isinstance(ours, type(ref))
        assert repr(ours).split("(", 1)[1] == repr(ref).split("(", 1)[1]
        torch.testing.assert_close(ours(t), ref(t))
    model = torch.nn.Sequential(torch.nn.MaxPool2d(2), torch.nn.AvgPool2d(2), torch.nn.AdaptiveAvgPool2d(1))
    converted = dlkernels.nn.convert(model)
    assert [type(m) for m in converted] == [
        dlkernels.nn.MaxPool2d,
        dlkernels.nn.AvgPool2d,
        dlkernels.nn.AdaptiveAvgPool2d,
    ]
