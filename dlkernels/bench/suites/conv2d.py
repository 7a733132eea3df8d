"""conv2d against torch (oneDNN on the CPU, cuDNN on CUDA), forward and a full training step of the
layer (forward, then autograd's grad_input + grad_weight + grad_bias), through
``torch.nn.functional.conv2d`` and ``dlkernels.functional.conv2d``, on the layers of real networks: ResNet-50
(7x7 stem, 3x3, 1x1, strided), the seed ConvNet that ``python -m dlkernels train`` runs, and
MobileNetV2's depthwise 3x3 layers. Compute-bound: the rate is GFLOP/s, 2 N K P Q (C/G) R S per
pass (the two gradients cost one forward each), printed under the micro-kernel peak that
``torch.ops.dlkernels._gemm_peak`` measures on this machine in the same run.
"""

from __future__ import annotations

import math

import torch

from ..core import GFLOPS, Case, Options, Suite, functional, has_op, register_suite
from ._common import close_to_scale, fwd_bwd, leaf, pick

# name, C, H(=W), K, R(=S), stride, padding, groups
RESNET50 = [
    ("resnet50 conv1 7x7/2 3>64 @224", 3, 224, 64, 7, 2, 3, 1),
    ("resnet50 l1 1x1 64>64 @56", 64, 56, 64, 1, 1, 0, 1),
    ("resnet50 l1 3x3 64>64 @56", 64, 56, 64, 3, 1, 1, 1),
    ("resnet50 l1 1x1 64>256 @56", 64, 56, 256, 1, 1, 0, 1),
    ("resnet50 l1 1x1 256>64 @56", 256, 56, 64, 1, 1, 0, 1),
    ("resnet50 l2 3x3/2 128>128 @56", 128, 56, 128, 3, 2, 1, 1),
    ("resnet50 l2 down 1x1/2 256>512 @56", 256, 56, 512, 1, 2, 0, 1),
    ("resnet50 l2 3x3 128>128 @28", 128, 28, 128, 3, 1, 1, 1),
    ("resnet50 l2 1x1 512>128 @28", 512, 28, 128, 1, 1, 0, 1),
    ("resnet50 l3 3x3 256>256 @14", 256, 14, 256, 3, 1, 1, 1),
    ("resnet50 l3 1x1 1024>256 @14", 1024, 14, 256, 1, 1, 0, 1),
    ("resnet50 l4 3x3 512>512 @7", 512, 7, 512, 3, 1, 1, 1),
    ("resnet50 l4 1x1 512>2048 @7", 512, 7, 2048, 1, 1, 0, 1),
]
SEED = [  # the train job's network on its 28x28 greyscale data
    ("seed conv1 3x3 1>16 @28", 1, 28, 16, 3, 1, 0, 1),
    ("seed conv2 3x3 16>32 @13", 16, 13, 32, 3, 1, 0, 1),
]
DEPTHWISE = [  # MobileNetV2
    ("mobilenetv2 dw 3x3 32 @112", 32, 112, 32, 3, 1, 1, 32),
    ("mobilenetv2 dw 3x3/2 144 @56", 144, 56, 144, 3, 2, 1, 144),
    ("mobilenetv2 dw 3x3 192 @28", 192, 28, 192, 3, 1, 1, 192),
    ("mobilenetv2 dw 3x3 576 @14", 576, 14, 576, 3, 1, 1, 576),
    ("mobilenetv2 dw 3x3 960 @7", 960, 7, 960, 3, 1, 1, 960),
]
QUICK = [RESNET50[2], RESNET50[11], SEED[1], DEPTHWISE[1]]
SMOKE = [("tiny 3x3 4>8 @8", 4, 8, 8, 3, 1, 1, 1), ("tiny dw 3x3 8 @8", 8, 8, 8, 3, 1, 1, 8)]


def _family(name: str) -> str:
    return "depthwise" if " dw " in name else name.split()[0]


