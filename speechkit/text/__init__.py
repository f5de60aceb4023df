"""Text tokenizers: one small protocol, three implementations.

=====================  ==========================================================  ==========
module                 what                                                        ``kind``
=====================  ==========================================================  ==========
``sentencepiece.py``   sentencepiece + OWSM-style special tokens (trained here)    (none)
``whisper.py``         Whisper's byte-level BPE (``tokenizer.json``)               ``whisper``
``espnet.py``          an imported ESPnet/OWSM token list + ``bpe.model``          ``espnet``
=====================  ==========================================================  ==========

Everything outside this package (datasets, decoding, the zoo) talks to a ``TextTokenizer``;
checkpoints embed ``tok.state_dict()`` and :func:`tokenizer_from_state` rebuilds the right class
from it; :func:`load_tokenizer` reads a saved directory.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Protocol, runtime_checkable

from speechkit.text.espnet import EspnetTokenizer
from speechkit.text.sentencepiece import SentencePieceTokenizer, TokenizerConfig
from speechkit.text.whisper import WhisperTokenizer

__all__ = [
    "EspnetTokenizer",
    "SentencePieceTokenizer",
    "TextTokenizer",
    "TokenizerConfig",
    "WhisperTokenizer",
    "load_tokenizer",
    "tokenizer_from_state",
]


@runtime_checkable
class TextTokenizer(Protocol):
    """What the rest of speechkit may use of a tokenizer.

    Ids are ints in ``[0, vocab_size)``; ``sot_sequence(lang, task)`` is the decoder prefix
    (``<sos> <lang> <task> <notimestamps>`` or Whisper's equivalent); ``encode`` never emits
    special ids other than unknown; ``decode`` drops special ids.
    """

    eos_id: int

    @property
    def vocab_size(self) -> int: ...

    def lang_id(self, lang: str) -> int: ...

    def task_id(self, task: str) -> int: ...

    def sot_sequence(self, lang: str, task: str) -> list[int]: ...

    def is_special(self, token_id: int) -> bool: ...

    def id_to_token(self, token_id: int) -> str: ...

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Iterable[int]) -> str: ...

    def state_dict(self) -> dict: ...

    def save(self, out_dir: str | Path) -> None: ...


def tokenizer_from_state(state: dict) -> TextTokenizer:
    """The tokenizer a checkpoint embedded (``state_dict()``), by its ``kind``."""
    kind = state.get("kind")
    if kind == "whisper":
        return WhisperTokenizer.from_state_dict(state)
    if kind == "espnet":
        return EspnetTokenizer.from_state_dict(state)
    return SentencePieceTokenizer.from_state_dict(state)


def load_tokenizer(directory: str | Path, whisper_vocab_size: int | None = None) -> TextTokenizer:
    """The tokenizer saved in ``directory``: Whisper's when ``whisper_vocab_size`` is given (the
    model's ``n_vocab``), an imported ESPnet token list where there is one, else sentencepiece."""
    if whisper_vocab_size is not None:
        return WhisperTokenizer.load(directory, vocab_size=whisper_vocab_size)
    if EspnetTokenizer.is_espnet_dir(directory):
        return EspnetTokenizer.load(directory)
    return SentencePieceTokenizer.load(directory)
