"""LibriMix (Libri2Mix): two LibriSpeech talkers, optionally over WHAM! noise, by lhotse's recipe.

LibriMix is distributed as metadata, not audio: each mixture is two LibriSpeech utterances at
given gains over a WHAM! noise at a given gain, and LibriMix's script writes the audio (about
430 GB for every variant). lhotse's recipe (``lhotse.recipes.prepare_librimix``) builds the same
mixtures without writing them, as lhotse ``MixedCut``s of the LibriSpeech and WHAM! recordings
with the gains as volume transforms. It reads, under ``data_root`` (where lhotse's downloaders,
``--download true``, put them)::

    LibriSpeech/<part>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac   (+ .trans.txt)
    wham_noise/{tr,cv,tt}/<name>.wav          16 kHz, two channels (channel 0 is mixed in)
    metadata/Libri2Mix/libri2mix_<part>.csv   mixture_ID, source_1_path, source_1_gain,
        source_2_path, source_2_gain, noise_path, noise_gain: one mixture a row, paths relative
        to LibriSpeech/ and wham_noise/; training noises named ``...sp08.wav`` / ``...sp12.wav``
        are LibriMix's slowed / quickened copies, which lhotse makes by speed perturbation

Parts: ``train-clean-360`` (50,800 mixtures; LibriMix's usual training set) and/or
``train-clean-100`` (13,900), ``dev-clean`` and ``test-clean`` (3,000 each). lhotse's recipe
builds 16 kHz ``max`` mixtures (as long as the longer utterance); ``mode="min"`` (the common
benchmark, mixtures ending with the shorter utterance) truncates them, which is how LibriMix
makes its ``min`` mixtures. LibriMix's 8 kHz variants are not built: the separation task runs at
16 kHz.

:func:`prepare_librimix` checks the corpus (a missing part, noise split or metadata file, or
metadata rows whose audio is absent, are a :class:`CorpusError` naming them), runs lhotse's
LibriSpeech, WHAM! and LibriMix recipes (their manifests cached under ``out_dir/lhotse/``, with
the WHAM! noises lhotse lengthens for mixtures longer than them), converts the mixtures to
separation cuts and writes ``out_dir/cuts_{train,dev,test}.jsonl.gz`` and, last,
``prepare_args.json``.

Separation cuts (read by ``speechkit.tasks.separation`` and ``speechkit.bench.separation``
through ``speechkit.data.mixtures.load_mixture``) stay lhotse ``MixedCut``s, re-ordered so that
the first ``custom["speech_tracks"]`` tracks are the target and the rest the interference:

* ``mix="clean"`` (two talkers): two cuts a mixture, ``<mixture_ID>-1`` and ``-2``, asking for
  source 1 or 2; ``custom["event"] = "speaker"``, ``["interferer"]`` the other speaker, and
  ``["enroll"]`` / ``["enroll_id"]`` a ``Recording`` of another LibriSpeech utterance of the
  target speaker in the same part (for target-speaker extraction; absent when the speaker has
  no other utterance there). A ``speech`` class query is answered by either talker
  (permutation-invariant, as in the task).
* ``mix="both"`` (two talkers and noise): one cut a mixture, ``<mixture_ID>-noisy``: target
  both talkers, interference the noise, ``custom["event"] = "noise"`` (speech extraction).

``custom["snr_db"]``: target over interference in dB on dev and test cuts (read from the audio;
``speechkit.bench.separation`` reports by SNR band), ``None`` on training cuts (nothing in
training reads it, and reading every training mixture for it would take as long as an epoch).
Supervisions follow speechkit's conventions (``eng``, ``librispeech-<id>`` speakers, lower-case
text); the first is the target's.

    prepare_librimix(LibriMixConfig(data_root="/data", out_dir="data/librimix"))
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import random
import re
import shutil
from collections import defaultdict
from pathlib import Path
from typing import Literal

import numpy as np
from lhotse import CutSet
from lhotse.cut import MixedCut
from lhotse.utils import fastcopy
from tqdm import tqdm

from speechkit.config import ConfigError
from speechkit.data.corpora.common import (
    CorpusError,
    cuts_path,
    is_prepared,
    mark_prepared,
    write_cuts,
)
from speechkit.data.corpora.librispeech import DOWNLOAD_HINT as LIBRISPEECH_HINT
from speechkit.data.corpora.librispeech import check_librispeech, find_librispeech

__all__ = ["MIXES", "TRAIN_PARTS", "LibriMixConfig", "check_librimix", "prepare_librimix"]

logger = logging.getLogger(__name__)

TRAIN_PARTS = ("train-clean-100", "train-clean-360")
DEV_PART, TEST_PART = "dev-clean", "test-clean"
MIXES = ("clean", "both")
COLUMNS = ("mixture_ID", "source_1_path", "source_1_gain", "source_2_path", "source_2_gain",
           "noise_path", "noise_gain")  # fmt: skip
WHAM_SPLITS = ("tr", "cv", "tt")  # lhotse's recipe loads all three
FORMAT_VERSION = 1
_SPEED_SUFFIX = re.compile(r"sp(08|12)$")  # LibriMix's speed-perturbed training noises
DOWNLOAD_HINT = (
    "LibriMix's audio is generated, not downloaded; lhotse builds the mixtures from LibriSpeech, "
    "WHAM!'s noise and LibriMix's metadata, which `--download true` fetches into <data_root> "
    "(lhotse's download_librispeech, download_wham and download_librimix: the LibriSpeech parts "
    "from https://www.openslr.org/12, wham_noise.zip, about 17 GB, and the metadata CSVs of "
    "https://github.com/JorisCos/LibriMix)"
)


@dataclasses.dataclass
class LibriMixConfig:
    """What to prepare.

    data_root: holds ``LibriSpeech/``, ``wham_noise/`` and ``metadata/`` (module docstring).
    out_dir: where the manifests go (and lhotse's, under ``lhotse/``).
    train_parts: LibriSpeech parts whose Libri2Mix mixtures are the training set.
    mix: ``clean`` (two talkers; target-speaker cuts) and/or ``both`` (two talkers and noise;
        speech-extraction cuts).
    mode: ``min`` (mixtures end with the shorter utterance) or ``max`` (with the longer).
    download: fetch the missing inputs first (needs the network).
    num_jobs: threads for lhotse's recipes.
    seed: picks each target's enrollment utterance.
    """

    data_root: str
    out_dir: str
    train_parts: list[str] = dataclasses.field(default_factory=lambda: ["train-clean-360"])
    mix: list[str] = dataclasses.field(default_factory=lambda: ["clean"])
    mode: Literal["min", "max"] = "min"
    download: bool = False
    num_jobs: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        unknown = [p for p in self.train_parts if p not in TRAIN_PARTS]
        if unknown or not self.train_parts:
            raise ConfigError(f"LibriMix train_parts: need some of {TRAIN_PARTS}, got {unknown}")
        bad = [m for m in self.mix if m not in MIXES]
        if bad or not self.mix:
            raise ConfigError(f"LibriMix mix: need some of {MIXES}, got {self.mix}")
        if self.mode not in ("min", "max"):
            raise ConfigError(f"LibriMix mode: min or max, got {self.mode!r}")
        if self.num_jobs < 1:
            raise ConfigError(f"num_jobs must be >= 1, got {self.num_jobs}")

    @property
    def parts(self) -> dict[str, list[str]]:
        """LibriSpeech parts by output split."""
        return {"train": list(self.train_parts), "dev": [DEV_PART], "test": [TEST_PART]}

    def build_args(self) -> dict:
        """The arguments that determine the output (not where the corpus or output live)."""
        args = dataclasses.asdict(self)
        for key in ("data_root", "out_dir", "download", "num_jobs"):
            del args[key]
        return {"corpus": "librimix", "format_version": FORMAT_VERSION, **args}


def _metadata_problems(csv_path: Path, speech: Path, wham: Path) -> list[str]:
    """What is wrong with one metadata CSV: its columns, or rows whose audio is absent."""
    with open(csv_path, newline="") as f:
        reader = csv.DictReader(f)
        missing_cols = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing_cols:
            return [f"{csv_path}: no column {', '.join(missing_cols)} (header {reader.fieldnames})"]
        rows = list(reader)
    if not rows:
        return [f"{csv_path}: no mixtures"]
    absent = []
    for row in tqdm(rows, desc=f"checking {csv_path.name}", unit="mixture", leave=False):
        noise = Path(row["noise_path"])
        # a speed-perturbed training noise is made by lhotse from the original
        noise = noise.with_name(_SPEED_SUFFIX.sub("", noise.stem) + noise.suffix)
        files = [speech / row["source_1_path"], speech / row["source_2_path"], wham / noise]
        absent += [p for p in files if not p.is_file()]
    if absent:
        shown = ", ".join(str(p) for p in absent[:3])
        return [f"{csv_path.name}: {len(absent)} missing files (of its {len(rows)} mixtures), "
                f"e.g. {shown}"]  # fmt: skip
    return []


def check_librimix(data_root: str | Path, parts: list[str]) -> None:
    """Raises a :class:`CorpusError` naming what is missing for ``parts``: the metadata CSVs,
    the WHAM! noise splits, LibriSpeech parts (``check_librispeech``), or files that a CSV
    lists."""
    root = Path(data_root)
    if not root.is_dir():
        raise CorpusError(f"LibriMix inputs not found: {root} does not exist; {DOWNLOAD_HINT}")
    problems = []
    meta = root / "metadata" / "Libri2Mix"
    csvs = {part: meta / f"libri2mix_{part}.csv" for part in parts}
    problems += [f"metadata: {p} is missing" for p in csvs.values() if not p.is_file()]
    wham = root / "wham_noise"
    for split in WHAM_SPLITS:
        if not (wham / split).is_dir() or not any((wham / split).glob("*.wav")):
            problems.append(f"WHAM! noise: {wham / split} is missing or holds no .wav file")
    try:
        speech = find_librispeech(root)
        check_librispeech(speech, parts)
    except CorpusError as e:
        # (without LibriSpeech's own download hint: ours, below, covers it)
        message = str(e).replace(f"\n{LIBRISPEECH_HINT}", "").replace(f"; {LIBRISPEECH_HINT}", "")
        problems.append(message.replace("\n", "\n  "))
        speech = None
    if speech is not None and not problems:
        for path in csvs.values():
            problems += _metadata_problems(path, speech, wham)
    if problems:
        raise CorpusError(
            f"LibriMix inputs under {root} are incomplete:\n  - "
            + "\n  - ".join(problems)
            + f"\n{DOWNLOAD_HINT}"
        )


def _download(cfg: LibriMixConfig, parts: list[str]) -> None:
    from lhotse.recipes import download_librimix, download_librispeech, download_wham

    download_librispeech(target_dir=cfg.data_root, dataset_parts=parts)
    download_wham(target_dir=cfg.data_root)
    download_librimix(target_dir=cfg.data_root)


def _speech_cuts(work: Path, part: str) -> Path:
    """The LibriSpeech cuts of ``part`` under the name and with the cut ids (utterance id +
    ``-<n>``) that lhotse's LibriMix recipe looks up."""
    return work / "librispeech" / f"librispeech_cutset_{part}.jsonl.gz"


def _run_lhotse(cfg: LibriMixConfig, parts: list[str], work: Path) -> Path:
    """lhotse's LibriSpeech, WHAM! and LibriMix recipes; returns the folder of LibriMix cuts."""
    from lhotse.recipes import prepare_librimix as lhotse_librimix
    from lhotse.recipes import prepare_librispeech, prepare_wham

    root = Path(cfg.data_root)
    speech_dir = work / "librispeech"
    manifests = prepare_librispeech(find_librispeech(root), dataset_parts=parts,
                                    output_dir=speech_dir, num_jobs=cfg.num_jobs)  # fmt: skip
    for part in parts:
        path = _speech_cuts(work, part)
        if not path.is_file():
            write_cuts(CutSet.from_manifests(**manifests[part]), path)
    wham_dir = work / "wham"
    if not all((wham_dir / f"wham_recordings_{s}.jsonl.gz").is_file() for s in WHAM_SPLITS):
        prepare_wham(root / "wham_noise", output_dir=wham_dir)
    # lhotse's recipe prepares every CSV of the metadata folder: give it those of `parts` only.
    meta = work / "metadata" / "Libri2Mix"
    shutil.rmtree(meta, ignore_errors=True)
    meta.mkdir(parents=True)
    for part in parts:
        shutil.copy(root / "metadata" / "Libri2Mix" / f"libri2mix_{part}.csv", meta)
    out = work / "librimix"
    lhotse_librimix(speech_dir, wham_dir, meta.parent, workdir=work / "noise", output_dir=out,
                    n_src=2, num_jobs=cfg.num_jobs)  # fmt: skip
    return out


def _utterance(track) -> str:
    """The LibriSpeech utterance id of a speech track (its audio file's name)."""
    return Path(track.cut.recording.sources[0].source).name.split(".")[0]


def _normalised(track, custom: dict | None = None):
    """A speech track with speechkit's supervision conventions (and ``custom`` if given)."""
    utt = _utterance(track)
    sups = [
        fastcopy(s, id=utt, language="eng", speaker=f"librispeech-{s.speaker}", text=s.text.lower())
        for s in track.cut.supervisions
    ]
    return fastcopy(track, cut=fastcopy(track.cut, supervisions=sups, custom=custom))


def _power_db(x: np.ndarray) -> float:
    return 10 * float(np.log10(np.mean(np.square(x, dtype=np.float64)) + 1e-12))


class _Converter:
    """lhotse's LibriMix ``MixedCut``s -> separation cuts of one split (module docstring)."""

    def __init__(self, cfg: LibriMixConfig, speech_cuts: CutSet, with_snr: bool) -> None:
        self.cfg, self.with_snr = cfg, with_snr
        self.by_speaker: dict[str, list] = defaultdict(list)
        for cut in speech_cuts:
            self.by_speaker[cut.supervisions[0].speaker].append(cut)

    def _enrollment(self, target, cut_id: str) -> dict:
        speaker, utt = target.cut.supervisions[0].speaker, _utterance(target)
        others = [c for c in self.by_speaker[speaker] if c.supervisions[0].id != utt]
        if not others:
            return {}
        pick = random.Random(f"{self.cfg.seed}/{cut_id}").choice(others)
        return {"enroll": pick.recording, "enroll_id": pick.supervisions[0].id}

    def __call__(self, mixed: MixedCut, noisy: bool) -> list[MixedCut]:
        if self.cfg.mode == "min":
            shorter = min(t.cut.duration for t in mixed.tracks if t.cut.supervisions)
            mixed = mixed.truncate(duration=shorter, preserve_id=True)
        # speech tracks as sources 1, 2 (mixture_ID = <utterance 1>_<utterance 2>), then noise
        order = mixed.id.split("_")
        speech = sorted((t for t in mixed.tracks if t.cut.supervisions),
                        key=lambda t: order.index(_utterance(t)))  # fmt: skip
        noise = [t for t in mixed.tracks if not t.cut.supervisions]
        audio = {}
        if self.with_snr:
            waves = mixed.load_audio(mixed=False)  # one (1, samples) array a track, as mixed
            audio = {id(t): w[0] for t, w in zip(mixed.tracks, waves)}
        if noisy:
            custom = {"event": "noise", "speech_tracks": 2, "snr_db": None}
            if audio:
                talkers = audio[id(speech[0])] + audio[id(speech[1])]
                custom["snr_db"] = round(_power_db(talkers) - _power_db(audio[id(noise[0])]), 3)
            tracks = [_normalised(speech[0], custom), _normalised(speech[1]), *noise]
            return [MixedCut(id=f"{mixed.id}-noisy", tracks=tracks)]
        cuts = []
        for k, (target, other) in enumerate(((speech[0], speech[1]), (speech[1], speech[0]))):
            cut_id = f"{mixed.id}-{k + 1}"
            custom = {"event": "speaker", "speech_tracks": 1, "snr_db": None,
                      "interferer": f"librispeech-{other.cut.supervisions[0].speaker}",
                      **self._enrollment(target, cut_id)}  # fmt: skip
            if audio:
                snr = _power_db(audio[id(target)]) - _power_db(audio[id(other)])
                custom["snr_db"] = round(snr, 3)
            tracks = [_normalised(target, custom), _normalised(other)]
            cuts.append(MixedCut(id=cut_id, tracks=tracks))
        return cuts


def prepare_librimix(cfg: LibriMixConfig) -> dict[str, Path]:
    """Checks, prepares with lhotse and converts (module docstring); returns ``{split: manifest
    path}``. Does nothing when ``out_dir`` is already complete."""
    out_dir = Path(cfg.out_dir)
    splits = list(cfg.parts)
    outputs = {split: cuts_path(out_dir, split) for split in splits}
    if is_prepared(out_dir, cfg.build_args(), splits):
        logger.info("skip: %s already holds LibriMix %s", out_dir, cfg.parts)
        return outputs
    parts = [p for split in splits for p in cfg.parts[split]]
    if cfg.download:
        _download(cfg, parts)
    check_librimix(cfg.data_root, parts)
    out_dir.mkdir(parents=True, exist_ok=True)
    lhotse_dir = _run_lhotse(cfg, parts, out_dir / "lhotse")
    for split, path in outputs.items():
        cuts = []
        for part in cfg.parts[split]:
            speech = CutSet.from_file(_speech_cuts(out_dir / "lhotse", part))
            convert = _Converter(cfg, speech, with_snr=split != "train")
            for mix in cfg.mix:
                noisy = mix == "both"
                name = f"librimix_cutset_libri2mix_{part}{'_noisy' if noisy else ''}.jsonl.gz"
                mixtures = CutSet.from_file(lhotse_dir / name)
                for mixed in tqdm(mixtures, desc=f"converting {part} mix_{mix}", unit="mixture"):
                    cuts += convert(mixed, noisy)
        hours = sum(c.duration for c in cuts) / 3600
        logger.info("%s: %d cuts, %.1f h from %s (mix %s, %s)", split, len(cuts), hours,
                    cfg.parts[split], cfg.mix, cfg.mode)  # fmt: skip
        write_cuts(CutSet.from_cuts(cuts), path)
    mark_prepared(out_dir, cfg.build_args())
    return outputs
