"""Attach real recognisers' output to a cut manifest as weak transcripts, drop the bad ones.

    speechkit weak_transcripts --cuts data/pool.jsonl.gz \\
        --hyps whisper-tiny.en=exp/whisper_pool.tsv --hyps s2t-seed=exp/seed/decode_pool \\
        --vocab-cuts data/seed.jsonl.gz --out data/weak/real.jsonl.gz \\
        [--dev-cuts data/dev.jsonl.gz --dev-hyps whisper-tiny.en=exp/whisper_dev.tsv \\
         --dev-hyps s2t-seed=exp/seed/decode_dev --max-dev-wer 50] \\
        [--results-md RESULTS.md --title "weak transcripts" --command "./run.sh ..."]

``--hyps SOURCE=PATH`` (repeatable, in order of preference): ``speechkit transcribe`` stdout
(``id<TAB>text``), a Kaldi ``hyp.txt`` or a ``speechkit decode`` directory. A cut's
``weak_text`` comes from the first source with a hypothesis for it; all of them are kept in
``weak_hyps`` (see ``speechkit/data/weak.py``). Cuts without any hypothesis and cuts whose weak
transcript is empty, absurdly long for its audio or in another language (judged against the
word lists of ``--vocab-cuts``, e.g. the gold cuts) are counted by reason and dropped.

Choosing sources by their WER on gold data: with ``--max-dev-wer W``, each source's hypotheses of
a gold dev set (``--dev-hyps``, the same recognisers run on ``--dev-cuts``) are scored per
language, and a source serves only the languages where its dev WER is at most W %. A pool cut
that only rejected sources transcribed is dropped (counted as ``source_rejected``), not kept as a
gold cut: under ``text_field: weak_text`` a cut without weak text trains on its gold text. The
pool's gold text never decides anything; its WERs are reported for the study only. Any gold
manifest disjoint from the pool can judge; a dev set that also chose a recogniser's checkpoints
flatters that recogniser a little. Measured on
the phrasebook (egs/phrasebook/wsp1/RESULTS.md): the seed recogniser's 91-99 %-WER German,
Spanish and French text made WSP's English worse than pretraining on whisper-tiny.en's English
alone.

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
    admitted_sources,
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


def selection_lines(report: dict) -> list[str]:
    """The dev-WER table behind the choice of sources, and what it admitted."""
    w = report["max_dev_wer"]
    lines = [f"Sources chosen by their WER on the gold dev set (`{report['dev_cuts']}`): a "
             f"source serves the languages where it is at most {w:g} %.", "",
             "| source | language | dev utts | dev WER % | used |", "|---|---|---|---|---|"]  # fmt: skip
    for src, rates in report["dev_wer"].items():
        for lang, e in rates.items():
            if lang != "all":
                used = "yes" if lang in report["admitted"].get(src, []) else "no"
                lines.append(f"| {src} | {lang} | {e['utts']} | {e['rate']:.1f} | {used} |")
    return lines


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
    p.add_argument("--dev-cuts", type=Path, help="gold dev manifest the --dev-hyps transcribe")
    p.add_argument("--dev-hyps", action="append", default=[], metavar="SOURCE=PATH",
                   help="one source's hypotheses of --dev-cuts (repeatable)")  # fmt: skip
    p.add_argument("--max-dev-wer", type=float, help="a source serves only the languages "
                   "where its WER %% on --dev-cuts is at most this (default: every language)")  # fmt: skip
    return p


def parse_hyps(parser: argparse.ArgumentParser, items: list[str], flag: str) -> dict:
    """``["SOURCE=PATH", ...]`` -> ``{source: {cut_id: text}}``, in the given order."""
    hyps = {}
    for item in items:
        source, sep, path = item.partition("=")
        if not sep or not source or not path:
            parser.error(f"{flag} expects SOURCE=PATH, got {item!r}")
        if source in hyps:
            parser.error(f"{flag}: source {source!r} given twice")
        hyps[source] = read_hypotheses(path)
    return hyps


def dev_selection(parser: argparse.ArgumentParser, args: argparse.Namespace, sources: list):
    """``(dev WERs {source: {language: WER dict}}, admitted {source: languages})``, or
    ``(None, None)`` without ``--max-dev-wer``."""
    if args.max_dev_wer is None:
        if args.dev_hyps or args.dev_cuts:
            parser.error("--dev-cuts / --dev-hyps are used only with --max-dev-wer")
        return None, None
    if not args.dev_cuts or not args.dev_hyps:
        parser.error("--max-dev-wer needs --dev-cuts and a --dev-hyps per source")
    dev_hyps = parse_hyps(parser, args.dev_hyps, "--dev-hyps")
    unknown = sorted(set(dev_hyps) - set(sources))
    missing = [s for s in sources if s not in dev_hyps]
    if unknown or missing:
        parser.error(f"--dev-hyps must name the --hyps sources {sources}: "
                     f"{'unknown ' + str(unknown) if unknown else ''}"
                     f"{' missing ' + str(missing) if missing else ''}")  # fmt: skip
    dev, _ = attach_weak(CutSet.from_file(args.dev_cuts), dev_hyps)
    rates = {src: weak_error_rates(dev, src) for src in dev_hyps}
    if not any(rates.values()):
        parser.error(f"no --dev-hyps hypothesis matches a cut id of {args.dev_cuts}")
    return rates, admitted_sources(rates, args.max_dev_wer)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    hyps = parse_hyps(parser, args.hyps, "--hyps")
    sources = list(hyps)
    dev_rates, admitted = dev_selection(parser, args, sources)
    if admitted is not None:
        logger.info("dev WER %% per source: %s", {s: {lg: round(e["rate"], 1)
                    for lg, e in r.items()} for s, r in dev_rates.items()})  # fmt: skip
        logger.info("admitted at dev WER <= %g %%: %s", args.max_dev_wer, admitted)
    cuts, chosen = attach_weak(CutSet.from_file(args.cuts), hyps, admitted)
    logger.info("weak text chosen per source: %s", dict(chosen))
    kept, dropped = drop_bad_weak(cuts, parse_checks(args))
    kept = list(kept)
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
    if admitted is not None:
        report.update(max_dev_wer=args.max_dev_wer, dev_cuts=str(args.dev_cuts),
                      dev_wer=dev_rates, admitted=admitted)  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    CutSet.from_cuts(kept).to_file(args.out)
    atomic_write_text(report_path(args.out), json.dumps(report, indent=1) + "\n")
    logger.info("kept %d of %d cuts; dropped: %s", len(kept), len(cuts), dict(dropped) or "none")
    for src, rates in report["wer"].items():
        logger.info("%s WER %%: %s", src, {k: round(v["rate"], 1) for k, v in rates.items()})
    if args.results_md:
        lines = [f"## {args.title}", "", *markdown_rows(report), ""]
        if admitted is not None:
            lines += [*selection_lines(report), ""]
        lines.append(f"Dropped before training: {report['dropped'] or 'none'} "
                     f"({len(cuts) - len(kept)} of {len(cuts)} cuts).")  # fmt: skip
        lines += ["", *provenance_lines(args.command or " ".join(sys.argv)), ""]
        update_markdown(args.results_md, args.title, "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
