"""The CUDA GEMM core alone, through the internal op ``_gemm`` (csrc/cuda/gemm_host.cpp), on a GPU
and emulated: every entry of each path's tile table and the rule, against a float64 product.
tests/cuda_sim/test_gemm_cuda.cu sweeps the core's layouts and odd sizes in C++; this checks the
op, its tile argument and that the tiles agree with each other.

Bound, elementwise: f32 accumulation (the dtype's for float64) of K products in any order is within
gamma_(K+1) |A| |B| of the exact sum; TF32 first rounds each operand to 11 bits (2 u_tf32 |A| |B|
more); the result is rounded to the output dtype once (u_out |C|).
"""

import pytest
import torch
from helpers import gamma, torch_device

SHAPE = (37, 300, 45)  # M, K, N: K spans more steps than the deepest stage ring holds

# (dtype, allow_tf32)
PATHS = [
    (torch.bfloat16, False),
    (torch.float16, False),
    (torch.float32, True),
    (torch.float32, False),
    (torch.float64, False),
]


def _bound(a, b, out, dtype, tf32):
    mag = a.double().abs() @ b.double().abs()
    acc = torch.float64 if dtype == torch.float64 else torch.float32
    u_in = 2.0**-11 if tf32 else 0.0
    u_out = torch.finfo(dtype).eps / 2 if dtype in (torch.float16, torch.bfloat16) else 0.0
    return (
        (gamma(a.shape[1] + 1, acc) + 2 * u_in) * mag
        + u_out * out.abs()
        + gamma(a.shape[1], torch.float64) * mag
    )


@pytest.mark.parametrize("dtype,tf32", PATHS, ids=lambda v: str(v).replace("torch.", ""))
def test_every_tile_within_bound_and_the_same_bits(cuda_device, dtype, tf32):
    dev = torch_device(cuda_device)
    m, k, n = SHAPE
    a = torch.randn(m, k, dtype=torch.float64).to(dtype)
    b = torch.randn(k, n, dtype=torch.float64).to(dtype)
    exact = a.double() @ b.double()
    bound = _bound(a, b, exact, dtype, tf32)
    tiles = torch.ops.dlkernels._gemm_tiles(a.to(dev), tf32)
    assert tiles == (4 if dtype != torch.float64 and (dtype != torch.float32 or tf32) else 1)
    results = []
    for tile in range(-1, tiles):
        c = torch.ops.dlkernels._gemm(a.to(dev), b.to(dev), tile, tf32).cpu()
        assert c.shape == (m, n) and c.dtype == dtype
        err = (c.double() - exact).abs()
        assert torch.all(err <= bound), f"tile {tile}: max error {err.max():.3g}"
        results.append(c)
    # Every tile sums each element in the same K order (one mma chain, or one FMA chain): the
    # tiles cut the output differently, never the sum.
    for tile, c in enumerate(results[1:]):
        assert torch.equal(c, results[0]), f"tile {tile} differs from the rule's result"


def test_operands_read_through_their_strides(cuda_device):
    dev = torch_device(cuda_device)
    a = torch.randn(40, 70, dtype=torch.float64).to(torch.bfloat16).t()  # 70 x 40, column-major
    b = torch.randn(40, 90, dtype=torch.float64).to(torch.bfloat16)[:, ::2]  # strided columns
    exact = a.double() @ b.double()
    for tile in range(-1, torch.ops.dlkernels._gemm_tiles(a.to(dev))):
        c = torch.ops.dlkernels._gemm(a.to(dev), b.to(dev), tile).cpu()
        assert torch.all((c.double() - exact).abs() <= _bound(a, b, exact, torch.bfloat16, False)), tile


def test_bad_tile_is_refused(cuda_device):
    dev = torch_device(cuda_device)
    a = torch.randn(4, 4, device=dev, dtype=torch.float16)
    with pytest.raises(RuntimeError, match=r"tile 4 out of range: the Half path has 4"):
        torch.ops.dlkernels._gemm(a, a, 4)
    with pytest.raises(RuntimeError, match=r"tile 1 out of range: the Float path has 1"):
        torch.ops.dlkernels._gemm(a.float(), a.float(), 1)
    with pytest.raises(RuntimeError, match=r"tile -2 out of range"):
        torch.ops.dlkernels._gemm(a, a, -2)
