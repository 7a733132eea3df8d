"""torch.func over the ops: grad, grad of grad, vmap of grad (per-sample gradients), jvp,
jacfwd, hessian (forward over reverse) and plain dual tensors, against the same transforms of
torch's ops. The registered autograd (dlkernels/_ops/_common.py register_autograd) is what makes
these work; torch's own register_autograd raises under torch.func."""

import pytest
import torch
import torch.autograd.forward_ad as fwAD
import torch.nn.functional as TF

import dlkernels.functional as F

D = torch.float64
PAIRS = {
    "relu": (F.relu, torch.relu),
    "leaky_relu": (lambda t: F.leaky_relu(t, 0.3), lambda t: TF.leaky_relu(t, 0.3)),
    "sigmoid": (F.sigmoid, torch.sigmoid),
    "conv2d": (
        lambda t: F.conv2d(t.view(1, 2, 3, 3), torch.arange(8.0, dtype=D).view(2, 2, 1, 2) / 8, padding=1),
        lambda t: TF.conv2d(t.view(1, 2, 3, 3), torch.arange(8.0, dtype=D).view(2, 2, 1, 2) / 8, padding=1),
    ),
}


def _input():
    torch.manual_seed(0)
    return torch.randn(18, dtype=D)


@pytest.mark.parametrize("name", PAIRS)
@pytest.mark.parametrize(
    "transform",
    [
        lambda f: torch.func.grad(lambda t: f(t).pow(3).sum()),
        lambda f: torch.func.grad(lambda t: torch.func.grad(lambda u: f(u).pow(3).sum())(t).pow(2).sum()),
        lambda f: torch.func.jacfwd(f),
        lambda f: torch.func.jacrev(f),
        lambda f: torch.func.hessian(lambda t: f(t).pow(3).sum()),
        lambda f: lambda t: torch.func.jvp(f, (t,), (torch.ones_like(t),))[1],
    ],
    ids=["grad", "grad_of_grad", "jacfwd", "jacrev", "hessian", "jvp"],
)
def test_transform_matches_torch(name, transform):
    ours, theirs = PAIRS[name]
    x = _input()
    torch.testing.assert_close(transform(ours)(x), transform(theirs)(x))


def test_per_sample_gradients_of_a_convnet():
    """vmap(grad) over the batch: each sample's weight gradient, as a loop of torch's would give."""
    torch.manual_seed(0)
    x = torch.randn(5, 3, 6, 6, dtype=D)
    w = torch.randn(4, 3, 3, 3, dtype=D)

    def loss(mod, w, xi):
        return mod.sigmoid(mod.leaky_relu(mod.conv2d(xi.unsqueeze(0), w, padding=1), 0.1)).sum()

    ours = torch.func.vmap(torch.func.grad(lambda w, xi: loss(F, w, xi)), in_dims=(None, 0))(w, x)
    for i in range(x.shape[0]):
        ref = torch.func.grad(lambda w, xi=x[i]: loss(TF, w, xi))(w)
        torch.testing.assert_close(ours[i], ref)


def test_dual_tensors():
    """Plain forward-mode AD: the tangent is propagated (guards against the fast no-autograd
    path dropping it, which returned a tangent of None)."""
    x, t = _input(), torch.ones(18, dtype=D)
    for name, (ours, theirs) in PAIRS.items():
        tangents = []
        for f in (ours, theirs):
            with fwAD.dual_level():
                tangents.append(fwAD.unpack_dual(f(fwAD.make_dual(x, t))).tangent)
        assert tangents[0] is not None, name
        torch.testing.assert_close(tangents[0], tangents[1])
