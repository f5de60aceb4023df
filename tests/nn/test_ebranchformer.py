"""E-Branchformer and Transformer encoder layers: shapes and padding invariance."""

import pytest
import torch

from speechkit.nn.ebranchformer import ConvolutionalGatingMLP, EBranchformerLayer
from speechkit.nn.masks import lengths_to_mask
from speechkit.nn.transformer import TransformerEncoderLayer


def _layers():
    return {
        "ebranchformer": EBranchformerLayer(16, 2, 32, 24, 5, 3, 0.0, 0.0),
        "transformer": TransformerEncoderLayer(16, 2, 32, 0.0, 0.0),
    }


@pytest.mark.parametrize("kind", ["ebranchformer", "transformer"])
def test_padding_invariance(kind):
    torch.manual_seed(0)
    layer = _layers()[kind].eval()
    x = torch.randn(2, 9, 16)
    lens = torch.tensor([9, 5])
    batch = layer(x, lengths_to_mask(lens, 9))
    assert batch.shape == (2, 9, 16)
    alone = layer(x[1:, :5], lengths_to_mask(lens[1:], 5))
    torch.testing.assert_close(batch[1:, :5], alone, atol=1e-5, rtol=1e-5)
    assert torch.isfinite(batch).all()


def test_cgmlp_rejects_odd_units_and_uses_context():
    with pytest.raises(ValueError, match="even"):
        ConvolutionalGatingMLP(8, 7, 3, 0.0)
    torch.manual_seed(0)
    mlp = ConvolutionalGatingMLP(8, 12, 3, 0.0)
    x = torch.randn(1, 6, 8)
    keep = torch.ones(1, 6, dtype=torch.bool)
    y = mlp(x, keep)
    x2 = x.clone()
    x2[0, 3] += 1.0
    y2 = mlp(x2, keep)
    # kernel 3: frame 3 influences frames 2..4 only
    changed = (y2 - y).abs().sum(-1)[0] > 1e-6
    assert changed.tolist() == [False, False, True, True, True, False]
