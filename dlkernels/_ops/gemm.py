"""Fake kernel of the internal _gemm op (csrc/cpu/gemm_ops.cpp)."""

import torch

from ._common import LIB, check_dtype, check_same_device


@torch.library.register_fake(LIB + "_gemm")
def _gemm(a, b):
    check_same_device("_gemm", a, "a", b, "b")
    check_dtype("_gemm", a, (torch.float32, torch.float64))
    if a.dim() != 2 or b.dim() != 2:
        raise RuntimeError(f"_gemm: expected 2-D tensors, got {list(a.shape)} and {list(b.shape)}")
    if a.shape[1] != b.shape[0]:
        raise RuntimeError(f"_gemm: shapes {list(a.shape)} and {list(b.shape)} cannot be multiplied")
    return a.new_empty((a.shape[0], b.shape[1]))
