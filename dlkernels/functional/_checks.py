"""Argument checks shared by the functional ops, worded like torch's."""

import torch


def check_tensor(fn: str, value, name: str = "input", position: int = 1) -> None:
    if not isinstance(value, torch.Tensor):
        raise TypeError(
            f"{fn}(): argument '{name}' (position {position}) must be Tensor, not {type(value).__name__}"
        )


def needs_grad(*tensors) -> bool:
    """Whether autograd must record this call (else the op runs without the Function wrapper)."""
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)
