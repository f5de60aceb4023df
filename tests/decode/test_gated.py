"""GatedDecoding's compute accounting: the decoder counted once, and as a beam search runs it."""

from __future__ import annotations

import pytest
import torch

from speechkit.config import to_dict
from speechkit.decode.gated import GatedDecoding
from speechkit.models.gated_s2t import GatedS2TConfig, GatedS2TModel
from speechkit.models.s2t import S2TConfig

BASE = dict(
    n_mels=20, vocab_size=30, d_model=16, n_heads=2, encoder_layers=2, encoder_ffn=24,
    cgmlp_units=20, cgmlp_kernel=5, merge_conv_kernel=3, decoder_layers=2, decoder_ffn=24,
    dropout=0.0, attention_dropout=0.0, max_target_positions=32,
)  # fmt: skip


def _record(beam: int, budget: float) -> dict:
    torch.manual_seed(0)
    cfg = GatedS2TConfig(**to_dict(S2TConfig(**BASE)), gate_budget_gain=4.0)
    gating = GatedDecoding(GatedS2TModel(cfg).eval(), None, budget, beam=beam)
    feats, lens = torch.randn(1, 60, 20), torch.tensor([60])
    gating.encode(feats, lens, ["c0"], ["eng"])
    gating.record("c0", "asr_eng", 0, tokens_in=7)
    return gating.summary()


@pytest.mark.parametrize("budget", [1.0, 0.3])
def test_beam_search_gflops_count_the_decoder_for_every_beam(budget):
    one, five = _record(1, budget), _record(5, budget)
    # beam 1: the search count is the one-pass count
    assert one["gflops_search"] == pytest.approx(one["gflops_enc"] + one["gflops_dec"])
    assert one["gflops_full_search"] == pytest.approx(one["gflops_full"])
    # the one-pass figures do not depend on the beam; the search's grow with it
    assert five["gflops_full"] == pytest.approx(one["gflops_full"])
    assert five["gflops_full_search"] > one["gflops_full"] + 3 * one["gflops_dec"] * 0.5
    assert five["gflops_search"] <= five["gflops_full_search"] * (1 + 1e-9)
    assert five["beam"] == 5
