"""Sinusoidal position table."""

import math

import pytest
import torch

from speechkit.nn.embedding import SinusoidalPositionalEncoding, sinusoidal_positions


def test_table_values():
    table = sinusoidal_positions(50, 16)
    assert table.shape == (50, 16)
    torch.testing.assert_close(table[0, 0::2], torch.zeros(8))
    torch.testing.assert_close(table[0, 1::2], torch.ones(8))
    # channel pair 0 has timescale 1: sin(pos)
    assert table[3, 0].item() == pytest.approx(math.sin(3.0), abs=1e-6)
    # positions are distinct
    assert torch.cdist(table, table).add(torch.eye(50)).min() > 0


def test_odd_dim_rejected():
    with pytest.raises(ValueError):
        sinusoidal_positions(4, 5)


def test_module_grows_past_initial_length():
    enc = SinusoidalPositionalEncoding(8, initial_length=4)
    x = torch.zeros(2, 10, 8)
    out = enc(x)
    torch.testing.assert_close(out[0], sinusoidal_positions(10, 8))
