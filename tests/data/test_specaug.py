"""Tests for speechkit/data/specaug.py."""

import pytest
import torch

from speechkit.config import ConfigError, from_dict
from speechkit.data.specaug import SpecAugConfig, SpecAugment


def _feats():
    torch.manual_seed(0)
    x = torch.randn(3, 400, 80) + 5.0  # offset so a masked value (the mean) is distinguishable
    lens = torch.tensor([400, 150, 40])
    for i, n in enumerate(lens.tolist()):
        x[i, n:] = 0
    return x, lens


def test_padding_untouched_and_masks_bounded():
    x, lens = _feats()
    cfg = SpecAugConfig(
        num_freq_masks=2,
        freq_mask_width=10,
        num_time_masks=10,
        time_mask_max_ratio=0.05,
    )
    y = SpecAugment(cfg)(x, lens, generator=torch.Generator().manual_seed(1))
    assert y.shape == x.shape
    assert torch.equal(x[1, 150:], y[1, 150:]) and torch.equal(x[2, 40:], y[2, 40:])
    for i, n in enumerate(lens.tolist()):
        changed = y[i, :n] != x[i, :n]
        full_rows = changed.all(dim=1).sum().item()  # frames masked by time masks
        full_cols = changed.all(dim=0).sum().item()  # bins masked by frequency masks
        assert full_cols <= 2 * 10
        n_time_masks = max(1, -(-10 * n // 1000))
        assert full_rows <= n_time_masks * int(0.05 * n)
        # Everything changed is in a masked row or column.
        assert (changed & ~changed.all(1, keepdim=True) & ~changed.all(0, keepdim=True)).sum() == 0
    assert (y != x).any()


def test_disabled_and_deterministic():
    x, lens = _feats()
    assert SpecAugment(SpecAugConfig(enabled=False))(x, lens) is x
    aug = SpecAugment(SpecAugConfig())
    a = aug(x, lens, generator=torch.Generator().manual_seed(3))
    b = aug(x, lens, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(a, b)
    assert not torch.equal(x, a)
    assert torch.equal(x, _feats()[0])  # the input is not modified in place


def test_freq_width_clipped_to_n_mels():
    x = torch.ones(1, 50, 8)
    y = SpecAugment(SpecAugConfig(freq_mask_width=27, num_time_masks=0))(x, torch.tensor([50]))
    assert y.shape == x.shape


def test_time_warp_keeps_shape_and_padding():
    x, lens = _feats()
    y = SpecAugment(SpecAugConfig(time_warp=True, num_freq_masks=0, num_time_masks=0))(x, lens)
    assert y.shape == x.shape and torch.equal(y[1, 150:], x[1, 150:])
    assert torch.isfinite(y).all()


def test_bad_config():
    with pytest.raises(ConfigError, match="time_mask_max_ratio"):
        from_dict(SpecAugConfig, {"time_mask_max_ratio": 1.5})
