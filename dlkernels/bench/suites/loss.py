"""mse_loss and cross_entropy against torch, forward and forward+backward (autograd, gradient of
the input), through ``torch.nn.functional.<op>`` and ``dlkernels.functional.<op>`` with the
default mean reduction. Shapes: cross entropy over the seed ConvNet's 10 classes at batch 64,
ImageNet's 1000 at 512, an LLM vocabulary of 32000 at 4096 tokens, many rows of 21 classes, and
21-class segmentation logits (N, C, H, W) (fewer in --quick); MSE
over 1M and 16M elements. Memory-bound: the inputs read (and the input gradient written).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..core import GBPS, Case, Options, Suite, functional, has_op, register_suite
from ._common import close_to_scale, fwd_bwd, leaf, pick

CE_FULL = [
    ("seed 10 classes", 64, 10),
    ("imagenet 1000 classes", 512, 1000),
    ("llm vocab 32000", 4096, 32000),
    ("many rows 21 classes", 131072, 21),
    ("segmentation 21 classes", 8, 21, (128, 128)),
]
CE_QUICK = [CE_FULL[0], CE_FULL[1], ("llm vocab 32000", 256, 32000), ("many rows 21 classes", 16384, 21)]
CE_QUICK.append(("segmentation 21 classes", 2, 21, (64, 64)))
CE_SMOKE = [("tiny 5 classes", 8, 5), ("tiny spatial", 2, 3, (4, 4))]
MSE_FULL = [1 << 20, 16 << 20]
MSE_QUICK = [1 << 20]
MSE_SMOKE = [1000]


@register_suite
class LossSuite(Suite):
    name = "loss"
    description = "mse_loss and cross_entropy (mean) forward and forward+backward, vs torch"
    rate = GBPS
    ops = ("mse_loss", "cross_entropy")

    def cases(self, opts: Options):
        for dtype in opts.dtypes:
            if has_op("mse_loss"):
                for n in pick(opts, MSE_FULL, MSE_QUICK, MSE_SMOKE):
                    yield from _mse(n, dtype, opts.device)
            if has_op("cross_entropy"):
                for spec in pick(opts, CE_FULL, CE_QUICK, CE_SMOKE):
                    yield from _cross_entropy(spec, dtype, opts.device)


def _pair(name, shape, dtype, ref, ours, inputs, nbytes, bwd_bytes, op):
    """Forward on plain tensors, forward+backward on leaves that require grad."""
    common = {"op": op, "compare": close_to_scale}
    yield Case(
        name, shape, dtype, lambda: ref(*inputs), lambda: ours(*inputs), bytes=nbytes, note="fwd", **common
    )
    leaves = (leaf(inputs[0]), *inputs[1:])
    yield Case(
        name,
        shape,
        dtype,
        fwd_bwd(ref, leaves, (0,)),
        fwd_bwd(ours, leaves, (0,)),
        bytes=nbytes + bwd_bytes,
        note="fwd+bwd",
        **common,
    )


def _mse(n: int, dtype: torch.dtype, device: str):
    gen = torch.Generator(device="cpu").manual_seed(n)
    x = torch.randn(n, generator=gen).to(device=device, dtype=dtype)
    t = torch.randn(n, generator=gen).to(device=device, dtype=dtype)
    item = x.element_size()
    # forward reads input and target; backward reads both again and writes the input gradient
    yield from _pair(
        "mse", (n,), dtype, F.mse_loss, functional("mse_loss"), (x, t), 2 * n * item, 3 * n * item, "mse_loss"
    )


def ce_logits_shape(spec) -> tuple:
    """The logits' shape of a cross entropy case: (batch, classes, *positions)."""
    _, batch, classes, *spatial = spec
    return (batch, classes, *(spatial[0] if spatial else ()))


def _cross_entropy(spec, dtype: torch.dtype, device: str):
    name, batch, classes = spec[:3]
    shape = ce_logits_shape(spec)
    gen = torch.Generator(device="cpu").manual_seed(batch * 31 + classes)
    logits = (3 * torch.randn(*shape, generator=gen)).to(device=device, dtype=dtype)
    target = torch.randint(classes, (batch, *shape[2:]), generator=gen).to(device=device)
    item = logits.element_size()
    n = logits.numel()
    # forward reads the logits (and the targets); backward reads them again, writes the gradient
    yield from _pair(
        name,
        tuple(logits.shape),
        dtype,
        F.cross_entropy,
        functional("cross_entropy"),
        (logits, target),
        n * item + target.numel() * 8,
        2 * n * item,
        "cross_entropy",
    )
