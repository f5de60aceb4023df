"""WER (ASR) or BLEU (ST) per test speaker of a decode directory, for one source language.

    speechkit bench scores-by-speaker --cuts data/cuts_test.jsonl.gz \
        --decode-dir exp/run/decode_test [--language eng]

(or ``python -m speechkit.bench.scores_by_speaker ...``).

Joins each output's ``hyps.jsonl`` with the speaker field of the cut manifest; one line per
output directory of ``--language`` (``asr_eng``, ``st_eng-deu``, ...), one figure per speaker.
WER on normalised text and cased BLEU, as ``speechkit.bin.score`` computes them.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

from lhotse import CutSet

from speechkit.metrics import bleu, wer


def output_dirs(decode_dir: Path, language: str) -> list[Path]:
    """The output directories of ``decode_dir`` whose source language is ``language``."""
    return sorted(
        d for d in decode_dir.iterdir()
        if d.name == f"asr_{language}" or d.name.startswith(f"st_{language}-")
    )  # fmt: skip


def speaker_line(out_dir: Path, speaker: dict[str, str]) -> str:
    """``<dir>: <spk> WER x (n); ...`` (``asr_*``) or ``... BLEU x (n)`` (``st_*``)."""
    by_speaker = defaultdict(list)
    for line in (out_dir / "hyps.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if rec["id"] not in speaker:
            raise SystemExit(f"{out_dir}/hyps.jsonl: cut {rec['id']!r} is not in --cuts")
        by_speaker[speaker[rec["id"]]].append(rec)
    parts = []
    for spk, recs in sorted(by_speaker.items()):
        refs, hyps = [r["ref"] for r in recs], [r["hyp"] for r in recs]
        if out_dir.name.startswith("asr_"):
            parts.append(f"{spk} WER {wer(refs, hyps).rate:.1f} ({len(recs)})")
        else:
            parts.append(f"{spk} BLEU {bleu(refs, hyps).cased:.1f} ({len(recs)})")
    return f"{out_dir.name}: " + "; ".join(parts)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="speechkit bench scores-by-speaker", description=__doc__.split("\n")[0]
    )
    p.add_argument("--cuts", required=True, help="the decoded cuts (their speaker fields)")
    p.add_argument("--decode-dir", required=True, type=Path, help="written by speechkit decode")
    p.add_argument("--language", default="eng", help="source language of the outputs reported")
    args = p.parse_args(argv)
    speaker = {c.id: c.supervisions[0].speaker for c in CutSet.from_file(args.cuts)}
    for d in output_dirs(args.decode_dir, args.language):
        print(speaker_line(d, speaker))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
