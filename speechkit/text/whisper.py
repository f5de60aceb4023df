"""Whisper's byte-level BPE tokenizer behind the interface of ``speechkit.text.sentencepiece.Tokenizer``.

The text pieces come from a Hugging Face ``tokenizer.json`` (the file that ships with CTranslate2
and transformers Whisper models), run by the ``tokenizers`` library. Whisper's special tokens sit
*after* the text pieces::

    <|endoftext|>  <|startoftranscript|>  <|en|> <|zh|> ... (one per language)
    <|translate|> <|transcribe|> <|startoflm|> <|startofprev|> <|nospeech|> <|notimestamps|>
    <|0.00|> ... <|30.00|>   (1501 timestamps, often absent from tokenizer.json)

English-only models (``*.en``, GPT-2 vocabulary, ``<|endoftext|>`` = 50256) start decoding with
``<|startoftranscript|> <|notimestamps|>``; multilingual ones with
``<|startoftranscript|> <|lang|> <|transcribe|>|<|translate|> <|notimestamps|>``.

speechkit names languages by ISO 639-3 (``eng``, ``deu``) and tasks ``asr`` / ``st_<lang>``;
Whisper can only translate into English, so its tasks are ``asr`` -> ``<|transcribe|>`` and
``st_eng`` -> ``<|translate|>``. :data:`WHISPER_TO_ISO639_3` maps Whisper's codes.

Text conventions: :meth:`encode` prepends one space (Whisper's outputs start with one: it emits
``" Hello"``, not ``"Hello"``) and :meth:`decode` drops special ids and strips surrounding spaces,
so ``decode(encode(t)) == t.strip()``.

Example::

    tok = WhisperTokenizer.load("models/whisper-tiny.en")   # dir with tokenizer.json
    prefix = tok.sot_sequence("eng", "asr")                 # [50257, 50362]
    tok.decode(tok.encode("hello world"))                   # "hello world"
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer as HFTokenizer

logger = logging.getLogger(__name__)

__all__ = ["TOKENIZER_FILE", "WHISPER_TO_ISO639_3", "WhisperTokenizer"]

TOKENIZER_FILE = "tokenizer.json"
N_TIMESTAMPS = 1501  # <|0.00|> .. <|30.00|> in 20 ms steps
TIMESTAMP_STEP_S = 0.02
GPT2_EOT = 50256  # <|endoftext|> of the English-only (GPT-2) vocabulary

# Whisper language code -> ISO 639-3 (``jw`` is Whisper's code for Javanese).
WHISPER_TO_ISO639_3: dict[str, str] = {
    "en": "eng", "zh": "zho", "de": "deu", "es": "spa", "ru": "rus", "ko": "kor", "fr": "fra",
    "ja": "jpn", "pt": "por", "tr": "tur", "pl": "pol", "ca": "cat", "nl": "nld", "ar": "ara",
    "sv": "swe", "it": "ita", "id": "ind", "hi": "hin", "fi": "fin", "vi": "vie", "he": "heb",
    "uk": "ukr", "el": "ell", "ms": "msa", "cs": "ces", "ro": "ron", "da": "dan", "hu": "hun",
    "ta": "tam", "no": "nor", "th": "tha", "ur": "urd", "hr": "hrv", "bg": "bul", "lt": "lit",
    "la": "lat", "mi": "mri", "ml": "mal", "cy": "cym", "sk": "slk", "te": "tel", "fa": "fas",
    "lv": "lav", "bn": "ben", "sr": "srp", "az": "aze", "sl": "slv", "kn": "kan", "et": "est",
    "mk": "mkd", "br": "bre", "eu": "eus", "is": "isl", "hy": "hye", "ne": "nep", "mn": "mon",
    "bs": "bos", "kk": "kaz", "sq": "sqi", "sw": "swa", "gl": "glg", "mr": "mar", "pa": "pan",
    "si": "sin", "km": "khm", "sn": "sna", "yo": "yor", "so": "som", "af": "afr", "oc": "oci",
    "ka": "kat", "be": "bel", "tg": "tgk", "sd": "snd", "gu": "guj", "am": "amh", "yi": "yid",
    "lo": "lao", "uz": "uzb", "fo": "fao", "ht": "hat", "ps": "pus", "tk": "tuk", "nn": "nno",
    "mt": "mlt", "sa": "san", "lb": "ltz", "my": "mya", "bo": "bod", "tl": "tgl", "mg": "mlg",
    "as": "asm", "tt": "tat", "haw": "haw", "ln": "lin", "ha": "hau", "ba": "bak", "jw": "jav",
    "su": "sun", "yue": "yue",
}  # fmt: skip

_REQUIRED = ("<|endoftext|>", "<|startoftranscript|>", "<|translate|>", "<|transcribe|>",
             "<|notimestamps|>")  # fmt: skip
_TASK_TOKENS = {"asr": "<|transcribe|>", "st_eng": "<|translate|>"}


class WhisperTokenizer:
    """Whisper's tokenizer (see module docstring) with speechkit's tokenizer interface.

    ``tokenizer_json``: the text of a Hugging Face ``tokenizer.json``. ``multilingual``: None
    decides from the vocabulary (English-only iff ``<|endoftext|>`` is 50256, GPT-2's).
    ``vocab_size``: the model's ``n_vocab``; None = ``<|notimestamps|>`` + 1 + 1501 timestamps.
    """

    def __init__(
        self,
        tokenizer_json: str,
        multilingual: bool | None = None,
        vocab_size: int | None = None,
        source: str = "<tokenizer.json>",
    ):
        self._json = tokenizer_json
        try:
            self._tok = HFTokenizer.from_str(tokenizer_json)
            added = json.loads(tokenizer_json).get("added_tokens", [])
        except Exception as e:  # tokenizers raises its own Exception type
            raise ValueError(f"{source}: not a valid Hugging Face tokenizer.json ({e})") from e
        special = {t["content"]: int(t["id"]) for t in added}
        missing = [t for t in _REQUIRED if t not in special]
        if missing:
            raise ValueError(f"{source}: not a Whisper tokenizer, no special token {missing}")
        self.eos_id = special["<|endoftext|>"]
        self.sos_id = special["<|startoftranscript|>"]
        self.translate_id = special["<|translate|>"]
        self.transcribe_id = special["<|transcribe|>"]
        self.notimestamps_id = special["<|notimestamps|>"]
        self.sop_id = special.get("<|startofprev|>", -1)
        self.startoflm_id = special.get("<|startoflm|>", -1)
        self.na_id = special.get("<|nospeech|>", special.get("<|nocaptions|>", -1))
        self.unk_id = self.eos_id  # byte-level BPE has no unknown piece
        self.blank_id = -1  # no CTC blank: Whisper has no CTC head
        self.timestamp_begin = self.notimestamps_id + 1
        self.multilingual = self.eos_id != GPT2_EOT if multilingual is None else multilingual
        self._vocab_size = vocab_size or self.timestamp_begin + N_TIMESTAMPS
        if self._vocab_size <= self.notimestamps_id:
            raise ValueError(
                f"{source}: vocab_size {self._vocab_size} leaves out <|notimestamps|> "
                f"({self.notimestamps_id})"
            )
        # Language tokens: the <|xx|> between <|startoftranscript|> and <|translate|>.
        codes = sorted(
            (i, t[2:-2]) for t, i in special.items() if self.sos_id < i < self.translate_id
        )
        self.whisper_languages = [code for _, code in codes]
        self._lang_index = {code: i for i, code in codes}
        for i, code in codes:
            self._lang_index.setdefault(WHISPER_TO_ISO639_3.get(code, code), i)
        if self.multilingual:
            self.languages = [WHISPER_TO_ISO639_3.get(c, c) for c in self.whisper_languages]
            self.tasks = ["asr", "st_eng"]
        else:
            self.languages, self.tasks = ["eng"], ["asr"]

    # ---------------------------------------------------------------- storage
    @classmethod
    def from_file(
        cls, path: str | Path, multilingual: bool | None = None, vocab_size: int | None = None
    ) -> WhisperTokenizer:
        """Reads a ``tokenizer.json`` file."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"Whisper tokenizer file {path} does not exist")
        return cls(path.read_text(encoding="utf-8"), multilingual, vocab_size, source=str(path))

    @classmethod
    def load(cls, path: str | Path, vocab_size: int | None = None) -> WhisperTokenizer:
        """Reads ``path/tokenizer.json`` (a directory written by :meth:`save`)."""
        return cls.from_file(Path(path) / TOKENIZER_FILE, vocab_size=vocab_size)

    def save(self, out_dir: str | Path) -> None:
        """Writes ``out_dir/tokenizer.json`` (the original text, byte for byte)."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / TOKENIZER_FILE).write_text(self._json, encoding="utf-8")

    def state_dict(self) -> dict:
        """Plain python to embed in a checkpoint; ``kind`` tells it from a sentencepiece one."""
        return {
            "kind": "whisper",
            "tokenizer_json": self._json,
            "multilingual": self.multilingual,
            "vocab_size": self._vocab_size,
        }

    @classmethod
    def from_state_dict(cls, state: dict) -> WhisperTokenizer:
        return cls(state["tokenizer_json"], state["multilingual"], state["vocab_size"])

    def __getstate__(self) -> dict:
        # The Rust tokenizer is rebuilt from its JSON, so DataLoader workers can pickle us.
        return self.state_dict()

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["tokenizer_json"], state["multilingual"], state["vocab_size"])

    # ---------------------------------------------------------------- ids
    @property
    def vocab_size(self) -> int:
        """Number of model outputs (``n_vocab``), timestamps included."""
        return self._vocab_size

    @property
    def suppress_ids(self) -> tuple[int, ...]:
        """Every special id except ``<|endoftext|>``: what a search must never emit when it
        decodes without timestamps (``SpecialIds(eos, blank, suppress=tok.suppress_ids)``)."""
        return tuple(range(self.eos_id + 1, self._vocab_size))

    def lang_id(self, lang: str) -> int:
        """Id of a language token; ``lang`` is ISO 639-3 (``deu``) or Whisper's code (``de``)."""
        if lang in self._lang_index and (self.multilingual or lang in ("en", "eng")):
            return self._lang_index[lang]
        raise KeyError(f"language {lang!r} not in tokenizer ({self.languages})")

    def task_id(self, task: str) -> int:
        if task not in self.tasks:
            raise KeyError(
                f"task {task!r} not in tokenizer ({self.tasks}); Whisper translates only "
                "into English (st_eng)"
            )
        return self.transcribe_id if task == "asr" else self.translate_id

    def sot_sequence(self, lang: str, task: str) -> list[int]:
        """Decoder start: ``[sot, lang, task, notimestamps]`` (multilingual) or
        ``[sot, notimestamps]`` (English-only, which accepts only ``eng`` + ``asr``)."""
        lang_id, task_id = self.lang_id(lang), self.task_id(task)
        if not self.multilingual:
            return [self.sos_id, self.notimestamps_id]
        return [self.sos_id, lang_id, task_id, self.notimestamps_id]

    def is_special(self, token_id: int) -> bool:
        return token_id >= self.eos_id

    def id_to_token(self, token_id: int) -> str:
        if token_id >= self.timestamp_begin:
            return f"<|{(token_id - self.timestamp_begin) * TIMESTAMP_STEP_S:.2f}|>"
        token = self._tok.id_to_token(token_id)
        if token is None:
            raise KeyError(f"token id {token_id} is outside the vocabulary ({self.vocab_size})")
        return token

    # ---------------------------------------------------------------- text
    def encode(self, text: str) -> list[int]:
        """Text -> BPE ids of ``" " + text.strip()``; never emits special ids."""
        text = text.strip()
        return self._tok.encode(" " + text, add_special_tokens=False).ids if text else []

    def decode(self, ids: Iterable[int]) -> str:
        """Ids -> text; special ids (timestamps included) are dropped, spaces stripped."""
        text_ids = [int(i) for i in ids if 0 <= int(i) < self.eos_id]
        return self._tok.decode(text_ids, skip_special_tokens=True).strip()

    def __repr__(self) -> str:
        kind = "multilingual" if self.multilingual else "English-only"
        return f"WhisperTokenizer({kind}, vocab_size={self.vocab_size})"
