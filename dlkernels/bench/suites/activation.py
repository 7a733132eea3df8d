"""relu, leaky_relu and sigmoid, forward (out of place and in place) and backward, against
torch's own kernels. Memory-bound: the rate is the bytes a kernel must move (n elements read per
input, n written) per second. Each size also times ``y.copy_(x)`` in the same rounds, the
bandwidth ceiling of a one-input, one-output pass on this machine.

Both sides go through their public functions (``torch.nn.functional.<op>`` and
``dlkernels.functional.<op>``). A backward case runs the forward once and times
``torch.autograd.grad`` on its graph: the op's backward kernel plus autograd's fixed cost, alike
on both sides.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..core import GBPS, Case, Options, Reference, Suite, functional, has_op, register_suite
from ._common import bwd_only

CPU_SIZES = "64K,256K,1M,4M,16M,32M"
CPU_QUICK = "64K,1M"
SMOKE = "4K"
CUDA_SIZES = "1M,16M,64M,256M"
CUDA_QUICK = "1M,16M"
SLOPE = 0.01
TARGET_NUMEL = 4 << 20  # the CPU target: at least as fast as torch from 4M elements up


def parse_sizes(spec: str) -> list:
    """'64K,1M,1000003' -> [65536, 1048576, 1000003] (K = 2^10, M = 2^20, G = 2^30)."""
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    sizes = []
    for part in spec.replace(" ", "").split(","):
        if not part:
            continue
        mult = scale.get(part[-1].upper(), 1)
        sizes.append(int(part[:-1] if mult > 1 else part) * mult)
    return sizes


@register_suite
class ActivationSuite(Suite):
    name = "activation"
    description = "relu / leaky_relu / sigmoid forward, in-place forward and backward, vs torch"
    rate = GBPS
    ops = ("relu", "leaky_relu", "sigmoid")

    def default_dtypes(self, device: str) -> list:
        return [torch.float32, torch.float64]

    def sizes(self, opts: Options) -> list:
        if opts.sizes:
            return parse_sizes(opts.sizes)
        cuda = opts.device.startswith("cuda")
        if opts.smoke:
            return parse_sizes(SMOKE)
        if opts.quick:
            return parse_sizes(CUDA_QUICK if cuda else CPU_QUICK)
        return parse_sizes(CUDA_SIZES if cuda else CPU_SIZES)

    def cases(self, opts: Options):
        for dtype in opts.dtypes:
            for n in self.sizes(opts):
                yield from _cases(n, dtype, opts.device, [op for op in self.ops if has_op(op)])

    def summary(self, rows: list) -> list:
        lines = []
        big = [r for r in rows if r["numel"] >= TARGET_NUMEL and r["dtype"] == "float32"]
        out_of_place = [r for r in big if not r["case"].endswith("_")]
        in_place = [r for r in big if r["case"].endswith("_")]
        size = f"float32 at >= {TARGET_NUMEL >> 20}M elements"
        if out_of_place:
            worst = min(out_of_place, key=lambda r: r["ratio"])
            met = "met" if worst["ratio"] >= 1.0 else "NOT met"
            lines.append(
                f"{size}, forward and backward: min torch/dlk {worst['ratio']:.2f} ({worst['case']}, "
                f"{worst['numel']}); target >= 1.00 {met}"
            )
        if in_place:
            ratios = [r["ratio"] for r in in_place]
            lines.append(f"{size}, in place: torch/dlk {min(ratios):.2f}-{max(ratios):.2f}")
        # The CUDA target: >= 85% of the measured copy bandwidth for tensors of 256 MB and more.
        big = [
            r
            for r in rows
            if r.get("reference_rate") and r["dlkernels_rate"] and r["numel"] * r["itemsize"] >= 256 << 20
        ]
        if big:
            worst = min(big, key=lambda r: r["dlkernels_rate"] / r["reference_rate"])
            share = worst["dlkernels_rate"] / worst["reference_rate"]
            lines.append(
                f"tensors >= 256 MB: min dlkernels share of copy bandwidth {100 * share:.0f}% "
                f"({worst['case']}, {worst['numel']}, {worst['dtype']})"
            )
        return lines


def _cases(n: int, dtype: torch.dtype, device: str, ops: list):
    relu, leaky_relu, sigmoid = functional("relu"), functional("leaky_relu"), functional("sigmoid")
    gen = torch.Generator(device=device).manual_seed(n)
    x = torch.randn(n, dtype=dtype, device=device, generator=gen)
    grad = torch.randn(n, dtype=dtype, device=device, generator=gen)
    xg = x.clone().requires_grad_()  # the leaf the backward cases differentiate with respect to
    dst = torch.empty_like(x)
    itemsize = x.element_size()
    copy = Reference("copy", (n, dtype, device), lambda: dst.copy_(x), bytes=2 * n * itemsize)

    def case(name, op, torch_fn, dlk_fn, inputs, **kw):
        # `inputs` tensors of n elements read, one written (in place: x read and written).
        nbytes = (inputs + 1) * n * itemsize
        return Case(name, (n,), dtype, torch_fn, dlk_fn, bytes=nbytes, reference=copy, op=op, **kw)

    # Backward: relu and sigmoid read (grad, output), leaky_relu (grad, input); one written.
    def backward(name, op, torch_op, dlk_op):
        return case(name, op, bwd_only(torch_op, (xg,), (0,), grad), bwd_only(dlk_op, (xg,), (0,), grad), 2)

    if "relu" in ops:
        yield case("relu", "relu", lambda: F.relu(x), lambda: relu(x), 1)
        yield backward("relu_backward", "relu", F.relu, relu)
    if "leaky_relu" in ops:
        yield case(
            "leaky_relu", "leaky_relu", lambda: F.leaky_relu(x, SLOPE), lambda: leaky_relu(x, SLOPE), 1
        )
        yield backward(
            "leaky_relu_backward",
            "leaky_relu",
            lambda t: F.leaky_relu(t, SLOPE),
            lambda t: leaky_relu(t, SLOPE),
        )
    if "sigmoid" in ops:
        yield case("sigmoid", "sigmoid", lambda: torch.sigmoid(x), lambda: sigmoid(x), 1)
        yield backward("sigmoid_backward", "sigmoid", torch.sigmoid, sigmoid)

    # In place: no output allocation on either side, whatever the allocator does. Each side works
    # on its own copy of x, so both see the same values throughout: relu_ is idempotent and
    # repeated sigmoid_ stays in (0.5, 0.74). leaky_relu_ runs with slope 1 (the same instructions
    # run for any slope) because applying 0.01 over and over drives the negative half into
    # subnormals and then zero, which would time subnormal arithmetic instead of the kernel.
    def inplace(name, op, torch_op, dlk_op, note="in place"):
        xt, xd = x.clone(), x.clone()
        return case(name, op, lambda: torch_op(xt), lambda: dlk_op(xd), 1, note=note)

    if "relu" in ops:
        yield inplace("relu_", "relu", torch.relu_, lambda t: relu(t, inplace=True))
    if "leaky_relu" in ops:
        yield inplace(
            "leaky_relu_",
            "leaky_relu",
            lambda t: F.leaky_relu_(t, 1.0),
            lambda t: leaky_relu(t, 1.0, inplace=True),
            "in place, slope 1",
        )
    if "sigmoid" in ops and has_op("sigmoid_"):
        yield inplace("sigmoid_", "sigmoid", torch.sigmoid_, functional("sigmoid_"))
