"""Where the inference time goes: two configs of one size, split differently (encoder/decoder).

    nice -n 15 speechkit bench encdec-split \
        --configs conf/s2t/phrasebook_tiny_balanced.yaml conf/s2t/phrasebook_tiny_deepenc.yaml \
        --train-cuts data/cuts_train.jsonl.gz --dev-cuts data/cuts_dev.jsonl.gz \
        --test-cuts data/cuts_test.jsonl.gz --tokenizer data/tokenizer --minutes 6 \
        [--results-md RESULTS.md]

(or ``python -m speechkit.bench.encdec_split ...``). The two configs should have about the same
parameter count (``param_counts`` gives them; the table shows them), e.g. the phrasebook's
``conf/s2t/phrasebook_tiny_balanced.yaml`` (4 encoder + 4 decoder layers) and
``conf/s2t/phrasebook_tiny_deepenc.yaml`` (5 encoder + 2 decoder layers). The encoder runs once
per utterance, the decoder once per output token (times the beam), so moving parameters from
the decoder to the encoder should speed up decoding at a similar cost per training step.

For each config, in turn (never at the same time, so that each has the CPU the other had):

1. train for ``--minutes`` of wall-clock time, the same budget for both (``python -m
   speechkit.bin.train ... --set trainer.max_minutes=M``; the config's ``max_steps`` still caps
   it, and the learning-rate schedule is the config's); ``model_avg.pt`` is then the average
   of the best checkpoints, as in the recipe;
2. decode the ``--language`` cuts of ``--test-cuts`` with ASR, the same beam and CTC weight
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

from speechkit.bench import add_cite_argument, cite_paths, cited_command, read_paths_line
from speechkit.metrics import wer
from speechkit.models import build_model
from speechkit.report import provenance_lines, update_markdown
from speechkit.text import load_tokenizer
from speechkit.train.config import load_experiment_config

TITLE = "Encoder/decoder split: decode speed and WER at equal parameter count"
logger = logging.getLogger(__name__)


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
    """``speechkit train`` for ``--minutes``; returns its command line."""
    from speechkit.bin import train as train_cli

    argv = ["--config", str(config), "--train-cuts", str(args.train_cuts)]
    argv += ["--dev-cuts", str(args.dev_cuts), "--tokenizer", str(args.tokenizer)]
    argv += ["--out", str(out), "--set", f"trainer.max_minutes={args.minutes:g}"]
    argv += [x for kv in args.overrides for x in ("--set", kv)]
    if train_cli.main(argv) != 0 or not (out / "model_avg.pt").is_file():
        raise SystemExit(f"training {config.name} failed; see {out}/train.log")
    return ["python", "-m", "speechkit.bin.train", *argv]


def decode(model: Path, cuts: Path, args: argparse.Namespace, out: Path) -> list[str]:
    """``speechkit decode`` of ``cuts`` (ASR only); returns its command line."""
    from speechkit.bin import decode as decode_cli

    argv = ["--model", str(model), "--cuts", str(cuts), "--out", str(out), "--tasks", "asr"]
    argv += ["--beam-size", str(args.beam_size), "--ctc-weight", str(args.ctc_weight)]
    if decode_cli.main(argv) != 0:
        raise SystemExit(f"decoding with {model} failed")
    return ["python", "-m", "speechkit.bin.decode", *argv]


def split_name(manifest: Path) -> str:
    """``test_seen`` for ``.../cuts_test_seen.jsonl.gz``: names the decode directory."""
    name = Path(manifest).name.removesuffix(".gz").removesuffix(".jsonl")
    return name.removeprefix("cuts_")


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
    dec = exp / f"decode_{split_name(args.test_cuts)}"
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
    test = split_name(args.test_cuts)
    lines = [
        f"## {TITLE}",
        "",
        f"Each config trained for {args.minutes:g} min of wall-clock time on this machine{short}, "
        f"then {test} `{args.language}` ASR decoded with beam {args.beam_size}, CTC weight "
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
    cite = args.cite_path
    lines += ["", *provenance_lines(cited_command("encdec_split", argv, cite))]
    lines += read_paths_line(cite)
    lines += [f"- run: `{shlex.join(cite_paths(c, cite))}`" for c in commands]
    return lines + [""]


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="speechkit bench encdec-split", description=__doc__.split("\n")[0]
    )
    p.add_argument("--configs", type=Path, nargs=2, required=True, help="the two experiment YAMLs")
    p.add_argument("--train-cuts", type=Path, required=True, help="lhotse cut manifest")
    p.add_argument("--dev-cuts", type=Path, required=True, help="validation cut manifest")
    p.add_argument("--test-cuts", type=Path, required=True, help="decoded and scored (ASR)")
    p.add_argument("--tokenizer", type=Path, required=True)
    p.add_argument("--minutes", type=float, default=6.0, help="training wall-clock budget each")
    p.add_argument("--language", default="eng", help="language of the test cuts decoded (ASR)")
    p.add_argument("--beam-size", type=int, default=5)
    p.add_argument("--ctc-weight", type=float, default=0.3)
    p.add_argument("--out-dir", type=Path, default=Path("exp/encdec_split"))
    p.add_argument("--results-md", type=Path, default=None)
    add_cite_argument(p)
    p.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[],
                   help="overrides for both configs (tests shrink the models)")  # fmt: skip
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    test_cuts = args.out_dir / f"cuts_{split_name(args.test_cuts)}_{args.language}.jsonl.gz"
    language_cuts(args.test_cuts, args.language, test_cuts)
    vocab = load_tokenizer(args.tokenizer).vocab_size
    rows, commands = [], []
    for config in args.configs:
        row, cmds = run_one(config, test_cuts, vocab, args)
        rows.append(row)
        commands += cmds
    lines = report(rows, commands, args, argv)
    print("\n".join(lines))
    if args.results_md:
        update_markdown(args.results_md, TITLE, "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
