"""Pooling autograd: gradcheck / gradgradcheck in float64 (on every device: the double backward
runs the max pool's gather and the average pools' forward kernels), torch.library.opcheck of every
op, torch.compile(fullgraph=True) forward and backward."""

import pytest
import torch
import torch.nn.functional as F
from helpers import torch_device
from torch.library import opcheck

import dlkernels
import dlkernels.functional as D

ops = torch.ops.dlkernels


@pytest.fixture
def one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _distinct(shape, cl=False, device="cpu"):
    # Distinct values: the max is unique, so the numerical derivative is well defined.
    x = torch.randperm(int(torch.tensor(shape).prod()), dtype=torch.float64).reshape(shape) / 7
    x = x.to(torch_device(device))
    if cl:
        x = x.contiguous(memory_format=torch.channels_last)
    return x.requires_grad_()


CONFIGS = [
    ("max", dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    ("max", dict(kernel_size=(2, 3), stride=1, dilation=(2, 1))),
    ("avg", dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)),
    ("avg", dict(kernel_size=2, divisor_override=3)),
    ("adaptive", dict(output_size=(3, 5))),
]


@pytest.mark.parametrize("cl", [False, True], ids=["nchw", "channels_last"])
@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"{c[0]}-{c[1]}")
def test_gradcheck(one_thread, any_device, config, cl):
    kind, kw = config
    fn = {"max": D.max_pool2d, "avg": D.avg_pool2d, "adaptive": D.adaptive_avg_pool2d}[kind]
    # Emulated: one image of two planes, as every numerical derivative is a kernel launch.
    x = _distinct((1, 2, 7, 8) if any_device == "cuda_sim" else (2, 3, 7, 8), cl, any_device)
    assert torch.autograd.gradcheck(lambda t: fn(t, **kw), (x,))
    assert torch.autograd.gradgradcheck(lambda t: fn(t, **kw), (x,))


def test_double_backward_matches_torch():
    x = _distinct((2, 3, 9, 9))
    for ours, ref in ((D.max_pool2d, F.max_pool2d), (D.avg_pool2d, F.avg_pool2d)):
        outs = []
        for fn in (ours, ref):
            g = torch.randn(2, 3, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
            g.requires_grad_()
            (gx,) = torch.autograd.grad(fn(x, 3, 2), x, g, create_graph=True)
            (gg,) = torch.autograd.grad((gx * x.detach().cos()).sum(), g)
            outs.append(gg)
        torch.testing.assert_close(outs[0], outs[1])


@pytest.mark.parametrize("cl", [False, True], ids=["nchw", "channels_last"])
def test_max_pool_direct_node(cl):
    """The functional layer's lean node (the direct path, no return_indices): torch's gradient
    through it, for overlapping padded windows with ceil mode, and again with a non-contiguous
    incoming gradient."""
    x = _distinct((2, 3, 9, 11))
    if cl:
        x = x.detach().contiguous(memory_format=torch.channels_last).requires_grad_()
    args = ((3, 2), (2, 1), (1, 1), (1, 2), True)
    y = D.max_pool2d(x, *args)
    assert type(y.grad_fn).__name__ == "_MaxPool2dBackward"
    ref = F.max_pool2d(x, *args)
    for g in (torch.randn_like(ref), torch.randn(ref.shape[::-1], dtype=ref.dtype).permute(3, 2, 1, 0)):
        (ours,) = torch.autograd.grad(y, x, g, retain_graph=True)
        (expect,) = torch.autograd.grad(ref, x, g, retain_graph=True)
        torch.testing.assert_close(ours, expect)


def _opcheck_samples():
    samples = {}
    conf = ([3, 2], [2, 1], [1, 1], [1, 2], True)
    for cl in (False, True):
        for grad in (False, True):
            x = torch.randn(2, 3, 9, 11, requires_grad=grad)
            if cl:
                x = x.detach().contiguous(memory_format=torch.channels_last).requires_grad_(grad)
            y, idx = ops.max_pool2d_with_indices(x.detach(), *conf)
            dy = torch.randn_like(y).requires_grad_(grad)
            samples.setdefault("max_pool2d", []).append((x, *conf))
            samples.setdefault("max_pool2d_with_indices", []).append((x, *conf))
            samples.setdefault("max_pool2d_backward", []).append((dy, idx, list(x.shape), *conf))
            samples.setdefault("max_pool2d_gather", []).append((x, idx, *conf))
            aconf = ([3, 2], [2, 1], [1, 1], True, False, None)
            ya = ops.avg_pool2d(x.detach(), *aconf)
            samples.setdefault("avg_pool2d", []).append((x, *aconf))
            samples.setdefault("avg_pool2d_backward", []).append(
                (torch.randn_like(ya).requires_grad_(grad), list(x.shape), *aconf)
            )
            samples.setdefault("adaptive_avg_pool2d", []).append((x, [4, 5]))
            dya = torch.randn(2, 3, 4, 5, requires_grad=grad)
            samples.setdefault("adaptive_avg_pool2d_backward", []).append((dya, list(x.shape)))
    return samples


OPS = [
    "max_pool2d",
    "max_pool2d_with_indices",
    "max_pool2d_backward",
    "max_pool2d_gather",
    "avg_pool2d",
    "avg_pool2d_backward",
    "adaptive_avg_pool2d",
    "adaptive_avg_pool2d_backward",
]


@pytest.mark.parametrize("name", OPS)
def test_opcheck(one_thread, name):
    for args in _opcheck_samples()[name]:
        opcheck(getattr(ops, name).default, args)


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.max = dlkernels.nn.MaxPool2d(3, 2, 1)
        self.avg = dlkernels.nn.AvgPool2d(2, ceil_mode=True)
        self.head = dlkernels.nn.AdaptiveAvgPool2d(1)

    def forward(self, x):
        return self.head(self.avg(self.max(self.conv(x))))


@pytest.mark.parametrize("channels_last", [False, True], ids=["contiguous", "channels_last"])
def test_compile_matches_eager(channels_last):
    torch._dynamo.reset()
    model = Net()
    x = torch.randn(2, 3, 13, 12)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_()
    y = model(x)
    g = torch.randn_like(y)
    y.backward(g)
    eager = [p.grad.clone() for p in model.parameters()] + [x.grad.clone()]
    model.zero_grad()
    x.grad = None
    compiled = torch.compile(model, fullgraph=True)
    yc = compiled(x)
    yc.backward(g)
    torch.testing.assert_close(yc, y)
    for a, b in zip([p.grad for p in model.parameters()] + [x.grad], eager):
        torch.testing.assert_close(a, b)
