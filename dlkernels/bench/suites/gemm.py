"""The CUDA GEMM core alone (internal op ``_gemm``) against torch's matmul (cuBLAS), C = A B with
both operands row-major: every entry of the core's tile table besides its rule (note ``tile N``
/ ``rule``), so that a GPU run shows which tile wins where and the rule can be set from
measurements. Shapes: squares and the products of a transformer block at 8192 tokens (model
width 4096, MLP width 14336). Compute-bound: 2 M N K per product. No cases on the CPU, whose core
is measured where it is used (the linear and conv2d suites); ``_gemm`` there is a test op that
packs both operands whole.
"""

from __future__ import annotations

import torch

from ..core import GFLOPS, Case, Options, Suite, register_suite
from ._common import close_as_products, pick

# name, M, K, N
CUDA_FULL = [
    ("square 2048", 2048, 2048, 2048),
    ("square 4096", 4096, 4096, 4096),
    ("square 8192", 8192, 8192, 8192),
    ("attention out 8192x4096>4096", 8192, 4096, 4096),
    ("mlp up 8192x4096>14336", 8192, 4096, 14336),
    ("mlp down 8192x14336>4096", 8192, 14336, 4096),
]
CUDA_QUICK = [CUDA_FULL[1], CUDA_FULL[4]]
SMOKE = [("tiny 16x24>8", 16, 24, 8)]


@register_suite
class GemmSuite(Suite):
    name = "gemm"
    description = "the CUDA GEMM core alone, every tile and the rule, against torch.matmul (CUDA only)"
    rate = GFLOPS
    ops = ()

    def default_dtypes(self, device: str) -> list:
        return [torch.bfloat16, torch.float16, torch.float32]

    def cases(self, opts: Options):
        if not opts.device.startswith("cuda") or not hasattr(torch.ops.dlkernels, "_gemm_tiles"):
            return
        for dtype in opts.dtypes:
            for spec in pick(opts, CUDA_FULL, CUDA_QUICK, SMOKE):
                yield from _cases(spec, dtype, opts.device)


def _cases(spec, dtype: torch.dtype, device: str):
    name, m, k, n = spec
    gen = torch.Generator(device="cpu").manual_seed(m + 3 * k + 7 * n)
    a = torch.randn(m, k, generator=gen).to(device=device, dtype=dtype)
    b = torch.randn(k, n, generator=gen).to(device=device, dtype=dtype)
    gemm = torch.ops.dlkernels._gemm

    def tf32():  # as torch's flag says at call time, on both sides (the CPU core has no TF32)
        return a.is_cuda and dtype == torch.float32 and torch.backends.cuda.matmul.allow_tf32

    tiles = range(-1, torch.ops.dlkernels._gemm_tiles(a, tf32())) if a.is_cuda else (-1,)
    for tile in tiles:
        yield Case(
            name,
            (m, k, n),
            dtype,
            lambda: torch.matmul(a, b),
            lambda tile=tile: gemm(a, b, tile, tf32()),
            flops=2 * m * n * k,
            note="rule" if tile < 0 else f"tile {tile}",
            op="gemm",
            compare=close_as_products,
        )
