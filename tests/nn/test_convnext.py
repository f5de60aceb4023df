"""speechkit.nn.convnext: shape, the reach of one block along time, and the layer scale."""

from __future__ import annotations

import torch

from speechkit.nn.convnext import ConvNeXtBlock


def test_block_keeps_the_shape_and_reaches_kernel_half_frames_each_side():
    torch.manual_seed(0)
    block = ConvNeXtBlock(dim=8, ffn_mult=2, kernel=5, layer_scale=1.0)
    x = torch.randn(2, 8, 20)
    y = block(x)
    assert y.shape == x.shape
    far = x.clone()
    far[..., :8] = torch.randn(2, 8, 8)  # frames 0-7 changed: frame 10 sees 8-12 only
    assert torch.equal(block(far)[..., 10:], y[..., 10:])
    assert not torch.allclose(block(far)[..., 9], y[..., 9])


def test_zero_layer_scale_makes_the_block_the_identity():
    block = ConvNeXtBlock(dim=4, ffn_mult=3, kernel=7, layer_scale=0.0)
    x = torch.randn(1, 4, 9)
    assert torch.equal(block(x), x)
