"""Attach real recognisers' output to a cut manifest as weak transcripts, drop the bad ones.

    speechkit weak_transcripts --cuts data/pool.jsonl.gz \\
        --hyps whisper-tiny.en=exp/whisper_pool.tsv --hyps s2t-seed=exp/seed/decode_pool \\
        --vocab-cuts data/seed.jsonl.gz --out data/weak/real.jsonl.gz \\
        [--results-md RESULTS.md --title "weak transcripts" --command "./run.sh ..."]

``--hyps SOURCE=PATH`` (repeatable, in order of preference): ``speechkit transcribe`` stdout
(``id<TAB>text``), a Kaldi ``hyp.txt`` or a ``speechkit decode`` directory. A cut's
``weak_text`` comes from the first source with a hypothesis for it; all of them are kept in
``weak_hyps`` (see ``speechkit/data/weak.py``). Cuts without any hypothesis and cuts whose weak
transcript is empty, absurdly long for its audio or in another language (judged against the
word lists of ``--vocab-cuts``, e.g. the gold cuts) are counted by reason and dropped.

Writes ``--out`` and ``--out`` with ``.json`` for ``.jsonl.gz``: the WER of every source per
language against the gold text, before and after dropping, its substitution / deletion /
insertion counts (what ``speechkit corrupt_text`` copies), and the dropped counts.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from lhotse import CutSet

from speechkit.checkpoint import atomic_write_text
from speechkit.data.weak import (
    WeakChecks,
    attach_weak,
    cut_texts,
    drop_bad_weak,
    language_vocabularies,
    read_hypotheses,
    weak_error_rates,
)
from speechkit.report import provenance_lines, update_markdown

logger = logging.getLogger("speechkit.bin.weak_transcripts")


def report_path(out: Path) -> Path:
    """``x.jsonl.gz`` -> ``x.json``: where a weak manifest's report goes."""
    name = out.name
    for suffix in (".jsonl.gz", ".jsonl"):
        if name.endswith(suffix):
            return out.with_name(name[: -len(suffix)] + ".json")
    return out.with_name(name + ".json")


def source_rates(cuts: list, sources: list[str]) -> dict:
    """``{source: {language: WER dict}}`` for every source, and ``weak_text`` as chosen."""
    return {
        **{src: weak_error_rates(cuts, src) for src in sources},
        "weak_text": weak_error_rates(cuts),
    }


def parse_checks(args: argparse.Namespace) -> WeakChecks:
    vocab = None
    if args.vocab_cuts:
        vocab = language_vocabularies(
            t for p in args.vocab_cuts for t in cut_texts(CutSet.from_file(p))
        )
    return WeakChecks(max_words_per_second=args.max_words_per_second, vocabularies=vocab)


def markdown_rows(report: dict) -> list[str]:
    """One table row per (source, language): WER with its s/d/i, before and after dropping."""
    rows = [
        "| source | language | utts | WER % (s/d/i) | kept utts | WER % kept |",
        "|---|---|---|---|---|---|",
    ]
    for src, rates in report["wer"].items():
        for lang, e in rates.items():
            k = report["wer_kept"].get(src, {}).get(lang)
            kept, nk = (f"{k['rate']:.1f}", k["utts"]) if k else ("", 0)
            n = e["utts"]
            sdi = f"{e['substitutions']}/{e['deletions']}/{e['insertions']}"
            rows.append(f"| {src} | {lang} | {n} | {e['rate']:.1f} ({sdi}) | {nk} | {kept} |")
    return rows


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="speechkit weak_transcripts", description=__doc__.split("\n")[0]
    )
    p.add_argument("--cuts", required=True, help="cut manifest with the gold text")
    p.add_argument("--hyps", action="append", required=True, metavar="SOURCE=PATH",
                   help="hypotheses of one recogniser (repeatable, preferred first)")  # fmt: skip
    p.add_argument("--out", required=True, type=Path, help="output manifest (.jsonl.gz)")
    p.add_argument("--vocab-cuts", nargs="*", default=[], help="manifests whose gold text "
                   "gives the word lists of the wrong-language check (none: no check)")  # fmt: skip
    p.add_argument("--max-words-per-second", type=float, default=WeakChecks.max_words_per_second)
    p.add_argument("--results-md", type=Path, help="write a section into this markdown file")
    p.add_argument("--title", default="Weak transcripts", help="its heading")
    p.add_argument("--command", default="", help="the command to record with the figures")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    hyps = {}
    for item in args.hyps:
        source, sep, path = item.partition("=")
        if not sep or not source or not path:
            build_parser().error(f"--hyps expects SOURCE=PATH, got {item!r}")
        hyps[source] = read_hypotheses(path)
    cuts, chosen = attach_weak(CutSet.from_file(args.cuts), hyps)
    logger.info("weak text chosen per source: %s", dict(chosen))
    kept, dropped = drop_bad_weak(cuts, parse_checks(args))
    kept = list(kept)
    sources = list(hyps)
    report = {
        "cuts": str(args.cuts),
        "sources": {src: str(item.partition("=")[2]) for src, item in zip(sources, args.hyps)},
        "chosen": dict(chosen),
        "dropped": dict(sorted(dropped.items())),
        "num_in": len(cuts),
        "num_kept": len(kept),
        "wer": source_rates(cuts, sources),
        "wer_kept": source_rates(kept, sources),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    CutSet.from_cuts(kept).to_file(args.out)
    atomic_write_text(report_path(args.out), json.dumps(report, indent=1) + "\n")
    logger.info("kept %d of %d cuts; dropped: %s", len(kept), len(cuts), dict(dropped) or "none")
    for src, rates in report["wer"].items():
        logger.info("%s WER %%: %s", src, {k: round(v["rate"], 1) for k, v in rates.items()})
    if args.results_md:
        lines = [f"## {args.title}", "", *markdown_rows(report), ""]
        lines.append(f"Dropped before training: {report['dropped'] or 'none'} "
                     f"({len(cuts) - len(kept)} of {len(cuts)} cuts).")  # fmt: skip
        lines += ["", *provenance_lines(args.command or " ".join(sys.argv)), ""]
        update_markdown(args.results_md, args.title, "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
