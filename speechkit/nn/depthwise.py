"""Depthwise (per-channel) 1-D convolution over time on time-major tensors, fast on CPU.

``depthwise_conv1d(x (B, T, C), weight (C, 1, K), bias (C,) | None) -> (B, T, C)`` equals
``F.conv1d(x.transpose(1, 2), weight, bias, padding=K // 2, groups=C).transpose(1, 2)`` for odd
``K`` ('same' padding), with the parameters in ``nn.Conv1d``'s layout.

Why: on CPU, oneDNN runs these small grouped convolutions at well under 1 GFLOP/s (E-Branchformer
has two per layer). Written as K shifted multiply-adds over contiguous (B, T, C) slices, forward
and backward vectorise over the channels and need no transposes: 1.27x for forward+backward at
the tiny phrasebook model's shapes (``tools/bench_depthwise.py``). On CUDA the cuDNN
convolution is used.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["depthwise_conv1d"]


class _DepthwiseConv1dTimeMajor(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        k = weight.shape[-1]
        steps = x.shape[1]
        taps = weight.reshape(weight.shape[0], k).t().contiguous()  # (K, C)
        padded = F.pad(x, (0, 0, k // 2, k // 2))  # (B, T + K - 1, C)
        out = torch.zeros_like(x) if bias is None else bias.expand_as(x).clone()
        for i in range(k):
            out.addcmul_(padded[:, i : i + steps], taps[i])
        ctx.save_for_backward(padded, taps)
        ctx.has_bias = bias is not None
        ctx.weight_shape = weight.shape
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):
        padded, taps = ctx.saved_tensors
        k, steps = taps.shape[0], grad.shape[1]
        grad = grad.contiguous()
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            # out[t] = sum_i x[t + i - K//2] w[i]  =>  dx[s] = sum_i g[s - i + K//2] w[i]
            grad_padded = F.pad(grad, (0, 0, k // 2, k // 2))
            grad_x = torch.zeros_like(grad)
            for i in range(k):
                grad_x.addcmul_(grad_padded[:, k - 1 - i : k - 1 - i + steps], taps[i])
        if ctx.needs_input_grad[1]:
            grad_w = torch.stack([(padded[:, i : i + steps] * grad).sum((0, 1)) for i in range(k)])
            grad_w = grad_w.t().reshape(ctx.weight_shape)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad.sum((0, 1))
        return grad_x, grad_w, grad_b


def depthwise_conv1d(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """See the module docstring. x: (B, T, C); weight: (C, 1, K), K odd; bias: (C,)."""
    k = weight.shape[-1]
    if k % 2 == 0:
        raise ValueError(f"depthwise_conv1d needs an odd kernel for 'same' padding, got {k}")
    if x.is_cuda:
        out = F.conv1d(x.transpose(1, 2), weight, bias, padding=k // 2, groups=weight.shape[0])
        return out.transpose(1, 2)
    return _DepthwiseConv1dTimeMajor.apply(x, weight, bias)
