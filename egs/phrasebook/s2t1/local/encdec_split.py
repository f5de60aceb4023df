"""Where the inference time goes: a balanced encoder/decoder versus a deep encoder, equal size.

    nice -n 15 python local/encdec_split.py --data data/phrasebook --tokenizer data/phrasebook/tokenizer \
        --minutes 6 --results-md RESULTS.md

Two configs of the same parameter count (within 3%; ``param_counts`` checks it):
``conf/s2t/phrasebook_tiny_balanced.yaml`` (4 encoder + 4 decoder layers) and
``conf/s2t/phrasebook_tiny_deepenc.yaml`` (5 encoder + 2 decoder layers). The encoder runs once
per utterance, the decoder once per output token (times the beam), so moving parameters from
the decoder to the encoder should speed up decoding at a similar cost per training step.

For each config, in turn (never at the same time, so that each has the CPU the other had):

1. train for ``--minutes`` of wall-clock time, the same budget for both (``python -m
   speechkit.bin.train ... --set trainer.max_minutes=M``; the config's ``max_steps`` still caps
   it, and the learning-rate schedule is the config's); ``model_avg.pt`` is then the average
   of the best checkpoints, as in the recipe;
2. decode the ``--language`` cuts of ``test_seen`` with ASR, the same beam and CTC weight
   (``python -m speechkit.bin.decode``), giving RTFx = audio seconds / wall seconds;
3. score WER (``speechkit.metrics.wer``, normalised text).

The two CLIs are called in this process (their ``main``); the table cites the equivalent
commands. Work goes to ``--out-dir/<config name>``, which must not hold a previous run.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import logging
import shlex
import sys
from pathlib import Path

import torch
from lhotse import CutSet

from speechkit.metrics import wer
from speechkit.models import build_model
from speechkit.report import provenance_lines, update_markdown
from speechkit.text.sentencepiece import SentencePieceTokenizer
from speechkit.train.config import load_experiment_config

REPO = Path(__file__).resolve().parents[4]
CONFIGS = [
    REPO / "conf" / "s2t" / "phrasebook_tiny_balanced.yaml",
    REPO / "conf" / "s2t" / "phrasebook_tiny_deepenc.yaml",
]
TITLE = "Encoder/decoder split: decode speed and WER at equal parameter count"
logger = logging.getLogger("encdec_split")


def param_counts(config: Path, vocab_size: int, overrides: list[str] = ()) -> dict[str, int]:
    """Parameters of the config's model (encoder, decoder, total), built on the meta device."""
    cfg = load_experiment_config(config, list(overrides))
    with torch.device("meta"):  # shapes only
        model = build_model(dataclasses.replace(cfg.model, vocab_size=vocab_size))
    counts = {"encoder": 0, "decoder": 0, "total": 0}
    for name, p in model.named_parameters():
        part = name.split(".")[0]
        if part in counts:
            counts[part] += p.numel()
        counts["total"] += p.numel()
    return counts


def language_cuts(src: Path, language: str, dst: Path) -> int:
    """Writes the cuts of ``src`` spoken in ``language`` to ``dst``; returns how many."""
    cuts = CutSet.from_file(src).filter(lambda c: c.supervisions[0].language == language)
    cuts = cuts.to_eager()
    if not len(cuts):
        raise SystemExit(f"{src}: no cuts in language {language!r}")
    cuts.to_file(dst)
    return len(cuts)


def train(config: Path, args: argparse.Namespace, out: Path) -> list[str]:
    from speechkit.bin import train as train_cli

    argv = ["--config", str(config), "--train-cuts", str(args.data / "cuts_train.jsonl.gz")]
    argv += ["--dev-cuts", str(args.data / "cuts_dev.jsonl.gz"), "--tokenizer", str(args.tokenizer)]
    argv += ["--out", str(out), "--set", f"trainer.max_minutes={args.minutes:g}"]
    argv += [x for kv in args.overrides for x in ("--set", kv)]
    if train_cli.main(argv) != 0 or not (out / "model_avg.pt").is_file():
        raise SystemExit(f"training {config.name} failed; see {out}/train.log")
    return ["python", "-m", "speechkit.bin.train", *argv]


def decode(model: Path, cuts: Path, args: argparse.Namespace, out: Path) -> list[str]:
    from speechkit.bin import decode as decode_cli

    argv = ["--model", str(model), "--cuts", str(cuts), "--out", str(out), "--tasks", "asr"]
    argv += ["--beam-size", str(args.beam_size), "--ctc-weight", str(args.ctc_weight)]
    if decode_cli.main(argv) != 0:
        raise SystemExit(f"decoding with {model} failed")
    return ["python", "-m", "speechkit.bin.decode", *argv]


