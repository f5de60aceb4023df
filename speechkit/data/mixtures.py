"""Separation mixtures from the phrasebook corpus, with their sources kept, as a lhotse corpus.

Clean speech is the corpus's ``clean`` cuts (its other cuts already carry a background and have
no clean reference). Each clean utterance of a split becomes ``per_utterance[split]`` mixtures:
the utterance under one of the corpus's background classes (``noise``, ``babble``, ``beeps``,
``music``, made by ``speechkit.data.phrasebook.backgrounds``) or under another speaker of the same
split (event ``speaker``), at an SNR drawn from ``[snr_min_db, snr_max_db]`` (for test splits the
SNR cycles through the 5 dB bands, so every band is equally filled).

Layout of ``out_dir`` (16 kHz mono 24-bit FLAC; 24 bits keep the quantisation error of
``speech + interference - mixture`` near 1e-7)::

    audio/<split>/<mix_id>.flac          the mixture
    audio/<split>/<mix_id>.speech.flac   the target speech, scaled as it is in the mixture
    audio/<split>/<mix_id>.interf.flac   everything else in the mixture (background or speaker)
    cuts_<split>.jsonl.gz                one MonoCut per mixture (below)
    cuts_<split>_speech.jsonl.gz         the target speech of each mixture as a cut of its own
                                         (``speech_cuts``: the clean condition for a recogniser)
    mix_args.json                        the arguments; written last, marks a complete build

A mixture cut carries the supervision of its speech (text, language, speaker, translations) and:

* ``cut.custom["event"]``: ``noise`` | ``babble`` | ``beeps`` | ``music`` | ``speaker``;
* ``cut.custom["snr_db"]``: speech over interference in dB (exact, after any peak scaling);
* ``cut.custom["speech"]`` / ``["interference"]``: lhotse ``Recording`` of each source
  (``cut.load_speech()``, ``cut.load_interference()``: arrays (1, samples));
* ``cut.custom["enroll"]``: a ``Recording`` of another clean utterance of the target speaker (for
  target-speaker extraction; absent when the speaker has none; load it with
  ``cut.custom["enroll"].load_audio()``, as its length is not the cut's), ``["enroll_id"]``;
* ``cut.custom["interferer"]``: the other speaker's id (event ``speaker`` only);
* ``cut.custom["source_cut"]``, ``["sentence_id"]``: where the speech came from.

A mixture cut may instead be a lhotse ``MixedCut`` that keeps its sources as tracks (LibriMix,
``speechkit.data.corpora.librimix``): its first ``cut.custom["speech_tracks"]`` tracks are the
target speech, the others the interference; ``event``, ``snr_db`` and (two talkers)
``enroll``, ``enroll_id``, ``interferer`` are as above.
:func:`load_mixture` reads either kind.

    make_mixtures(MixtureConfig(corpus_dir="data/phrasebook", out_dir="data/mixtures"))
"""

from __future__ import annotations

import json
import logging
import os
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from speechkit.config import ConfigError
from speechkit.data.phrasebook.backgrounds import EVENTS, make_background, power_db

__all__ = [
    "BACKGROUNDS",
    "MIX_EVENTS",
    "MixtureConfig",
    "is_complete",
    "load_mixture",
    "make_mixtures",
    "snr_band",
    "speech_cuts",
]

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000
BACKGROUNDS = tuple(e for e in EVENTS if e != "clean")  # noise, babble, beeps, music
MIX_EVENTS = (*BACKGROUNDS, "speaker")
FORMAT_VERSION = 2
# Output split -> the corpus splits whose clean cuts it uses (speakers never cross splits).
SOURCE_SPLITS = {"train": ["train"], "dev": ["dev"], "test": ["test_seen", "test_novel"]}
_PEAK = 0.95


