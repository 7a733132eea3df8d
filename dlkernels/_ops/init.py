"""Fake kernels and dispatcher kernels of the init ops (csrc/schema/init.cpp): in-place fills that
return nothing. register_inplace bumps the version counter and refuses a tensor that requires grad
while grad mode is on; dlkernels.init calls the ops under no_grad, as torch.nn.init does."""

import torch

from ._common import LIB, check_dtype, register_inplace

_lib = torch.library.Library("dlkernels", "FRAGMENT")

NAMES = ("init_fill_", "init_uniform_", "init_normal_", "init_trunc_normal_")


def _fake(name):
    def fake(x, *args):
        check_dtype(name, x)

    return fake


for _name in NAMES:
    torch.library.register_fake(LIB + _name)(_fake(_name))
    register_inplace(_lib, _name)
