"""The tokenizer of an imported ESPnet/OWSM model: ESPnet's token list order, kept exactly.

An ESPnet S2T model's output ids index its ``token_list`` (one token per line or a YAML list),
whose order comes from ESPnet's recipe (by frequency for the BPE pieces), not from the
sentencepiece model's own ids. Text therefore goes text -> sentencepiece *pieces* (strings) ->
positions in the token list, as ESPnet's ``SentencepiecesTokenizer`` + ``TokenIDConverter`` do;
a piece missing from the list becomes ``<unk>``.

OWSM special tokens (all written ``<...>``): ``<blank>`` (CTC blank, id 0 in OWSM), ``<unk>``,
``<na>`` (no previous text), ``<sos>``, ``<eos>``, ``<sop>`` (start of prompt),
``<notimestamps>``, a language token per ISO 639-3 code (``<eng>``), task tokens (``<asr>``,
``<st_deu>``) and timestamp tokens ``<0.00>`` .. ``<30.00>``, whose spacing (0.02 s in OWSM)
is read from the list, never assumed.

The interface is that of ``speechkit.text.sentencepiece.SentencePieceTokenizer`` (what decoders and the dataset use).

Example::

    tok = EspnetTokenizer.from_files("data/token_list/bpe_unigram50000/bpe.model", token_list)
    tok.sot_sequence("eng", "asr")   # [<sos>, <eng>, <asr>, <notimestamps>]
    tok.decode(tok.encode("hello world"))
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import sentencepiece as spm

logger = logging.getLogger(__name__)

__all__ = ["EspnetTokenizer", "TokenListError", "read_token_list"]

KIND = "espnet"
MODEL_FILE = "tokenizer.model"
META_FILE = "tokenizer.json"
REQUIRED = ("<blank>", "<unk>", "<sos>", "<eos>", "<sop>", "<na>", "<notimestamps>")
_TIME = re.compile(r"^<(\d+\.\d+)>$")
_LANG = re.compile(r"^<([a-z]{3})>$")
_TASK = re.compile(r"^<(asr|st_[a-z]{3})>$")
_NOT_LANGUAGES = {"unk", "sos", "eos", "sop", "asr"}


class TokenListError(ValueError):
    """A token list that does not fit the sentencepiece model or lacks OWSM special tokens."""


def read_token_list(path: str | Path) -> list[str]:
    """A token list file: one token per line (ESPnet's ``tokens.txt``)."""
    tokens = Path(path).read_text(encoding="utf-8").splitlines()
    return [t for t in tokens if t != ""]


def _is_special(token: str) -> bool:
    return len(token) > 2 and token.startswith("<") and token.endswith(">")


class EspnetTokenizer:
    """Sentencepiece model + ESPnet token list (see the module docstring)."""

    def __init__(self, sp_model: bytes, token_list: Sequence[str], source: str = "token list"):
        self._sp_bytes = bytes(sp_model)
        self.sp = spm.SentencePieceProcessor(model_proto=self._sp_bytes)
        self.token_list = list(token_list)
        self._index = {t: i for i, t in enumerate(self.token_list)}
        if len(self._index) != len(self.token_list):
            dup = sorted({t for t in self.token_list if self.token_list.count(t) > 1})[:5]
            raise TokenListError(f"{source}: duplicate tokens {dup}")
        missing = [t for t in REQUIRED if t not in self._index]
        if missing:
            raise TokenListError(f"{source}: no OWSM special token(s) {missing}")
        self._check_pieces(source)
        ids = {t.strip("<>"): self._index[t] for t in REQUIRED}
        self.blank_id, self.unk_id, self.sos_id, self.eos_id = (
            ids["blank"], ids["unk"], ids["sos"], ids["eos"],
        )  # fmt: skip
        self.sop_id, self.na_id, self.notimestamps_id = ids["sop"], ids["na"], ids["notimestamps"]
        specials = [t for t in self.token_list if _is_special(t)]
        self.languages = [
            m.group(1)
            for t in specials
            if (m := _LANG.match(t)) and m.group(1) not in _NOT_LANGUAGES
        ]
        self.tasks = [m.group(1) for t in specials if (m := _TASK.match(t))]
        times = sorted(
            (float(m.group(1)), self._index[t]) for t in specials if (m := _TIME.match(t))
        )
        self.timestamp_times = [s for s, _ in times]
        self.timestamp_ids = [i for _, i in times]

    def _check_pieces(self, source: str) -> None:
        """Every non-special token must be a piece of the sentencepiece model."""
        size = self.sp.get_piece_size()
        unk = self.sp.unk_id()
        bad = [
            t
            for t in self.token_list
            if not _is_special(t)
            and (self.sp.piece_to_id(t) == unk or self.sp.piece_to_id(t) >= size)
        ]
        if bad:
            raise TokenListError(
                f"{source}: {len(bad)} of {len(self.token_list)} tokens are not pieces of the BPE "
                f"model (e.g. {bad[:5]}); the token list and bpe.model come from different runs"
            )

    # ---------------------------------------------------------------- construction / storage
    @classmethod
    def from_files(cls, bpe_model: str | Path, token_list: str | Path | Sequence[str]):
        """From ESPnet's ``bpe.model`` and its token list (a file or a list of tokens)."""
        source = str(token_list) if isinstance(token_list, (str, Path)) else "token_list"
        if isinstance(token_list, (str, Path)):
            token_list = read_token_list(token_list)
        return cls(Path(bpe_model).read_bytes(), token_list, f"{source} (with {bpe_model})")

    def save(self, out_dir: str | Path) -> None:
        """Writes ``out_dir/tokenizer.model`` (the BPE model) and ``out_dir/tokenizer.json``."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        meta = {"kind": KIND, "token_list": self.token_list}
        (out / META_FILE).write_text(json.dumps(meta, ensure_ascii=False) + "\n", encoding="utf-8")
        (out / MODEL_FILE).write_bytes(self._sp_bytes)

    @classmethod
    def load(cls, path: str | Path) -> EspnetTokenizer:
        path = Path(path)
        for name in (MODEL_FILE, META_FILE):
            if not (path / name).is_file():
                raise FileNotFoundError(f"tokenizer directory {path} has no {name}")
        meta = json.loads((path / META_FILE).read_text(encoding="utf-8"))
        if meta.get("kind") != KIND:
            raise TokenListError(
                f"{path / META_FILE}: not an ESPnet tokenizer (kind {meta.get('kind')!r})"
            )
        return cls((path / MODEL_FILE).read_bytes(), meta["token_list"], str(path / META_FILE))

    @staticmethod
    def is_espnet_dir(path: str | Path) -> bool:
        """Whether ``path/tokenizer.json`` was written by :meth:`save`."""
        meta = Path(path) / META_FILE
        if not meta.is_file():
            return False
        try:
            return json.loads(meta.read_text(encoding="utf-8")).get("kind") == KIND
        except (ValueError, AttributeError):
            return False

    def state_dict(self) -> dict:
        return {"kind": KIND, "sp_model": self._sp_bytes, "token_list": list(self.token_list)}

    @classmethod
    def from_state_dict(cls, state: dict) -> EspnetTokenizer:
        if state.get("kind") != KIND:
            raise TokenListError(f"tokenizer state of kind {state.get('kind')!r} is not {KIND!r}")
        return cls(state["sp_model"], state["token_list"], "tokenizer state")

    def __getstate__(self) -> dict:
        return self.state_dict()

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["sp_model"], state["token_list"])

    # ---------------------------------------------------------------- ids
    @property
    def vocab_size(self) -> int:
        return len(self.token_list)

    @property
    def suppress_ids(self) -> list[int]:
        """Ids a text decoder must never emit: every ``<...>`` token except ``<eos>``."""
        return [i for i, t in enumerate(self.token_list) if _is_special(t) and i != self.eos_id]

    @property
    def time_resolution(self) -> float | None:
        """Seconds between neighbouring timestamp tokens (None without timestamp tokens)."""
        t = self.timestamp_times
        if len(t) < 2:
            return None
        return round(min(b - a for a, b in zip(t, t[1:])), 6)

    def is_timestamp(self, token_id: int) -> bool:
        return (
            bool(_TIME.match(self.token_list[token_id]))
            if 0 <= token_id < self.vocab_size
            else False
        )

    def time_of(self, token_id: int) -> float:
        """Seconds of a timestamp token; ValueError for any other id."""
        m = _TIME.match(self.token_list[token_id])
        if not m:
            raise ValueError(f"token {token_id} ({self.token_list[token_id]!r}) is not a timestamp")
        return float(m.group(1))

    def timestamp_id(self, seconds: float) -> int:
        """The timestamp token nearest to ``seconds`` (clamped to the list's range)."""
        if not self.timestamp_ids:
            raise ValueError("this token list has no timestamp tokens")
        best = min(
            range(len(self.timestamp_times)), key=lambda k: abs(self.timestamp_times[k] - seconds)
        )
        return self.timestamp_ids[best]

    def token_id(self, token: str) -> int:
        try:
            return self._index[token]
        except KeyError:
            raise KeyError(f"token {token!r} not in the token list") from None

    def lang_id(self, lang: str) -> int:
        if lang not in self.languages:
            raise KeyError(f"language {lang!r} not in tokenizer ({len(self.languages)} languages)")
        return self._index[f"<{lang}>"]

    def task_id(self, task: str) -> int:
        if task not in self.tasks:
            raise KeyError(f"task {task!r} not in tokenizer ({self.tasks[:6]}...)")
        return self._index[f"<{task}>"]

    def sot_sequence(self, lang: str, task: str, timestamps: bool = False) -> list[int]:
        """``[<sos>, <lang>, <task>, <notimestamps>]`` (the last left out with ``timestamps``)."""
        seq = [self.sos_id, self.lang_id(lang), self.task_id(task)]
        return seq if timestamps else seq + [self.notimestamps_id]

    def is_special(self, token_id: int) -> bool:
        return _is_special(self.token_list[token_id])

    def id_to_token(self, token_id: int) -> str:
        return self.token_list[token_id]

    # ---------------------------------------------------------------- text
    def encode(self, text: str) -> list[int]:
        """Text -> ids via sentencepiece pieces; a piece not in the list -> ``<unk>``."""
        pieces = self.sp.encode(text, out_type=str)
        return [self._index.get(p, self.unk_id) for p in pieces]

    def decode(self, ids: Iterable[int]) -> str:
        """Ids -> text; special ``<...>`` tokens (timestamps included) are dropped."""
        pieces = [self.token_list[int(i)] for i in ids if 0 <= int(i) < self.vocab_size]
        return self.sp.decode_pieces([p for p in pieces if not _is_special(p)])

    def __repr__(self) -> str:
        return (
            f"EspnetTokenizer(vocab_size={self.vocab_size}, languages={len(self.languages)}, "
            f"tasks={len(self.tasks)}, timestamps={len(self.timestamp_ids)})"
        )
