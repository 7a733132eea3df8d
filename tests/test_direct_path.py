"""The direct path (dlkernels._ops._common.call: the backend kernel without the dispatcher's
Python layers) on the inputs that need more than a plain tensor's pointer and strides:
* a lazy negation (torch._neg_view) is read negated and a storage-less efficient zero tensor as
  zeros, forward and backward: the same bits as the op on the materialised tensor (the zero
  tensor crashed the process before the dispatcher's fallbacks were on the path);
* a tensor of another layout (sparse, mkldnn) or a nested one goes to the dispatcher, which
  raises torch's NotImplementedError naming its backend (the kernels read only dense tensors,
  and failed on these with the stable ABI's bare "API call failed");
* an in-place op or fill on a negation view writes its values through the bit;
* autocast leaves the ops in their inputs' dtype (they register no autocast rule);
* nn.Parameter, the nn layers' weights, takes the direct path (it adds no dispatch of its own);
  a subclass that defines __torch_function__ still sees every call."""

import pytest
import torch
import torch.nn.functional as F
from helpers import EXACT, Tol, assert_close

import dlkernels
import dlkernels.functional as DF
import dlkernels.nn as dnn

# name -> (make the inputs from a seeded generator, call on the functional module)
CASES = {
    "relu": (lambda g: [torch.randn(3, 5, generator=g)], lambda M, x: M.relu(x)),
    "leaky_relu": (lambda g: [torch.randn(3, 5, generator=g)], lambda M, x: M.leaky_relu(x, 0.2)),
    "sigmoid": (lambda g: [torch.randn(3, 5, generator=g)], lambda M, x: M.sigmoid(x)),
    "conv2d": (
        lambda g: [
            torch.randn(2, 3, 6, 6, generator=g),
            torch.randn(4, 3, 3, 3, generator=g),
            torch.randn(4, generator=g),
        ],
        lambda M, x, w, b: M.conv2d(x, w, b, padding=1),
    ),
    "max_pool2d": (lambda g: [torch.randn(2, 3, 6, 6, generator=g)], lambda M, x: M.max_pool2d(x, 2)),
    "avg_pool2d": (lambda g: [torch.randn(2, 3, 6, 6, generator=g)], lambda M, x: M.avg_pool2d(x, 3, 2, 1)),
    "adaptive_avg_pool2d": (
        lambda g: [torch.randn(2, 3, 7, 5, generator=g)],
        lambda M, x: M.adaptive_avg_pool2d(x, (3, 2)),
    ),
    "linear": (
        lambda g: [
            torch.randn(4, 7, generator=g),
            torch.randn(5, 7, generator=g),
            torch.randn(5, generator=g),
        ],
        lambda M, x, w, b: M.linear(x, w, b),
    ),
    "mse_loss": (
        lambda g: [torch.randn(4, 6, generator=g), torch.randn(4, 6, generator=g)],
        lambda M, x, t: M.mse_loss(x, t),
    ),
    "cross_entropy": (
        lambda g: [torch.randn(6, 5, generator=g), torch.randn(6, 5, generator=g).softmax(1)],
        lambda M, x, t: M.cross_entropy(x, t),
    ),
}


_TORCH = Tol(1e-5, 1e-6, "float32, a different order of sums than torch's")


def _inputs(name):
    return CASES[name][0](torch.Generator().manual_seed(len(name)))


_POSITIONS = [(name, i) for name in CASES for i in range(len(_inputs(name)))]


@pytest.mark.parametrize("name,position", _POSITIONS)
def test_lazy_negation_is_read_negated(name, position):
    """One input a negation view (its bit set, its memory holding the opposite values): the
    result and every input's gradient have the bits of the op on the materialised inputs."""
    _, fn = CASES[name]
    values = _inputs(name)
    leaves = [v.clone().requires_grad_() for v in values]
    viewed = list(leaves)
    viewed[position] = torch._neg_view(leaves[position].neg())  # the same values, read through the bit
    assert viewed[position].is_neg()
    ours = fn(DF, *viewed)
    plain_leaves = [v.clone().requires_grad_() for v in values]
    plain = fn(DF, *plain_leaves)
    assert_close(ours, plain, EXACT, f"{name}: negation view at input {position}")
    assert_close(ours, fn(F, *values), _TORCH, f"{name}: against torch")
    dy = torch.randn(plain.shape, generator=torch.Generator().manual_seed(3))
    grads = torch.autograd.grad(ours, leaves, dy)
    plain_grads = torch.autograd.grad(plain, plain_leaves, dy)
    for i, (g, r) in enumerate(zip(grads, plain_grads)):
        assert_close(g, r, EXACT, f"{name}: gradient of input {i}, negation view at input {position}")


