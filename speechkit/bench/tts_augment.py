"""S2T with and without synthesised training data: WER / BLEU per arm, on the test sentences whose
text the synthesis added and on those it did not.

    speechkit bench tts-augment --cuts data/phrasebook/cuts_test_novel.jsonl.gz \\
        --added data/synth_novel/cuts_novel.jsonl.gz \\
        --arm baseline exp/s2t_base_s42/decode_test_novel exp/s2t_base_s1/decode_test_novel \\
        --arm augmented exp/s2t_aug_s42/decode_test_novel exp/s2t_aug_s1/decode_test_novel \\
        [--results-md RESULTS.md --title "..."]

(or ``python -m speechkit.bench.tts_augment ...``).

Each ``--arm NAME DIR [DIR ...]`` names a system and its decode directories (``speechkit
decode``), one per training seed. Test cuts are split by ``custom.sentence_id`` (the phrasebook's
cuts carry it): **added** when a supervision of ``--added`` (the synthesised corpus, or the text
manifest it was made from) has the same sentence id, **not added** otherwise; an augmentation
that only teaches the sentences it says shows up as a gain on *added* alone. For every output
directory (``asr_eng``, ``st_eng-deu``, ...) and the pooled rows (all ASR pooled; en->X and
X->en as the mean BLEU of their directions): WER on normalised text for ``asr_*``, cased BLEU
for ``st_*`` (as ``speechkit.bin.score``), per arm and subset, the mean over seeds with each
seed's figure beside it. Printed as a table and, with ``--results-md``, written as a section.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from speechkit.bench import add_cite_argument, write_section
from speechkit.metrics import bleu, wer

SUBSETS = ("added", "not added", "all")


def sentence_ids(path: str) -> dict[str, str]:
    """{cut or supervision id: sentence id} of a cut or supervision manifest; a ``SystemExit``
    naming the first one without ``custom.sentence_id``."""
    from lhotse import CutSet, load_manifest

    manifest = load_manifest(path)
    out = {}
    if isinstance(manifest, CutSet):
        for cut in manifest:
            sid = (cut.custom or {}).get("sentence_id")
            if sid is None and cut.supervisions:
                sid = (cut.supervisions[0].custom or {}).get("sentence_id")
            if sid is None:
                raise SystemExit(f"{path}: cut {cut.id!r} has no custom.sentence_id")
            out[cut.id] = sid
    else:
        for sup in manifest:
            sid = (sup.custom or {}).get("sentence_id")
            if sid is None:
                raise SystemExit(f"{path}: supervision {sup.id!r} has no custom.sentence_id")
            out[sup.id] = sid
    return out


def read_hyps(out_dir: Path) -> list[dict]:
    """The ``{"id", "hyp", "ref", ...}`` records of one output directory of a decode."""
    text = (out_dir / "hyps.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def score_records(recs: list[dict], subset_of: dict[str, str], asr: bool, where: str) -> dict:
    """{subset: WER (``asr``) or cased BLEU} of decode records, split by ``subset_of``."""
    by_subset = defaultdict(list)
    for rec in recs:
        if rec["id"] not in subset_of:
            raise SystemExit(f"{where}: cut {rec['id']!r} is not in --cuts")
        by_subset[subset_of[rec["id"]]].append(rec)
        by_subset["all"].append(rec)
    out = {}
    for s, part in by_subset.items():
        refs, hyps = [r["ref"] for r in part], [r["hyp"] for r in part]
        out[s] = round(wer(refs, hyps).rate if asr else bleu(refs, hyps).cased, 2)
    return out


def score_decode(decode_dir: Path, subset_of: dict[str, str]) -> dict[str, dict[str, float]]:
    """{row: {subset: figure}} of one decode directory: each output directory, then the pooled
    rows ``asr (all)`` (every ASR hypothesis together), ``en->X`` and ``X->en`` (mean BLEU)."""
    dirs = sorted(d for d in decode_dir.iterdir() if (d / "hyps.jsonl").is_file())
    if not dirs:
        raise SystemExit(f"{decode_dir}: no output directory with hyps.jsonl (not a decode?)")
    recs = {d.name: read_hyps(d) for d in dirs}
    rows = {
        name: score_records(r, subset_of, name.startswith("asr_"), f"{decode_dir}/{name}")
        for name, r in recs.items()
    }
    asr = [r for name, part in recs.items() if name.startswith("asr_") for r in part]
    if asr:
        rows["asr (all)"] = score_records(asr, subset_of, True, str(decode_dir))
    for name, keep in (("en->X", lambda d: d.startswith("st_eng-")),
                       ("X->en", lambda d: d.startswith("st_") and d.endswith("-eng"))):  # fmt: skip
        parts = [rows[d] for d in recs if keep(d)]
        if parts:
            rows[name] = {
                s: round(float(np.mean([p[s] for p in parts if s in p])), 2)
                for s in SUBSETS
                if any(s in p for p in parts)
            }
    return rows


def table(results: dict[str, list[dict]]) -> list[str]:
    """Markdown rows: one per output, a column per arm and subset: mean (seed, seed, ...)."""
    arms = list(results)
    header = [f"{arm}: {s}" for arm in arms for s in SUBSETS]
    lines = ["| output | " + " | ".join(header) + " |", "|---|" + "---:|" * len(header)]
    first = results[arms[0]][0]
    for row in first:
        cells = []
        for arm in arms:
            for s in SUBSETS:
                vals = [seed[row][s] for seed in results[arm] if s in seed.get(row, {})]
                cells.append(
                    f"{np.mean(vals):.2f} ({', '.join(f'{v:.1f}' for v in vals)})" if vals else ""
                )
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="speechkit bench tts-augment",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--cuts", required=True, help="the decoded test cuts (custom.sentence_id)")
    p.add_argument("--added", required=True, help="the synthesised corpus (or its text manifest)")
    p.add_argument(
        "--arm",
        nargs="+",
        action="append",
        required=True,
        metavar=("NAME", "DIR"),
        help="an arm's name and its decode directories, one per seed",
    )
    p.add_argument("--results-md", type=Path, help="write the table as a section of this file")
    p.add_argument("--title", default="S2T with and without TTS augmentation")
    add_cite_argument(p)
    args = p.parse_args(argv)
    for arm in args.arm:
        if len(arm) < 2:
            p.error(f"--arm {arm[0]}: give the arm's decode directories after its name")
        for d in arm[1:]:
            if not Path(d).is_dir():
                p.error(f"--arm {arm[0]}: {d} is not a directory")
    if len({a[0] for a in args.arm}) < len(args.arm):
        p.error("--arm: two arms of one name")
    added = set(sentence_ids(args.added).values())
    subset_of = {
        cut: "added" if sid in added else "not added"
        for cut, sid in sentence_ids(args.cuts).items()
    }
    counts = {s: sum(v == s for v in subset_of.values()) for s in SUBSETS[:2]}
    results = {a[0]: [score_decode(Path(d), subset_of) for d in a[1:]] for a in args.arm}
    lines = [
        f"Test cuts: {counts['added']} whose sentence the synthesis added, "
        f"{counts['not added']} whose sentence it did not; WER (%) for asr_*, cased BLEU for "
        "st_*; each cell the mean over seeds (each seed's figure).",
        "",
        *table(results),
    ]
    print("\n".join(lines))
    print(json.dumps({"counts": counts, "results": results}))
    if args.results_md:
        write_section(args.results_md, args.title, "tts_augment", list(argv or sys.argv[1:]),
                      args.cite_path, lines)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