def load_mixture(cut) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mixture, target speech, interference) of a mixture cut with sources as files or as
    tracks (module docstring), float32 (samples,) each; the mixture is the sum of the other two
    (for files, up to their 24-bit rounding)."""
    if "speech_tracks" not in cut.custom:
        return cut.load_audio()[0], cut.load_speech()[0], cut.load_interference()[0]
    n = cut.custom["speech_tracks"]
    tracks = [wave[0] for wave in cut.load_audio(mixed=False)]  # each padded to the mixture
    speech, interference = (np.sum(part, axis=0).astype(np.float32)
                            for part in (tracks[:n], tracks[n:]))  # fmt: skip
    # lhotse's mixer may round the length one sample off the cut's
    size = cut.num_samples
    speech, interference = (np.pad(x[:size], (0, max(0, size - len(x))))
                            for x in (speech, interference))  # fmt: skip
    return speech + interference, speech, interference


def speech_cuts(cuts) -> list:
    """The target speech of each file mixture cut (``make_mixtures``; not LibriMix's tracks) as
    a cut of its own, id ``<mix_id>.speech``, with the mixture's supervision (text, language,
    translations) and ``custom["event"] = "clean"``, so that ``speechkit decode`` scores a
    recogniser on exactly the speech under the mixtures."""
    from lhotse import MonoCut
    from lhotse.utils import fastcopy

    out = []
    for cut in cuts:
        rec = cut.custom["speech"]
        sup = fastcopy(cut.supervisions[0], id=rec.id, recording_id=rec.id)
        custom = {k: cut.custom[k] for k in ("sentence_id", "source_cut") if k in cut.custom}
        out.append(MonoCut(id=rec.id, start=0.0, duration=cut.duration, channel=0, recording=rec,
                           supervisions=[sup], custom={**custom, "event": "clean",
                                                       "mixture": cut.id}))  # fmt: skip
    return out


def snr_band(snr_db: float) -> str:
    """The 5 dB band of an SNR, as reported in RESULTS.md: ``[-5,0)`` ... ``[10,15]``."""
    low = int(np.floor(min(max(snr_db, -5.0), 14.999) / 5.0) * 5)
    return f"[{low},{low + 5}{']' if low == 10 else ')'}"


@dataclass
class MixtureConfig:
    """What to build. ``per_utterance``: mixtures per clean utterance, by output split.

    ``speaker_share``: fraction of mixtures whose interference is another speaker (the rest get
    a background class, in turn). ``babble_talkers``: (min, max) other utterances in babble.
    """

    corpus_dir: str
    out_dir: str
    per_utterance: dict[str, int] = field(default_factory=lambda: {"train": 4, "dev": 2, "test": 5})
    snr_min_db: float = -5.0
    snr_max_db: float = 15.0
    speaker_share: float = 0.2
    babble_talkers: tuple[int, int] = (3, 6)
    seed: int = 0

    def __post_init__(self) -> None:
        unknown = sorted(set(self.per_utterance) - set(SOURCE_SPLITS))
        if unknown:
            raise ConfigError(
                f"per_utterance: unknown splits {unknown}; known {list(SOURCE_SPLITS)}"
            )
        if any(n < 1 for n in self.per_utterance.values()):
            raise ConfigError(f"per_utterance counts must be >= 1, got {self.per_utterance}")
        if not self.snr_min_db <= self.snr_max_db:
            raise ConfigError(f"snr_min_db {self.snr_min_db} > snr_max_db {self.snr_max_db}")
        if not 0.0 <= self.speaker_share <= 1.0:
            raise ConfigError(f"speaker_share must lie in [0, 1], got {self.speaker_share}")
        low, high = self.babble_talkers
        if not 1 <= low <= high:
            raise ConfigError(f"babble_talkers must be 1 <= min <= max, got {self.babble_talkers}")

    def build_args(self) -> dict:
        args = asdict(self)
        args["babble_talkers"] = list(self.babble_talkers)
        del args["out_dir"]
        args["corpus_dir"] = str(Path(self.corpus_dir).resolve())
        return {"format_version": FORMAT_VERSION, **args}


@dataclass
class _Source:
    """A clean utterance: its cut and its audio (float32 (samples,))."""

    cut: object
    wave: np.ndarray

    @property
    def speaker(self) -> str:
        return self.cut.supervisions[0].speaker


def _clean_sources(corpus_dir: Path, split: str) -> list[_Source]:
    from lhotse import CutSet

    sources = []
    for part in SOURCE_SPLITS[split]:
        path = corpus_dir / f"cuts_{part}.jsonl.gz"
        if not path.is_file():
            raise FileNotFoundError(f"phrasebook manifest not found: {path}")
        for cut in CutSet.from_file(path):
            if cut.custom.get("event") == "clean":
                wave = cut.load_audio().mean(axis=0).astype(np.float32)
                sources.append(_Source(cut, wave))
    return sources


def _fit_length(wave: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``wave`` cropped (random start) or zero-padded (random offset) to ``n`` samples."""
    if len(wave) >= n:
        start = int(rng.integers(0, len(wave) - n + 1))
        return wave[start : start + n]
    out = np.zeros(n, np.float32)
    start = int(rng.integers(0, n - len(wave) + 1))
    out[start : start + len(wave)] = wave
    return out


