"""A tiny synthetic corpus (tone 'speech', English with German translations) and a tiny config."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from lhotse import CutSet, Recording, SupervisionSegment

from speechkit.text.sentencepiece import SentencePieceTokenizer, TokenizerConfig

WORDS = ["one", "two", "three", "four", "five", "six", "seven", "eight"]
WOERTER = ["eins", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht"]

TINY_YAML = """
model: {n_mels: 20, d_model: 32, n_heads: 2, encoder_type: transformer, encoder_layers: 1,
        encoder_ffn: 64, cgmlp_units: 64, decoder_layers: 1, decoder_ffn: 64, dropout: 0.0,
        attention_dropout: 0.0, max_target_positions: 64}
tokenizer: {vocab_size: 40}
data:
  features: {n_mels: 20}
  sampler: {max_duration: 4.0, num_buckets: 2, max_cut_duration: 4.0}
  asr_languages: [eng]
  st_directions: [eng-deu]
  max_target_tokens: 40
optim: {lr: 0.002, warmup_steps: 2}
trainer: {max_epochs: 2, log_every_steps: 1, device: cpu, keep_checkpoints: 3, average_best: 2}
"""


def tone_cuts(directory, n: int, offset: int = 0) -> CutSet:
    """``n`` short 16 kHz tones whose pitch encodes the number spoken in the transcript."""
    cuts = []
    for i in range(offset, offset + n):
        k = i % len(WORDS)
        sr, seconds = 16000, 0.4 + 0.1 * (i % 3)
        t = np.arange(int(sr * seconds)) / sr
        path = directory / f"tone{i}.flac"
        sf.write(path, (0.3 * np.sin(2 * np.pi * (200 + 80 * k) * t)).astype(np.float32), sr)
        cut = Recording.from_file(path, recording_id=f"rec{i}").to_cut()
        cut.supervisions = [
            SupervisionSegment(
                f"sup{i}",
                f"rec{i}",
                0.0,
                cut.duration,
                text=f"number {WORDS[k]}",
                language="eng",
                speaker=f"eng-spk{i % 2}",
                custom={"translations": {"deu": f"Zahl {WOERTER[k]}"}},
            )
        ]
        cut.custom = {"event": "clean", "snr_db": None, "sentence_id": f"num-{k}"}
        cuts.append(cut)
    return CutSet.from_cuts(cuts)


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory):
    """Paths: train/dev cut manifests, a tokenizer directory and a tiny experiment YAML."""
    root = tmp_path_factory.mktemp("corpus")
    train, dev = tone_cuts(root, 12), tone_cuts(root, 4, offset=100)
    train.to_file(root / "cuts_train.jsonl.gz")
    dev.to_file(root / "cuts_dev.jsonl.gz")
    texts = [s.text for c in train for s in c.supervisions]
    texts += [s.custom["translations"]["deu"] for c in train for s in c.supervisions]
    SentencePieceTokenizer.train(
        texts,
        root / "tokenizer",
        TokenizerConfig(vocab_size=40),
        ["eng", "deu"],
        ["asr", "st_eng", "st_deu"],
    )
    (root / "tiny.yaml").write_text(TINY_YAML)
    return {
        "train": root / "cuts_train.jsonl.gz",
        "dev": root / "cuts_dev.jsonl.gz",
        "tokenizer": root / "tokenizer",
        "config": root / "tiny.yaml",
    }
