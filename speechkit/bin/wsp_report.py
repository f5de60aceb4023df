"""Tables and plots of the WSP arms (``speechkit wsp_arms``) into RESULTS.md and PNG files.

    speechkit wsp_report --exp exp --splits data/splits --budgets 2,5,10,25 --conditions real,syn25 \\
        --arms gold,mix,wsp,wsp_ctc --seeds 0,1 --test-cuts data/corpus/cuts_test_*.jsonl.gz \\
        --weak-dir data/weak --results-md RESULTS.md --plots-dir . --command "./run.sh ..."

Scores are computed from the hypotheses of every decoded test set of a run pooled together
(``<run>/decode_<test>/<output>/{hyp,ref}.txt``): WER per spoken language, BLEU of X->en and
en->X (the mean over the three languages), and English WER on the hard target domain, the cuts
with babble or noise backgrounds (``cut.custom["event"]``). With several seeds a cell is the
mean, followed by each seed's figure. Each condition's weak WER is read from the report that
``speechkit weak_transcripts`` / ``corrupt_text`` wrote beside its manifest (``WEAK_DIR/<c>.json``;
``<c>_ctc``: the kept part, from the filter reports in SPLITS).

Plots (matplotlib, ``pip install -e .[plot]``): ``wsp_wer_vs_gold.png`` (English WER against the
gold budget, one line per arm, the first condition's weak transcripts) and
``wsp_wer_vs_weak_wer.png`` (English WER against the English weak transcripts' WER, a panel per
budget, a line per arm).

With several weak conditions, the section also says where pretraining stops paying: per budget
and arm, the gain over gold-only at each condition's English weak WER, and the weak WER where
the gain reaches zero, interpolated linearly between the two conditions around it. The crossing
is read from the synthetic conditions (``syn*``) where there are two or more: real weak text
differs from them in kind (which languages it covers, which errors it makes), so it is shown
beside them (a column; a separate marker in the plot), not interpolated with them.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import sys
from collections import defaultdict
from pathlib import Path

from lhotse import CutSet

from speechkit.bin.gold_split import manifest_name
from speechkit.bin.score import read_kaldi
from speechkit.bin.wsp_arms import Grid, Run, grid_from_args, make_run
from speechkit.metrics import bleu, wer
from speechkit.report import provenance_lines, update_markdown

HARD_EVENTS = ("babble", "noise")
NO_WEAK_ARMS = ("gold", "allgold")  # trained on gold text only: the same under every condition
LANGS = ("eng", "deu", "spa", "fra")
COLUMNS = ["eng", "deu", "spa", "fra", "eng_hard", "x_en", "en_x"]
HEADER = ["WER eng", "WER deu", "WER spa", "WER fra", "WER eng babble/noise", "BLEU X->en",
          "BLEU en->X"]  # fmt: skip


def _pairs(run: Run, tests: list[Path], output: str, only: set[str] | None = None):
    refs, hyps = [], []
    for test in tests:
        d = run.dir / f"decode_{manifest_name(test)}" / output
        if not (d / "ref.txt").is_file():
            continue
        r, h = read_kaldi(d / "ref.txt"), read_kaldi(d / "hyp.txt")
        for key in sorted(r):
            if only is None or key in only:
                refs.append(r[key])
                hyps.append(h.get(key, ""))
    return refs, hyps


def run_scores(run: Run, tests: list[Path], hard_ids: set[str]) -> dict[str, float] | None:
    """The figures of one run (``COLUMNS``), None when it has no decoded output yet."""
    out: dict[str, float] = {}
    for lang in LANGS:
        refs, hyps = _pairs(run, tests, f"asr_{lang}")
        if refs:
            out[lang] = wer(refs, hyps).rate
    refs, hyps = _pairs(run, tests, "asr_eng", hard_ids)
    if refs:
        out["eng_hard"] = wer(refs, hyps).rate
    for key, outputs in (("x_en", ["deu-eng", "spa-eng", "fra-eng"]),
                         ("en_x", ["eng-deu", "eng-spa", "eng-fra"])):  # fmt: skip
        pairs = [_pairs(run, tests, f"st_{o}") for o in outputs]
        scores = [bleu(refs, hyps).cased for refs, hyps in pairs if refs]
        if scores:  # the mean BLEU of the directions decoded
            out[key] = statistics.mean(scores)
    return out or None


def weak_wer(weak_dir: Path, cond: str, lang: str = "eng") -> float | None:
    """The WER in ``lang`` (``all``: pooled) of a condition's weak transcripts after the
    bad-transcript checks, from the report beside its manifest; None without one."""
    path = weak_dir / f"{cond}.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text())["wer_kept"]["weak_text"].get(lang, {}).get("rate")


def filter_summary(splits: Path, budget: str, cond: str, arm: str) -> str:
    """``kept 70 % (weak WER 31.2 -> 24.0)`` for a filtered wsp arm, from the filter report."""
    path = splits / f"gold{budget}" / f"weak_{cond}{arm[len('wsp') :]}.json"
    if not arm.startswith("wsp_") or not path.is_file():
        return ""
    r = json.loads(path.read_text())
    before = r["wer_all"].get("all", {}).get("rate", float("nan"))
    after = r["wer_kept"].get("all", {}).get("rate", float("nan"))
    return f"kept {100 * r['fraction_kept']['all']:.0f} % (weak WER {before:.1f} -> {after:.1f})"


def _cell(values: list[float]) -> str:
    if not values:
        return ""
    mean = f"{statistics.mean(values):.1f}"
    return mean if len(values) == 1 else f"{mean} ({' / '.join(f'{v:.1f}' for v in values)})"


def collect(grid: Grid, tests: list[Path], hard_ids: set[str]) -> dict:
    """``{(budget, condition, arm): {column: [per-seed values]}}``; condition-free arms (gold,
    allgold) are listed under every condition (scored once)."""
    table: dict = defaultdict(lambda: defaultdict(list))
    cache: dict[Path, dict | None] = {}
    for budget in grid.budgets:
        for cond in grid.conditions:
            for arm in grid.arms:
                for seed in grid.seeds:
                    run = make_run(grid, arm, budget, cond, seed)
                    if run.dir not in cache:
                        cache[run.dir] = run_scores(run, tests, hard_ids)
                    for col, value in (cache[run.dir] or {}).items():
                        table[(budget, cond, arm)][col].append(value)
    return table


def markdown(grid: Grid, table: dict, weak_dir: Path) -> list[str]:
    """One table per weak condition: a row per (budget, arm)."""
    lines = []
    for cond in grid.conditions:
        w, w_all = weak_wer(weak_dir, cond), weak_wer(weak_dir, cond, "all")
        rates = f" (weak WER: English {w:.1f} %, all {w_all:.1f} %)" if w and w_all else ""
        lines += [f"### Weak transcripts: {cond}{rates}", ""]
        lines += ["| gold % | arm | " + " | ".join(HEADER) + " | eng WER vs gold | note |"]
        lines += ["|---" * (len(HEADER) + 4) + "|"]
        for budget in grid.budgets:
            base = table.get((budget, cond, "gold"), {}).get("eng")
            for arm in grid.arms:
                row = table.get((budget, cond, arm))
                if not row:
                    continue
                cells = [_cell(row.get(col, [])) for col in COLUMNS]
                rel = ""
                if base and row.get("eng") and arm != "gold":
                    gain = (
                        100
                        * (statistics.mean(base) - statistics.mean(row["eng"]))
                        / statistics.mean(base)
                    )
                    rel = f"{gain:+.0f} %"
                note = filter_summary(grid.splits, budget, cond, arm)
                lines.append(f"| {budget} | {arm} | " + " | ".join(cells) + f" | {rel} | {note} |")
        lines.append("")
    return lines


def is_synthetic(cond: str) -> bool:
    """``syn25``: gold text corrupted at a chosen WER by ``speechkit corrupt_text``."""
    return cond.startswith("syn")


def break_even(points: list[tuple[float, float]]) -> str:
    """Where a gain turns to a loss: ``points`` are (weak WER %, gain %) pairs; returns the weak
    WER at which the gain is zero, interpolated between the last gain and the first loss (in
    order of weak WER), or which side of the measured range it lies on."""
    points = sorted(points)
    if not points:
        return ""
    for (w0, g0), (w1, g1) in zip(points, points[1:]):
        if g0 > 0 >= g1:
            return f"{w0 + (w1 - w0) * g0 / (g0 - g1):.0f} % (between {w0:.1f} and {w1:.1f})"
    if all(g > 0 for _, g in points):
        return f"above {points[-1][0]:.1f} % (gains at every weak WER measured)"
    if all(g <= 0 for _, g in points):
        return f"below {points[0][0]:.1f} % (loses at every weak WER measured)"
    return "no single crossing: " + ", ".join(f"{w:.1f}: {g:+.0f} %" for w, g in points)


def stops_paying(grid: Grid, table: dict, weak_dir: Path) -> list[str]:
    """A table per (budget, arm) of the gain over gold-only against the English weak WER, and
    the break-even weak WER; empty with fewer than two conditions of known weak WER."""
    rates = {c: weak_wer(weak_dir, c) for c in grid.conditions}
    conds = sorted((c for c in grid.conditions if rates[c] is not None), key=lambda c: rates[c])
    if len(conds) < 2:
        return []
    series = [c for c in conds if is_synthetic(c)]
    series = series if len(series) >= 2 else conds
    lines = ["### Where pretraining stops paying (English test WER against gold-only)", ""]
    if series != conds:
        lines += [f"The crossing is interpolated on {', '.join(series)} only.", ""]
    lines += ["| gold % | arm | " + " | ".join(f"{c} ({rates[c]:.1f})" for c in conds)
              + " | gain reaches 0 at weak WER |"]  # fmt: skip
    lines += ["|---" * (len(conds) + 3) + "|"]
    for budget in grid.budgets:
        for arm in grid.arms:
            if arm in NO_WEAK_ARMS:
                continue
            cells, points = [], []
            for c in conds:
                base = table.get((budget, c, "gold"), {}).get("eng")
                ours = table.get((budget, c, arm), {}).get("eng")
                if not (base and ours):
                    cells.append("")
                    continue
                b, o = statistics.mean(base), statistics.mean(ours)
                gain = 100 * (b - o) / b
                if c in series:
                    points.append((rates[c], gain))
                cells.append(f"{o:.1f} ({gain:+.0f} %)")
            if any(cells):
                lines.append(f"| {budget} | {arm} | " + " | ".join(cells)
                             + f" | {break_even(points)} |")  # fmt: skip
    return lines + [""]


def plot(grid: Grid, table: dict, weak_dir: Path, out_dir: Path) -> list[Path]:
    """The two PNGs (see the module docstring); returns their paths."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise SystemExit(f"plots need matplotlib: pip install -e '.[plot]' ({e})") from None

    def mean(key, col="eng"):
        values = table.get(key, {}).get(col)
        return statistics.mean(values) if values else None

    written = []
    out_dir.mkdir(parents=True, exist_ok=True)
    cond = grid.conditions[0]
    fig, ax = plt.subplots(figsize=(6, 4))
    budgets = sorted(grid.budgets, key=float)
    for arm in grid.arms:
        pts = [(float(b), mean((b, cond, arm))) for b in budgets]
        pts = [(x, y) for x, y in pts if y is not None]
        if not pts:
            continue
        (line,) = ax.plot(*zip(*pts), marker="o", label=arm)
        for b in budgets:  # each seed's figure, where there are several: the spread
            values = table.get((b, cond, arm), {}).get("eng") or []
            if len(values) > 1:
                ax.scatter(
                    [float(b)] * len(values), values, s=14, color=line.get_color(), alpha=0.45
                )
    ax.set(xlabel="gold transcripts (% of training audio)", ylabel="English test WER (%)",
           title=f"WER against gold budget (weak: {cond}; line: mean, dots: seeds)")  # fmt: skip
    ax.set_xscale("log")
    ax.minorticks_off()  # log-scale minor labels (3x10^0, ...) would crowd the budgets
    ax.set_xticks([float(b) for b in budgets], budgets)
    ax.grid(alpha=0.3)
    ax.legend()
    path = out_dir / "wsp_wer_vs_gold.png"
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    written.append(path)

    # One panel per budget: an arm keeps its colour across panels, and a grid of four budgets
    # does not run out of distinct colours.
    fig, axes = plt.subplots(
        1,
        len(budgets),
        figsize=(1 + 4.2 * len(budgets), 4),
        sharex=True,
        sharey=True,
        squeeze=False,
    )
    colors = dict(
        zip(grid.arms, itertools.cycle(plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    )
    rates = {c: weak_wer(weak_dir, c) for c in grid.conditions}
    for ax, budget in zip(axes[0], budgets):
        for arm in grid.arms:
            pts = [(rates[c], mean((budget, c, arm)), c) for c in grid.conditions]
            pts = sorted(p for p in pts if p[0] is not None and p[1] is not None)
            if not pts:
                continue
            label, color = arm, colors[arm]
            if arm in NO_WEAK_ARMS:  # one level, whatever the condition
                ax.axhline(pts[0][1], linestyle="--", color=color, label=label)
                continue
            syn = [(x, y) for x, y, c in pts if is_synthetic(c)]
            if syn:  # the synthetic series is a line; real weak text a marker of its own
                ax.plot(*zip(*syn), marker="o", color=color, label=label)
                label = None
            for x, y, c in pts:
                if not is_synthetic(c):
                    ax.scatter([x], [y], marker="*", s=110, color=color, label=label, zorder=3)
                    ax.annotate(c, (x, y), textcoords="offset points", xytext=(5, 4), fontsize=7)
                    label = None
        ax.set(xlabel="English weak transcripts' WER (%)", title=f"{budget} % gold")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("English test WER (%)")
    fig.suptitle("WER against the weak transcripts' WER (o: synthetic, *: real)")
    fig.tight_layout()
    path = out_dir / "wsp_wer_vs_weak_wer.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    written.append(path)
    return written


def hard_cut_ids(tests: list[Path]) -> set[str]:
    """Ids of the test cuts with a babble or noise background (the hard target domain)."""
    return {
        c.id
        for t in tests
        for c in CutSet.from_file(t)
        if (c.custom or {}).get("event") in HARD_EVENTS
    }


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="speechkit wsp_report", description=__doc__.split("\n")[0])
    p.add_argument("--exp", type=Path, required=True)
    p.add_argument("--splits", type=Path, required=True)
    p.add_argument("--budgets", required=True)
    p.add_argument("--conditions", default="real")
    p.add_argument("--arms", default="gold,mix,wsp,wsp_ctc")
    p.add_argument("--seeds", default="0")
    p.add_argument("--test-cuts", type=Path, nargs="+", required=True)
    p.add_argument("--weak-dir", type=Path, required=True, help="where <condition>.json lie")
    p.add_argument("--results-md", type=Path, required=True)
    p.add_argument("--plots-dir", type=Path, help="write the PNGs here (default: beside the md)")
    p.add_argument("--title", default="WSP arms: test WER and BLEU")
    p.add_argument("--command", default="")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    grid = grid_from_args(args)  # (the update counts do not matter here)
    table = collect(grid, args.test_cuts, hard_cut_ids(args.test_cuts))
    plots_dir = args.plots_dir or args.results_md.parent
    pngs = plot(grid, table, args.weak_dir, plots_dir)
    lines = [f"## {args.title}", "", *markdown(grid, table, args.weak_dir)]
    lines += stops_paying(grid, table, args.weak_dir)
    for png in pngs:
        rel = os.path.relpath(png.resolve(), args.results_md.resolve().parent)
        lines += [f"![{png.stem}]({rel})", ""]
    lines += provenance_lines(args.command or " ".join(sys.argv)) + [""]
    update_markdown(args.results_md, args.title, "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
