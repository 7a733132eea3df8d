"""Per-call cost of the op layer: tiny and small activations, a small conv2d, linear and pooling,
the seed's cross entropy (64 x 10), forward and forward+backward, and the seed's fc2 as an nn
layer (its weights Parameters), dlkernels next to torch, interleaved in one process.
Usage: python benchmarks/per_call.py"""

import torch
import torch.utils.benchmark as tb

import dlkernels.functional as F
import dlkernels.nn as dnn


def case(label, dlk, ref, rounds=5):
    res = {"dlkernels": [], "torch": []}
    for _ in range(rounds):
        for name, fn in (("dlkernels", dlk), ("torch", ref)):
            t = tb.Timer("fn()", globals={"fn": fn}).blocked_autorange(min_run_time=0.2)
            res[name].append(t.median * 1e6)
    d, t = sorted(res["dlkernels"])[rounds // 2], sorted(res["torch"])[rounds // 2]
    print(f"{label:<34} dlkernels {d:8.2f} us   torch {t:8.2f} us   torch/dlk {t / d:5.2f}")


def main():
    torch.manual_seed(0)
    x = torch.randn(65536)
    xg = x.clone().requires_grad_()
    tn = torch.nn.functional
    tiny = torch.randn(16)
    case("relu fwd 16 (fixed cost)", lambda: F.relu(tiny), lambda: torch.relu(tiny))
    case("relu fwd 64K", lambda: F.relu(x), lambda: torch.relu(x))
    case("sigmoid fwd 64K", lambda: F.sigmoid(x), lambda: torch.sigmoid(x))
    case("relu fwd+bwd 64K", lambda: F.relu(xg).sum().backward(), lambda: torch.relu(xg).sum().backward())
    a = torch.randn(2, 4, 8, 8)
    w = torch.randn(4, 4, 3, 3)
    ag, wg = a.clone().requires_grad_(), w.clone().requires_grad_()
    case("conv2d fwd 2x4x8x8 k3", lambda: F.conv2d(a, w, padding=1), lambda: tn.conv2d(a, w, padding=1))
    case(
        "conv2d fwd+bwd 2x4x8x8 k3",
        lambda: F.conv2d(ag, wg, padding=1).sum().backward(),
        lambda: tn.conv2d(ag, wg, padding=1).sum().backward(),
    )
    li, lw, lb = (
        torch.randn(8, 16, requires_grad=True),
        torch.randn(4, 16, requires_grad=True),
        torch.randn(4, requires_grad=True),
    )
    case(
        "linear fwd+bwd 8x16->4",
        lambda: torch.autograd.grad(F.linear(li, lw, lb).sum(), (li, lw, lb)),
        lambda: torch.autograd.grad(tn.linear(li, lw, lb).sum(), (li, lw, lb)),
    )
    p = torch.randn(2, 4, 8, 8, requires_grad=True)
    case(
        "max_pool2d fwd+bwd 2x4x8x8 k2",
        lambda: torch.autograd.grad(F.max_pool2d(p, 2).sum(), p),
        lambda: torch.autograd.grad(tn.max_pool2d(p, 2).sum(), p),
    )
    logits, target = 3 * torch.randn(64, 10), torch.randint(10, (64,))
    lg = logits.clone().requires_grad_()
    case(
        "cross_entropy fwd 64x10",
        lambda: F.cross_entropy(logits, target),
        lambda: tn.cross_entropy(logits, target),
    )
    case(
        "cross_entropy fwd+bwd 64x10",
        lambda: torch.autograd.grad(F.cross_entropy(lg, target), lg),
        lambda: torch.autograd.grad(tn.cross_entropy(lg, target), lg),
    )
    ours, ref = dnn.Linear(128, 10), torch.nn.Linear(128, 10)
    ours.load_state_dict(ref.state_dict())
    h, dy = torch.randn(64, 128), torch.randn(64, 10)
    case("nn.Linear fwd+bwd 64x128->10", lambda: ours(h).backward(dy), lambda: ref(h).backward(dy))


if __name__ == "__main__":
    torch.set_num_threads(2)
    main()
