"""The CPU GEMM core on its own (internal op ``_gemm``), on every ISA: shapes that hit every edge
of the blocking (partial micro-tiles in both directions, the narrow last-panel kernels, K not a
multiple of KC, empty K), against a float64 product. Up to 64 rows the op reads B in place (rows
N apart, odd N included) panel by panel; above, it packs B.

Tolerance from error analysis: any summation order of K products gives
|c_hat - c| <= gamma_K * (|A| |B|) elementwise, gamma_K = K u / (1 - K u), u = eps / 2 (FMA only
tightens this); the float64 reference is within its own gamma_K (helpers.product_bound). The bound
is checked elementwise, so a wrong element cannot hide behind a norm.
"""

import pytest
import torch
from helpers import product_bound

SHAPES = [  # (M, N, K)
    (1, 1, 1),
    (7, 13, 5),
    (8, 48, 128),  # exactly one AVX-512 micro-tile
    (9, 49, 257),  # one past it in every dimension
    (6, 16, 3),  # exactly one AVX2 micro-tile
    (64, 17, 300),  # last panel 17 columns: a narrow kernel
    (100, 1000, 300),
    (513, 97, 1025),  # K over several KC blocks
    (64, 1000, 600),  # B in place: several K blocks, a 40-column last panel
    (65, 1000, 600),  # the same packed
    (33, 95, 40),  # B in place, odd row stride, partial tiles both ways
    (3, 200, 0),  # empty reduction: zeros
    (0, 5, 4),
]


def _bound(a, b):
    return product_bound(a.shape[1], a.dtype, a.double().abs() @ b.double().abs())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("m,n,k", SHAPES)
def test_gemm_matches_float64_product_within_error_bound(isa, dtype, m, n, k):
    a = torch.randn(m, k, dtype=dtype)
    b = torch.randn(k, n, dtype=dtype)
    c = torch.ops.dlkernels._gemm(a, b)
    assert c.shape == (m, n) and c.dtype == dtype
    exact = a.double() @ b.double()
    err = (c.double() - exact).abs()
    bound = _bound(a, b)
    assert torch.all(err <= bound), (
        f"max error {err.max():.3g}, bound there {bound.flatten()[err.argmax()]:.3g}"
    )


def test_gemm_non_contiguous_inputs(isa):
    a = torch.randn(40, 70).t()  # 70 x 40, column-major
    b = torch.randn(40, 90)[:, ::2]  # 40 x 45, strided columns
    c = torch.ops.dlkernels._gemm(a, b)
    exact = a.double() @ b.double()
    assert torch.all((c.double() - exact).abs() <= _bound(a, b))


def test_gemm_rejects_bad_input():
    with pytest.raises(RuntimeError, match="cannot be multiplied"):
        torch.ops.dlkernels._gemm(torch.randn(3, 4), torch.randn(5, 6))
    with pytest.raises(RuntimeError, match="Long"):
        torch.ops.dlkernels._gemm(torch.ones(3, 4, dtype=torch.long), torch.ones(4, 2, dtype=torch.long))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_micro_kernel_peak_is_measured(dtype):
    # The benchmark's reference ceiling: positive and finite (its value is machine-dependent).
    gflops = torch.ops.dlkernels._gemm_peak(dtype, 200)
    assert 0 < gflops < 1e5


def test_gemm_cpu_has_no_tiles_or_tf32():
    a = torch.randn(3, 3)
    with pytest.raises(RuntimeError, match="the CPU core has no tile table and no TF32"):
        torch.ops.dlkernels._gemm(a, a, 0)
    with pytest.raises(RuntimeError, match="allow_tf32=True"):
        torch.ops.dlkernels._gemm(a, a, -1, True)
