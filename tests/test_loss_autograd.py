"""Autograd of the loss ops: gradcheck (and gradgradcheck for MSE) in float64, opcheck of the
registered ops, torch.compile(fullgraph=True)."""

import pytest
import torch
import torch.nn.functional as F
from helpers import not_on_cuda_sim, torch_device
from torch.autograd import gradcheck, gradgradcheck
from torch.library import opcheck

import dlkernels

DF = dlkernels.functional
ops = torch.ops.dlkernels
REDUCTIONS = ("mean", "sum", "none")


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_mse_gradcheck(any_device, reduction):
    x = torch.randn(3, 5, dtype=torch.float64, device=torch_device(any_device), requires_grad=True)
    t = torch.randn(3, 5, dtype=torch.float64, device=torch_device(any_device), requires_grad=True)
    fn = lambda a, b: DF.mse_loss(a, b, reduction=reduction)  # noqa: E731
    assert gradcheck(fn, (x, t))
    assert gradgradcheck(fn, (x, t))
    tb = torch.randn(5, dtype=torch.float64, device=torch_device(any_device), requires_grad=True)
    with pytest.warns(UserWarning):
        assert gradcheck(fn, (x, tb))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("variant", ["plain", "weight", "smoothing", "weight+smoothing", "soft", "soft+all"])
def test_cross_entropy_gradcheck(any_device, reduction, variant):
    n, c = 4, 7
    x = torch.randn(n, c, dtype=torch.float64, device=torch_device(any_device), requires_grad=True)
    kw = {"reduction": reduction}
    if "weight" in variant or "all" in variant:
        kw["weight"] = torch.rand(c, dtype=torch.float64, device=torch_device(any_device)) + 0.1
    if "smoothing" in variant or "all" in variant:
        kw["label_smoothing"] = 0.2
    if variant.startswith("soft"):
        t = torch.softmax(
            torch.randn(n, c, dtype=torch.float64, device=torch_device(any_device)), 1
        ).requires_grad_()
    else:
        t = torch.tensor([0, -100, 6, 3], device=torch_device(any_device))
    args = (x, t) if t.requires_grad else (x,)

    def fn(*a):
        return DF.cross_entropy(a[0], a[1] if len(a) > 1 else t, **kw)

    assert gradcheck(fn, args)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("smoothing", [0.0, 0.3])
def test_cross_entropy_soft_targets_weight_grad_and_double_backward(any_device, reduction, smoothing):
    """Probability targets: the class weight gets its gradient (torch's composite gives one), and
    grad-of-grad through the targets' gradient sees the lse move with the logits."""
    dev = torch_device(any_device)
    x = torch.randn(4, 6, dtype=torch.float64, device=dev, requires_grad=True)
    q = torch.softmax(torch.randn(4, 6, dtype=torch.float64, device=dev), 1).requires_grad_()
    w = (torch.rand(6, dtype=torch.float64, device=dev) + 0.1).requires_grad_()

    def fn(a, b, c):
        return DF.cross_entropy(a, b, weight=c, reduction=reduction, label_smoothing=smoothing)

    assert gradcheck(fn, (x, q, w))
    assert gradgradcheck(fn, (x, q, w))
    ours = torch.autograd.grad(fn(x, q, w).sum(), (x, q, w))
    ref = torch.autograd.grad(
        F.cross_entropy(x, q, weight=w, reduction=reduction, label_smoothing=smoothing).sum(), (x, q, w)
    )
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_cross_entropy_class_target_weight_requires_grad_refused(any_device):
    dev = torch_device(any_device)
    x = torch.randn(3, 4, device=dev, requires_grad=True)
    w = torch.rand(4, device=dev, requires_grad=True)
    t = torch.tensor([0, 1, 3], device=dev)
    with pytest.raises(RuntimeError, match="not differentiable with respect to argument 'weight'"):
        F.cross_entropy(x, t, weight=w)
    with pytest.raises(RuntimeError, match="not differentiable with respect to argument 'weight'"):
        DF.cross_entropy(x, t, weight=w)
    with torch.no_grad():
        torch.testing.assert_close(DF.cross_entropy(x, t, weight=w), F.cross_entropy(x, t, weight=w))


