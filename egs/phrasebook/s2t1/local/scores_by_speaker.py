"""WER (ASR) or BLEU (ST) per test speaker of a decode directory, for one source language.

    python local/scores_by_speaker.py --cuts data/phrasebook/cuts_test_seen.jsonl.gz \
        --decode-dir exp/s2t_tiny/decode_test_seen [--language eng]

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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cuts", required=True)
    p.add_argument("--decode-dir", required=True, type=Path)
    p.add_argument("--language", default="eng")
    args = p.parse_args(argv)
    speaker = {c.id: c.supervisions[0].speaker for c in CutSet.from_file(args.cuts)}
    lang = args.language
    dirs = sorted(
        d for d in args.decode_dir.iterdir()
        if d.name == f"asr_{lang}" or d.name.startswith(f"st_{lang}-")
    )  # fmt: skip
    for d in dirs:
        by_speaker = defaultdict(list)
        for line in (d / "hyps.jsonl").read_text().splitlines():
            rec = json.loads(line)
            by_speaker[speaker[rec["id"]]].append(rec)
        parts = []
        for spk, recs in sorted(by_speaker.items()):
            refs, hyps = [r["ref"] for r in recs], [r["hyp"] for r in recs]
            if d.name.startswith("asr_"):
                parts.append(f"{spk} WER {wer(refs, hyps).rate:.1f} ({len(recs)})")
            else:
                parts.append(f"{spk} BLEU {bleu(refs, hyps).cased:.1f} ({len(recs)})")
        print(f"{d.name}: " + "; ".join(parts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
