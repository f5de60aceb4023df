"""FastSpeech 2 (speechkit.models.tts): alignment search, length regulation, per-phoneme averages,
shapes, and that durations decide the output length."""

from __future__ import annotations

import pytest
import torch

from speechkit.models.tts import (
    FastSpeech2,
    FastSpeech2Config,
    average_per_phoneme,
    beta_binomial_prior,
    length_regulate,
    monotonic_alignment,
)


def tiny_config(**kw) -> FastSpeech2Config:
    return FastSpeech2Config(
        phonemes=["<pad>", *"abcdefgh"], speakers=["s1", "s2"], languages=["eng", "deu"],
        n_mels=16, d_model=32, encoder_layers=1, decoder_layers=1, ffn_channels=48,
        predictor_channels=32, aligner_channels=16, dropout=0.0, **kw,
    )  # fmt: skip


def test_alignment_durations_sum_to_frames_and_follow_the_best_path():
    torch.manual_seed(0)
    logp = torch.randn(3, 30, 7).log_softmax(-1)
    phoneme_lens, mel_lens = torch.tensor([7, 5, 3]), torch.tensor([30, 12, 3])
    d = monotonic_alignment(logp, phoneme_lens, mel_lens)
    assert d.sum(1).tolist() == mel_lens.tolist()
    assert (d[0] >= 1).all() and (d[1, :5] >= 1).all() and (d[1, 5:] == 0).all()
    assert d[2, :3].tolist() == [1, 1, 1]  # as many frames as phonemes: one each
    # A path written into the scores is found: phoneme n owns frames [4n, 4n + 4).
    target = torch.full((1, 12, 3), -10.0)
    for n in range(3):
        target[0, 4 * n : 4 * n + 4, n] = 0.0
    assert monotonic_alignment(target, torch.tensor([3]), torch.tensor([12])).tolist() == [
        [4, 4, 4]
    ]


def test_alignment_needs_a_frame_per_phoneme():
    with pytest.raises(ValueError, match="at least one frame per phoneme"):
        monotonic_alignment(torch.zeros(1, 2, 3), torch.tensor([3]), torch.tensor([2]))


def test_prior_peaks_on_the_diagonal():
    prior = beta_binomial_prior(5, 50)
    assert prior.shape == (50, 5)
    assert torch.allclose(prior.exp().sum(1), torch.ones(50), atol=1e-4)
    assert prior[0].argmax() == 0 and prior[-1].argmax() == 4 and prior[25].argmax() == 2


def test_length_regulation_and_phoneme_averages():
    h = torch.arange(6.0).view(2, 3, 1)
    d = torch.tensor([[2, 0, 1], [1, 3, 0]])
    out, totals = length_regulate(h, d)
    assert totals.tolist() == [3, 4]
    assert out[0, :, 0].tolist() == [0, 0, 2, 0] and out[1, :, 0].tolist() == [3, 4, 4, 4]
    values = torch.tensor([[1.0, 3.0, 5.0, 9.0], [2.0, 4.0, 6.0, 8.0]])
    valid = torch.tensor([[True, True, True, True], [True, True, False, True]])
    avg = average_per_phoneme(values, d, valid)
    assert avg.tolist() == [[2.0, 0.0, 5.0], [2.0, 6.0, 0.0]]


def batch(b=2, n=6, t=20):
    torch.manual_seed(0)
    return dict(
        phonemes=torch.randint(1, 9, (b, n)),
        phoneme_lens=torch.tensor([n, n - 2])[:b],
        speakers=torch.tensor([0, 1])[:b],
        languages=torch.tensor([1, 0])[:b],
        mel=torch.randn(b, 16, t),
        mel_lens=torch.tensor([t, t - 5])[:b],
        frame_pitch=torch.randn(b, t),
        voiced=torch.rand(b, t) > 0.3,
    )


def test_training_pass_shapes():
    model = FastSpeech2(tiny_config())
    x = batch()
    out = model(**x)
    assert out.mel.shape == x["mel"].shape
    assert out.durations.sum(1).tolist() == x["mel_lens"].tolist()
    assert out.log_duration_pred.shape == out.pitch_target.shape == (2, 6)
    assert out.align_logprob.shape == (2, 20, 6)
    assert out.mel[1, :, 15:].abs().sum() == 0  # past mel_lens: zero
    assert torch.isfinite(out.forward_sum_loss) and torch.isfinite(out.bin_loss)


def test_durations_drive_the_output_length():
    model = FastSpeech2(tiny_config()).eval()
    x = batch()
    _, h, _ = model.encode(x["phonemes"], x["phoneme_lens"], x["speakers"], x["languages"])
    short = torch.ones(2, 6, dtype=torch.long)
    long = torch.full((2, 6), 3)
    mel_s, lens_s = model.decode(h, short * (torch.arange(6) < x["phoneme_lens"][:, None]))
    mel_l, lens_l = model.decode(h, long)
    assert lens_s.tolist() == [6, 4] and lens_l.tolist() == [18, 18]
    assert mel_s.shape == (2, 16, 6) and mel_l.shape == (2, 16, 18)
    with torch.no_grad():
        slow = model.synthesize(
            x["phonemes"], x["phoneme_lens"], x["speakers"], x["languages"], pace=3.0
        )
        fast = model.synthesize(x["phonemes"], x["phoneme_lens"], x["speakers"], x["languages"])
    assert (slow.mel_lens >= fast.mel_lens).all() and slow.mel_lens.sum() > fast.mel_lens.sum()
    assert slow.mel.shape[-1] == int(slow.mel_lens.max())
    assert slow.frame_pitch.shape == (2, slow.mel.shape[-1])


def test_speaker_and_language_change_the_output():
    model = FastSpeech2(tiny_config()).eval()
    x = batch()
    a = model.synthesize(x["phonemes"], x["phoneme_lens"], torch.tensor([0, 0]), x["languages"])
    b = model.synthesize(x["phonemes"], x["phoneme_lens"], torch.tensor([1, 1]), x["languages"])
    assert not torch.allclose(a.pitch_pred, b.pitch_pred)


def test_config_without_vocabulary_is_an_error():
    with pytest.raises(ValueError, match="phonemes, speakers and languages"):
        FastSpeech2(FastSpeech2Config())
