"""Conv2d 4x subsampling: exact length formula, no leakage from padded frames."""

import pytest
import torch

from speechkit.nn.subsampling import Conv2dSubsampling4


@pytest.mark.parametrize("t", [7, 8, 9, 10, 11, 13, 31, 97, 100, 101])
def test_output_length_formula_matches_module(t):
    sub = Conv2dSubsampling4(n_mels=13, d_model=8)
    out = sub(torch.randn(1, t, 13))
    assert out.shape == (
        1,
        int(Conv2dSubsampling4.output_lengths(torch.tensor([t]))),
        8,
    )
    assert out.size(1) == ((t - 1) // 2 - 1) // 2


def test_short_lengths_clamp_to_zero_and_short_input_errors():
    assert Conv2dSubsampling4.output_lengths(torch.tensor([0, 3, 6, 7])).tolist() == [
        0,
        0,
        0,
        1,
    ]
    with pytest.raises(ValueError, match="at least 7"):
        Conv2dSubsampling4(13, 8)(torch.randn(1, 6, 13))


def test_padding_does_not_change_valid_frames():
    torch.manual_seed(0)
    sub = Conv2dSubsampling4(n_mels=16, d_model=8)
    x = torch.randn(1, 37, 16)
    alone = sub(x)
    padded = torch.cat([x, torch.randn(1, 20, 16) * 5], dim=1)  # garbage after the end
    n = int(Conv2dSubsampling4.output_lengths(torch.tensor([37])))
    torch.testing.assert_close(sub(padded)[:, :n], alone)


def test_too_few_mels_rejected():
    with pytest.raises(ValueError, match="n_mels"):
        Conv2dSubsampling4(n_mels=5, d_model=8)


def test_code_embedding_sums_codebooks_and_halves_the_frame_rate():
    from speechkit.nn.subsampling import CodeEmbedding2

    torch.manual_seed(0)
    emb = CodeEmbedding2(num_codebooks=2, codebook_size=8, d_model=6)
    codes = torch.randint(0, 8, (3, 9, 2)).float()  # ids travel as float in the feats slot
    out = emb(codes)
    assert out.shape == (3, 5, 6)
    assert emb.output_lengths(torch.tensor([9, 4, 1])).tolist() == [5, 2, 1]
    # the second codebook's ids change the output: both tables are used
    other = codes.clone()
    other[..., 1] = (other[..., 1] + 1) % 8
    assert not torch.allclose(emb(other), out)
    with pytest.raises(ValueError, match="expected 2 codebooks"):
        emb(codes[..., :1])
