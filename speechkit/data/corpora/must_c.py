"""MuST-C: English TED talks with sentence-aligned transcripts and translations, prepared with
lhotse's recipe, as speech translation (``st_<tgt>``) and English ASR cuts.

On disk (what each release's ``en-<tgt>`` archive extracts; one directory per language pair)::

    <data_root>/en-<tgt>/data/<split>/wav/ted_<talk>.wav     one whole talk, 16 kHz mono
    <data_root>/en-<tgt>/data/<split>/txt/<split>.yaml       the segments, one per line, in talk
        order: - {duration: 3.5, offset: 16.08, rW: 9, uW: 0, speaker_id: spk.767, wav: ted_767.wav}
    <data_root>/en-<tgt>/data/<split>/txt/<split>.en         the English transcript, line by line
    <data_root>/en-<tgt>/data/<split>/txt/<split>.<tgt>      the translation, line by line

Splits: ``train``, ``dev``, ``tst-COMMON`` (the test set papers report) and ``tst-HE``; lhotse's
recipe reads all four, so all four must be there. ``data_root`` may also be the ``en-<tgt>``
directory itself (one pair). MuST-C has no download script (a licence form comes first), so
``download`` is an error that says where to get it.

:func:`prepare_must_c` checks every requested pair and split (a missing directory, yaml, text
file or talk wav, or text files whose line count is not the yaml's segment count, is a
:class:`CorpusError` listing them), runs ``lhotse.recipes.prepare_must_c`` (its manifests under
``out_dir/lhotse/``), and turns lhotse's talk-level manifests into one cut per segment in the
conventions of the phrasebook's ST cuts (docs/design.md; :func:`normalise_supervision`):
English speech (``eng``) with the English transcript as text and the translation under
``custom["translations"][<ISO 639-3 target>]``, and each segment's preceding transcript and
translation in its talk as the previous-text prompt. lhotse's recipe reads only the translation;
the transcript comes from ``<split>.en``, line for line. Writes::

    out_dir/cuts_train.jsonl.gz, cuts_dev.jsonl.gz, cuts_tst_COMMON.jsonl.gz, cuts_tst_HE.jsonl.gz
        every requested pair together (cut ids start with the pair)
    out_dir/prepare_args.json         written last: a complete preparation with these arguments
"""

from __future__ import annotations

import dataclasses
import logging
from itertools import groupby
from pathlib import Path

import yaml
from lhotse import CutSet, RecordingSet, SupervisionSet
from lhotse.serialization import load_yaml
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
from speechkit.data.segments import annotate_previous_text

__all__ = [
    "SPLITS",
    "TARGET_LANGUAGES",
    "MustCConfig",
    "check_must_c",
    "find_must_c",
    "normalise_supervision",
    "prepare_must_c",
]

logger = logging.getLogger(__name__)

SPLITS = ("train", "dev", "tst-COMMON", "tst-HE")
# MuST-C's target languages (ISO 639-1 in its directory names) -> the ISO 639-3 codes of the
# language and task tokens (``<deu>``, ``<st_deu>``), as OWSM names them.
TARGET_LANGUAGES = {
    "de": "deu", "es": "spa", "fr": "fra", "it": "ita", "nl": "nld", "pt": "por", "ro": "ron",
    "ru": "rus", "zh": "zho", "ja": "jpn", "ar": "ara", "fa": "fas", "tr": "tur", "vi": "vie",
    "cs": "ces",
}  # fmt: skip
SEGMENT_KEYS = ("wav", "offset", "duration", "speaker_id")
FORMAT_VERSION = 1
LICENCE_HINT = (
    "MuST-C cannot be downloaded by a script: each release is behind a licence form at "
    "https://ict.fbk.eu/must-c-releases/ (the page lhotse's recipe points to). Download the "
    "en-<tgt> archive there (e.g. en-de), extract it into <data_root> so that "
    "<data_root>/en-de/data/train/wav/ exists, and run with --download false"
)


