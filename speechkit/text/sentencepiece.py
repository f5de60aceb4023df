"""Sentencepiece tokenizer with OWSM-style special tokens.

Id layout (fixed by docs/design.md)::

    0..6        <blank> <unk> <sos> <eos> <sop> <na> <notimestamps>
    7..         one token per language  (<eng>, <deu>, ...)
    ..          one token per task      (<asr>, <st_eng>, ...)
    ..N-1       the sentencepiece pieces (sentencepiece id i -> i + num_special)

Sentencepiece's own ``<unk>`` (its id 0) is mapped to our ``<unk>``; its control pieces
(``<s>``/``</s>``) are disabled at training time so every other sentencepiece id is a real piece.
``encode`` therefore never emits special ids other than ``<unk>``; ``decode`` drops all special ids.

Example::

    tok = SentencePieceTokenizer.train(texts, "data/tokenizer", TokenizerConfig(vocab_size=500),
                          languages=["eng", "deu"], tasks=["asr", "st_eng", "st_deu"])
    ids = tok.encode("hallo welt")
    tok.decode(ids)  # "hallo welt"
    target = tok.sot_sequence("deu", "asr") + ids + [tok.eos_id]
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal

import sentencepiece as spm

from speechkit.config import ConfigError

logger = logging.getLogger(__name__)

__all__ = ["SPECIAL_TOKENS", "SentencePieceTokenizer", "TokenizerConfig"]

SPECIAL_TOKENS = (
    "<blank>",
    "<unk>",
    "<sos>",
    "<eos>",
    "<sop>",
    "<na>",
    "<notimestamps>",
)
MODEL_FILE = "tokenizer.model"
META_FILE = "tokenizer.json"


@dataclasses.dataclass
class TokenizerConfig:
    """How to train the sentencepiece part of the tokenizer.

    vocab_size: number of sentencepiece pieces (special tokens come on top of these).
    model_type: sentencepiece algorithm.
    character_coverage: fraction of characters covered by the model (1.0 = all seen characters).
    """

    vocab_size: int = 500
    model_type: Literal["unigram", "bpe"] = "unigram"
    character_coverage: float = 1.0

    def __post_init__(self) -> None:
        if self.vocab_size < 8:
            raise ConfigError(f"tokenizer.vocab_size must be >= 8, got {self.vocab_size}")
        if not 0.9 <= self.character_coverage <= 1.0:
            raise ConfigError(
                f"tokenizer.character_coverage must be in [0.9, 1.0], got {self.character_coverage}"
            )


class SentencePieceTokenizer:
    """Special tokens + language/task tokens + a sentencepiece model (see module docstring)."""

    def __init__(self, sp_model: bytes, languages: Sequence[str], tasks: Sequence[str]):
        self._sp_bytes = bytes(sp_model)
        self.sp = spm.SentencePieceProcessor(model_proto=self._sp_bytes)
        self.languages = list(languages)
        self.tasks = list(tasks)
        if len(set(self.languages)) != len(self.languages) or len(set(self.tasks)) != len(
            self.tasks
        ):
            raise ValueError(f"duplicate language or task: {self.languages} {self.tasks}")
        self.special_tokens = (
            list(SPECIAL_TOKENS)
            + [f"<{lang}>" for lang in self.languages]
            + [f"<{task}>" for task in self.tasks]
        )
        self.num_special = len(self.special_tokens)
        self._special_index = {t: i for i, t in enumerate(self.special_tokens)}
        self.blank_id, self.unk_id, self.sos_id, self.eos_id = 0, 1, 2, 3
        self.sop_id, self.na_id, self.notimestamps_id = 4, 5, 6
        self._sp_unk = self.sp.unk_id()

    # ---------------------------------------------------------------- construction / storage
    @classmethod
    def train(
        cls,
        texts: Iterable[str],
        out_dir: str | Path | None,
        cfg: TokenizerConfig,
        languages: Sequence[str],
        tasks: Sequence[str],
    ) -> SentencePieceTokenizer:
        """Trains sentencepiece in-process on ``texts`` and saves to ``out_dir`` (if given).

        ``vocab_size`` is a soft limit: on a tiny corpus sentencepiece may produce fewer pieces.
        """
        texts = [t.strip() for t in texts if t and t.strip()]
        if not texts:
            raise ValueError("SentencePieceTokenizer.train: no non-empty texts to train on")
        model = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(texts),
            model_writer=model,
            vocab_size=cfg.vocab_size,
            model_type=cfg.model_type,
            character_coverage=cfg.character_coverage,
            # Only <unk> is a sentencepiece control piece; bos/eos live in our special ids.
            unk_id=0,
            bos_id=-1,
            eos_id=-1,
            pad_id=-1,
            hard_vocab_limit=False,
            num_threads=2,
            minloglevel=2,
        )
        tok = cls(model.getvalue(), languages, tasks)
        logger.info(
            "trained tokenizer: %d pieces + %d special tokens on %d texts",
            tok.sp.get_piece_size(),
            tok.num_special,
            len(texts),
        )
        if out_dir is not None:
            tok.save(out_dir)
        return tok

    def save(self, out_dir: str | Path) -> None:
        """Writes ``out_dir/tokenizer.model`` (sentencepiece) and ``out_dir/tokenizer.json``."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        meta = {
            "languages": self.languages,
            "tasks": self.tasks,
            "special": self.special_tokens,
        }
        (out / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        # The model file is written last: its presence marks a complete tokenizer directory.
        (out / MODEL_FILE).write_bytes(self._sp_bytes)

    @classmethod
    def load(cls, path: str | Path) -> SentencePieceTokenizer:
        """Reads a directory written by :meth:`save`."""
        path = Path(path)
        for name in (MODEL_FILE, META_FILE):
            if not (path / name).is_file():
                raise FileNotFoundError(f"tokenizer directory {path} has no {name}")
        meta = json.loads((path / META_FILE).read_text())
        return cls((path / MODEL_FILE).read_bytes(), meta["languages"], meta["tasks"])

    def state_dict(self) -> dict:
        """Plain python (bytes, lists) to embed in a checkpoint."""
        return {
            "sp_model": self._sp_bytes,
            "languages": self.languages,
            "tasks": self.tasks,
        }

    @classmethod
    def from_state_dict(cls, state: dict) -> SentencePieceTokenizer:
        return cls(state["sp_model"], state["languages"], state["tasks"])

    def __getstate__(self) -> dict:
        # SentencePieceProcessor is rebuilt from bytes, so DataLoader workers can pickle us.
        return self.state_dict()

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["sp_model"], state["languages"], state["tasks"])

    # ---------------------------------------------------------------- ids
    @property
    def vocab_size(self) -> int:
        """Total number of ids: special tokens + sentencepiece pieces."""
        return self.num_special + self.sp.get_piece_size()

    def lang_id(self, lang: str) -> int:
        try:
            return self._special_index[f"<{lang}>"]
        except KeyError:
            raise KeyError(f"language {lang!r} not in tokenizer ({self.languages})") from None

    def task_id(self, task: str) -> int:
        try:
            return self._special_index[f"<{task}>"]
        except KeyError:
            raise KeyError(f"task {task!r} not in tokenizer ({self.tasks})") from None

    def sot_sequence(self, lang: str, task: str) -> list[int]:
        """``[<sos>, <lang>, <task>, <notimestamps>]``: the decoder start for one utterance."""
        return [
            self.sos_id,
            self.lang_id(lang),
            self.task_id(task),
            self.notimestamps_id,
        ]

    def is_special(self, token_id: int) -> bool:
        return 0 <= token_id < self.num_special

    def id_to_token(self, token_id: int) -> str:
        if self.is_special(token_id):
            return self.special_tokens[token_id]
        return self.sp.id_to_piece(token_id - self.num_special)

    # ---------------------------------------------------------------- text
    def encode(self, text: str) -> list[int]:
        """Text -> piece ids (offset past the special tokens); unseen characters -> ``<unk>``."""
        ids = self.sp.encode(text, out_type=int)
        return [self.unk_id if i == self._sp_unk else i + self.num_special for i in ids]

    def decode(self, ids: Iterable[int]) -> str:
        """Piece ids -> text; special ids (including ``<unk>``) are dropped."""
        pieces = [int(i) - self.num_special for i in ids if int(i) >= self.num_special]
        size = self.sp.get_piece_size()
        return self.sp.decode([p for p in pieces if p != self._sp_unk and p < size])

    def __repr__(self) -> str:
        return (
            f"SentencePieceTokenizer(vocab_size={self.vocab_size}, languages={self.languages}, "
            f"tasks={self.tasks})"
        )
