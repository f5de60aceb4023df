"""speechkit bench prune: a gated and a full model decoded interleaved from a directory of audio
with a reference list; RTFx, speed-ups and the gated model's GFLOPs are printed and written."""

from __future__ import annotations

import numpy as np
import soundfile as sf
import torch

from speechkit.bench import prune as bench
from speechkit.config import to_dict
from speechkit.data.features import FeatureConfig
from speechkit.models.gated_s2t import GatedS2TConfig, GatedS2TModel
from speechkit.models.s2t import S2TConfig, S2TModel
from speechkit.pretrained import save_pretrained
from speechkit.text.sentencepiece import SentencePieceTokenizer, TokenizerConfig


def test_bench_prune_reports_speed_at_batch_1_and_batched(tmp_path):
    texts = ["one two three", "four five six", "seven eight nine ten"]
    tok = SentencePieceTokenizer.train(
        texts, None, TokenizerConfig(vocab_size=30), ["eng"], ["asr"]
    )
    base = dict(n_mels=20, vocab_size=tok.vocab_size, d_model=16, n_heads=2, encoder_layers=2,
                encoder_ffn=24, cgmlp_units=20, cgmlp_kernel=5, merge_conv_kernel=3,
                decoder_layers=2, decoder_ffn=24, max_target_positions=32)  # fmt: skip
    features = FeatureConfig(n_mels=20)
    torch.manual_seed(0)
    full = S2TModel(S2TConfig(**base))
    gated = GatedS2TModel(GatedS2TConfig(**to_dict(full.cfg), gate_mode="static"))
    gated.load_state_dict(full.state_dict(), strict=False)
    with torch.no_grad():  # every decoder FFN and cross-attention off
        gated.predictor.dec_mlp[2].bias.view(-1, 2)[torch.tensor([1, 2, 4, 5]), 0] = 10.0
    save_pretrained(full, tok, features, tmp_path / "full")
    save_pretrained(gated, tok, features, tmp_path / "gated")
    audio = tmp_path / "audio"
    audio.mkdir()
    lines, files = [], []
    for i, text in enumerate(texts):
        t = np.arange(int(16000 * (0.5 + 0.2 * i))) / 16000
        path = audio / f"u{i}.wav"
        sf.write(path, (0.3 * np.sin(2 * np.pi * (200 + 90 * i) * t)).astype(np.float32), 16000)
        lines.append(f"{path} {text}")
        files.append(str(path))
    (audio / "text").write_text("\n".join(lines) + "\n")
    md = tmp_path / "RESULTS.md"
    argv = [*files, "--gated", str(tmp_path / "gated"), "--full", str(tmp_path / "full"),
            "--text", str(audio / "text"), "--language", "eng", "--budget", "0.5",
            "--max-utts", "3", "--batch-duration", "2", "--results-md", str(md)]  # fmt: skip
    res = bench.run(bench.parse_args(argv))
    assert res["utterances"] == 3 and res["batch1"]["items"] == 3 and res["batched"]["items"] >= 1
    for setting in ("batch1", "batched"):
        r = res[setting]
        assert r["rtfx_gated"] > 0 and r["rtfx_full"] > 0 and r["speedup_median"] > 0
    assert all(0 < res["batch1"][f"enc_share_{n}"] < 1 for n in ("gated", "full"))
    assert "enc_share_full" not in res["batched"]
    gates = res["gates"]
    assert gates["items"] == 3 and 0 < gates["sparsity"] < 1
    assert gates["gflops_dec"] < gates["gflops_full"]
    assert bench.main(argv) == 0
    text = md.read_text()
    assert bench.TITLE in text and "batch 1" in text and "speed-up" in text
