"""Fake (meta) kernels: output shapes, dtypes and strides without running anything, for
torch.compile, FakeTensor and opcheck. Each mirrors its C++ op's allocation rule exactly."""

from . import activation, conv2d, gemm  # noqa: F401