def steps_trained(exp: Path) -> int:
    with open(exp / "train_log.csv") as f:
        rows = list(csv.DictReader(f))
    return int(rows[-1]["step"]) if rows else 0


def run_one(config: Path, test_cuts: Path, vocab: int, args) -> tuple[dict, list[list[str]]]:
    """Train, decode and score one config; returns its table row and the commands run."""
    exp = args.out_dir / config.stem
    if (exp / "checkpoints").exists():
        raise SystemExit(f"{exp} holds a previous run: remove it or pass another --out-dir")
    commands = [train(config, args, exp)]
    dec = exp / "decode_test_seen"
    commands.append(decode(exp / "model_avg.pt", test_cuts, args, dec))
    stats = json.loads((dec / "decode_stats.json").read_text())
    rows = [json.loads(line) for line in (dec / f"asr_{args.language}" / "hyps.jsonl").open()]
    score = wer([r["ref"] for r in rows], [r["hyp"] for r in rows])
    counts = param_counts(config, vocab, args.overrides)
    row = {
        "config": config.name,
        **counts,
        "steps": steps_trained(exp),
        "rtfx": stats["rtfx"],
        "audio_s": stats["audio_seconds"],
        "wer": score.rate,
        "utts": len(rows),
    }
    logger.info("%s: %s", config.name, row)
    return row, commands


def report(rows: list[dict], commands: list[list[str]], args, argv: list[str]) -> list[str]:
    short = " (a short run: figures are indicative only)" if args.minutes < 6 else ""
    lines = [
        f"## {TITLE}",
        "",
        f"Each config trained for {args.minutes:g} min of wall-clock time on this machine{short}, "
        f"then test_seen `{args.language}` ASR decoded with beam {args.beam_size}, CTC weight "
        f"{args.ctc_weight:g}, {rows[0]['utts']} utterances ({rows[0]['audio_s']:.0f} s of audio). "
        "RTFx = audio seconds / decoding wall seconds (higher is faster).",
        "",
        "| config | encoder params | decoder params | total | updates | decode RTFx | WER % |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['config']} | {r['encoder'] / 1e6:.2f}M | {r['decoder'] / 1e6:.2f}M | "
            f"{r['total'] / 1e6:.2f}M | {r['steps']} | {r['rtfx']:.1f} | {r['wer']:.2f} |"
        )
    cited = ["python", *argv]
    if args.cite_as_recipe:  # the paths a user of the recipe has
        recipe = {
            str(args.data): "data/phrasebook",
            str(args.tokenizer): "data/phrasebook/tokenizer",
        }
        cited = [recipe.get(a, a) for a in cited if a != "--cite-as-recipe"]
    lines += ["", *provenance_lines(shlex.join(cited))]
    if args.cite_as_recipe:
        lines.append(f"- data read for this run: `{args.data}`, tokenizer `{args.tokenizer}`")
    lines += [f"- run: `{shlex.join(c)}`" for c in commands]
    return lines + [""]


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, required=True, help="dir with cuts_{train,dev,test_seen}")
    p.add_argument("--tokenizer", type=Path, required=True)
    p.add_argument("--minutes", type=float, default=6.0, help="training wall-clock budget each")
    p.add_argument("--language", default="eng", help="test_seen language decoded (ASR)")
    p.add_argument("--beam-size", type=int, default=5)
    p.add_argument("--ctc-weight", type=float, default=0.3)
    p.add_argument("--out-dir", type=Path, default=Path("exp/encdec_split"))
    p.add_argument("--results-md", type=Path, default=None)
    p.add_argument("--configs", type=Path, nargs=2, default=CONFIGS)
    p.add_argument("--cite-as-recipe", action="store_true",
                   help="cite --data/--tokenizer as the recipe's data/phrasebook paths")  # fmt: skip
    p.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[],
                   help="overrides for both configs (tests shrink the models)")  # fmt: skip
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    test_cuts = args.out_dir / f"cuts_test_seen_{args.language}.jsonl.gz"
    language_cuts(args.data / "cuts_test_seen.jsonl.gz", args.language, test_cuts)
    vocab = SentencePieceTokenizer.load(args.tokenizer).vocab_size
    rows, commands = [], []
    for config in args.configs:
        row, cmds = run_one(config, test_cuts, vocab, args)
        rows.append(row)
        commands += cmds
    lines = report(rows, commands, args, ["local/encdec_split.py", *argv])
    print("\n".join(lines))
    if args.results_md:
        update_markdown(args.results_md, TITLE, "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
