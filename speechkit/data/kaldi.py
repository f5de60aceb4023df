"""Kaldi / ESPnet (OWSM) data directories <-> lhotse manifests.

A data directory holds one line per key, ``key value``::

    wav.scp     rec path              or  rec command |     (a pipe that writes audio to stdout:
                                                          run only with ``allow_pipes``)
    segments    utt rec start end     (seconds; optional: without it each recording is one utt)
    text        utt <eng><asr><notimestamps> the transcript
                utt <eng><st_deu><0.00> der text<1.20><1.20> mehr<3.40>    (OWSM, timestamped)
                utt the transcript    (plain Kaldi: language from ``language=``, task asr)
    utt2spk     utt speaker           (spk2utt is written on export, never read)
    text.prev   utt previous text     (OWSM prompt; <na> = none)
    text.ctc    utt transcript        (OWSM CTC target: spoken language, no prefix/timestamps)

Import (``read_kaldi_dir``) gives one ``MonoCut`` per utterance following speechkit's conventions
(docs/design.md): ``supervisions[0].text`` is the transcript in the spoken language (``text`` for
``asr``, ``text.ctc`` for ``st_*``), ``.language`` the ISO 639-3 code of the prefix, ``.speaker``
from ``utt2spk``, a translation goes to ``custom["translations"][tgt]``, ``cut.custom["task"]`` is
the line's task; a timestamped line also keeps its OWSM body in ``custom["owsm_text"]``. A
``text.prev`` line (the previous segment's text in the line's task) goes where the dataset looks
for previous-text prompts (``segments.py``): ``custom["text_prev"]`` for ``asr``,
``custom["translations_prev"][tgt]`` for ``st_<tgt>``. Pipe commands become lhotse ``command`` audio
sources (run once on import to learn the sample rate and length).

Pipes: a ``wav.scp`` value ending in ``|`` is a shell command. It runs only where the caller
passes ``allow_pipes=True`` (the command line tools: ``--allow-pipes``); otherwise reading the
file stops at the first pipe with a ``KaldiDataError`` naming the line, before anything runs.
This module is the only place in speechkit that runs such commands: a file name given anywhere
else is always a file name (``speechkit.data.audio``).

Export (``write_kaldi_dir``) writes the files above from cuts; ``text.prev`` is generated (the
previous utterance with the same task in the same recording, else of the same speaker, in
(recording, start) order, else ``<na>``) and so is ``text.ctc`` (the transcript).

Bad input: a malformed line (e.g. a ``wav.scp`` line without a path) raises ``KaldiDataError``
naming the file and line; utterances that cannot be used (audio unreadable, text of an unknown
utterance, a segment of an unknown recording) are skipped with a warning naming file and line and
counted in the returned ``skipped`` Counter.
"""

from __future__ import annotations

import io
import logging
import re
import subprocess
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import soundfile as sf
from lhotse import CutSet, MonoCut, Recording, RecordingSet, SupervisionSegment, SupervisionSet
from lhotse.audio import AudioSource
from tqdm import tqdm

from speechkit.data.audio import AudioError, open_recording

logger = logging.getLogger(__name__)

__all__ = [
    "KaldiDataError",
    "KaldiImport",
    "OwsmText",
    "format_owsm_text",
    "parse_owsm_text",
    "probe_recording",
    "read_kaldi_dir",
    "read_wav_scp",
    "write_kaldi_dir",
]

NA = "<na>"
NOTIMESTAMPS = "<notimestamps>"
_PREFIX = re.compile(r"^\s*<([a-z]{3})>\s*<(asr|st_[a-z]{3})>\s*")
_TIME = re.compile(r"<\d+(?:\.\d+)?>")


class KaldiDataError(ValueError):
    """A data directory line that cannot be read; the message names the file and line."""


# ---------------------------------------------------------------- OWSM text lines
@dataclass
class OwsmText:
    """One OWSM ``text`` value: ``<lang><task>`` then ``<notimestamps> text`` or a timestamped
    body. ``text`` has timestamps removed; ``body`` is what followed the prefix (timestamps kept,
    ``<notimestamps>`` dropped); language/task are None for a plain Kaldi line."""

    language: str | None
    task: str | None
    text: str
    body: str
    timestamps: bool


def parse_owsm_text(value: str) -> OwsmText:
    """Splits ``<eng><asr><notimestamps> hi`` (or a plain transcript) into its parts."""
    m = _PREFIX.match(value)
    if not m:
        return OwsmText(None, None, " ".join(value.split()), value.strip(), False)
    body = value[m.end() :].strip()
    timestamps = not body.startswith(NOTIMESTAMPS)
    if not timestamps:
        body = body[len(NOTIMESTAMPS) :].strip()
    text = " ".join(_TIME.sub(" ", body).split())
    return OwsmText(m.group(1), m.group(2), text, body, timestamps)