@dataclasses.dataclass
class MustCConfig:
    """What to prepare.

    data_root: the directory that holds the ``en-<tgt>/`` directories (or one of them).
    out_dir: where the manifests go.
    language_pairs: ``en-<tgt>`` pairs, prepared together into one manifest per split (each
        pair's talks are its own copy of the English audio, segmented its own way, so English
        ASR sees them once per pair).
    download: MuST-C cannot be fetched by a script; True is an error that says where to get it.
    num_jobs: processes for lhotse's parsing of the talks' audio headers.
    """

    data_root: str
    out_dir: str
    language_pairs: list[str] = dataclasses.field(default_factory=lambda: ["en-de"])
    download: bool = False
    num_jobs: int = 1

    def __post_init__(self) -> None:
        if not self.language_pairs:
            raise ConfigError("MuST-C language_pairs is empty (e.g. en-de)")
        for pair in self.language_pairs:
            src, _, tgt = pair.partition("-")
            if src != "en" or tgt not in TARGET_LANGUAGES:
                known = ", ".join(f"en-{t}" for t in TARGET_LANGUAGES)
                raise ConfigError(f"MuST-C language pair {pair!r} is not one of {known}")
        if len(set(self.language_pairs)) != len(self.language_pairs):
            raise ConfigError(f"MuST-C language_pairs repeats a pair: {self.language_pairs}")
        if self.num_jobs < 1:
            raise ConfigError(f"num_jobs must be >= 1, got {self.num_jobs}")

    @property
    def splits(self) -> list[str]:
        """The manifests written: one per MuST-C split."""
        return list(SPLITS)

    def build_args(self) -> dict:
        """The arguments that determine the output (not where the corpus or output live)."""
        return {
            "corpus": "must_c",
            "format_version": FORMAT_VERSION,
            "language_pairs": list(self.language_pairs),
        }


def find_must_c(data_root: str | Path, pairs: list[str]) -> Path:
    """The directory holding the ``en-<tgt>`` directories: ``data_root``, or its parent when
    ``data_root`` is itself the one requested pair's directory; a :class:`CorpusError` when it
    does not exist or holds none of the pairs."""
    root = Path(data_root)
    if any((root / pair).is_dir() for pair in pairs):
        return root
    if root.name in pairs and (root / "data").is_dir():
        return root.parent
    what = "does not exist" if not root.exists() else f"holds none of {', '.join(pairs)}"
    raise CorpusError(
        f"MuST-C not found: {root} {what} (expected {root}/{pairs[0]}/data/<split>/...).\n"
        f"{LICENCE_HINT}"
    )


def _lines(path: Path) -> list[str]:
    """The stripped lines of a text file, split as lhotse's recipe splits them (by iterating
    the file: only line breaks end a line, not the other separators ``splitlines`` knows)."""
    with open(path, encoding="utf-8") as f:
        return [line.strip() for line in f]


def _segment_ids(segments: list[dict]) -> list[str]:
    """lhotse's supervision id of each segment: ``<wav stem>-seg-<i>``, ``i`` counting from 0
    in each run of consecutive segments of one talk (``lhotse.recipes.must_c``)."""
    ids = []
    for wav, run in groupby(segments, key=lambda s: s["wav"]):
        ids += [f"{Path(wav).stem}-seg-{i}" for i, _ in enumerate(run)]
    return ids


def _check_split(split_dir: Path, split: str, tgt: str) -> tuple[list[str], dict[str, str]]:
    """(problems, {lhotse segment id: English transcript}) of one split directory."""
    if not split_dir.is_dir():
        return [f"directory {split_dir} is missing"], {}
    txt = split_dir / "txt"
    files = {kind: txt / f"{split}.{kind}" for kind in ("yaml", "en", tgt)}
    absent = [str(p) for p in files.values() if not p.is_file()]
    if absent:
        return [f"missing {', '.join(absent)}"], {}
    try:
        segments = load_yaml(files["yaml"])
    except yaml.YAMLError as e:
        return [f"{files['yaml']} is not YAML: {e}"], {}
    if not isinstance(segments, list) or not all(
        isinstance(s, dict) and all(k in s for k in SEGMENT_KEYS) for s in segments
    ):
        return [f"{files['yaml']} is not a list of segments with keys {SEGMENT_KEYS}"], {}
    english, target = _lines(files["en"]), _lines(files[tgt])
    problems = []
    if not len(segments) == len(english) == len(target):
        problems.append(
            f"{len(segments)} segments in {split}.yaml but {len(english)} lines in {split}.en "
            f"and {len(target)} in {split}.{tgt}"
        )
    talks = list(dict.fromkeys(s["wav"] for s in segments))
    missing = [t for t in talks if not (split_dir / "wav" / t).is_file()]
    if missing:
        problems.append(
            f"{len(missing)} of {len(talks)} talks in {split}.yaml have no wav file in "
            f"{split_dir / 'wav'} (e.g. {', '.join(missing[:3])}): a partly extracted archive?"
        )
    return problems, dict(zip(_segment_ids(segments), english))


