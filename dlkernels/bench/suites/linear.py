"""linear (y = x W^T + b) against torch (its BLAS), forward and forward+backward (autograd: the
input, weight and bias gradients), through ``torch.nn.functional.linear`` and
``dlkernels.functional.linear``. Shapes: the seed ConvNet's two layers at its batch of 64, an
ImageNet classifier (2048 > 1000, batch 64), a 1024 square, tall-skinny (many rows, few
features) and short-wide (a few rows, wide layers); on a GPU also a 4096 square and a
transformer's MLP projection, in bfloat16, float16 and float32 by default. Compute-bound:
2 M N K per product, three products for forward+backward.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..core import GFLOPS, Case, Options, Suite, functional, has_op, register_suite
from ._common import close_as_products, fwd_bwd, leaf, pick

# name, batch M, in features K, out features N
FULL = [
    ("seed fc1 800>128", 64, 800, 128),
    ("seed fc2 128>10", 64, 128, 10),
    ("classifier 2048>1000", 64, 2048, 1000),
    ("square 1024", 1024, 1024, 1024),
    ("tall-skinny 16384x256>64", 16384, 256, 64),
    ("short-wide 8x4096>4096", 8, 4096, 4096),
]
QUICK = [FULL[0], FULL[2], FULL[3]]
SMOKE = [("tiny 16>8", 4, 16, 8)]
# On a GPU also the sizes its tensor cores are for: a large square and a transformer block's
# MLP projection at 8192 tokens.
GPU_EXTRA = [("square 4096", 4096, 4096, 4096), ("mlp up 8192x4096>14336", 8192, 4096, 14336)]


@register_suite
class LinearSuite(Suite):
    name = "linear"
    description = "linear forward and forward+backward: seed ConvNet, classifier, square, tall/wide, vs torch"
    rate = GFLOPS
    ops = ("linear",)

    def default_dtypes(self, device: str) -> list:
        if device.startswith("cuda"):
            return [torch.bfloat16, torch.float16, torch.float32]
        return [torch.float32]

    def cases(self, opts: Options):
        if not has_op("linear"):
            return
        extra = GPU_EXTRA if opts.device.startswith("cuda") and not opts.smoke else []
        for dtype in opts.dtypes:
            for spec in pick(opts, FULL, QUICK, SMOKE) + extra:
                yield from _cases(spec, dtype, opts.device)


def _cases(spec, dtype: torch.dtype, device: str):
    name, m, k, n = spec
    linear = functional("linear")
    gen = torch.Generator(device="cpu").manual_seed(m * 7 + k * 3 + n)
    x = torch.randn(m, k, generator=gen).to(device=device, dtype=dtype)
    w = (torch.randn(n, k, generator=gen) / k**0.5).to(device=device, dtype=dtype)
    b = torch.randn(n, generator=gen).to(device=device, dtype=dtype)
    dy = torch.randn(m, n, generator=gen).to(device=device, dtype=dtype)
    flops = 2 * m * n * k
    common = {"op": "linear", "compare": close_as_products}
    yield Case(
        name,
        (m, k, n),
        dtype,
        lambda: F.linear(x, w, b),
        lambda: linear(x, w, b),
        flops=flops,
        note="fwd",
        **common,
    )
    inputs = (leaf(x), leaf(w), leaf(b))
    yield Case(
        name,
        (m, k, n),
        dtype,
        fwd_bwd(F.linear, inputs, (0, 1, 2), dy),
        fwd_bwd(linear, inputs, (0, 1, 2), dy),
        flops=3 * flops,
        note="fwd+bwd",
        **common,
    )