def format_owsm_text(language: str, task: str, text: str, timed_body: str | None = None) -> str:
    """``<lang><task><notimestamps> text``, or ``<lang><task>`` + a timestamped body."""
    if timed_body:
        return f"<{language}><{task}>{timed_body}"
    return f"<{language}><{task}>{NOTIMESTAMPS} {text}"


# ---------------------------------------------------------------- reading
def _lines(path: Path) -> Iterable[tuple[int, str, str]]:
    """(line number, key, rest) of every non-empty line; rest may be ''."""
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.strip():
                continue
            parts = line.strip().split(maxsplit=1)
            yield n, parts[0], parts[1] if len(parts) > 1 else ""


def read_wav_scp(path: str | Path, allow_pipes: bool = False) -> list[tuple[int, str, str]]:
    """``wav.scp`` -> [(line number, recording, path or ``command |``)], blank lines skipped.

    Raises ``KaldiDataError`` naming the line for a line without a value, and for a pipe command
    unless ``allow_pipes`` (then nothing has been run).
    """
    path = Path(path)
    entries = []
    for n, key, value in _lines(path):
        value = value.strip()
        if not value:
            raise KaldiDataError(f"{path}:{n}: recording {key!r} has no path or command")
        if value.endswith("|") and not allow_pipes:
            raise KaldiDataError(
                f"{path}:{n}: recording {key!r} is a shell command ({value!r}); wav.scp pipes "
                "run only when allowed: pass --allow-pipes (allow_pipes=True) if you trust this file"
            )
        entries.append((n, key, value))
    return entries


def _run_pipe(name: str, value: str) -> bytes:
    """Runs a ``wav.scp`` pipe (``command |``) through the shell; its stdout, or AudioError."""
    command = value[:-1].strip()
    done = subprocess.run(command, shell=True, capture_output=True, check=False)
    if done.returncode != 0:
        err = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise AudioError(name, value, f"command failed (exit {done.returncode}): {err[0][:200]}")
    return done.stdout


def probe_recording(rec_id: str, value: str) -> Recording:
    """A Recording for a ``wav.scp`` value (from :func:`read_wav_scp`): a file path, or a
    ``command |`` run once for its sample rate and length. Raises ``AudioError`` naming
    ``rec_id`` when the audio cannot be opened."""
    if value.endswith("|"):
        data = _run_pipe(rec_id, value)
        if not data:
            raise AudioError(rec_id, value, "the command wrote no audio")
        try:
            info = sf.info(io.BytesIO(data))
            frames = info.frames
            if frames <= 0:  # a WAV header written to a pipe may not know its length
                frames = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)[0].shape[0]
        except (sf.LibsndfileError, RuntimeError) as e:
            raise AudioError(rec_id, value, f"the command wrote no readable audio ({e})") from e
        cmd = value[:-1].strip()
        source = AudioSource(type="command", channels=list(range(info.channels)), source=cmd)
        return Recording(
            id=rec_id, sources=[source], sampling_rate=info.samplerate,
            num_samples=frames, duration=frames / info.samplerate,
        )  # fmt: skip
    return open_recording(value, rec_id)


def _read_recordings(
    path: Path, skipped: Counter, progress: bool, allow_pipes: bool
) -> dict[str, Recording]:
    recordings = {}
    entries = read_wav_scp(path, allow_pipes)
    for n, key, value in tqdm(entries, desc=f"probing {path}", unit="rec", disable=not progress):
        try:
            recordings[key] = probe_recording(key, value)
        except AudioError as e:
            logger.warning("%s:%d: skipping recording %r: unreadable audio (%s)", path, n, key, e)
            skipped["unreadable_audio"] += 1
    return recordings


@dataclass
class _Segment:
    recording: str
    start: float
    duration: float | None  # None: to the end of the recording


def _read_segments(path: Path, recordings: dict, skipped: Counter) -> dict[str, _Segment]:
    if not path.is_file():  # one utterance per recording
        return {rec: _Segment(rec, 0.0, None) for rec in recordings}
    segments = {}
    for n, utt, rest in _lines(path):
        parts = rest.split()
        try:
            rec, start, end = parts[0], float(parts[1]), float(parts[2])
            if len(parts) != 3 or end <= start or start < 0:
                raise ValueError
        except (ValueError, IndexError):
            raise KaldiDataError(
                f"{path}:{n}: expected 'utt recording start end' with 0 <= start < end "
                f"(seconds), got {utt} {rest!r}"
            ) from None
        if rec not in recordings:
            logger.warning("%s:%d: skipping %r: unknown recording %r", path, n, utt, rec)
            skipped["segment_unknown_recording"] += 1
            continue
        segments[utt] = _Segment(rec, start, end - start)
    return segments


