"""A tiny Whisper tokenizer and tone cuts for the whisper and prune_whisper task tests."""

from __future__ import annotations

import numpy as np
import soundfile as sf
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
