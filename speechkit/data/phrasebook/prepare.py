"""Builds the phrasebook corpus: plan utterances, synthesise, mix backgrounds, write manifests.

Layout of ``out_dir`` (all audio 16 kHz mono FLAC)::

    audio/<split>/<utt_id>.flac
    {recordings,supervisions,cuts}_<split>.jsonl.gz     split in SPLITS
    stats.json          utterances, hours, speakers, languages and events per split
    prepare_args.json   the arguments of the build; written last, so it marks a complete build

English is spoken by espeak-ng voices and, with ``piper`` (``auto``: when installed), also by the
Piper voice (see ``voices.PIPER_SPEAKERS``); whether Piper was used is part of
``prepare_args.json``, so switching it rebuilds.

Splits: ``train`` (train speakers, seen sentences), ``dev`` (dev speakers, seen sentences),
``test_seen`` (test speakers reading sentences that occur in ``train``) and ``test_novel`` (test
speakers, sentences that never occur in ``train`` or ``dev``). Everything is a pure function of
``PrepareConfig`` minus ``num_jobs``: the same arguments give the same corpus.
"""

from __future__ import annotations

import json
import logging
import math
import multiprocessing
import os
import random
import shutil
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from speechkit.config import ConfigError
from speechkit.data.phrasebook.backgrounds import EVENTS, make_background, mix_at_snr
from speechkit.data.phrasebook.grammar import (
    LANGUAGES,
    Sentence,
    get_sentence,
    split_sentences,
)
from speechkit.data.phrasebook.voices import (
    SAMPLE_RATE,
    PiperSpeaker,
    Speaker,
    find_espeak,
    make_speakers,
    piper_missing,
    synthesize,
)

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
SPLITS = ("train", "dev", "test_seen", "test_novel")
SPLIT_SHARE = {"train": 0.85, "dev": 0.05, "test_seen": 0.05, "test_novel": 0.05}
SPEAKER_POOL = {
    "train": "train",
    "dev": "dev",
    "test_seen": "test",
    "test_novel": "test",
}
MEAN_UTTERANCE_S = 1.95  # measured on the default build (1.93 s); only plans how many to make
MANIFEST_KINDS = ("recordings", "supervisions", "cuts")
PIPER_MODES = ("auto", "on", "off")


@dataclass
class PrepareConfig:
    """What to build. ``hours``: total audio over all splits (train gets 85 %).

    ``language_weights``: e.g. ``{"eng": 2}`` gives English twice the utterances of each other
    language in every split (the recipe's figures are English ASR and English-to-X translation).

    ``piper``: ``auto`` adds the Piper English speakers when the Piper packages are installed,
    ``on`` requires them, ``off`` uses espeak-ng only. Ignored without ``eng`` in ``languages``.
    """

    out_dir: str
    hours: float = 1.0
    seed: int = 0
    num_jobs: int = 2
    languages: list[str] = field(default_factory=lambda: list(LANGUAGES))
    # Below 10 dB, babble made of other phrasebook voices masks the speech for a CPU-sized model:
    # with 5-20 dB the tiny recipe's encoder stayed on the CTC plateau (see the recipe's RESULTS.md).
    snr_min_db: float = 10.0
    snr_max_db: float = 30.0
    novel_fraction: float = 0.1
    piper: str = "auto"
    # Relative share of utterances per language (missing languages weigh 1), in every split.
    language_weights: dict[str, float] = field(default_factory=dict)

    def __post_init__(self):
        if not self.hours > 0:
            raise ConfigError(f"hours must be positive, got {self.hours}")
        if self.num_jobs < 1:
            raise ConfigError(f"num_jobs must be at least 1, got {self.num_jobs}")
        unknown = [lang for lang in self.languages if lang not in LANGUAGES]
        if unknown or not self.languages or len(set(self.languages)) != len(self.languages):
            raise ConfigError(
                f"languages must be distinct codes from {list(LANGUAGES)}, got {self.languages}"
            )
        if not self.snr_min_db <= self.snr_max_db:
            raise ConfigError(f"snr_min_db {self.snr_min_db} > snr_max_db {self.snr_max_db}")
        bad = {k: w for k, w in self.language_weights.items() if k not in self.languages or w <= 0}
        if bad:
            raise ConfigError(
                f"language_weights must be positive and name languages of {self.languages}, "
                f"got {bad}"
            )
        if self.piper not in PIPER_MODES:
            raise ConfigError(f"piper must be one of {list(PIPER_MODES)}, got {self.piper!r}")

    def uses_piper(self) -> bool:
        """Whether the build adds Piper speakers; RuntimeError for ``on`` when Piper is missing."""
        if self.piper == "off" or "eng" not in self.languages:
            return False
        missing = piper_missing()
        if missing and self.piper == "on":
            raise RuntimeError(f"--piper on, but {missing}")
        return missing is None

    def build_args(self) -> dict:
        """The arguments that determine the corpus (``num_jobs`` and ``out_dir`` do not).

        ``piper`` is recorded as resolved (True/False), not as asked for: ``auto`` gives a
        different corpus depending on what is installed.
        """
        args = asdict(self)
        del args["num_jobs"], args["out_dir"]
        args["piper"] = self.uses_piper()
        return {"format_version": FORMAT_VERSION, **args}