@pytest.mark.parametrize("name,position", _POSITIONS)
def test_efficient_zero_tensor_is_read_as_zeros(name, position):
    """One input a storage-less zero tensor: the bits of the op on a tensor of zeros, no crash."""
    _, fn = CASES[name]
    values = _inputs(name)
    zero = torch._efficientzerotensor(values[position].shape)
    assert zero._is_zerotensor()
    ours = fn(DF, *values[:position], zero, *values[position + 1 :])
    zeros = [*values[:position], torch.zeros_like(values[position]), *values[position + 1 :]]
    assert_close(ours, fn(DF, *zeros), EXACT, f"{name}: zero tensor at input {position}")
    assert_close(ours, fn(F, *zeros), _TORCH, f"{name}: against torch")


# layout -> (the tensor of that layout holding t's values, whether it can hold a t of this dim)
_LAYOUTS = {
    "sparse_coo": (lambda t: t.to_sparse(), lambda dim: True),
    "sparse_csr": (lambda t: t.to_sparse_csr(), lambda dim: dim == 2),
    "mkldnn": (lambda t: t.to_mkldnn(), lambda dim: True),
    "nested": (lambda t: torch.nested.nested_tensor(list(t)), lambda dim: dim >= 2),
}
_LAYOUT_CASES = [
    (name, i, layout)
    for name, i in _POSITIONS
    for layout, (_, holds) in _LAYOUTS.items()
    if holds(_inputs(name)[i].dim())
]


@pytest.mark.filterwarnings("ignore:.*(prototype|beta):UserWarning")
@pytest.mark.parametrize("name,position,layout", _LAYOUT_CASES)
def test_other_layouts_raise_torchs_error(name, position, layout):
    """The dispatcher's NotImplementedError naming the backend; for a nested tensor, torch's own
    RuntimeError where the functional layer reads its shape (which nested tensors do not have)."""
    _, fn = CASES[name]
    values = _inputs(name)
    values[position] = _LAYOUTS[layout][0](values[position])
    backend = {"sparse_coo": "SparseCPU", "sparse_csr": "SparseCsrCPU", "mkldnn": "MkldnnCPU"}.get(layout)
    if backend is None:
        expected = pytest.raises(
            (NotImplementedError, RuntimeError),
            match="'NestedTensorCPU' backend|NestedTensorImpl doesn't support sizes",
        )
    else:
        expected = pytest.raises(
            NotImplementedError, match=f"Could not run 'dlkernels::.*' with arguments from the '{backend}'"
        )
    with expected:
        fn(DF, *values)


@pytest.mark.filterwarnings("ignore:.*deprecated:UserWarning")
def test_quantized_input_names_its_dtype():
    """A quantized tensor is refused by dtype, named as torch names it (asking a meta tensor for
    the name, as for other dtypes, fails for these)."""
    q = torch.quantize_per_tensor(torch.randn(2, 3), 0.1, 0, torch.quint8)
    with pytest.raises(NotImplementedError, match="\"relu\" not implemented for 'QUInt8' on cpu"):
        DF.relu(q)


def test_incoming_gradient_negation_view_or_zero_tensor():
    """A backward's incoming gradient that is a negation view or a zero tensor: the direct
    backward's kernel reads it as the plain tensor of its values."""
    x = torch.randn(4, 7, requires_grad=True)
    w = torch.randn(5, 7, requires_grad=True)
    dy = torch.randn(4, 5)
    for incoming, plain in [
        (torch._neg_view(dy.neg()), dy),
        (torch._efficientzerotensor(4, 5), torch.zeros(4, 5)),
    ]:
        ours = torch.autograd.grad(DF.linear(x, w), (x, w), incoming)
        ref = torch.autograd.grad(DF.linear(x, w), (x, w), plain)
        for g, r in zip(ours, ref):
            assert_close(g, r, EXACT, "linear's gradients of an incoming negation view or zero tensor")


