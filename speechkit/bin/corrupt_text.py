"""Synthetic weak transcripts: the gold text of a manifest corrupted at chosen word error rates.

    speechkit corrupt_text --cuts data/pool.jsonl.gz --wer 10,25,40 \\
        --proportions-from data/weak/real.json --out-dir data/weak [--seed 0]

Writes ``OUT_DIR/syn<W>.jsonl.gz`` per rate W (%), whose cuts carry the corrupted text as
``weak_text`` (source ``synthetic-wer<W>``), and ``OUT_DIR/syn<W>.json``: target and achieved
WER per language, the substitution / deletion / insertion shares used, and the cuts dropped by
the same checks as real weak transcripts (``speechkit/data/weak.py``: e.g. every word deleted).

The shares of substitutions, deletions and insertions are those of a real recogniser:
``--proportions-from`` a ``speechkit weak_transcripts`` report (its pooled ``weak_text`` WER, or
``--proportions-source``'s), or given as ``--proportions S,D,I``. Substitutes and insertions are
words of the same language from the manifest's own gold text (the corpus vocabulary).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from lhotse import CutSet

from speechkit.bin.weak_transcripts import report_path
from speechkit.checkpoint import atomic_write_text
from speechkit.data.corrupt import Corruption, corrupt_cuts, proportions_of
from speechkit.data.weak import WeakChecks, drop_bad_weak, language_vocabularies, weak_error_rates

logger = logging.getLogger("speechkit.bin.corrupt_text")


def read_proportions(args: argparse.Namespace) -> tuple[float, float, float]:
    if args.proportions:
        parts = [float(x) for x in args.proportions.split(",")]
        if len(parts) != 3:
            raise SystemExit(f"--proportions expects S,D,I, got {args.proportions!r}")
        return parts[0], parts[1], parts[2]
    report = json.loads(Path(args.proportions_from).read_text())
    return proportions_of(report["wer"][args.proportions_source]["all"])


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="speechkit corrupt_text", description=__doc__.split("\n")[0])
    p.add_argument("--cuts", required=True, help="cut manifest with the gold text")
    p.add_argument("--wer", required=True, help="target word error rates in %%, e.g. 10,25,40")
    p.add_argument("--out-dir", required=True, type=Path)
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--proportions-from", help="a weak_transcripts report (.json)")
    group.add_argument("--proportions", help="S,D,I shares of the errors, e.g. 0.6,0.3,0.1")
    p.add_argument("--proportions-source", default="weak_text",
                   help="which source of the report (default: the chosen weak text)")  # fmt: skip
    p.add_argument("--seed", type=int, default=0)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    shares = read_proportions(args)
    cuts = list(CutSet.from_file(args.cuts))
    vocab = language_vocabularies(
        (c.supervisions[0].language, c.supervisions[0].text) for c in cuts
    )
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for item in args.wer.split(","):
        target = float(item)
        corruption = Corruption(target / 100, *shares)
        corrupted = corrupt_cuts(cuts, vocab, corruption, seed=args.seed)
        kept, dropped = drop_bad_weak(corrupted, WeakChecks())
        out = args.out_dir / f"syn{round(target)}.jsonl.gz"
        kept.to_file(out)
        report = {
            "cuts": str(args.cuts),
            "source": corruption.source,
            "target_wer": target,
            "shares": {"sub": corruption.p_sub, "del": corruption.p_del, "ins": corruption.p_ins},
            "seed": args.seed,
            "num_in": len(corrupted),
            "num_kept": len(kept),
            "dropped": dict(sorted(dropped.items())),
            "wer": {"weak_text": weak_error_rates(corrupted)},
            "wer_kept": {"weak_text": weak_error_rates(kept)},
        }
        atomic_write_text(report_path(out), json.dumps(report, indent=1) + "\n")
        achieved = report["wer"]["weak_text"]["all"]["rate"]
        logger.info("%s: target %.0f %%, achieved %.1f %%, %d of %d kept", out, target,
                    achieved, len(kept), len(corrupted))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