@dataclass(frozen=True)
class Utterance:
    """One planned utterance. ``snr_db`` is the drawn target (None for ``clean``)."""

    utt_id: str
    split: str
    index: int
    speaker: Speaker | PiperSpeaker
    sentence_id: str
    event: str
    snr_db: float | None

    @property
    def sentence(self) -> Sentence:
        return get_sentence(self.sentence_id)

    @property
    def text(self) -> str:
        return self.sentence.texts[self.speaker.language]


# ---- planning --------------------------------------------------------------------------------
def _sample_balanced(pool: list[Sentence], rng: random.Random) -> Sentence:
    """Picks a template uniformly, then one of its sentences, so small templates are not rare."""
    by_template: dict[str, list[Sentence]] = {}
    for s in pool:
        by_template.setdefault(s.template, []).append(s)
    return rng.choice(by_template[rng.choice(sorted(by_template))])


def _num_utterances(cfg: PrepareConfig, split: str) -> int:
    wanted = round(cfg.hours * 3600 * SPLIT_SHARE[split] / MEAN_UTTERANCE_S)
    # At least one utterance per language: the schedule keeps each count within one of its
    # share, so the lightest language needs a share of at least one.
    weights = [cfg.language_weights.get(lang, 1.0) for lang in cfg.languages]
    return max(wanted, math.ceil(sum(weights) / min(weights) - 1e-9))


def language_schedule(languages: list[str], weights: dict[str, float], n: int) -> list[str]:
    """``n`` languages interleaved in proportion to ``weights`` (missing ones weigh 1).

    Each position goes to the language furthest behind its share (ties: the first in
    ``languages``), so any prefix is within one utterance per language of the exact shares; with
    equal weights this is plain round-robin.
    """
    w = {lang: Fraction(str(weights.get(lang, 1.0))) for lang in languages}
    total = sum(w.values())
    counts = dict.fromkeys(languages, 0)
    out = []
    for i in range(n):
        lang = max(languages, key=lambda lang: w[lang] * (i + 1) / total - counts[lang])
        counts[lang] += 1
        out.append(lang)
    return out


def plan_corpus(cfg: PrepareConfig) -> list[Utterance]:
    """Every utterance of the corpus, split by split, languages interleaved by weight."""
    speakers = make_speakers(cfg.languages, cfg.seed, piper=cfg.uses_piper())
    sentences = split_sentences(cfg.seed, cfg.novel_fraction)
    train_ids: set[str] = set()
    plan = []
    for split in SPLITS:
        rng = random.Random(f"phrasebook-plan/{cfg.seed}/{split}")
        if split == "test_seen":
            pool = [get_sentence(sid) for sid in sorted(train_ids)]
        else:
            pool = sentences["novel" if split == "test_novel" else "seen"]
        n = _num_utterances(cfg, split)
        per_language = dict.fromkeys(cfg.languages, 0)
        for i, lang in enumerate(language_schedule(cfg.languages, cfg.language_weights, n)):
            voices = [s for s in speakers[SPEAKER_POOL[split]] if s.language == lang]
            speaker = voices[per_language[lang] % len(voices)]  # each voice in turn
            per_language[lang] += 1
            sentence = _sample_balanced(pool, rng)
            event = rng.choice(EVENTS)
            snr = (
                None if event == "clean" else round(rng.uniform(cfg.snr_min_db, cfg.snr_max_db), 2)
            )
            utt_id = f"phrasebook-{split}-{i:05d}"
            plan.append(Utterance(utt_id, split, i, speaker, sentence.sentence_id, event, snr))
            if split == "train":
                train_ids.add(sentence.sentence_id)
    return plan


def _babble_sources(plan: list[Utterance], utt: Utterance, rng: random.Random) -> list[int]:
    """Indices (into ``plan``) of 3-6 utterances of the same split by other speakers."""
    same_split = [i for i, u in enumerate(plan) if u.split == utt.split and u.utt_id != utt.utt_id]
    others = [i for i in same_split if plan[i].speaker != utt.speaker]
    candidates = others or same_split or [i for i, u in enumerate(plan) if u is not utt]
    return rng.sample(candidates, min(len(candidates), rng.randint(3, 6)))