def check_must_c(root: Path, pairs: list[str]) -> dict[tuple[str, str], dict[str, str]]:
    """Checks every split of every pair under ``root``; raises a :class:`CorpusError` naming
    each missing or inconsistent part. Returns, per (pair, split), the English transcript of
    each segment under lhotse's supervision id (lhotse's recipe reads only the translation)."""
    problems, english = [], {}
    for pair in pairs:
        tgt = pair.split("-")[1]
        for split in tqdm(SPLITS, desc=f"checking MuST-C {pair}", unit="split", leave=False):
            found, english[pair, split] = _check_split(root / pair / "data" / split, split, tgt)
            problems += [f"{pair}/{split}: {p}" for p in found]
    if problems:
        raise CorpusError(
            f"MuST-C at {root} is incomplete (lhotse's recipe reads {', '.join(SPLITS)} of "
            "every pair):\n  - " + "\n  - ".join(problems) + f"\n{LICENCE_HINT}"
        )
    return english


def normalise_supervision(sup, pair: str, english: str):
    """A supervision of lhotse's MuST-C recipe in speechkit's ST conventions (docs/design.md):
    lhotse gives the translation as ``text`` in the target's ISO 639-1 code; here ``text`` is
    the English transcript, ``language`` is ``eng``, the translation sits under
    ``custom["translations"]["deu"]`` (for en-de), the id is ``<pair>-<talk>-<segment>``
    (``en-de-ted_767-0003``: unique across pairs, sorted in talk order) and the speaker
    (``spk.767``, one per talk) is prefixed with the corpus."""
    talk, _, index = sup.id.rpartition("-seg-")
    return fastcopy(
        sup,
        id=f"{pair}-{talk}-{int(index):04d}",
        text=" ".join(english.split()),
        language="eng",
        speaker=f"must_c-{sup.speaker}",
        custom={"translations": {TARGET_LANGUAGES[pair.split("-")[1]]: " ".join(sup.text.split())}},
    )


def _segment_cuts(lhotse_dir: Path, pair: str, split: str, english: dict[str, str]) -> list:
    """One cut per segment of lhotse's ``pair`` / ``split`` manifests (module docstring)."""
    stem = f"{pair}_{split}.jsonl.gz"
    recordings = RecordingSet.from_file(lhotse_dir / f"must_c_recordings_{stem}")
    sups = []
    for sup in tqdm(SupervisionSet.from_file(lhotse_dir / f"must_c_supervisions_{stem}"),
                    desc=f"normalising {pair} {split}", unit="segment"):  # fmt: skip
        if sup.id not in english:  # (lhotse named its segments differently from _segment_ids)
            raise RuntimeError(f"lhotse's MuST-C segment {sup.id!r} is not in the {split} yaml")
        sups.append(normalise_supervision(sup, pair, english[sup.id]))
    talks = CutSet.from_manifests(
        recordings=recordings, supervisions=SupervisionSet.from_segments(sups)
    )
    # One cut per segment, named after it; the talk's audio around it stays out of the cut.
    segments = talks.trim_to_supervisions(keep_overlapping=False).to_eager()
    return [fastcopy(c, custom={"event": "clean"}) for c in annotate_previous_text(segments)]


def prepare_must_c(cfg: MustCConfig) -> dict[str, Path]:
    """Checks, prepares with lhotse and normalises the requested pairs (module docstring);
    returns ``{split: manifest path}``. Does nothing when ``out_dir`` is already complete."""
    # (not re-exported by lhotse.recipes, unlike most recipes)
    from lhotse.recipes.must_c import prepare_must_c as lhotse_prepare

    if cfg.download:
        raise CorpusError(LICENCE_HINT)
    out_dir = Path(cfg.out_dir)
    outputs = {split: cuts_path(out_dir, split) for split in cfg.splits}
    if is_prepared(out_dir, cfg.build_args(), cfg.splits):
        logger.info("skip: %s already holds MuST-C %s", out_dir, cfg.language_pairs)
        return outputs
    root = find_must_c(cfg.data_root, cfg.language_pairs)
    english = check_must_c(root, cfg.language_pairs)
    out_dir.mkdir(parents=True, exist_ok=True)
    for pair in cfg.language_pairs:
        lhotse_prepare(root, out_dir / "lhotse", tgt_lang=pair.split("-")[1], num_jobs=cfg.num_jobs)
    for split, path in outputs.items():
        cuts = []
        for pair in cfg.language_pairs:
            cuts += _segment_cuts(out_dir / "lhotse", pair, split, english[pair, split])
        hours = sum(c.duration for c in cuts) / 3600
        logger.info("%s: %d segments, %.1f h of %s", split, len(cuts), hours, cfg.language_pairs)
        write_cuts(CutSet.from_cuts(cuts), path)
    mark_prepared(out_dir, cfg.build_args())
    return outputs