@register_suite
class Conv2dSuite(Suite):
    name = "conv2d"
    description = (
        "conv2d forward and forward+backward on ResNet-50, seed ConvNet and MobileNetV2 layers, vs torch"
    )
    rate = GFLOPS
    ops = ("conv2d",)

    def cases(self, opts: Options):
        if not has_op("conv2d"):
            return
        cuda = opts.device.startswith("cuda")
        batch = int(opts.extra.get("batch", 2 if opts.smoke else 32 if cuda else 8))
        layers = pick(opts, RESNET50 + SEED + DEPTHWISE, QUICK, SMOKE)
        for dtype in opts.dtypes:
            for layer in layers:
                yield from _cases(layer, batch, dtype, opts.device)

    def summary(self, rows: list) -> list:
        lines = []
        for dtype in sorted({r["dtype"] for r in rows}):
            for pass_, target in (("fwd", 1.0), ("fwd+bwd", 0.8)):
                sel = [r for r in rows if r["dtype"] == dtype and r["note"] == pass_]
                if sel:
                    gm = math.exp(sum(math.log(r["ratio"]) for r in sel) / len(sel))
                    verdict = "met" if gm >= target else "NOT met"
                    lines.append(
                        f"{dtype} all layers {pass_}: geomean torch/dlk {gm:.2f} over {len(sel)} layers "
                        f"(target >= {target:.1f}: {verdict})"
                    )
            for family in ("resnet50", "seed", "depthwise"):
                for pass_ in ("fwd", "fwd+bwd"):
                    sel = [
                        r
                        for r in rows
                        if r["dtype"] == dtype and r["note"] == pass_ and _family(r["case"]) == family
                    ]
                    if sel:
                        gm = math.exp(sum(math.log(r["ratio"]) for r in sel) / len(sel))
                        lines.append(
                            f"{dtype} {family} {pass_}: geomean torch/dlk {gm:.2f} over {len(sel)} layers"
                        )
        peak = _peak(rows)
        if peak:
            lines.append(peak)
        return lines


def _peak(rows):
    # The run's measured ceiling (the same number the rows' percentages use), not a new one.
    sel = [r for r in rows if r["dtype"] == "float32" and r.get("ceiling") == "gemm_float32"]
    if not sel:
        return None
    f32 = sel[0]["ceiling_rate"]
    best = max(r["dlkernels_rate"] or 0 for r in sel)
    return (
        f"micro-kernel peak (float32, {torch.get_num_threads()} threads, L1-resident panels): "
        f"{f32:.0f} GFLOP/s; best conv2d layer reached {best:.0f} GFLOP/s ({100 * best / f32:.0f}%)"
    )


def _cases(layer, n: int, dtype: torch.dtype, device: str):
    name, c, h, k, r, s, p, g = layer
    conv2d = functional("conv2d")
    F = torch.nn.functional
    gen = torch.Generator(device="cpu").manual_seed(c * 1000 + h)
    # Weights scaled like a trained network's (He), so float32 outputs are O(1) on both sides.
    x = torch.randn(n, c, h, h, generator=gen).to(device=device, dtype=dtype)
    w = (torch.randn(k, c // g, r, r, generator=gen) * (2.0 / (c // g * r * r)) ** 0.5).to(
        device=device, dtype=dtype
    )
    b = torch.randn(k, generator=gen).to(device=device, dtype=dtype)
    out = F.conv2d(x, w, b, s, p, 1, g)
    dy = torch.randn(out.shape, generator=gen).to(device=device, dtype=dtype)
    flops = 2 * out.numel() * (c // g) * r * r
    shape = (n, c, h, h, k, r, r)
    common = {"compare": close_to_scale, "op": "conv2d", "memory_format": "NCHW (contiguous)"}

    yield Case(
        name,
        shape,
        dtype,
        lambda: F.conv2d(x, w, b, s, p, 1, g),
        lambda: conv2d(x, w, b, s, p, 1, g),
        flops=flops,
        note="fwd",
        **common,
    )
    inputs = (leaf(x), leaf(w), leaf(b))
    yield Case(
        name,
        shape,
        dtype,
        fwd_bwd(lambda x, w, b: F.conv2d(x, w, b, s, p, 1, g), inputs, (0, 1, 2), dy),
        fwd_bwd(lambda x, w, b: conv2d(x, w, b, s, p, 1, g), inputs, (0, 1, 2), dy),
        flops=3 * flops,
        note="fwd+bwd",
        **common,
    )