def test_cross_entropy_spatial_gradcheck(any_device):
    x = torch.randn(2, 3, 2, 2, dtype=torch.float64, device=torch_device(any_device), requires_grad=True)
    t = torch.randint(3, (2, 2, 2), device=torch_device(any_device))
    assert gradcheck(lambda a: DF.cross_entropy(a, t, label_smoothing=0.1), (x,))


def _opcheck_cases(device):
    x = torch.randn(5, 6, device=torch_device(device), requires_grad=True)
    t = torch.randint(6, (5,), device=torch_device(device))
    t[1] = -100
    q = torch.softmax(torch.randn(5, 6, device=torch_device(device)), 1)
    w = torch.rand(6, device=torch_device(device))
    for red in (0, 1, 2):
        yield ops.mse_loss, (x, torch.randn(5, 6, device=torch_device(device)), red)
        yield ops.cross_entropy_forward, (x, t, None, red, -100, 0.0)
        yield ops.cross_entropy_forward, (x, t, w, red, -100, 0.3)
        yield ops.cross_entropy_forward, (x, q, w, red, -100, 0.1)
        loss, lse, total = ops.cross_entropy_forward(x.detach(), t, w, red, -100, 0.1)
        g = torch.randn_like(loss)
        yield ops.cross_entropy_backward, (g, x.detach(), t, w, lse, total, red, -100, 0.1)
        # (batch, classes, positions) logits
        x3, q3 = x.detach().view(5, 3, 2), q.view(5, 3, 2)
        t3 = torch.randint(3, (5, 2), device=torch_device(device))
        t3[2, 1] = -100
        yield ops.cross_entropy_forward, (x3.requires_grad_(), t3, w[:3], red, -100, 0.2)
        yield ops.cross_entropy_forward, (x3, q3, None, red, -100, 0.1)
        loss3, lse3, total3 = ops.cross_entropy_forward(x3.detach(), t3, w[:3], red, -100, 0.2)
        yield (
            ops.cross_entropy_backward,
            (torch.randn_like(loss3), x3.detach(), t3, w[:3], lse3, total3, red, -100, 0.2),
        )
        yield (
            ops.mse_loss_backward,
            (g if red == 0 else g, x.detach(), x.detach() * 2, red)
            if red
            else (
                torch.randn(5, 6, device=torch_device(device)),
                x.detach(),
                x.detach() * 2,
                red,
            ),
        )


def test_opcheck(any_device):
    for op, args in _opcheck_cases(any_device):
        opcheck(op, args)


def test_compile_fullgraph(any_device):
    not_on_cuda_sim(any_device, "torch.compile skips every frame while cuda_sim()'s dispatch mode is active")

    def step(x, t, q, y):
        return DF.cross_entropy(x, t, label_smoothing=0.1) + DF.cross_entropy(x, q) + DF.mse_loss(x, y)

    compiled = torch.compile(step, fullgraph=True, backend="aot_eager")
    x = torch.randn(4, 5, device=torch_device(any_device), requires_grad=True)
    t = torch.randint(5, (4,), device=torch_device(any_device))
    q = torch.softmax(torch.randn(4, 5, device=torch_device(any_device)), 1)
    y = torch.randn(4, 5, device=torch_device(any_device))
    out = compiled(x, t, q, y)
    out.backward()
    ref_x = x.detach().clone().requires_grad_()
    ref = F.cross_entropy(ref_x, t, label_smoothing=0.1) + F.cross_entropy(ref_x, q) + F.mse_loss(ref_x, y)
    ref.backward()
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(x.grad, ref_x.grad)
