"""Max pooling on the CPU with a channels-last forward pass.

PyTorch's CPU ``max_pool2d`` on a contiguous (NCHW) tensor runs a slow kernel: the
ResNet stem's 3x3 pooling of a 64 x 128 x 208 map took 12.6 ms a batch of two, the
same pooling of a channels-last copy 2.8 ms, the copy included (bfloat16; README,
"Speed"). Its channels-last backward is slower than the NCHW one, so the forward pass
pools a channels-last copy and returns its indices, and the backward pass scatters the
gradient with PyTorch's NCHW kernel and those indices. The indices are positions within
each channel's ``H x W`` plane whatever the memory format, so both kernels agree on
them; the tests compare values and gradients with ``torch.nn.functional.max_pool2d``.
On CUDA, PyTorch's own pooling runs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["max_pool2d", "MaxPool2d"]


class _ChannelsLastMaxPool(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, kernel: int, stride: int, padding: int) -> Tensor:
        pooled, indices = torch.ops.aten.max_pool2d_with_indices(
            x.contiguous(memory_format=torch.channels_last), [kernel] * 2, [stride] * 2,
            [padding] * 2)
        ctx.save_for_backward(x, indices.contiguous())
        ctx.geometry = kernel, stride, padding
        return pooled.contiguous()

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None, None]:
        x, indices = ctx.saved_tensors
        kernel, stride, padding = ctx.geometry
        grad_x = torch.ops.aten.max_pool2d_with_indices_backward(
            grad.contiguous(), x, [kernel] * 2, [stride] * 2, [padding] * 2, [1, 1], False,
            indices)
        return grad_x, None, None, None


def max_pool2d(x: Tensor, kernel: int, stride: int, padding: int) -> Tensor:
    """``F.max_pool2d(x, kernel, stride, padding)`` for ``x [N, C, H, W]`` (square
    windows, no dilation, floor rounding); on the CPU with a channels-last forward."""
    if x.dim() != 4:
        raise ValueError(f"max_pool2d: x must be [N, C, H, W], got {tuple(x.shape)}")
    if x.is_cuda or not x.is_contiguous():
        return F.max_pool2d(x, kernel, stride, padding)
    return _ChannelsLastMaxPool.apply(x, kernel, stride, padding)


class MaxPool2d(nn.Module):
    """:func:`max_pool2d` as a module (the ResNet stem's ``maxpool``)."""

    def __init__(self, kernel: int, stride: int, padding: int) -> None:
        super().__init__()
        self.kernel, self.stride, self.padding = kernel, stride, padding

    def forward(self, x: Tensor) -> Tensor:
        return max_pool2d(x, self.kernel, self.stride, self.padding)