# ---- workers (module level so that process pools can pickle them) ----------------------------
def _synth_job(job: tuple[str, Speaker | PiperSpeaker, str]) -> np.ndarray:
    text, speaker, espeak = job
    return synthesize(text, speaker, espeak)


def _mix_job(job: tuple) -> tuple[float, float | None]:
    """Mixes one utterance and writes its FLAC. Returns (duration in s, achieved SNR or None)."""
    utt, speech, sources, path, seed = job
    if utt.event == "clean":
        audio, snr = speech, None
    else:
        rng = np.random.default_rng([seed, SPLITS.index(utt.split), utt.index])
        bg = make_background(utt.event, len(speech), rng, sources, SAMPLE_RATE)
        audio, snr = mix_at_snr(speech, bg, utt.snr_db)
    tmp = f"{path}.tmp.flac"
    sf.write(tmp, audio, SAMPLE_RATE, subtype="PCM_16")
    os.replace(tmp, path)
    return len(audio) / SAMPLE_RATE, (None if snr is None else round(snr, 3))


def _make_pool(num_jobs: int):
    """A process pool, or None for ``num_jobs == 1`` (run inline, handy for tests and debugging).

    Fork where the platform has it: workers then skip re-importing speechkit (and torch), which
    costs seconds per worker. The parent runs no torch ops before this point, so forking is safe.
    """
    if num_jobs == 1:
        return None
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn").Pool(num_jobs)


def _run_jobs(fn, jobs: list, pool, desc: str) -> list:
    """``[fn(job) for job in jobs]`` with a progress bar, over ``pool`` (None: inline)."""
    if pool is None:
        return [fn(job) for job in tqdm(jobs, desc=desc, unit="utt")]
    results = pool.imap(fn, jobs, chunksize=8)
    return list(tqdm(results, total=len(jobs), desc=desc, unit="utt"))


# ---- manifests and bookkeeping ---------------------------------------------------------------
def _make_cut(utt: Utterance, path: Path, duration: float, snr: float | None):
    from lhotse import AudioSource, MonoCut, Recording, SupervisionSegment

    num_samples = round(duration * SAMPLE_RATE)
    rec = Recording(
        id=utt.utt_id,
        sources=[AudioSource(type="file", channels=[0], source=str(path))],
        sampling_rate=SAMPLE_RATE,
        num_samples=num_samples,
        duration=num_samples / SAMPLE_RATE,
    )
    lang = utt.speaker.language
    texts = utt.sentence.texts
    sup = SupervisionSegment(
        id=utt.utt_id,
        recording_id=utt.utt_id,
        start=0.0,
        duration=rec.duration,
        channel=0,
        text=texts[lang],
        language=lang,
        speaker=utt.speaker.speaker_id,
        custom={"translations": {other: t for other, t in texts.items() if other != lang}},
    )
    custom = {"event": utt.event, "snr_db": snr, "sentence_id": utt.sentence_id}
    return MonoCut(
        id=utt.utt_id,
        start=0.0,
        duration=rec.duration,
        channel=0,
        recording=rec,
        supervisions=[sup],
        custom=custom,
    )


def manifest_path(out_dir: str | Path, kind: str, split: str) -> Path:
    """``out_dir/<kind>_<split>.jsonl.gz``, kind in ``MANIFEST_KINDS``."""
    return Path(out_dir) / f"{kind}_{split}.jsonl.gz"


def _write_manifests(out_dir: Path, cuts_by_split: dict[str, list]) -> None:
    """Writes all manifests into a staging folder first, then moves them in."""
    from lhotse import CutSet, RecordingSet, SupervisionSet

    staging = out_dir / ".staging"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    for split, cuts in cuts_by_split.items():
        CutSet.from_cuts(cuts).to_file(manifest_path(staging, "cuts", split))
        RecordingSet.from_recordings(c.recording for c in cuts).to_file(
            manifest_path(staging, "recordings", split)
        )
        SupervisionSet.from_segments(c.supervisions[0] for c in cuts).to_file(
            manifest_path(staging, "supervisions", split)
        )
    for split in cuts_by_split:
        for kind in MANIFEST_KINDS:
            os.replace(manifest_path(staging, kind, split), manifest_path(out_dir, kind, split))
    staging.rmdir()


