"""max_pool2d, avg_pool2d and adaptive_avg_pool2d against torch, forward and forward+backward
(autograd), through ``torch.nn.functional.<op>`` and ``dlkernels.functional.<op>`` with the same
arguments. Shapes: the seed ConvNet's two 2x2 max pools at its training batch of 64, the ResNet-50
stem pool and head, VGG's 2x2 pools, a DenseNet transition and an Inception-style 3x3 average.
Memory-bound: the rate is the bytes a pass must move (input read, output written; backward: the
output gradient read, the input gradient written).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..core import GBPS, Case, Options, Suite, functional, has_op, register_suite
from ._common import close_to_scale, fwd_bwd, leaf, pick

# name, op, (N, C, H, W), keyword arguments (torch.nn.functional's)
FULL = [
    ("seed pool1 2x2 @26", "max_pool2d", (64, 16, 26, 26), {"kernel_size": 2}),
    ("seed pool2 2x2 @11", "max_pool2d", (64, 32, 11, 11), {"kernel_size": 2}),
    (
        "resnet50 stem 3x3/2 @112",
        "max_pool2d",
        (8, 64, 112, 112),
        {"kernel_size": 3, "stride": 2, "padding": 1},
    ),
    ("vgg16 pool1 2x2 @224", "max_pool2d", (8, 64, 224, 224), {"kernel_size": 2, "stride": 2}),
    ("vgg16 pool5 2x2 @14", "max_pool2d", (8, 512, 14, 14), {"kernel_size": 2, "stride": 2}),
    ("densenet transition 2x2 @56", "avg_pool2d", (8, 128, 56, 56), {"kernel_size": 2, "stride": 2}),
    ("inception 3x3/1 @35", "avg_pool2d", (8, 192, 35, 35), {"kernel_size": 3, "stride": 1, "padding": 1}),
    ("resnet50 head 7x7>1", "adaptive_avg_pool2d", (8, 2048, 7, 7), {"output_size": 1}),
    ("vgg16 head 14x14>7", "adaptive_avg_pool2d", (8, 512, 14, 14), {"output_size": 7}),
]
QUICK = [FULL[0], FULL[2], FULL[5], FULL[7]]
SMOKE = [
    ("tiny max 2x2", "max_pool2d", (2, 3, 8, 8), {"kernel_size": 2}),
    ("tiny avg 3x3/2", "avg_pool2d", (2, 3, 9, 9), {"kernel_size": 3, "stride": 2, "padding": 1}),
    ("tiny adaptive 5>2", "adaptive_avg_pool2d", (2, 3, 5, 5), {"output_size": 2}),
]


@register_suite
class PoolSuite(Suite):
    name = "pool"
    description = "max_pool2d / avg_pool2d / adaptive_avg_pool2d forward and forward+backward, vs torch"
    rate = GBPS
    ops = ("max_pool2d", "avg_pool2d", "adaptive_avg_pool2d")

    def cases(self, opts: Options):
        for dtype in opts.dtypes:
            for spec in pick(opts, FULL, QUICK, SMOKE):
                if has_op(spec[1]):
                    yield from _cases(spec, dtype, opts.device)


def _cases(spec, dtype: torch.dtype, device: str):
    name, op, shape, kw = spec
    ref, ours = getattr(F, op), functional(op)
    gen = torch.Generator(device="cpu").manual_seed(sum(shape))
    x = torch.randn(shape, generator=gen).to(device=device, dtype=dtype)
    out = ref(x, **kw)
    dy = torch.randn(out.shape, generator=gen).to(device=device, dtype=dtype)
    itemsize = x.element_size()
    fwd_bytes = (x.numel() + out.numel()) * itemsize
    common = {"op": op, "memory_format": "NCHW (contiguous)", "compare": close_to_scale}
    yield Case(
        name, shape, dtype, lambda: ref(x, **kw), lambda: ours(x, **kw), bytes=fwd_bytes, note="fwd", **common
    )
    xs = (leaf(x),)
    yield Case(
        name,
        shape,
        dtype,
        fwd_bwd(lambda t: ref(t, **kw), xs, (0,), dy),
        fwd_bwd(lambda t: ours(t, **kw), xs, (0,), dy),
        bytes=2 * fwd_bytes,
        note="fwd+bwd",
        **common,
    )
