"""speechkit bench tts-speed and bench vocoder: every system timed on the same sentences, a
table with medians and ratios (tiny random models: the plumbing, not the figures)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
import torch
from torch import nn

from speechkit.bench import tts_speed
from speechkit.bench import vocoder as vocoder_bench
from speechkit.models.vocoder import Vocoder, VocoderConfig
from speechkit.tts.mel import TTSMelConfig
from speechkit.tts.text import PhonemeVocab, phonemize

SENTENCES = ["Where is the museum?", "Good morning, how are you?"]


class Acoustic(nn.Module):
    """The acoustic-model interface of ``speechkit.tts.acoustic.AcousticModel``, random."""

    def __init__(self):
        super().__init__()
        self.speakers, self.languages, self.mel = ["spk"], ["eng"], TTSMelConfig()
        self.vocab = PhonemeVocab.build(phonemize(t, "eng") for t in SENTENCES)
        self.embed = nn.Embedding(len(self.vocab), 80)

    def __call__(self, text, speaker, language):
        ids = torch.tensor(self.vocab.encode(phonemize(text, language)))
        return SimpleNamespace(mel=self.embed(ids).t().repeat_interleave(4, dim=1) - 6.0)


@pytest.fixture(scope="module")
def vocoder_ckpt(tmp_path_factory):
    path = tmp_path_factory.mktemp("tts_speed") / "voc.pt"
    voc = Vocoder(VocoderConfig(dim=16, layers=1))
    cfg = {"task": "vocoder", "model": vars(voc.cfg), "mel": vars(TTSMelConfig())}
    state = {f"generator.{k}": v for k, v in voc.state_dict().items()}
    torch.save({"config": cfg, "model": state}, path)
    return path


def test_tts_speed_times_every_stage_and_every_system(vocoder_ckpt, tmp_path, monkeypatch, capsys):
    pytest.importorskip("piper")
    monkeypatch.setattr("speechkit.synthesize.load_acoustic", lambda path: Acoustic())
    text = tmp_path / "sentences.txt"
    text.write_text("\n".join(SENTENCES) + "\n")
    md = tmp_path / "RESULTS.md"
    argv = ["--model", "m", "--vocoder", str(vocoder_ckpt), "--speaker", "spk", "--text",
            str(text), "--threads", "1", "--results-md", str(md)]  # fmt: skip
    assert tts_speed.main(argv) == 0
    out = capsys.readouterr().out
    for name in ("speechkit acoustic model", "speechkit vocoder", "speechkit with phonemiser",
                 "Piper (en_US-joe-medium)", "espeak-ng"):  # fmt: skip
        assert f"| {name} |" in out
    assert "2 sentences (9 words, eng)" in out
    assert "## Synthesis speed (tts-speed)" in md.read_text()
    assert "python -m speechkit.bench.tts_speed --model m" in md.read_text()


def test_vocoder_bench_scores_both_systems(vocoder_ckpt, tmp_path, capsys):
    pytest.importorskip("pesq")
    t = np.arange(16000) / 16000
    for i in range(2):
        sf.write(tmp_path / f"u{i}.wav", (0.3 * np.sin(2 * np.pi * 200 * (i + 1) * t)), 16000)
    (tmp_path / "text").write_text("u0 a\nu1 b\n")
    argv = ["--vocoder", str(vocoder_ckpt), "--audio-dir", str(tmp_path), "--text",
            str(tmp_path / "text"), "--threads", "1", "--gl-iters", "4", "--png", str(tmp_path / "s.png"),
            "--results-md", str(tmp_path / "R.md")]  # fmt: skip
    assert vocoder_bench.main(argv) == 0
    rows = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("| ")][1:]
    assert [r.split(" | ")[0] for r in rows] == ["| speechkit vocoder", "| Griffin-Lim (4 it.)"]
    # a random vocoder is far from the reference mel; Griffin-Lim from the true mel is not
    dist = [float(r.split(" | ")[3]) for r in rows]
    assert dist[1] < dist[0]
    assert (tmp_path / "s.png").stat().st_size > 1000
    assert "![spectrograms](s.png)" in (tmp_path / "R.md").read_text()
