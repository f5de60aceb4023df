"""What a gated Whisper model keeps at each budget: gate map, decoder sparsity and WER.

    speechkit bench whisper-gate-map --model exp/whisper/dyn/model_avg.pt \\
        --budgets 0.1 0.3 0.5 0.7 0.9 1.0 (--cuts data/cuts_test_seen.jsonl.gz | \\
        --audio-dir DIR --text text) [--max-utts 30] [--beam 1] [--png gates_whisper.png] \\
        [--results-md RESULTS.md]

(or ``python -m speechkit.bench.whisper_gate_map ...``). One model should serve every budget
chosen at decode time; this shows whether it does. The model (``task: prune_whisper``, a
``gated_whisper`` checkpoint or packed directory) transcribes the test utterances at each budget
through ``speechkit.inference.Transcriber`` (the ``speechkit transcribe`` / ``decode`` path), and
per budget the table gives the decoder GFLOPs per window and sparsity (analytic, as
``decode/whisper.py`` records them), the number of distinct gate patterns, the WER, and the
modules that were off in the most used pattern. ``--png``: a map of how often each decoder module
(layer x self-attention / cross-attention / FFN) ran at each budget.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import torch

from speechkit.bench import add_cite_argument, testset, write_section

TITLE = "Gated Whisper: what each budget keeps"
MODULES = ("self", "cross", "ffn")  # TransformerDecoderLayer.GATED order
logger = logging.getLogger(__name__)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", required=True, help="gated Whisper model (checkpoint, packed dir)")
    p.add_argument("--budgets", type=float, nargs="+", default=[0.1, 0.3, 0.5, 0.7, 0.9, 1.0])
    testset.add_arguments(p, max_utts=30)
    p.add_argument("--beam", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--png", type=Path, help="write the gate map here")
    p.add_argument("--results-md", type=Path)
    p.add_argument("--label", default="", help="added to the section title")
    add_cite_argument(p)
    return p.parse_args(argv)


def off_modules(pattern: str) -> str:
    """``"111101"`` -> ``"L1 cross"``: the decoder modules a pattern leaves out (or "none")."""
    off = [f"L{i // 3} {MODULES[i % 3]}" for i, c in enumerate(pattern) if c == "0"]
    return ", ".join(off) or "none"


def run(args: argparse.Namespace) -> dict:
    """Per budget: gate summary (``WhisperWindowDecoder.gate_summary``), on-rate per module, WER."""
    from speechkit import zoo
    from speechkit.config import ConfigError
    from speechkit.inference import TranscribeOptions, Transcriber
    from speechkit.metrics import wer

    torch.set_num_threads(args.threads)
    pre = zoo.load(args.model)
    if pre.model_type != "gated_whisper":
        raise SystemExit(f"--model {args.model}: a {pre.model_type} model, not a gated Whisper")
    data = testset.from_args(args)
    opts = TranscribeOptions(beam=args.beam, batch_size=8, language=args.language)
    rows = []
    for budget in args.budgets:
        try:  # one at a time: each sets the shared model's budget
            tr = Transcriber(pre, opts, budget=budget, name=args.model)
        except ConfigError as e:
            raise SystemExit(str(e)) from None
        with torch.inference_mode():
            hyps = [r.text for r in tr(data.waves)]
        summary = tr.windows.gate_summary()
        counts = summary["pattern_windows"]
        n = sum(counts.values())
        on_rate = [sum(c for p, c in counts.items() if p[i] == "1") / n
                   for i in range(len(next(iter(counts))))]  # fmt: skip
        rows.append({**summary, "wer": wer(data.refs, hyps).rate, "on_rate": on_rate})
        logger.info("budget %.2f: sparsity %.3f, WER %.2f", budget, summary["sparsity"],
                    rows[-1]["wer"])  # fmt: skip
    return {"rows": rows, "set": data.name, "utterances": len(data.waves),
            "seconds": data.seconds}  # fmt: skip


def report(res: dict, args) -> list[str]:
    lines = [
        f"Test set: {res['set']}, {res['utterances']} utterances ({res['seconds']:.0f} s); beam "
        f"{args.beam}. Decoder GFLOPs per window: analytic, output layer included.",
        "",
        "| budget | decoder GFLOPs per window (of full) | decoder sparsity % | gate patterns | "
        "WER % | off in the most used pattern |",
        "|---|---|---|---|---|---|",
    ]
    for r in res["rows"]:
        top = next(iter(r["pattern_windows"]))
        lines.append(f"| {r['budget']:.2f} | {r['gflops_dec']:.3f} ({r['gflops_dec_full']:.3f}) | "
                     f"{100 * r['sparsity']:.1f} | {r['gate_patterns']} | {r['wer']:.2f} | "
                     f"{off_modules(top)} |")  # fmt: skip
    if args.png:
        lines += ["", f"![gate map]({args.png.name})"]
    return lines


def plot(res: dict, png: Path, title: str) -> None:
    """Budgets (rows) x decoder modules (columns): the fraction of windows that ran each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = [r["on_rate"] for r in res["rows"]]
    n_mod = len(grid[0])
    fig, ax = plt.subplots(figsize=(0.5 * n_mod + 2.5, 0.45 * len(grid) + 1.6))
    im = ax.imshow(grid, vmin=0, vmax=1, cmap="viridis", aspect="auto")
    ax.set_xticks(range(n_mod), [f"L{i // 3} {MODULES[i % 3]}" for i in range(n_mod)],
                  rotation=60, ha="right")  # fmt: skip
    ax.set_yticks(range(len(grid)), [f"{r['budget']:.2f} ({100 * r['sparsity']:.0f} % off)"
                                     for r in res["rows"]])  # fmt: skip
    ax.set_ylabel("budget (decoder sparsity)")
    fig.colorbar(im, ax=ax, label="fraction of windows run")
    ax.set_title(title, fontsize=9)
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=90, bbox_inches="tight")
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    res = run(args)
    if args.png:
        plot(res, args.png, f"{Path(args.model).parent.name}: decoder modules run per budget")
    lines = report(res, args)
    print("\n".join(lines))
    if args.results_md:
        title = f"{TITLE}{': ' + args.label if args.label else ''}"
        write_section(args.results_md, title, "whisper_gate_map", argv, args.cite_path, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
