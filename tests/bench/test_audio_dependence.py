"""speechkit.bench.audio_dependence on a small random S2T model and a few cuts with audio."""

from __future__ import annotations

import numpy as np
import soundfile as sf
import torch
from lhotse import CutSet, Recording, SupervisionSegment

from speechkit.bench import audio_dependence
from speechkit.data import FeatureConfig
from speechkit.models import build_model
from speechkit.models.s2t import S2TConfig
from speechkit.pretrained import save_pretrained
from speechkit.text.sentencepiece import SentencePieceTokenizer, TokenizerConfig

TEXTS = ["where is the station", "two coffees please", "a table for two", "the bill please"]


def _packed(tmp_path):
    tok = SentencePieceTokenizer.train(
        TEXTS * 5, None, TokenizerConfig(vocab_size=30), ["eng"], ["asr"]
    )
    cfg = S2TConfig(
        n_mels=16, vocab_size=tok.vocab_size, d_model=32, n_heads=2, encoder_type="transformer",
        encoder_layers=1, encoder_ffn=48, cgmlp_units=48, decoder_layers=1, decoder_ffn=48,
        max_target_positions=32,
    )  # fmt: skip
    torch.manual_seed(0)
    tasks = {"asr_languages": ["eng"], "st_directions": []}
    model = build_model(cfg).eval()
    return save_pretrained(model, tok, FeatureConfig(n_mels=16), tmp_path / "m", tasks=tasks)


def _cuts(tmp_path, n=4):
    rng = np.random.default_rng(0)
    cuts = []
    for i, text in enumerate(TEXTS[:n]):
        path = tmp_path / f"{i}.flac"
        sf.write(path, (0.1 * rng.standard_normal(8000 + 2000 * i)).astype("float32"), 16000)
        cut = Recording.from_file(path, recording_id=f"r{i}").to_cut()
        cut.supervisions = [
            SupervisionSegment(f"s{i}", f"r{i}", 0, cut.duration, text=text, language="eng")
        ]
        cuts.append(cut)
    CutSet.from_cuts(cuts).to_file(tmp_path / "cuts.jsonl.gz")
    return tmp_path / "cuts.jsonl.gz"


def test_measure_and_cli(tmp_path, capsys):
    packed, manifest = _packed(tmp_path), _cuts(tmp_path)
    from speechkit.pretrained import load_pretrained

    d = audio_dependence.measure(load_pretrained(packed), CutSet.from_file(manifest))
    assert 0 <= d.acc_real <= 1 and 0 <= d.acc_zeroed <= 1 and d.ctc_loss > 0
    assert d.spread > 0  # different audio, different encoder output
    assert [ref for _, ref in d.greedy] == TEXTS[:3]  # hypotheses paired with their cut's text
    argv = ["--model", str(packed), "--cuts", str(manifest), "--num-cuts", "2"]
    assert audio_dependence.main(argv) == 0
    out = capsys.readouterr().out
    assert "teacher-forced accuracy, zeroed features:" in out
    assert out.count("CTC greedy:") == 2
