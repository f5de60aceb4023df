"""The arms of context-driven dynamic pruning (``task: prune``), trained, decoded, benchmarked
and tabulated the same way.

    speechkit prune-arms train  --config conf/prune/phrasebook_prune.yaml --init exp/base/model_avg.pt \\
        --train-cuts data/cuts_train.jsonl.gz --dev-cuts data/cuts_dev.jsonl.gz --contexts data/contexts \\
        --exp exp --arms full,static,dyn,dyn_spk,dyn_evt,dyn_lang,dyn_all --seeds 0,1 [--set K=V ...]
    speechkit prune-arms decode ... --test-cuts data/cuts_test_*.jsonl.gz --budget 0.5
    speechkit prune-arms bench  ... --test-cuts data/cuts_test_seen.jsonl.gz --budget 0.5 --max-utts 60
    speechkit prune-arms report ... --results-md RESULTS.md

Arms (``--set`` overrides of the one config; ``EXP/<arm>/s<seed>``):

    full      model.gate_mode=none: full fine-tuning, the reference
    static    model.gate_mode=static: gates from the budget alone, the same for every utterance
    dyn       dynamic gates from the audio (front-end average) and the budget, no context
    dyn_spk   + speaker context        dyn_evt   + acoustic-event context
    dyn_lang  + language context (oracle one-hot in training; decoded with the model's own
              LID posterior, and again with the oracle into ``decode_<test>_oracle``)
    dyn_all   + speaker, event and language

``train --steps S --settle-steps N``: every arm gets S updates in all. With N > 0 a gated arm
trains in two phases: gated fine-tuning for S - N updates into ``<run>/search``, then N updates
of ``prune.settle`` from its ``model_avg.pt`` into ``<run>`` (the weights under the frozen
predictor's own gates, ``speechkit/tasks/prune.py``; ``--settle-set`` overrides that phase
only, e.g. its learning rate); the full arm trains its S updates at once.
Without ``--steps`` the config's ``trainer.max_steps`` holds (and N must be 0).

``decode``: ``speechkit decode`` of every test manifest (``--budget`` for the gated arms;
beam ``--beam``) into ``<run>/decode_<test>``, then ``speechkit score``. ``bench``: ``speechkit
bench prune`` of each gated arm against the full arm of the same seed (interleaved), figures in
``<run>/bench_<test>.json``. ``report``: one table (arms x figures, mean over seeds, with the
range where there are several) into ``--results-md``, and gate pictures per language, event
(``--test-cuts``: test_seen's manifest) and speaker group (``--contexts``) beside it. ``--tag``
(e.g. ``_b0.7`` with ``--budget 0.7``) keeps a second budget's decodes, benchmarks and table
apart from the first. Every call prints the equivalent command; finished trainings resume and
skip; everything runs in this process except training.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path

ARMS = {
    "full": ["model.gate_mode=none", "model.gate_contexts=[]"],
    "static": ["model.gate_mode=static", "model.gate_contexts=[]"],
    "dyn": ["model.gate_contexts=[]"],
    "dyn_spk": ["model.gate_contexts=[speaker]"],
    "dyn_evt": ["model.gate_contexts=[event]"],
    "dyn_lang": ["model.gate_contexts=[language]"],
    "dyn_all": ["model.gate_contexts=[speaker,event,language]"],
}
LANGUAGE_ARMS = ("dyn_lang", "dyn_all")


def test_name(path: Path) -> str:
    """``cuts_test_seen.jsonl.gz`` -> ``test_seen``."""
    name = path.name.split(".")[0]
    return name[len("cuts_") :] if name.startswith("cuts_") else name


def _echo(module: str, argv: list[str]) -> None:
    print(f"+ python -m {module} " + shlex.join(argv), flush=True)


def train(run: Path, arm: str, seed: int, args) -> None:
    init = Path(str(args.init).format(seed=seed))
    settle = args.settle_steps if arm != "full" else 0
    steps = [f"trainer.max_steps={args.steps - settle}"] if args.steps else []
    if not settle:
        _train(run, init, arm, seed, args, steps)
        return
    _train(run / "search", init, arm, seed, args, steps)
    settled = ["prune.settle=true", f"trainer.max_steps={settle}", *args.settle_overrides]
    _train(run, run / "search" / "model_avg.pt", arm, seed, args, settled)


def _train(run: Path, init: Path, arm: str, seed: int, args, extra: list[str]) -> None:
    argv = ["--config", str(args.config), "--init", str(init), "--train-cuts",
            *map(str, args.train_cuts), "--dev-cuts", *map(str, args.dev_cuts), "--out", str(run),
            "--resume", "--set", *ARMS[arm], f"trainer.seed={seed}",
            f"prune.contexts_dir={args.contexts}", *args.overrides, *extra]  # fmt: skip
    _echo("speechkit.bin.train", argv)
    subprocess.run([sys.executable, "-m", "speechkit.bin.train", *argv], check=True)


def decode(run: Path, arm: str, args) -> None:
    from speechkit.bin import decode as decode_bin
    from speechkit.bin import score as score_bin
    from speechkit.bin.prune_report import ctc_suffix

    model = run / "model_avg.pt"
    tag = ("" if arm == "full" else args.tag) + ctc_suffix(args.ctc_weight)  # full: no budget
    variants = [("lid", "")] + ([("oracle", "_oracle")] if arm in LANGUAGE_ARMS else [])
    for test in args.test_cuts:
        for language, suffix in variants:
            out = run / f"decode_{test_name(test)}{tag}{suffix}"
            argv = ["--model", str(model), "--cuts", str(test), "--out", str(out),
                    "--beam-size", str(args.beam), "--threads", str(args.threads),
                    "--ctc-weight", str(args.ctc_weight)]  # fmt: skip
            if arm != "full":
                argv += ["--budget", str(args.budget), "--contexts", str(args.contexts),
                         "--language-context", language]  # fmt: skip
            argv += ["--max-per-output", str(args.max_per_output)] if args.max_per_output else []
            _echo("speechkit.bin.decode", argv)
            if decode_bin.main(argv) != 0:
                raise SystemExit(f"decoding {test} with {model} failed")
            _echo("speechkit.bin.score", ["--decode-dir", str(out)])
            if score_bin.main(["--decode-dir", str(out)]) != 0:
                raise SystemExit(f"scoring {out} failed")


def bench(run: Path, arm: str, seed: int, args) -> None:
    from speechkit.bench import prune as bench_prune

    if arm == "full":
        return
    full = args.exp / "full" / f"s{seed}" / "model_avg.pt"
    for test in args.test_cuts:
        argv = ["--gated", str(run / "model_avg.pt"), "--full", str(full), "--cuts", str(test),
                "--budget", str(args.budget), "--contexts", str(args.contexts),
                "--max-utts", str(args.max_utts), "--threads", str(args.threads),
                "--beam-size", str(args.beam), "--tasks", args.bench_tasks,
            "--batch-duration", str(args.bench_batch_duration)]  # fmt: skip
        _echo("speechkit.bench.prune", argv)
        res = bench_prune.run(bench_prune.parse_args(argv))
        res["command"] = "python -m speechkit.bench.prune " + shlex.join(argv)
        (run / f"bench_{test_name(test)}{args.tag}.json").write_text(
            json.dumps(res, indent=2) + "\n"
        )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="speechkit prune-arms", description=__doc__.split("\n")[0])
    p.add_argument("action", choices=("train", "decode", "bench", "report"))
    p.add_argument("--config", type=Path)
    p.add_argument("--init", type=Path,
                   help="the trained s2t base model; {seed} in it is the arm's seed (e.g. "
                        "exp/full/s{seed}/model_avg.pt: gate each seed's full fine-tune)")  # fmt: skip
    p.add_argument("--train-cuts", type=Path, nargs="+", default=[])
    p.add_argument("--dev-cuts", type=Path, nargs="+", default=[])
    p.add_argument("--test-cuts", type=Path, nargs="*", default=[])
    p.add_argument("--contexts", type=Path, default=Path("data/contexts"))
    p.add_argument("--exp", type=Path, required=True)
    p.add_argument("--arms", default="full,static,dyn,dyn_lang")
    p.add_argument("--seeds", default="0")
    p.add_argument("--budget", type=float, default=0.5)
    p.add_argument("--beam", type=int, default=1)
    p.add_argument("--ctc-weight", type=float, default=0.0,
                   help="decode/report: joint CTC weight (> 0: outputs decode_<test>..._ctc<w>, "
                        "the full arm's too)")  # fmt: skip
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--max-per-output", type=int, default=0, help="decode: cuts per output dir")
    p.add_argument("--max-utts", type=int, default=60, help="bench: utterances")
    p.add_argument("--bench-tasks", default="asr", help="bench: decode tasks")
    p.add_argument("--bench-batch-duration", type=float, default=15.0,
                   help="bench: audio seconds per batch (batched)")  # fmt: skip
    p.add_argument("--results-md", type=Path, help="report: the markdown file to update")
    p.add_argument("--command", default="", help="report: the command to cite")
    p.add_argument("--title", default=None, help="report: the RESULTS section's title")
    p.add_argument("--tag", default="",
                   help="suffix of the decode and bench outputs (e.g. _b0.4 for a second budget; "
                        "the full arm, which has no budget, keeps its untagged decodes)")  # fmt: skip
    p.add_argument("--steps", type=int, default=0,
                   help="train: updates per arm (0: the config's trainer.max_steps)")  # fmt: skip
    p.add_argument("--settle-steps", type=int, default=0,
                   help="train: the last N of a gated arm's --steps updates settle its weights "
                        "under its frozen gates (prune.settle)")  # fmt: skip
    p.add_argument("--settle-set", dest="settle_overrides", nargs="+", action="extend",
                   default=[], help="train: key=value overrides of the settle phase only "
                                    "(after --set), e.g. optim.lr=0.0001")  # fmt: skip
    p.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[])
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    unknown = [a for a in arms if a not in ARMS]
    if unknown:
        build_parser().error(f"unknown arms {unknown}; known: {', '.join(ARMS)}")
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    if args.action == "train" and not (args.config and args.init and args.train_cuts):
        build_parser().error("train needs --config, --init and --train-cuts")
    if args.settle_steps and not 0 < args.settle_steps < args.steps:
        build_parser().error("--settle-steps N needs --steps S with 0 < N < S")
    if args.action in ("decode", "bench") and not args.test_cuts:
        build_parser().error(f"{args.action} needs --test-cuts")
    if args.action == "report":
        from speechkit.bin.prune_report import write_report

        seen = [t for t in args.test_cuts if test_name(t) == "test_seen"]
        write_report(args.exp, arms, seeds, args.budget, args.results_md, args.command,
                     test_cuts=(seen or args.test_cuts or [None])[0], contexts=args.contexts,
                     tag=args.tag, title=args.title, ctc_weight=args.ctc_weight)  # fmt: skip
        return 0
    for seed in seeds:
        for arm in arms:
            run = args.exp / arm / f"s{seed}"
            if args.action == "train":
                train(run, arm, seed, args)
            elif args.action == "decode":
                decode(run, arm, args)
            else:
                bench(run, arm, seed, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