def test_nn_layers_parameters_take_the_direct_path():
    """A dlkernels.nn layer's weights are Parameters: its call records the op's lean node (the
    direct path's), not the dispatcher's generic one, with torch's results and gradients."""
    torch.manual_seed(0)
    ref = torch.nn.Linear(7, 5)
    ours = dnn.Linear(7, 5)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(4, 7)
    y = ours(x)
    assert type(y.grad_fn).__name__ == "_LinearBackward"
    assert_close(y, ref(x), _TORCH, "nn.Linear on the direct path")
    y.sum().backward()
    ref(x).sum().backward()
    assert_close(ours.weight.grad, ref.weight.grad, _TORCH, "nn.Linear weight gradient")
    assert_close(ours.bias.grad, ref.bias.grad, _TORCH, "nn.Linear bias gradient")


class _Watched(torch.nn.Parameter):
    """A Parameter subclass with a __torch_function__ of its own, which records what it sees."""

    seen: list = []

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        cls.seen.append(getattr(func, "__name__", str(func)))
        return super().__torch_function__(func, types, args, kwargs or {})


def test_parameter_subclass_keeps_its_own_dispatch():
    """Only Tensor and Parameter themselves are taken as plain: a subclass's __torch_function__
    sees the dlkernels op (the direct path would skip it)."""
    w = _Watched(torch.randn(5, 7))
    x = torch.randn(4, 7)
    _Watched.seen.clear()
    y = DF.linear(x, w)
    assert any("linear" in name for name in _Watched.seen), _Watched.seen
    assert_close(
        y.as_subclass(torch.Tensor), F.linear(x, w.as_subclass(torch.Tensor)), _TORCH, "subclass weight"
    )


@pytest.mark.parametrize("name", ["conv2d", "linear", "cross_entropy", "relu"])
def test_autocast_runs_in_the_inputs_dtype(name):
    """The ops register no autocast rule (README, Guarantees): under CPU autocast to bfloat16 they
    give the bits of the call without it, in float32, by the direct path and by the dispatcher."""
    _, fn = CASES[name]
    values = _inputs(name)
    plain = fn(DF, *values)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ours = fn(DF, *values)
        if name == "linear":
            dispatched = torch.ops.dlkernels.linear(*values)
            assert_close(dispatched, plain, EXACT, "linear through the dispatcher under autocast")
    assert ours.dtype == torch.float32
    assert_close(ours, plain, EXACT, f"{name} under autocast")


_INPLACE = {
    "relu_": (DF.relu_, torch.relu),
    "leaky_relu_": (lambda t: DF.leaky_relu_(t, 0.1), lambda t: F.leaky_relu(t, 0.1)),
    "raw relu_": (torch.ops.dlkernels.relu_, torch.relu),
    "raw sigmoid_": (torch.ops.dlkernels.sigmoid_, torch.sigmoid),
}


@pytest.mark.parametrize("name", _INPLACE)
def test_inplace_on_a_lazy_negation(name):
    """In place on a negation view (the dispatcher's fallback cannot write one: 'Expected Tensor
    but got None'): the view then reads the op of its values, keeps its bit, and its version moves."""
    op, ref = _INPLACE[name]
    x = torch.randn(7, generator=torch.Generator().manual_seed(5))
    view = torch._neg_view(x.neg())
    version = view._version
    op(view)
    assert view.is_neg() and view._version > version
    assert_close(view.resolve_neg(), ref(x), _TORCH, f"{name} on a negation view")


def test_init_fill_of_a_lazy_negation():
    view = torch._neg_view(torch.zeros(9))
    dlkernels.init.normal_(view, generator=torch.Generator().manual_seed(1))
    plain = dlkernels.init.normal_(torch.zeros(9), generator=torch.Generator().manual_seed(1))
    assert_close(view.resolve_neg(), plain, EXACT, "normal_ into a negation view")


def test_inplace_autograd_through_a_lazy_negation():
    a = torch.randn(6, generator=torch.Generator().manual_seed(2), requires_grad=True)
    ours = DF.relu_(torch._neg_view(a * 1))
    (g,) = torch.autograd.grad(ours.sum(), a)
    ref = torch.relu_(torch._neg_view(a * 1))
    (g_ref,) = torch.autograd.grad(ref.sum(), a)
    assert_close(ours.resolve_neg(), ref.resolve_neg(), EXACT, "relu_ through a negation view")
    assert_close(g, g_ref, EXACT, "its gradient")
