"""Hardening at the op layer (classes 2, 4 and 5 of the fuzzing report; 1, 3 and 6 are in the
other test_hardening_* files):
* the CPU ISA switched by another thread mid-call never mixes two ISAs' kernels in one result;
* every op refuses tensors on different devices (meta included), and the fake kernels check
  what the real ones check;
* in a double backward, which results require grad follows torch for every combination of
  inputs that require grad."""

import itertools
import threading

import pytest
import torch
import torch.nn.functional as F

import dlkernels
import dlkernels.functional as DF

ops = torch.ops.dlkernels
P = ([1, 1], [1, 1], [1, 1], 1)


@pytest.mark.skipif(len(dlkernels.cpu_isas()) < 2, reason="one ISA only")
def test_isa_switch_from_another_thread_never_mixes_kernels():
    """Guards against an op reading the ISA more than once (before: ~1 call in 60 gave a gradient
    with relative error ~1.5). Each result must equal, bit for bit, the result of one ISA alone."""
    torch.manual_seed(0)
    x = torch.randn(8, 32, 28, 28)
    dy = torch.randn(8, 64, 28, 28)
    w = torch.randn(64, 32, 3, 3)
    refs = []
    for isa in dlkernels.cpu_isas():
        with dlkernels.use_cpu_isa(isa):
            refs.append((ops.conv2d_grad_weight(dy, x, list(w.shape), *P), ops.conv2d(x, w, None, *P)))
    stop = threading.Event()
    names = dlkernels.cpu_isas()

    def flip():
        i = 0
        while not stop.is_set():
            dlkernels.set_cpu_isa(names[i % len(names)])
            i += 1

    start = dlkernels.cpu_isa()
    t = threading.Thread(target=flip)
    t.start()
    try:
        for _ in range(60):
            gw = ops.conv2d_grad_weight(dy, x, list(w.shape), *P)
            y = ops.conv2d(x, w, None, *P)
            assert any(torch.equal(gw, r[0]) for r in refs), "grad_weight mixes ISAs"
            assert any(torch.equal(y, r[1]) for r in refs), "forward mixes ISAs"
    finally:
        stop.set()
        t.join()
        dlkernels.set_cpu_isa(start)


def _calls(dev_a, dev_b):
    a = lambda *s: torch.randn(*s, device=dev_a)  # noqa: E731
    b = lambda *s: torch.randn(*s, device=dev_b)  # noqa: E731
    x, w = (2, 3, 6, 6), (4, 3, 3, 3)
    dy = (2, 4, 6, 6)
    return {
        "relu_backward": lambda: ops.relu_backward(a(5), b(5)),
        "leaky_relu_backward": lambda: ops.leaky_relu_backward(a(5), b(5), 0.1),
        "sigmoid_backward": lambda: ops.sigmoid_backward(a(5), b(5)),
        "conv2d input/weight": lambda: ops.conv2d(a(*x), b(*w), None, *P),
        "conv2d bias": lambda: ops.conv2d(a(*x), a(*w), b(4), *P),
        "conv2d_grad_input": lambda: ops.conv2d_grad_input(a(*dy), b(*w), list(x), *P),
        "conv2d_grad_weight": lambda: ops.conv2d_grad_weight(a(*dy), b(*x), list(w), *P),
        "conv2d_backward": lambda: ops.conv2d_backward(a(*dy), b(*x), a(*w), *P, [True, True, True]),
        "_gemm": lambda: ops._gemm(a(3, 4), b(4, 5)),
    }


@pytest.mark.parametrize("devices", [("cpu", "meta"), ("meta", "cpu")])
@pytest.mark.parametrize("name", list(_calls("cpu", "cpu")))
def test_mixed_devices_raise(name, devices):
    """Guards against relu_backward(cpu, meta) returning uninitialised CPU memory: torch's
    message, whichever device the dispatcher picked."""
    with pytest.raises(RuntimeError, match="Expected all tensors to be on the same device"):
        _calls(*devices)[name]()


@pytest.mark.parametrize(
    "x,w,pattern",
    [
        ((1, 2, 5, 5), (3, 3, 3, 3), "expected input\\[1, 2, 5, 5\\] to have 3 channels"),
        ((1, 2, 2, 2), (3, 2, 3, 3), "Kernel size can't be greater than actual input size"),
        ((1, 2, 5, 5), (3, 2, 0, 3), "expected a kernel of at least 1 x 1"),
    ],
)
def test_fake_kernels_check_what_the_kernels_check(x, w, pattern):
    """Guards against a channel mismatch or a kernel larger than the input passing on meta tensors."""
    for device in ("cpu", "meta"):
        with pytest.raises(RuntimeError, match=pattern):
            ops.conv2d(
                torch.randn(*x, device=device),
                torch.randn(*w, device=device),
                None,
                [1, 1],
                [0, 0],
                [1, 1],
                1,
            )


@pytest.mark.parametrize("rx,rw,rb", [m for m in itertools.product([0, 1], repeat=3) if any(m)])
@pytest.mark.parametrize("dy_requires_grad", [False, True])
def test_double_backward_requires_grad_follows_torch(rx, rw, rb, dy_requires_grad):
    """Guards against gx = grad(y, x, create_graph=True) leaving the graph when the weight is
    frozen (a gradient penalty on it then raised): torch's convolution_backward is one node of
    (grad_output, input, weight), and so is dlkernels' conv2d_backward."""
    torch.manual_seed(0)
    x0 = torch.randn(1, 2, 5, 5, dtype=torch.float64)
    w0 = torch.randn(3, 2, 3, 3, dtype=torch.float64)
    b0 = torch.randn(3, dtype=torch.float64)
    results = {}
    for name, conv in (("torch", F.conv2d), ("dlkernels", DF.conv2d)):
        x, w, b = (t.clone().requires_grad_(bool(r)) for t, r in ((x0, rx), (w0, rw), (b0, rb)))
        y = conv(x, w, b)
        dy = torch.ones_like(y).requires_grad_(dy_requires_grad)
        inputs = [t for t in (x, w, b) if t.requires_grad]
        grads = torch.autograd.grad(y, inputs, dy, create_graph=True)
        results[name] = [g.requires_grad for g in grads]
        if any(results[name]):  # a gradient penalty runs
            penalty = sum((g**2).sum() for g in grads if g.requires_grad)
            torch.autograd.grad(penalty, inputs + ([dy] if dy_requires_grad else []), allow_unused=True)
    assert results["dlkernels"] == results["torch"]
