"""relu, leaky_relu and sigmoid, forward (out of place and in place) and backward, against
torch's own kernels. Memory-bound: the rate is the bytes a kernel must move (n elements read per
input, n written) per second. Each size also times ``y.copy_(x)`` in the same rounds, the
bandwidth ceiling of a one-input, one-output pass on this machine.

Backward ops are compared with what torch's autograd calls: threshold_backward(grad, out, 0),
leaky_relu_backward(grad, x, slope, False), sigmoid_backward(grad, out).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..core import GBPS, Case, Options, Reference, Suite, register_suite

CPU_SIZES = "64K,256K,1M,4M,16M,32M"
CPU_QUICK = "64K,1M"
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

    def default_dtypes(self, device: str) -> list:
        return [torch.float32, torch.float64]

    def sizes(self, opts: Options) -> list:
        if opts.sizes:
            return parse_sizes(opts.sizes)
        cuda = opts.device.startswith("cuda")
        if opts.quick:
            return parse_sizes(CUDA_QUICK if cuda else CPU_QUICK)
        return parse_sizes(CUDA_SIZES if cuda else CPU_SIZES)

    def cases(self, opts: Options):
        for dtype in opts.dtypes:
            for n in self.sizes(opts):
                yield from _cases(n, dtype, opts.device)

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


def _cases(n: int, dtype: torch.dtype, device: str):
    ops = torch.ops.dlkernels
    aten = torch.ops.aten
    gen = torch.Generator(device=device).manual_seed(n)
    x = torch.randn(n, dtype=dtype, device=device, generator=gen)
    grad = torch.randn(n, dtype=dtype, device=device, generator=gen)
    relu_out = torch.relu(x)
    sig_out = torch.sigmoid(x)
    dst = torch.empty_like(x)
    itemsize = x.element_size()
    copy = Reference("copy", (n, dtype, device), lambda: dst.copy_(x), bytes=2 * n * itemsize)

    def case(name, torch_fn, dlk_fn, inputs, **kw):
        # `inputs` tensors of n elements read, one written (in place: x read and written).
        nbytes = (inputs + 1) * n * itemsize
        return Case(name, (n,), dtype, torch_fn, dlk_fn, bytes=nbytes, reference=copy, **kw)

    yield case("relu", lambda: torch.relu(x), lambda: ops.relu(x), 1)
    yield case(
        "relu_backward",
        lambda: aten.threshold_backward(grad, relu_out, 0),
        lambda: ops.relu_backward(grad, relu_out),
        2,
    )
    yield case("leaky_relu", lambda: F.leaky_relu(x, SLOPE), lambda: ops.leaky_relu(x, SLOPE), 1)
    yield case(
        "leaky_relu_backward",
        lambda: aten.leaky_relu_backward(grad, x, SLOPE, False),
        lambda: ops.leaky_relu_backward(grad, x, SLOPE),
        2,
    )
    yield case("sigmoid", lambda: torch.sigmoid(x), lambda: ops.sigmoid(x), 1)
    yield case(
        "sigmoid_backward",
        lambda: aten.sigmoid_backward(grad, sig_out),
        lambda: ops.sigmoid_backward(grad, sig_out),
        2,
    )

    # In place: no output allocation on either side, whatever the allocator does. Each side works
    # on its own copy of x, so both see the same values throughout: relu_ is idempotent and
    # repeated sigmoid_ stays in (0.5, 0.74). leaky_relu_ runs with slope 1 (the same instructions
    # run for any slope) because applying 0.01 over and over drives the negative half into
    # subnormals and then zero, which would time subnormal arithmetic instead of the kernel.
    def inplace(name, torch_op, dlk_op, note="in place"):
        xt, xd = x.clone(), x.clone()

        def dlk_fn():
            dlk_op(xd)  # the registered in-place ops return nothing
            return xd

        return case(name, lambda: torch_op(xt), dlk_fn, 1, note=note)

    yield inplace("relu_", torch.relu_, ops.relu_)
    yield inplace(
        "leaky_relu_", lambda t: F.leaky_relu_(t, 1.0), lambda t: ops.leaky_relu_(t, 1.0), "in place, slope 1"
    )
    yield inplace("sigmoid_", torch.sigmoid_, ops.sigmoid_)
