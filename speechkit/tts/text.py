"""The TTS text front end: text -> IPA phonemes (espeak-ng) -> ids of the model's vocabulary.

Languages are the corpus codes ``eng``, ``deu``, ``spa``, ``fra`` (espeak-ng voices ``en-us``,
``de``, ``es``, ``fr-fr``). A phoneme is one IPA symbol of espeak-ng's output with its marks:
a stress mark joins the symbol after it, length marks and combining diacritics join the symbol
before it (``ˈoː``, ``ɛ̃``). Piper keeps every code point apart instead; joined, each token is
one sound, so the aligner does not have to give a stress mark frames of its own. ``" "``
separates words; the sentence's final mark (``.``, ``?``, ``!``) ends the sequence, so a
question can be said as one. espeak-ng's language-switch flags (``(en)``) and liaison hyphens
are dropped.

What is rejected, with a :class:`TextError` that names the problem:

* empty text (or text of punctuation alone);
* characters outside the scripts the four languages use (Latin letters with their diacritics,
  digits, punctuation and spaces): espeak-ng would otherwise read a CJK character out as
  "Chinese letter", or skip an emoji silently;
* a language the front end does not know;
* phonemes the model's vocabulary lacks (:meth:`PhonemeVocab.encode`).

Long text is cut into sentences, and sentences longer than ``max_chars`` at commas, then at
word boundaries (:func:`split_sentences`); each chunk is synthesised on its own.

The espeak-ng binary is ``$ESPEAK_NG`` or ``espeak-ng`` on PATH (``tools/setup.sh`` installs it).
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "ESPEAK_VOICES",
    "PhonemeVocab",
    "TextError",
    "check_text",
    "phonemize",
    "split_sentences",
]

ESPEAK_VOICES = {"eng": "en-us", "deu": "de", "spa": "es", "fra": "fr-fr"}
PAD = "<pad>"
WORD = " "
FINAL_MARKS = (".", "?", "!")
_STRESS = "ˈˌ"
_JOIN_BEFORE = "ːˑʲʷ"
_LANG_FLAG = re.compile(r"\([a-z]{2,3}(-[a-z]+)?\)")
# Punctuation and symbols espeak-ng reads or skips sensibly in running text.
_ALLOWED_SYMBOLS = set("'\"’‘“”«»„‚.,;:!?¿¡-–—()[]/&%€$£°+…")


class TextError(ValueError):
    """Text the front end cannot turn into phonemes; the message says why."""


def _espeak() -> str:
    path = os.environ.get("ESPEAK_NG") or shutil.which("espeak-ng")
    if path is None:
        raise RuntimeError(
            "espeak-ng is not installed (no 'espeak-ng' on PATH and $ESPEAK_NG unset): run "
            "tools/setup.sh or 'apt-get install espeak-ng'"
        )
    return path


def check_text(text: str, language: str) -> str:
    """``text`` with whitespace normalised, or a :class:`TextError` (module docstring)."""
    if language not in ESPEAK_VOICES:
        raise TextError(
            f"unknown language {language!r}; the TTS front end knows {sorted(ESPEAK_VOICES)}"
        )
    text = " ".join(unicodedata.normalize("NFC", text).split())
    if not any(ch.isalnum() for ch in text):
        raise TextError(f"nothing to say: the text {text!r} has no letters or digits")
    bad = sorted({ch for ch in text if not _allowed(ch)})
    if bad:
        shown = ", ".join(f"{ch!r} (U+{ord(ch):04X} {unicodedata.name(ch, '?')})" for ch in bad)
        raise TextError(f"cannot phonemise {language} text: unsupported characters {shown}")
    return text


def _allowed(ch: str) -> bool:
    if ch == " " or ch.isdigit() or ch in _ALLOWED_SYMBOLS:
        return True
    return ch.isalpha() and unicodedata.name(ch, "").startswith("LATIN")


@functools.lru_cache(maxsize=65536)
def phonemize(text: str, language: str) -> tuple[str, ...]:
    """Phonemes of one sentence: IPA symbols with their marks, ``" "`` between words, its final
    mark last.

    Raises :class:`TextError` for text the front end rejects (module docstring)."""
    text = check_text(text, language)
    out = subprocess.run(
        [_espeak(), "-q", "--ipa", "-v", ESPEAK_VOICES[language]],
        input=text,
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise TextError(f"espeak-ng failed on {text!r} ({language}): {out.stderr.strip()}")
    words = _LANG_FLAG.sub("", out.stdout).split()
    if not words:
        raise TextError(f"espeak-ng gave no phonemes for {text!r} ({language})")
    phones: list[str] = []
    for word in words:
        if phones:
            phones.append(WORD)
        phones.extend(_sounds(word))
    final = text.rstrip("\"'”»)").rstrip()[-1:]
    phones.append(final if final in FINAL_MARKS else ".")
    return tuple(phones)


def _sounds(word: str) -> list[str]:
    """One espeak-ng IPA word -> its phonemes, marks joined (module docstring)."""
    out: list[str] = []
    stress = ""
    for ch in unicodedata.normalize("NFD", word):
        if ch in _STRESS:
            stress += ch
        elif (ch in _JOIN_BEFORE or unicodedata.combining(ch)) and out:
            out[-1] += ch
        elif ch.isspace() or ch in _JOIN_BEFORE or ch == "-":
            continue
        else:
            out.append(stress + ch)
            stress = ""
    return [unicodedata.normalize("NFC", p) for p in out]


def split_sentences(text: str, max_chars: int = 200) -> list[str]:
    """Chunks of ``text`` to synthesise one at a time: sentences (split after ``.?!`` and a
    space), those longer than ``max_chars`` split after commas/semicolons, then between words.
    Empty chunks are dropped; every character of ``text`` but whitespace is kept."""
    if max_chars < 1:
        raise ValueError("max_chars must be >= 1")
    chunks: list[str] = []
    for sentence in re.split(r"(?<=[.?!…])\s+", " ".join(text.split())):
        if len(sentence) <= max_chars:
            chunks.append(sentence)
            continue
        current = ""
        for piece in re.split(r"(?<=[,;:])\s+|\s+", sentence):
            candidate = f"{current} {piece}".strip()
            if current and len(candidate) > max_chars:
                chunks.append(current)
                candidate = piece
            current = candidate
        chunks.append(current)
    return [c for c in chunks if c.strip()]


def _fallbacks(phoneme: str) -> list[str]:
    """``phoneme``, then without stress, then its bare symbol (PhonemeVocab.encode)."""
    unstressed = phoneme.lstrip(_STRESS)
    bare = next(
        (ch for ch in unicodedata.normalize("NFD", unstressed) if not unicodedata.combining(ch)), ""
    )
    return [phoneme, unstressed, bare]


@dataclass
class PhonemeVocab:
    """Phoneme <-> id. Id 0 is padding. Built from the training texts
    (:meth:`build`) and stored in the model's config, so a checkpoint phonemises alone."""

    phonemes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.phonemes or self.phonemes[0] != PAD:
            self.phonemes = [PAD, *[p for p in self.phonemes if p != PAD]]
        self.index = {p: i for i, p in enumerate(self.phonemes)}

    @classmethod
    def build(cls, sequences) -> PhonemeVocab:
        """From phoneme sequences (iterables of str): padding, word separator, final marks,
        then the rest sorted."""
        seen = {p for seq in sequences for p in seq}
        fixed = [WORD, *FINAL_MARKS]
        return cls([PAD, *fixed, *sorted(seen - set(fixed))])

    def __len__(self) -> int:
        return len(self.phonemes)

    def encode(self, phones, context: str = "") -> list[int]:
        """Ids of ``phones``. A phoneme the vocabulary lacks falls back to the same symbol
        without its stress mark, then to its bare symbol (``ˈɑ̃`` -> ``ɑ̃`` -> ``ɑ``): a stressed
        or nasal variant the training texts never had is said as its nearest known sound.
        A symbol unknown even bare is a :class:`TextError` naming it."""
        ids, missing = [], set()
        for p in phones:
            for candidate in _fallbacks(p):
                if candidate in self.index:
                    ids.append(self.index[candidate])
                    break
            else:
                missing.add(p)
        if missing:
            raise TextError(
                f"phonemes {sorted(missing)} {context}are not in the model's vocabulary (it was "
                "trained without them: a language or sound it never saw)"
            )
        return ids

    def decode(self, ids) -> str:
        return "".join(self.phonemes[int(i)] for i in ids if int(i) != 0)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.phonemes, ensure_ascii=False, indent=0) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> PhonemeVocab:
        return cls(json.loads(Path(path).read_text()))