def _mix(speech: np.ndarray, interference: np.ndarray, snr_db: float):
    """Scales ``interference`` to ``snr_db`` under ``speech``; both scaled down together if the
    mixture would clip. Returns (mixture, speech, interference, exact SNR in dB)."""
    gain = 10 ** ((power_db(speech) - snr_db - power_db(interference)) / 20)
    interference = interference * gain
    mixture = speech + interference
    top = float(np.max(np.abs(mixture)))
    scale = _PEAK / top if top > _PEAK else 1.0
    speech, interference = speech * scale, interference * scale
    snr = power_db(speech) - power_db(interference)
    return (speech + interference).astype(np.float32), speech, interference, snr


def _recording(path: Path, rec_id: str, num_samples: int):
    from lhotse import AudioSource, Recording

    return Recording(
        id=rec_id,
        sources=[AudioSource(type="file", channels=[0], source=str(path))],
        sampling_rate=SAMPLE_RATE,
        num_samples=num_samples,
        duration=num_samples / SAMPLE_RATE,
    )


def _write(path: Path, wave: np.ndarray) -> None:
    tmp = path.with_name(path.name + ".tmp.flac")
    sf.write(tmp, np.clip(wave, -1.0, 1.0), SAMPLE_RATE, subtype="PCM_24")
    os.replace(tmp, path)


def _draw_snr(cfg: MixtureConfig, split: str, index: int, rng: random.Random) -> float:
    if split != "test":
        return round(rng.uniform(cfg.snr_min_db, cfg.snr_max_db), 2)
    # Test: cycle through the 5 dB bands, uniform inside each band.
    edges = np.arange(cfg.snr_min_db, cfg.snr_max_db, 5.0)
    low = float(edges[index % len(edges)])
    return round(rng.uniform(low, min(low + 5.0, cfg.snr_max_db)), 2)


def _interference(event, target, pool, n, rng, nprng, cfg):
    """The raw interference of a mixture (float32 (n,)) and, for ``speaker``, the other source."""
    others = [s for s in pool if s.speaker != target.speaker] or [
        s for s in pool if s is not target
    ]
    if event == "speaker":
        other = rng.choice(others)
        return _fit_length(other.wave, n, nprng), other
    talkers = rng.sample(others, min(len(others), rng.randint(*cfg.babble_talkers)))
    return make_background(event, n, nprng, [t.wave for t in talkers], SAMPLE_RATE), None


def _mixture_cut(mix_id, target, event, snr, paths, n, other, enroll):
    from lhotse import MonoCut, SupervisionSegment

    sup = target.cut.supervisions[0]
    duration = n / SAMPLE_RATE
    supervision = SupervisionSegment(
        id=mix_id,
        recording_id=mix_id,
        start=0.0,
        duration=duration,
        channel=0,
        text=sup.text,
        language=sup.language,
        speaker=sup.speaker,
        custom=dict(sup.custom or {}),
    )
    custom = {
        "event": event,
        "snr_db": round(snr, 3),
        "sentence_id": target.cut.custom.get("sentence_id"),
        "source_cut": target.cut.id,
        "speech": _recording(paths["speech"], f"{mix_id}.speech", n),
        "interference": _recording(paths["interf"], f"{mix_id}.interf", n),
    }
    if other is not None:
        custom["interferer"] = other.speaker
    if enroll is not None:
        custom["enroll"] = enroll.cut.recording
        custom["enroll_id"] = enroll.cut.id
    return MonoCut(
        id=mix_id,
        start=0.0,
        duration=duration,
        channel=0,
        recording=_recording(paths["mix"], mix_id, n),
        supervisions=[supervision],
        custom=custom,
    )


