"""speechkit bench prune-whisper: whisper-tiny.en with decoder gates against the same model
without, interleaved on a directory of speech with a reference list; WER, RTFx, speed-ups and
the gated model's decoder GFLOPs are printed and written."""

from __future__ import annotations

import torch

from speechkit.bench import prune_whisper as bench
from speechkit.config import to_dict
from speechkit.models.gated_whisper import GatedWhisperConfig, GatedWhisperModel
from speechkit.pretrained import load_pretrained, save_pretrained


def test_bench_prune_whisper_reports_wer_and_speed(tiny_en, speech_dir, tmp_path):
    packed, _ = tiny_en
    pre = load_pretrained(packed)
    gated = GatedWhisperModel(GatedWhisperConfig(**to_dict(pre.config), gate_mode="static"))
    gated.load_state_dict(pre.model.state_dict(), strict=False)
    with torch.no_grad():  # the FFN of the last two decoder layers off
        gated.predictor.dec_mlp[2].bias.view(-1, 2)[torch.tensor([8, 11]), 0] = 10.0
    save_pretrained(gated, pre.tokenizer, pre.features, tmp_path / "gated")
    md = tmp_path / "RESULTS.md"
    argv = ["--gated", str(tmp_path / "gated"), "--full", str(packed), "--budget", "0.5",
            "--audio-dir", str(speech_dir), "--text", str(speech_dir / "text"), "--beam", "2",
            "--batch-size", "2", "--threads", "1", "--results-md", str(md)]  # fmt: skip
    args = bench.parse_args(argv)
    res = bench.run(args)
    assert res["utterances"] == 2
    assert res["batch1"]["calls"] == 2 and res["batched"]["calls"] == 1
    assert res["batch1"]["rtfx_gated"] > 0 and res["batch1"]["rtfx_full"] > 0
    g = res["gates"]
    assert g["windows"] == 2 and g["gate_patterns"] == 1
    assert g["pattern_windows"] == {"111111110110": 2}  # modules 8 and 11 (layer order) off
    # Two of the 12 decoder modules are FFNs off: a third of a layer's FLOPs or so each.
    assert 0.05 < g["sparsity"] < 0.4 and g["gflops_dec"] < g["gflops_dec_full"]
    assert 0.0 <= res["wer_full"] < 50.0  # the real model on clear speech
    bench.publish(res, args, argv)
    text = md.read_text()
    assert bench.TITLE in text and "speed-up" in text and "decoder GFLOPs" in text
