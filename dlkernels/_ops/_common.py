"""Helpers shared by the families' registrations: the checks the C++ host layer makes
(csrc/host/tensor.h), worded the same, for the fake kernels; and the in-place ops' kernels."""

import torch
from torch._prims_common import suggest_memory_format

LIB = "dlkernels::"

# dtypes with a kernel on some device; a fake tensor may stand for any device, so the fake
# kernels accept the union and the device's own kernel refuses the rest.
KERNEL_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)

_C10_NAMES = {
    torch.float32: "Float",
    torch.float64: "Double",
    torch.float16: "Half",
    torch.bfloat16: "BFloat16",
}


def dtype_name(dtype: torch.dtype) -> str:
    """c10's name of a dtype ('Float', 'Long', ...), as torch's own messages use."""
    if dtype in _C10_NAMES:
        return _C10_NAMES[dtype]
    return str(torch.empty((), dtype=dtype, device="meta").type()).split(".")[-1].replace("Tensor", "")


def device_name(t: torch.Tensor) -> str:
    return str(t.device)


def check_dtype(op: str, t: torch.Tensor, allowed=KERNEL_DTYPES) -> None:
    if t.dtype not in allowed:
        names = ", ".join(dtype_name(d) for d in allowed)
        raise RuntimeError(
            f"\"{op}\" not implemented for '{dtype_name(t.dtype)}' on {device_name(t)} (supported: {names})"
        )


def check_same_device(op: str, a: torch.Tensor, a_name: str, b: torch.Tensor, b_name: str) -> None:
    if a.device != b.device:
        raise RuntimeError(
            f"{op}: Expected all tensors to be on the same device, but found at least two devices, "
            f"{device_name(a)} ({a_name}) and {device_name(b)} ({b_name})!"
        )


def check_like(op: str, a: torch.Tensor, a_name: str, b: torch.Tensor, b_name: str) -> None:
    check_same_device(op, a, a_name, b, b_name)
    if a.dtype != b.dtype:
        raise RuntimeError(
            f"{op}: expected {b_name} to have dtype {dtype_name(a.dtype)} like {a_name}, "
            f"but got {dtype_name(b.dtype)}"
        )
    if a.shape != b.shape:
        raise RuntimeError(
            f"{op}: expected {b_name} of shape {list(a.shape)} like {a_name}, but got {list(b.shape)}"
        )


def is_channels_last(t: torch.Tensor) -> bool:
    # The same reading of strides as csrc/host/tensor.h is_channels_last (at::suggest_memory_format).
    return t.dim() == 4 and suggest_memory_format(t) == torch.channels_last


def register_inplace(lib: torch.library.Library, name: str) -> None:
    """Dispatcher kernels of a raw in-place op (schema `Tensor(a!) self`, returning nothing).

    ADInplaceOrView: bumps the version counter of the written tensor, so overwriting a tensor
    autograd saved raises at backward, as with torch's own in-place ops. Autograd: the raw op
    records no history, so running it on a tensor that requires grad would make backward treat it
    as the identity; refuse that. dlkernels.functional and dlkernels.autograd are the
    differentiable in-place entry points (their Functions call the op under no_grad)."""
    op = getattr(torch.ops.dlkernels, name).default
    after_view = torch._C._after_ADInplaceOrView_keyset
    after_autograd = torch._C._after_autograd_keyset

    def bump(keyset, self, *args):
        if self.is_inference() and not torch.is_inference_mode_enabled():
            # torch's own check, made by its version counter, which increment_version skips.
            raise RuntimeError(
                "Inplace update to inference tensor outside InferenceMode is not allowed. You can make a "
                "clone to get a normal tensor before doing inplace update."
            )
        with torch._C._AutoDispatchBelowADInplaceOrView():
            op.redispatch(keyset & after_view, self, *args)
        torch.autograd.graph.increment_version(self)

    def refuse(keyset, self, *args):
        if torch.is_grad_enabled() and self.requires_grad:
            raise RuntimeError(
                f"{name}: the raw in-place op records no autograd history, but 'self' requires grad. Use "
                "the in-place form of dlkernels.functional or dlkernels.autograd, or run it under "
                "torch.no_grad()."
            )
        return op.redispatch(keyset & after_autograd, self, *args)

    lib.impl(name, bump, "ADInplaceOrView", with_keyset=True)
    lib.impl(name, refuse, "Autograd", with_keyset=True)
