"""LibriSpeech (OpenSLR 12): English read speech, 16 kHz FLAC, prepared with lhotse's recipe.

On disk (what ``lhotse download librispeech`` extracts, or the OpenSLR tarballs)::

    <data_root>/LibriSpeech/<part>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac
    <data_root>/LibriSpeech/<part>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt
        one "<speaker>-<chapter>-<utt> UPPER CASE TEXT" line per utterance

Parts: ``train-clean-100`` / ``-360``, ``train-other-500`` (960 h together), ``dev-clean``,
``dev-other``, ``test-clean``, ``test-other``. ``data_root`` may also be the ``LibriSpeech``
directory itself.

:func:`prepare_librispeech` checks the requested parts (a missing part directory, a part
without transcripts, or transcript lines whose FLAC is absent, as a partly extracted tarball
leaves, are a :class:`CorpusError` listing them), runs ``lhotse.recipes.prepare_librispeech``
(its manifests, cached under ``out_dir/lhotse/``), normalises every cut to speechkit's
conventions (:func:`normalise_cut`) and writes::

    out_dir/cuts_train.jsonl.gz       the train parts together
    out_dir/cuts_dev.jsonl.gz         the dev parts together (validation)
    out_dir/cuts_<test part>.jsonl.gz one per test part: cuts_test_clean, cuts_test_other
    out_dir/prepare_args.json         written last: a complete preparation with these arguments
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from lhotse import CutSet
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

__all__ = [
    "PARTS",
    "LibriSpeechConfig",
    "check_librispeech",
    "find_librispeech",
    "normalise_cut",
    "prepare_librispeech",
]

logger = logging.getLogger(__name__)

PARTS = (
    "train-clean-100",
    "train-clean-360",
    "train-other-500",
    "dev-clean",
    "dev-other",
    "test-clean",
    "test-other",
)
FORMAT_VERSION = 1
DOWNLOAD_HINT = (
    "download it with `--download true` (lhotse's download_librispeech: the parts' tarballs "
    "from https://www.openslr.org/12, extracted into <data_root>/LibriSpeech)"
)


@dataclasses.dataclass
class LibriSpeechConfig:
    """What to prepare.

    data_root: the directory that holds ``LibriSpeech/`` (where ``--download`` extracts it), or
        ``LibriSpeech/`` itself.
    out_dir: where the manifests go.
    train_parts / dev_parts / test_parts: LibriSpeech parts; the default trains on the 100 h
        subset (add ``train-clean-360 train-other-500`` for 960 h).
    download: fetch and extract the missing parts first (needs the network).
    lowercase: lower-case the transcripts (LibriSpeech writes them in capitals; Whisper's and
        sentencepiece's vocabularies fit lower case better, and scoring ignores case).
    num_jobs: threads for lhotse's parsing of the audio headers.
    """

    data_root: str
    out_dir: str
    train_parts: list[str] = dataclasses.field(default_factory=lambda: ["train-clean-100"])
    dev_parts: list[str] = dataclasses.field(default_factory=lambda: ["dev-clean", "dev-other"])
    test_parts: list[str] = dataclasses.field(default_factory=lambda: ["test-clean", "test-other"])
    download: bool = False
    lowercase: bool = True
    num_jobs: int = 1

    def __post_init__(self) -> None:
        for name in ("train_parts", "dev_parts", "test_parts"):
            unknown = [p for p in getattr(self, name) if p not in PARTS]
            if unknown:
                raise ConfigError(f"LibriSpeech {name}: unknown parts {unknown}; known: {PARTS}")
        if not self.train_parts:
            raise ConfigError("LibriSpeech train_parts is empty")
        if self.num_jobs < 1:
            raise ConfigError(f"num_jobs must be >= 1, got {self.num_jobs}")

    @property
    def parts(self) -> list[str]:
        """Every requested part, once, in the order of :data:`PARTS`."""
        wanted = {*self.train_parts, *self.dev_parts, *self.test_parts}
        return [p for p in PARTS if p in wanted]

    @property
    def splits(self) -> list[str]:
        """The manifests written: ``train``, ``dev`` (if any dev part), each test part."""
        return ["train", *(["dev"] if self.dev_parts else []), *self.test_parts]

    def build_args(self) -> dict:
        """The arguments that determine the output (not where the corpus or output live)."""
        args = dataclasses.asdict(self)
        for key in ("data_root", "out_dir", "download", "num_jobs"):
            del args[key]
        return {"corpus": "librispeech", "format_version": FORMAT_VERSION, **args}


def find_librispeech(data_root: str | Path) -> Path:
    """The ``LibriSpeech`` directory: ``data_root/LibriSpeech``, or ``data_root`` when it holds
    LibriSpeech parts itself; a :class:`CorpusError` otherwise."""
    root = Path(data_root)
    if (root / "LibriSpeech").is_dir():
        return root / "LibriSpeech"
    if root.is_dir() and any((root / p).is_dir() for p in PARTS):
        return root
    what = "does not exist" if not root.exists() else "holds no LibriSpeech/ directory"
    raise CorpusError(
        f"LibriSpeech not found: {root} {what} (expected {root}/LibriSpeech/<part>/... with "
        f"parts such as train-clean-100); {DOWNLOAD_HINT}"
    )


def _missing_audio(part_dir: Path) -> tuple[int, int, list[Path], list[Path]]:
    """(utterances listed, utterances without FLAC, first missing FLACs, transcript files)."""
    transcripts = sorted(part_dir.glob("*/*/*.trans.txt"))
    listed, missing = 0, []
    for trans in tqdm(transcripts, desc=f"checking {part_dir.name}", unit="chapter", leave=False):
        for line in trans.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            listed += 1
            utt_id = line.split(maxsplit=1)[0]
            if not (trans.parent / f"{utt_id}.flac").is_file():
                missing.append(trans.parent / f"{utt_id}.flac")
    return listed, len(missing), missing[:3], transcripts


def check_librispeech(corpus: Path, parts: list[str]) -> None:
    """Raises a :class:`CorpusError` naming every requested part that is missing or partial:
    no directory, no transcripts, or transcript lines whose FLAC file is absent."""
    problems = []
    for part in parts:
        part_dir = corpus / part
        if not part_dir.is_dir():
            problems.append(f"{part}: directory {part_dir} is missing")
            continue
        listed, n_missing, first, transcripts = _missing_audio(part_dir)
        if not transcripts:
            problems.append(
                f"{part}: no <speaker>/<chapter>/<speaker>-<chapter>.trans.txt under {part_dir}"
            )
        elif n_missing:
            shown = ", ".join(str(p) for p in first)
            problems.append(
                f"{part}: {n_missing} of {listed} utterances in its transcripts have no FLAC file "
                f"(e.g. {shown}): a partly extracted part?"
            )
    if problems:
        raise CorpusError(
            f"LibriSpeech at {corpus} is incomplete:\n  - "
            + "\n  - ".join(problems)
            + f"\n{DOWNLOAD_HINT}"
        )


def normalise_cut(cut, lowercase: bool = True):
    """A cut of lhotse's LibriSpeech recipe in speechkit's conventions (docs/design.md): the
    cut id is the utterance id (``103-1240-0000``, what the scorer prints), ``language`` is
    ISO 639-3 ``eng`` (lhotse writes ``English``), the speaker id is prefixed with the corpus
    (``librispeech-103``, unique across corpora), the text is stripped (and lower-cased), and
    ``custom["event"]`` is ``clean``."""
    (sup,) = cut.supervisions  # lhotse's recipe: one recording and supervision per utterance
    text = " ".join(sup.text.split())
    sup = fastcopy(
        sup,
        text=text.lower() if lowercase else text,
        language="eng",
        speaker=f"librispeech-{sup.speaker}",
    )
    return fastcopy(cut, id=sup.id, supervisions=[sup], custom={"event": "clean"})


def prepare_librispeech(cfg: LibriSpeechConfig) -> dict[str, Path]:
    """Checks, prepares with lhotse and normalises the requested parts (module docstring);
    returns ``{split: manifest path}``. Does nothing when ``out_dir`` is already complete."""
    from lhotse.recipes import download_librispeech
    from lhotse.recipes import prepare_librispeech as lhotse_prepare

    out_dir = Path(cfg.out_dir)
    outputs = {split: cuts_path(out_dir, split) for split in cfg.splits}
    if is_prepared(out_dir, cfg.build_args(), cfg.splits):
        logger.info("skip: %s already holds LibriSpeech %s", out_dir, cfg.parts)
        return outputs
    if cfg.download:
        download_librispeech(target_dir=cfg.data_root, dataset_parts=cfg.parts)
    corpus = find_librispeech(cfg.data_root)
    check_librispeech(corpus, cfg.parts)
    out_dir.mkdir(parents=True, exist_ok=True)
    manifests = lhotse_prepare(
        corpus,
        dataset_parts=cfg.parts,
        output_dir=out_dir / "lhotse",
        num_jobs=cfg.num_jobs,
    )
    groups = {"train": cfg.train_parts, "dev": cfg.dev_parts}
    groups.update({part: [part] for part in cfg.test_parts})
    for split, path in outputs.items():
        cuts = []
        for part in groups[split]:
            part_cuts = CutSet.from_manifests(**manifests[part])
            desc = f"normalising {part}"
            cuts += [normalise_cut(c, cfg.lowercase) for c in tqdm(part_cuts, desc=desc)]
        hours = sum(c.duration for c in cuts) / 3600
        logger.info("%s: %d utterances, %.1f h from %s", split, len(cuts), hours, groups[split])
        write_cuts(CutSet.from_cuts(cuts), path)
    mark_prepared(out_dir, cfg.build_args())
    return outputs