def _read_map(path: Path) -> dict[str, str]:
    return {k: v for _, k, v in _lines(path)} if path.is_file() else {}


@dataclass
class KaldiImport:
    """What ``read_kaldi_dir`` read: manifests plus the count of skipped items by reason."""

    recordings: RecordingSet
    supervisions: SupervisionSet
    cuts: CutSet
    skipped: Counter = field(default_factory=Counter)


def _supervision(utt, seg, rec, owsm, language, speaker, ctc, prev) -> SupervisionSegment:
    task = owsm.task or "asr"
    custom: dict = {}
    if task == "asr":
        transcript = owsm.text
    else:
        custom["translations"] = {task[len("st_") :]: owsm.text}
        transcript = ctc if ctc is not None else ""
    if owsm.timestamps:
        custom["owsm_text"] = owsm.body
    if prev is not None and prev != NA:
        if task == "asr":
            custom["text_prev"] = prev
        else:
            custom["translations_prev"] = {task[len("st_") :]: prev}
    duration = seg.duration if seg.duration is not None else rec.duration - seg.start
    return SupervisionSegment(
        id=utt, recording_id=seg.recording, start=seg.start,
        duration=min(duration, rec.duration - seg.start), channel=0, text=transcript,
        language=language, speaker=speaker, custom=custom or None,
    )  # fmt: skip


def read_kaldi_dir(
    data_dir: str | Path,
    language: str | None = None,
    progress: bool = False,
    allow_pipes: bool = False,
) -> KaldiImport:
    """Reads a Kaldi/ESPnet data directory (see the module docstring) into lhotse manifests.

    language: ISO 639-3 code for ``text`` lines without an OWSM prefix (required if any).
    progress: a progress bar while every recording is probed (opened or its command run).
    allow_pipes: run ``wav.scp`` pipe commands (``cmd |``); without it a pipe is an error.
    """
    d = Path(data_dir)
    for name in ("wav.scp", "text"):
        if not (d / name).is_file():
            raise FileNotFoundError(f"{d}: no {name} (not a Kaldi data directory)")
    skipped: Counter = Counter()
    recordings = _read_recordings(d / "wav.scp", skipped, progress, allow_pipes)
    segments = _read_segments(d / "segments", recordings, skipped)
    utt2spk, ctc, prev = (_read_map(d / n) for n in ("utt2spk", "text.ctc", "text.prev"))
    sups = []
    for n, utt, value in _lines(d / "text"):
        seg = segments.get(utt)
        if seg is None:
            where = "segments" if (d / "segments").is_file() else "wav.scp"
            logger.warning("%s:%d: skipping %r: not in %s", d / "text", n, utt, where)
            skipped["text_unknown_utterance"] += 1
            continue
        owsm = parse_owsm_text(value)
        lang = owsm.language or language
        if lang is None:
            raise KaldiDataError(
                f"{d / 'text'}:{n}: {utt!r} has no <lang><task> prefix; pass a language "
                "(--language eng) for plain Kaldi text"
            )
        rec = recordings[seg.recording]
        speaker = utt2spk.get(utt, utt)
        sups.append(_supervision(utt, seg, rec, owsm, lang, speaker, ctc.get(utt), prev.get(utt)))
    cuts = []
    for sup in sups:
        rec = recordings[sup.recording_id]
        task = "asr" if not (sup.custom or {}).get("translations") else None
        task = task or "st_" + next(iter(sup.custom["translations"]))
        local = SupervisionSegment(**{**sup.to_dict(), "start": 0.0})
        cuts.append(
            MonoCut(
                id=sup.id,
                start=sup.start,
                duration=sup.duration,
                channel=0,
                recording=rec,
                supervisions=[local],
                custom={"task": task},
            )  # fmt: skip
        )
    used = {s.recording_id for s in sups}
    logger.info("%s: %d utterances of %d recordings; skipped %s", d, len(sups), len(used),
                dict(skipped) or "none")  # fmt: skip
    return KaldiImport(
        RecordingSet.from_recordings(recordings[r] for r in sorted(used)),
        SupervisionSet.from_segments(sups),
        CutSet.from_cuts(cuts),
        skipped,
    )


