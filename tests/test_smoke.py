"""The smoke suite: the one-wheel check runs it under the oldest and the newest supported torch
(.ci/run), on the installed wheel. It also runs in the main suite. Build info, the library loads
(CUDA kernels too under a CUDA build of torch), conv2d and the activations forward and backward
against torch, torch.compile, opcheck."""

import os

import pytest
import torch
import torch.nn.functional as TF

import dlkernels
import dlkernels.functional as F
from dlkernels import _build_info, _ext


def test_build_info_and_torch_range():
    major, minor = (int(p) for p in torch.__version__.split("+")[0].split(".")[:2])
    assert (major, minor) >= tuple(_build_info.TORCH_TARGET)
    assert dlkernels.__version__ == _build_info.VERSION
    if os.environ.get("DLKERNELS_EXPECT_INSTALLED") == "1":
        assert "site-packages" in dlkernels.__file__, dlkernels.__file__


def test_cuda_kernels_registered_when_torch_has_cuda():
    """A wheel built with the CUDA kernels loads them under a CUDA build of torch, GPU or not."""
    if os.environ.get("DLKERNELS_EXPECT_CUDA") != "1" and not (_build_info.WITH_CUDA and torch.version.cuda):
        pytest.skip("CPU-only build or CPU build of torch")
    assert _ext.CUDA_LOADED
    assert torch._C._dispatch_has_kernel_for_dispatch_key("dlkernels::relu", "CUDA")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_conv2d_and_activations_against_torch(dtype):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 9, 9, dtype=dtype, requires_grad=True)
    w = torch.randn(4, 3, 3, 3, dtype=dtype, requires_grad=True)
    b = torch.randn(4, dtype=dtype, requires_grad=True)
    y = F.sigmoid(F.leaky_relu(F.relu(F.conv2d(x, w, b, padding=1)), 0.1))
    r = torch.sigmoid(TF.leaky_relu(torch.relu(TF.conv2d(x, w, b, padding=1)), 0.1))
    torch.testing.assert_close(y, r)
    g = torch.randn_like(y)
    for ours, theirs in zip(torch.autograd.grad(y, (x, w, b), g), torch.autograd.grad(r, (x, w, b), g)):
        torch.testing.assert_close(ours, theirs)


def test_compile_fullgraph():
    def f(x, w):
        return F.relu(F.conv2d(x, w, padding=1)).sum()

    x, w = torch.randn(2, 3, 8, 8), torch.randn(4, 3, 3, 3)
    torch.testing.assert_close(torch.compile(f, fullgraph=True, backend="aot_eager")(x, w), f(x, w))


def test_opcheck():
    x = torch.randn(2, 3, 8, 8, requires_grad=True)
    w = torch.randn(4, 3, 3, 3, requires_grad=True)
    torch.library.opcheck(torch.ops.dlkernels.conv2d.default, (x, w, None, [1, 1], [1, 1], [1, 1], 1))
    torch.library.opcheck(torch.ops.dlkernels.relu.default, (x,))
