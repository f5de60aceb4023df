"""TTS data from a corpus of cuts: clean-enough cuts, their phonemes, and the model's vocabulary.

    speechkit prepare-tts --train data/phrasebook/cuts_train.jsonl.gz \\
        --test data/phrasebook/cuts_test_seen.jsonl.gz data/phrasebook/cuts_test_novel.jsonl.gz \\
        --out data/tts --events clean --min-snr-db 25 --valid 100

Writes to ``--out``:

* ``cuts_train.jsonl.gz``, ``cuts_valid.jsonl.gz``: the training cuts kept (below), minus
  ``--valid`` of them drawn at random for validation (same speakers: the model has an embedding
  for each training speaker only); or, with ``--dev``, a corpus's own held-out cuts as the
  validation set and every kept training cut for training (LJSpeech's dev split);
* ``cuts_test.jsonl.gz``: the ``--test`` cuts (every one: their texts are what gets synthesised);
* ``vocab.json``: ``phonemes`` (built from the training texts), ``speakers``, ``languages``;
  the ``tts`` task reads it through ``--tokenizer``.

Every written cut carries its phonemes in ``supervisions[0].custom["phonemes"]`` (a list of
phoneme strings, ``speechkit.tts.text``). Which training cuts are kept: a synthesiser learns
the background too, so cuts whose ``custom["event"]`` is one of ``--events`` are kept, and
others only when their ``custom["snr_db"]`` is at least ``--min-snr-db`` (cuts without those
fields are kept). A text that cannot be phonemised drops its cut with a warning.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
from collections import Counter
from pathlib import Path

from lhotse import CutSet
from tqdm import tqdm

from speechkit.tasks.base import read_cuts
from speechkit.tts.text import PhonemeVocab, TextError, phonemize

logger = logging.getLogger("speechkit.prepare_tts")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--train", nargs="+", required=True, help="training cut manifests")
    p.add_argument("--test", nargs="*", default=[], help="test cut manifests (texts to synthesise)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--events", nargs="*", default=["clean"], help="events kept at any SNR")
    p.add_argument("--min-snr-db", type=float, default=25.0, help="SNR to keep other events")
    p.add_argument("--valid", type=int, help="training cuts held out (default 100; 0 with --dev)")
    p.add_argument(
        "--dev", nargs="*", default=[], help="validation cut manifests (instead of --valid)"
    )
    p.add_argument("--seed", type=int, default=0)
    return p


def keep(cut, events: list[str], min_snr_db: float) -> bool:
    """Whether a training cut's audio is clean enough (module docstring)."""
    custom = cut.custom or {}
    if "event" not in custom or custom["event"] in events:
        return True
    return float(custom.get("snr_db", float("inf"))) >= min_snr_db


def with_phonemes(cuts, counts: Counter, what: str) -> list:
    """The cuts whose text phonemises, each with ``custom["phonemes"]`` set."""
    out = []
    for cut in tqdm(cuts, desc=f"phonemes ({what})", leave=False):
        sup = cut.supervisions[0]
        try:
            phones = phonemize(sup.text, sup.language)
        except TextError as e:
            counts[f"{what}: text not phonemised"] += 1
            logger.warning("dropped %s: %s", cut.id, e)
            continue
        sup.custom = {**(sup.custom or {}), "phonemes": list(phones)}
        out.append(cut)
    return out


def hold_out(cuts: list, n: int) -> tuple[list, list]:
    """(up to ``n`` validation cuts, the rest): in order, a cut is held out only while its
    speaker keeps another cut in training, so that the model has the voice of every held-out
    cut."""
    left = Counter(c.supervisions[0].speaker for c in cuts)
    valid, train = [], []
    for cut in cuts:
        speaker = cut.supervisions[0].speaker
        if len(valid) < n and left[speaker] > 1:
            valid.append(cut)
            left[speaker] -= 1
        else:
            train.append(cut)
    return valid, train


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.dev and args.valid:
        parser.error("--dev gives the validation cuts: --valid draws none from training then")
    n_valid = 0 if args.dev else 100 if args.valid is None else args.valid
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    counts: Counter = Counter()
    train_all = read_cuts(args.train).to_eager()
    kept = [c for c in train_all if keep(c, args.events, args.min_snr_db)]
    counts["train: dropped as noisy"] = len(train_all) - len(kept)
    train = with_phonemes(kept, counts, "train")
    random.Random(args.seed).shuffle(train)
    valid, train = hold_out(train, n_valid)
    if args.dev:
        valid = with_phonemes(read_cuts(args.dev).to_eager(), counts, "dev")
    test = with_phonemes(read_cuts(args.test).to_eager(), counts, "test") if args.test else []

    vocab = PhonemeVocab.build(c.supervisions[0].custom["phonemes"] for c in train)
    speakers = sorted({c.supervisions[0].speaker for c in train})
    languages = sorted({c.supervisions[0].language for c in train})
    (out / "vocab.json").write_text(
        json.dumps(
            {"phonemes": vocab.phonemes, "speakers": speakers, "languages": languages},
            ensure_ascii=False,
            indent=1,
        )
        + "\n"
    )
    for name, cuts in (("train", train), ("valid", valid), ("test", test)):
        if cuts:
            CutSet.from_cuts(sorted(cuts, key=lambda c: c.id)).to_file(
                out / f"cuts_{name}.jsonl.gz"
            )
    hours = sum(c.duration for c in train) / 3600
    logger.info(
        "train %d cuts (%.2f h), valid %d, test %d; %d phonemes, %d speakers, %d languages; %s",
        len(train), hours, len(valid), len(test), len(vocab), len(speakers), len(languages),
        dict(counts),
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