# ---------------------------------------------------------------- writing
def _wav_value(rec: Recording) -> str:
    if len(rec.sources) != 1:
        raise KaldiDataError(f"recording {rec.id!r}: {len(rec.sources)} sources; wav.scp holds one")
    src = rec.sources[0]
    if src.type == "file":
        return str(src.source)
    if src.type == "command":
        return f"{src.source} |"
    raise KaldiDataError(
        f"recording {rec.id!r}: audio source of type {src.type!r} cannot be written to wav.scp "
        "(file and command only)"
    )


@dataclass
class _Utt:
    id: str
    recording: str
    start: float
    end: float
    speaker: str
    language: str
    task: str
    transcript: str
    output: str  # the decoder text: transcript for asr, the translation for st_*
    body: str | None  # a timestamped OWSM body, if any


def _utterance(cut, language: str | None) -> _Utt:
    sup = cut.supervisions[0]
    custom = sup.custom or {}
    task = (cut.custom or {}).get("task", "asr")
    lang = sup.language or language
    if lang is None:
        raise KaldiDataError(f"cut {cut.id!r}: supervision has no language; pass --language")
    output = sup.text or ""
    if task != "asr":
        output = (custom.get("translations") or {}).get(task[len("st_") :])
        if output is None:
            raise KaldiDataError(f"cut {cut.id!r}: task {task} but no translation for it")
    start = cut.start + sup.start
    return _Utt(
        sup.id, cut.recording_id, start, start + sup.duration, sup.speaker or sup.id, lang,
        task, sup.text or "", output, custom.get("owsm_text"),
    )  # fmt: skip


def _previous_texts(utts: list[_Utt]) -> dict[str, str]:
    """OWSM's text.prev: the previous utterance of the same task in the same recording, else
    of the same speaker, in (recording, start) order; ``<na>`` for none."""
    order = sorted(utts, key=lambda u: (u.recording, u.start, u.id))
    last_in_rec: dict[tuple, _Utt] = {}
    last_of_spk: dict[tuple, _Utt] = {}
    prev = {}
    for u in order:
        before = last_in_rec.get((u.recording, u.task)) or last_of_spk.get((u.speaker, u.task))
        prev[u.id] = before.output if before is not None else NA
        last_in_rec[(u.recording, u.task)] = u
        last_of_spk[(u.speaker, u.task)] = u
    return prev


def _seconds(x: float) -> str:
    """Kaldi's usual two decimals, three where the time needs them (ms resolution)."""
    return f"{x:.2f}" if abs(round(x, 2) - x) < 5e-4 else f"{x:.3f}"


def _write(path: Path, rows: Iterable[tuple[str, str]]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for key, value in sorted(rows):
            f.write(f"{key} {value}\n")


def write_kaldi_dir(cuts: CutSet, data_dir: str | Path, language: str | None = None) -> Path:
    """Writes ``cuts`` (one supervision each) as an OWSM data directory (module docstring).

    ``segments`` is left out when every utterance is a whole recording with the same id.
    """
    d = Path(data_dir)
    d.mkdir(parents=True, exist_ok=True)
    utts, recordings, whole = [], {}, True
    for cut in cuts:
        if len(cut.supervisions) != 1:
            raise KaldiDataError(f"cut {cut.id!r}: {len(cut.supervisions)} supervisions; need 1")
        recordings[cut.recording_id] = _wav_value(cut.recording)
        u = _utterance(cut, language)
        utts.append(u)
        full = u.start == 0 and abs(u.end - cut.recording.duration) < 1e-3
        whole = whole and u.id == u.recording and full
    _write(d / "wav.scp", recordings.items())
    if not whole:
        segs = ((u.id, f"{u.recording} {_seconds(u.start)} {_seconds(u.end)}") for u in utts)
        _write(d / "segments", segs)
    else:
        (d / "segments").unlink(missing_ok=True)
    text = ((u.id, format_owsm_text(u.language, u.task, u.output, u.body)) for u in utts)
    _write(d / "text", text)
    _write(d / "text.ctc", ((u.id, u.transcript) for u in utts))
    _write(d / "text.prev", _previous_texts(utts).items())
    _write(d / "utt2spk", ((u.id, u.speaker) for u in utts))
    spk2utt = defaultdict(list)
    for u in sorted(utts, key=lambda u: u.id):
        spk2utt[u.speaker].append(u.id)
    _write(d / "spk2utt", ((s, " ".join(us)) for s, us in spk2utt.items()))
    logger.info("wrote %d utterances of %d recordings to %s", len(utts), len(recordings), d)
    return d