def corpus_stats(cuts_by_split: dict[str, list]) -> dict:
    """Per split: utterances, hours, mean duration, speakers, languages and events."""
    stats = {}
    for split, cuts in cuts_by_split.items():
        seconds = sum(c.duration for c in cuts)
        stats[split] = {
            "utterances": len(cuts),
            "hours": round(seconds / 3600, 4),
            "mean_duration_s": round(seconds / max(1, len(cuts)), 3),
            "speakers": len({c.supervisions[0].speaker for c in cuts}),
            "sentences": len({c.custom["sentence_id"] for c in cuts}),
            "languages": dict(Counter(c.supervisions[0].language for c in cuts)),
            "events": dict(Counter(c.custom["event"] for c in cuts)),
        }
    return stats


def is_complete(out_dir: str | Path, cfg: PrepareConfig) -> bool:
    """True when ``out_dir`` holds every manifest of a finished build with the same arguments."""
    args_file = Path(out_dir) / "prepare_args.json"
    if not args_file.is_file():
        return False
    try:
        previous = json.loads(args_file.read_text())
    except json.JSONDecodeError:
        return False
    manifests = [manifest_path(out_dir, k, s) for k in MANIFEST_KINDS for s in SPLITS]
    return previous == cfg.build_args() and all(p.is_file() for p in manifests)


def _write_json(path: Path, obj: dict) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def _mix_jobs(cfg: PrepareConfig, out_dir: Path, plan: list[Utterance], speech: list):
    """Arguments of ``_mix_job`` for every utterance, and the FLAC path of each."""
    jobs, paths = [], []
    for u, wave in zip(plan, speech, strict=True):
        path = out_dir / "audio" / u.split / f"{u.utt_id}.flac"
        path.parent.mkdir(parents=True, exist_ok=True)
        sources = []
        if u.event == "babble":
            rng = random.Random(f"phrasebook-babble/{cfg.seed}/{u.utt_id}")
            sources = [speech[i] for i in _babble_sources(plan, u, rng)]
        jobs.append((u, wave, sources, str(path), cfg.seed))
        paths.append(path)
    return jobs, paths


# ---- the build -------------------------------------------------------------------------------
def _log_piper_choice(cfg: PrepareConfig) -> None:
    """One log line saying whether English gets the Piper voice, and why not if it does not."""
    if cfg.uses_piper():
        logger.info("phrasebook: Piper English voice installed; adding Piper speakers")
    elif cfg.piper == "off":
        logger.info("phrasebook: Piper disabled (--piper off); espeak-ng voices only")
    elif "eng" not in cfg.languages:
        logger.info("phrasebook: no English in %s; Piper not used", cfg.languages)
    else:
        logger.info("phrasebook: Piper not used: %s", piper_missing())


def prepare_phrasebook(cfg: PrepareConfig) -> dict:
    """Builds the corpus in ``cfg.out_dir`` (or skips when a complete identical build is there).

    Returns the stats dict written to ``stats.json``.
    """
    out_dir = Path(cfg.out_dir).resolve()
    _log_piper_choice(cfg)
    if is_complete(out_dir, cfg):
        logger.info("phrasebook corpus in %s is complete for these arguments; skipping", out_dir)
        return json.loads((out_dir / "stats.json").read_text())
    espeak = find_espeak()
    start = time.time()
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "prepare_args.json").unlink(missing_ok=True)  # no longer a complete build

    plan = plan_corpus(cfg)
    logger.info("phrasebook: synthesising %d utterances with %d jobs", len(plan), cfg.num_jobs)
    pool = _make_pool(cfg.num_jobs)
    try:
        synth_jobs = [(u.text, u.speaker, espeak) for u in plan]
        speech = _run_jobs(_synth_job, synth_jobs, pool, "synthesise")
        mix_jobs, paths = _mix_jobs(cfg, out_dir, plan, speech)
        mixed = _run_jobs(_mix_job, mix_jobs, pool, "mix+write")
    finally:
        if pool is not None:
            pool.close()
            pool.join()

    cuts_by_split: dict[str, list] = {split: [] for split in SPLITS}
    for u, path, (duration, snr) in zip(plan, paths, mixed, strict=True):
        cuts_by_split[u.split].append(_make_cut(u, path, duration, snr))
    _write_manifests(out_dir, cuts_by_split)

    stats = corpus_stats(cuts_by_split)
    stats["build_seconds"] = round(time.time() - start, 1)
    stats["num_jobs"] = cfg.num_jobs
    _write_json(out_dir / "stats.json", stats)
    _write_json(out_dir / "prepare_args.json", cfg.build_args())
    total_h = sum(s["hours"] for s in stats.values() if isinstance(s, dict))
    logger.info(
        "phrasebook: %d utterances, %.3f h in %.0f s -> %s",
        len(plan),
        total_h,
        stats["build_seconds"],
        out_dir,
    )
    return stats
