"""A tiny Whisper tokenizer, a tiny random Whisper model packed as the zoo packs the real ones,
and tone cuts: for the whisper / prune_whisper task tests and the recipe tests that fine-tune
``--init whisper-*`` without the network (what is tested is the plumbing: its words are noise)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from lhotse import CutSet, Recording, SupervisionSegment

WORDS = ["one", "two", "three", "four"]
WOERTER = ["eins", "zwei", "drei", "vier"]


def tokenizer_json() -> str:
    """A byte-level BPE over single bytes with Whisper's multilingual special tokens."""
    import tokenizers
    from tokenizers import decoders, models, pre_tokenizers

    vocab = {ch: i for i, ch in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    hf = tokenizers.Tokenizer(models.BPE(vocab=vocab, merges=[]))
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    hf.decoder = decoders.ByteLevel()
    hf.add_special_tokens(
        [
            "<|endoftext|>",
            "<|startoftranscript|>",
            "<|en|>",
            "<|de|>",
            "<|translate|>",
            "<|transcribe|>",
            "<|startoflm|>",
            "<|startofprev|>",
            "<|nospeech|>",
            "<|notimestamps|>",
        ]  # fmt: skip
    )
    return hf.to_str()


def tone_cuts(directory, n: int, offset: int = 0) -> CutSet:
    """Tones whose pitch encodes a number; even cuts English, odd ones German with a
    translation into English."""
    cuts = []
    for i in range(offset, offset + n):
        k, lang = i % len(WORDS), ("eng", "deu")[i % 2]
        t = np.arange(int(16000 * (0.5 + 0.1 * (i % 3)))) / 16000
        path = directory / f"tone{i}.flac"
        sf.write(path, (0.3 * np.sin(2 * np.pi * (200 + 90 * k) * t)).astype(np.float32), 16000)
        cut = Recording.from_file(path, recording_id=f"rec{i}").to_cut()
        text = f"number {WORDS[k]}" if lang == "eng" else f"Zahl {WOERTER[k]}"
        translations = (
            {"deu": f"Zahl {WOERTER[k]}"} if lang == "eng" else {"eng": f"number {WORDS[k]}"}
        )
        cut.supervisions = [
            SupervisionSegment(f"sup{i}", f"rec{i}", 0.0, cut.duration, text=text, language=lang,
                               speaker=f"spk{i}", custom={"translations": translations})
        ]  # fmt: skip
        cuts.append(cut)
    return CutSet.from_cuts(cuts)


def write_tiny_whisper(out: str | Path, **dims) -> Path:
    """A packed directory at ``out`` holding a random 16-dimensional Whisper (1 layer per stack
    and 64 decoder positions unless ``dims`` says otherwise: ``WhisperConfig`` fields)."""
    from speechkit.models.whisper import WhisperConfig, WhisperModel
    from speechkit.pretrained import save_pretrained, whisper_features
    from speechkit.text.whisper import WhisperTokenizer

    tok = WhisperTokenizer(tokenizer_json())
    base = dict(n_mels=80, n_audio_state=16, n_audio_head=2, n_audio_layer=1,
                n_vocab=tok.vocab_size, n_text_ctx=64, n_text_state=16, n_text_head=2,
                n_text_layer=1)  # fmt: skip
    cfg = WhisperConfig(**{**base, **dims})
    torch.manual_seed(0)
    return save_pretrained(WhisperModel(cfg), tok, whisper_features(cfg), Path(out), source="test")
