"""The 2-D convolution written out as loops over filter taps: a second reference for the conv2d
ops, next to torch's own convolution, that shares no code with either.

For tap (r, s) every output pixel (p, q) reads the zero-padded input at row p * sh + r * dh and
column q * sw + s * dw, so one slice of the padded input (start r * dh, step sh) holds that tap's
input for all outputs at once; the tap contributes weight[:, :, r, s] times it, summed over the
group's input channels. Only slicing, elementwise products and sums: no convolution, no im2col.
The backward passes are torch autograd over this forward.
"""

from __future__ import annotations

import torch


def out_size(size: int, k: int, stride: int, pad: int, dil: int) -> int:
    return (size + 2 * pad - dil * (k - 1) - 1) // stride + 1


def conv2d_naive(x, weight, bias=None, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1):
    """y[n, k, p, q] = bias[k] + sum_{c,r,s} weight[k, c, r, s] * xpad[n, g Cg + c, p sh + r dh, q sw + s dw]
    where g = k // (K / groups) and xpad is x zero-padded. Differentiable in x, weight and bias."""
    N, C, H, W = x.shape
    K, Cg, R, S = weight.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    Kg = K // groups
    P, Q = out_size(H, R, sh, ph, dh), out_size(W, S, sw, pw, dw)

    xpad = x.new_zeros(N, C, H + 2 * ph, W + 2 * pw)
    xpad[:, :, ph : ph + H, pw : pw + W] = x

    outputs = []
    for g in range(groups):
        xg = xpad[:, g * Cg : (g + 1) * Cg]  # N x Cg x Hp x Wp
        wg = weight[g * Kg : (g + 1) * Kg]  # Kg x Cg x R x S
        acc = x.new_zeros(N, Kg, P, Q)
        for r in range(R):
            for s in range(S):
                rows = slice(r * dh, r * dh + (P - 1) * sh + 1, sh)
                cols = slice(s * dw, s * dw + (Q - 1) * sw + 1, sw)
                tap_input = xg[:, :, rows, cols]  # N x Cg x P x Q: what tap (r, s) reads
                tap_weight = wg[:, :, r, s]  # Kg x Cg
                # sum over c of tap_weight[k, c] * tap_input[n, c, p, q]
                acc = acc + (tap_weight[None, :, :, None, None] * tap_input[:, None]).sum(dim=2)
        outputs.append(acc)
    y = torch.cat(outputs, dim=1) if outputs else x.new_zeros(N, K, P, Q)
    if bias is not None:
        y = y + bias[None, :, None, None]
    return y


def conv2d_naive_grads(x, weight, bias, grad_output, stride, padding, dilation, groups):
    """(output, grad_input, grad_weight, grad_bias) of conv2d_naive, by autograd, for ``grad_output``.
    grad_bias is None when bias is."""
    x = x.detach().requires_grad_()
    weight = weight.detach().requires_grad_()
    if bias is not None:
        bias = bias.detach().requires_grad_()
    with torch.enable_grad():
        y = conv2d_naive(x, weight, bias, stride, padding, dilation, groups)
        inputs = (x, weight) if bias is None else (x, weight, bias)
        grads = torch.autograd.grad(y, inputs, grad_output, allow_unused=True)
    grads = [torch.zeros_like(t) if g is None else g for g, t in zip(grads, inputs)]
    return y.detach(), grads[0], grads[1], grads[2] if bias is not None else None
