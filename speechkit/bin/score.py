"""Score a decode directory: WER/CER for ``asr_*`` outputs, BLEU/chrF for ``st_*`` outputs.

Usage::

    python -m speechkit.bin.score --decode-dir exp/dec [--results-md RESULTS.md \\
        --title "tiny model, beam 5" --command "python -m speechkit.bin.decode ..."]

Reads every ``DIR/<sub>/hyp.txt`` + ``ref.txt`` (written by ``speechkit.bin.decode``), writes
``DIR/<sub>/score.json`` and a summary ``DIR/scores.json``, and prints a table. With
``--results-md`` a section headed ``## <title>`` is written into that markdown file (replacing a
section with the same title, keeping everything else) with one table row per language/direction,
the command that produced the numbers, the date and the machine.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
from pathlib import Path

from speechkit.metrics import bleu, cer, chrf, wer
from speechkit.report import provenance_lines, update_markdown

logger = logging.getLogger("speechkit.bin.score")


def read_kaldi(path: Path) -> dict[str, str]:
    """``<id> <text>`` lines -> {id: text} (text may be empty)."""
    out = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        key, _, text = line.strip().partition(" ")
        if key in out:
            raise ValueError(f"{path}:{n}: duplicate id {key!r}")
        out[key] = text.strip()
    return out


def score_dir(d: Path) -> dict:
    """Scores one output directory; the kind (asr/st) comes from its name."""
    refs, hyps = read_kaldi(d / "ref.txt"), read_kaldi(d / "hyp.txt")
    missing = sorted(set(refs) - set(hyps))
    if missing:
        logger.warning("%s: %d references have no hypothesis (scored as empty)", d, len(missing))
    ids = sorted(refs)
    r, h = [refs[i] for i in ids], [hyps.get(i, "") for i in ids]
    result = {"name": d.name, "num_utts": len(ids), "missing_hyps": len(missing)}
    if d.name.startswith("asr_"):
        result.update(kind="asr", wer=wer(r, h).as_dict(), cer=cer(r, h).as_dict())
    else:
        result.update(kind="st", bleu=bleu(r, h).as_dict(), chrf=chrf(r, h).as_dict())
    return result


def table_rows(scores: list[dict]) -> tuple[list[str], list[list[str]]]:
    """A header and one row per output directory, for the console and for markdown."""
    header = ["output", "utts", "WER %", "CER %", "BLEU", "BLEU lc-nopunct", "chrF"]
    rows = []
    for s in scores:
        if s["kind"] == "asr":
            w, c = s["wer"], s["cer"]
            wer_cell = (
                f"{w['rate']:.2f} ({w['substitutions']}s/{w['deletions']}d/{w['insertions']}i)"
            )
            rows.append(
                [
                    s["name"],
                    str(s["num_utts"]),
                    wer_cell,
                    f"{c['rate']:.2f}",
                    "",
                    "",
                    "",
                ]
            )
        else:
            b, f = s["bleu"], s["chrf"]
            rows.append(
                [s["name"], str(s["num_utts"]), "", "", f"{b['cased']:.2f}",
                 f"{b['lc_nopunct']:.2f}", f"{f['cased']:.2f}"]
            )  # fmt: skip
    return header, rows


def format_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(x) for x in col) for col in zip(header, *rows)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths))

    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def markdown_section(
    title: str, command: str, scores: list[dict], decode_stats: dict | None = None
) -> str:
    header, rows = table_rows(scores)
    lines = [f"## {title}", "", "| " + " | ".join(header) + " |"]
    lines.append("|" + "|".join("---" for _ in header) + "|")
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    lines += [
        "",
        *provenance_lines(command),
        *_decode_lines(decode_stats),
        "- WER/CER on normalised text (NFKC, lower-case, no punctuation); BLEU/chrF by sacrebleu",
        "  (cased 13a, and lower-cased without punctuation).",
        "",
    ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--decode-dir", required=True, help="output of speechkit.bin.decode")
    p.add_argument("--results-md", default=None, help="markdown file to write a section into")
    p.add_argument("--title", default=None, help="section title (default: the decode dir)")
    p.add_argument("--command", default=None, help="command to cite (default: this command)")
    return p.parse_args(argv)


def _decode_lines(stats: dict | None) -> list[str]:
    """What ``speechkit.bin.decode`` recorded: its model, options and speed."""
    if not stats:
        return []
    opts = stats.get("options", {})
    return [
        f"- decoded `{stats.get('model')}` on {stats.get('device')}: beam {opts.get('beam_size')},"
        f" CTC weight {opts.get('ctc_weight')}, RTFx {stats.get('rtfx', 0):.1f}"
        f" ({stats.get('audio_seconds', 0):.0f} s of audio, all tasks of each cut)",
    ]


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args = parse_args(argv)
    root = Path(args.decode_dir)
    subdirs = sorted(
        d for d in root.glob("*/") if (d / "hyp.txt").is_file() and (d / "ref.txt").is_file()
    )
    if not subdirs:
        logger.error("%s: no subdirectory with hyp.txt and ref.txt", root)
        return 2
    scores = []
    for d in subdirs:
        s = score_dir(d)
        (d / "score.json").write_text(json.dumps(s, indent=2) + "\n")
        scores.append(s)
    (root / "scores.json").write_text(json.dumps(scores, indent=2) + "\n")
    print(format_table(*table_rows(scores)))
    if args.results_md:
        argv_used = sys.argv[1:] if argv is None else argv
        command = args.command or shlex.join(["python", "-m", "speechkit.bin.score", *argv_used])
        stats_path = root / "decode_stats.json"
        stats = json.loads(stats_path.read_text()) if stats_path.is_file() else None
        section = markdown_section(args.title or str(root), command, scores, stats)
        update_markdown(Path(args.results_md), args.title or str(root), section)
        logger.info("wrote section %r to %s", args.title or str(root), args.results_md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