def _make_split(cfg: MixtureConfig, split: str, out_dir: Path) -> list:
    pool = _clean_sources(Path(cfg.corpus_dir), split)
    if len(pool) < 2:
        raise ValueError(
            f"split {split!r}: {len(pool)} clean utterances in {cfg.corpus_dir}; mixtures need "
            "at least 2 (build a bigger phrasebook corpus)"
        )
    rng = random.Random(f"mixtures/{cfg.seed}/{split}")
    audio_dir = out_dir / "audio" / split
    audio_dir.mkdir(parents=True, exist_ok=True)
    cuts, index = [], 0
    for target in pool:
        same = [s for s in pool if s.speaker == target.speaker and s is not target]
        for _ in range(cfg.per_utterance[split]):
            mix_id = f"mix-{split}-{index:05d}"
            # Enrollment clip: another utterance of the target speaker (none: no enroll field).
            enroll = rng.choice(same) if same else None
            # Classes in turn, changing every 4 mixtures: with the test split's SNR bands
            # cycling every mixture, each (class, band) pair is equally filled.
            background = BACKGROUNDS[(index // 4) % len(BACKGROUNDS)]
            event = "speaker" if rng.random() < cfg.speaker_share else background
            nprng = np.random.default_rng([cfg.seed, list(SOURCE_SPLITS).index(split), index])
            n = len(target.wave)
            raw, other = _interference(event, target, pool, n, rng, nprng, cfg)
            snr_target = _draw_snr(cfg, split, index, rng)
            mixture, speech, interf, snr = _mix(target.wave, raw, snr_target)
            paths = {
                "mix": audio_dir / f"{mix_id}.flac",
                "speech": audio_dir / f"{mix_id}.speech.flac",
                "interf": audio_dir / f"{mix_id}.interf.flac",
            }
            for key, wave in (("mix", mixture), ("speech", speech), ("interf", interf)):
                _write(paths[key], wave)
            cuts.append(_mixture_cut(mix_id, target, event, snr, paths, n, other, enroll))
            index += 1
    return cuts


def is_complete(cfg: MixtureConfig) -> bool:
    """True when ``cfg.out_dir`` holds a finished build with the same arguments."""
    marker = Path(cfg.out_dir) / "mix_args.json"
    if not marker.is_file():
        return False
    done = json.loads(marker.read_text()) == cfg.build_args()
    return done and all(
        (Path(cfg.out_dir) / f"cuts_{s}{part}.jsonl.gz").is_file()
        for s in cfg.per_utterance
        for part in ("", "_speech")
    )


def make_mixtures(cfg: MixtureConfig) -> dict[str, int]:
    """Builds every split of ``cfg.per_utterance`` (skips a complete identical build).

    Returns the number of mixtures per split.
    """
    from lhotse import CutSet

    out_dir = Path(cfg.out_dir)
    if is_complete(cfg):
        logger.info("mixtures in %s are complete for these arguments; skipping", out_dir)
        return {s: len(CutSet.from_file(out_dir / f"cuts_{s}.jsonl.gz")) for s in cfg.per_utterance}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "mix_args.json").unlink(missing_ok=True)
    counts = {}
    for split in cfg.per_utterance:
        cuts = _make_split(cfg, split, out_dir)
        CutSet.from_cuts(cuts).to_file(out_dir / f"cuts_{split}.jsonl.gz")
        CutSet.from_cuts(speech_cuts(cuts)).to_file(out_dir / f"cuts_{split}_speech.jsonl.gz")
        counts[split] = len(cuts)
        logger.info("mixtures: %s: %d mixtures", split, len(cuts))
    marker = out_dir / "mix_args.json"
    marker.with_suffix(".tmp").write_text(json.dumps(cfg.build_args(), indent=2) + "\n")
    os.replace(marker.with_suffix(".tmp"), marker)
    return counts
