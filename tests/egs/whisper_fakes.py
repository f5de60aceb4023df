"""A tiny random multilingual Whisper model, packed as the zoo packs the real ones, for recipe
tests that fine-tune ``--init whisper-base`` without the network (what is tested is the
plumbing: its words are noise)."""

from __future__ import annotations

from pathlib import Path

import torch


def tokenizer_json() -> str:
    """A byte-level BPE over single bytes with Whisper's multilingual special tokens (English
    and German), in the Hugging Face ``tokenizer.json`` format Whisper's tokenizer reads."""
    import tokenizers
    from tokenizers import decoders, models, pre_tokenizers

    vocab = {ch: i for i, ch in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    hf = tokenizers.Tokenizer(models.BPE(vocab=vocab, merges=[]))
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    hf.decoder = decoders.ByteLevel()
    hf.add_special_tokens(
        ["<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|de|>", "<|translate|>",
         "<|transcribe|>", "<|startoflm|>", "<|startofprev|>", "<|nospeech|>", "<|notimestamps|>"]
    )  # fmt: skip
    return hf.to_str()


def write_tiny_whisper(out: str | Path) -> Path:
    """A packed directory at ``out`` holding a 1-layer, 16-dimensional random Whisper."""
    from speechkit.models.whisper import WhisperConfig, WhisperModel
    from speechkit.pretrained import save_pretrained, whisper_features
    from speechkit.text.whisper import WhisperTokenizer

    tok = WhisperTokenizer(tokenizer_json())
    cfg = WhisperConfig(n_mels=80, n_audio_state=16, n_audio_head=2, n_audio_layer=1,
                        n_vocab=tok.vocab_size, n_text_ctx=64, n_text_state=16, n_text_head=2,
                        n_text_layer=1)  # fmt: skip
    torch.manual_seed(0)
    return save_pretrained(WhisperModel(cfg), tok, whisper_features(cfg), Path(out), source="test")
