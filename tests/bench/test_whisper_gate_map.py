"""speechkit.bench.whisper_gate_map: a tiny gated Whisper whose budget prior turns every decoder
gate off at budget 0.1 and leaves every one on at 0.9; the map, table and section follow."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speechkit.bench import whisper_gate_map as bench
from speechkit.config import to_dict
from speechkit.models.gated_whisper import GatedWhisperConfig, GatedWhisperModel
from speechkit.pretrained import load_pretrained, save_pretrained

pytest.importorskip("tokenizers")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tasks"))
from whisper_fakes import write_tiny_whisper  # noqa: E402


def test_gate_map_follows_the_budget(tmp_path):
    pre = load_pretrained(write_tiny_whisper(tmp_path / "plain", n_text_layer=2))
    model = GatedWhisperModel(GatedWhisperConfig(**to_dict(pre.config), gate_budget_gain=2.0))
    model.load_state_dict(pre.model.state_dict(), strict=False)  # a fresh predictor
    gated = save_pretrained(model, pre.tokenizer, pre.features, tmp_path / "gated", source="t")
    audio = tmp_path / "audio"
    audio.mkdir()
    t = np.arange(16000) / 16000
    for i in range(2):
        sf.write(audio / f"u{i}.wav", (0.3 * np.sin(2 * np.pi * (200 + 100 * i) * t)), 16000)
    (audio / "text").write_text("u0 a tone\nu1 another tone\n")
    md, png = tmp_path / "RESULTS.md", tmp_path / "gates_map.png"
    argv = ["--model", str(gated), "--budgets", "0.1", "0.9", "--audio-dir", str(audio),
            "--text", str(audio / "text"), "--threads", "1", "--png", str(png),
            "--results-md", str(md)]  # fmt: skip
    assert bench.main(argv) == 0
    rows = [ln.split("|")[1:-1] for ln in md.read_text().splitlines() if ln.startswith("| 0.")]
    low, high = ([c.strip() for c in r] for r in rows)
    assert float(low[2]) == 100.0 and float(high[2]) == 0.0  # decoder sparsity %
    assert low[5] == "L0 self, L0 cross, L0 ffn, L1 self, L1 cross, L1 ffn" and high[5] == "none"
    assert png.stat().st_size > 1000 and "![gate map](gates_map.png)" in md.read_text()


def test_off_modules_names_layers_and_modules():
    assert bench.off_modules("111101") == "L1 cross"
    assert bench.off_modules("111") == "none"


def test_a_plain_whisper_model_is_refused(tmp_path):
    plain = write_tiny_whisper(tmp_path / "plain")
    (tmp_path / "text").write_text("u0 x\n")
    with pytest.raises(SystemExit, match="not a gated Whisper"):
        bench.main(["--model", str(plain), "--audio-dir", str(tmp_path), "--text",
                    str(tmp_path / "text")])  # fmt: skip
