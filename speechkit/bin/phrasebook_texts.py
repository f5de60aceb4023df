"""Writes phrasebook sentences as a text-only lhotse supervision manifest: text a synthesiser
can say (``speechkit synthesize --cuts``) with the translations S2T trains ST on.

Usage::

    python -m speechkit.bin.phrasebook_texts --split novel --out data/novel_texts.jsonl.gz \\
        [--part 0/2] [--seed 0] [--novel-fraction 0.1] [--languages eng deu spa fra]

``--split``: ``seen`` or ``novel``, the grammar's split (``speechkit.data.phrasebook.grammar.
split_sentences``) for ``--seed`` and ``--novel-fraction``: give the values the corpus was made
with (its ``prepare_args.json``) and ``novel`` is exactly the pool its ``test_novel`` set was
drawn from. ``--part K/N`` keeps the sentences whose seeded hash falls in the K-th of N equal
parts (0-based): ``0/2`` and ``1/2`` split the pool into two halves, so an experiment can add one
half to training and tell apart, on ``test_novel``, the sentences it added from those it did not.

One supervision per sentence and language: id ``phrasebook-<split>-<sentence id>-<language>``,
the sentence in that language as ``text``, the other languages in ``custom.translations`` (as
the corpus's own supervisions), ``custom.sentence_id`` (as the corpus's cuts). No audio: the
recording id is the supervision id and the duration 0.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

from speechkit.data.phrasebook.grammar import LANGUAGES, split_sentences


def unit_hash(text: str) -> float:
    """A stable number in [0, 1) from ``text`` (Python's ``hash`` is salted per process)."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big") / 2**64


def parse_part(text: str) -> tuple[int, int]:
    """``"K/N"`` -> (K, N) with 0 <= K < N, else an argparse error saying so."""
    try:
        k, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected K/N (e.g. 0/2), got {text!r}") from None
    if not 0 <= k < n:
        raise argparse.ArgumentTypeError(f"need 0 <= K < N, got {text!r}")
    return k, n


def sentence_supervisions(
    split: str,
    seed: int = 0,
    novel_fraction: float = 0.1,
    part: tuple[int, int] = (0, 1),
    languages: tuple[str, ...] = LANGUAGES,
):
    """The supervisions (module docstring) of one split of the grammar, one part of it."""
    from lhotse import SupervisionSegment

    k, n = part
    out = []
    for s in split_sentences(seed, novel_fraction)[split]:
        if int(unit_hash(f"part/{seed}/{s.sentence_id}") * n) != k:
            continue
        for lang in languages:
            others = {o: t for o, t in s.texts.items() if o != lang}
            sup_id = f"phrasebook-{split}-{s.sentence_id}-{lang}"
            out.append(SupervisionSegment(
                id=sup_id, recording_id=sup_id, start=0.0, duration=0.0, channel=0,
                text=s.texts[lang], language=lang,
                custom={"translations": others, "sentence_id": s.sentence_id},
            ))  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="speechkit phrasebook-texts",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--split", required=True, choices=("seen", "novel"))
    p.add_argument("--out", required=True, help="supervision manifest to write (.jsonl.gz)")
    p.add_argument("--part", type=parse_part, default=(0, 1), help="K/N: one of N parts")
    p.add_argument("--seed", type=int, default=0, help="the corpus's seed")
    p.add_argument("--novel-fraction", type=float, default=0.1, help="the corpus's")
    p.add_argument("--languages", nargs="+", default=list(LANGUAGES), choices=LANGUAGES)
    a = p.parse_args(argv)
    if not 0.0 <= a.novel_fraction < 1.0:
        p.error(f"--novel-fraction must be in [0, 1), got {a.novel_fraction}")
    from lhotse import SupervisionSet

    sups = sentence_supervisions(a.split, a.seed, a.novel_fraction, a.part, tuple(a.languages))
    if not sups:
        p.error(f"no {a.split} sentence falls in part {a.part[0]}/{a.part[1]}")
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    SupervisionSet.from_segments(sups).to_file(a.out)
    sentences = len({s.custom["sentence_id"] for s in sups})
    print(json.dumps({"sentences": sentences, "supervisions": len(sups), "out": str(a.out)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
