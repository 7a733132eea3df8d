"""Fake kernel of the internal _gemm op (csrc/cpu/gemm_ops.cpp)."""

import torch


@torch.library.register_fake("dlkernels::_gemm")
def _gemm(a, b):
    return a.new_empty((a.shape[0], b.shape[1]))
