"""The training arms of weakly supervised pretraining (WSP), each with the same number of updates.

    speechkit wsp_arms train  --config conf/s2t/wsp_tiny.yaml --tokenizer data/tokenizer \\
        --splits data/splits --dev-cuts data/corpus/cuts_dev.jsonl.gz --exp exp \\
        --budgets 10 --conditions real --arms gold,mix,wsp,wsp_ctc --seeds 0 \\
        --steps 800 --pretrain-steps 500 [--set trainer.num_threads=1 ...] [--jobs 2] [--dry-run]
    speechkit wsp_arms decode ... --test-cuts data/corpus/cuts_test_*.jsonl.gz [--beam 5] [--jobs 2]
    speechkit wsp_arms score  ...

Arms, for a gold budget P and a weak condition C (``speechkit gold_split`` made
``SPLITS/gold<P>/gold.jsonl.gz`` and ``weak_<C>.jsonl.gz``), all with ``--steps`` updates:

    gold      train on the gold cuts                            -> EXP/gold<P>/gold/s<seed>
    mix       train on gold + weak cuts in one run (text_field: weak_text)
                                                                -> EXP/gold<P>/<C>/mix/s<seed>
    wsp       pretrain ``--pretrain-steps`` updates on the weak cuts, then fine-tune the rest of
              the updates on the gold cuts from it (``--init``) -> EXP/gold<P>/<C>/wsp/s<seed>/{pre,ft}
    wsp_<F>   wsp on the weak cuts kept by a filter F (``weak_<C>_<F>.jsonl.gz``, written by
              ``speechkit weak_filter --method F``)             -> EXP/gold<P>/<C>/wsp_<F>/s<seed>
    mixft     mix for ``--pretrain-steps`` updates, then fine-tune the rest on the gold cuts, as
              wsp does: is it the fine-tuning or the weak-only pretraining that pays?
                                                                -> EXP/gold<P>/<C>/mixft/s<seed>
    allgold   every pool cut with its gold text: the ceiling    -> EXP/allgold/s<seed>

Every arm is ``speechkit train`` with the same config (``--set`` overrides added: the step count,
``data.text_field``, ``trainer.seed``; fine-tuning also gets ``--finetune-set``, pretraining
``--pretrain-set``), so the commands printed before each run reproduce it alone.

The pretraining's model, the one fine-tuning starts from, is the average of its last
checkpoints (``--pretrain-set`` defaults to ``trainer.select_by=step trainer.select_mode=max``),
not of its best by dev loss: trained on weak text, the model grows confident in its errors and
the gold dev loss rises while its accuracy still improves, so the loss picked checkpoints
360-800 updates before the end and made the seed decide the result
(egs/phrasebook/wsp1/RESULTS.md). Every arm's final model is selected alike, by the config's
``trainer.select_by`` (dev accuracy in ``conf/s2t/wsp_tiny.yaml``).

Training resumes and skips finished runs. ``decode`` decodes every test manifest with each
arm's final model into ``<run>/decode_<test name>/`` (``speechkit decode``, skipped when done
since the model was written); ``score`` scores them (``speechkit score``, in this process).
``speechkit wsp_report`` makes the tables and plots.

``--jobs N`` trains (or decodes) N runs at a time, each in its own process with its output in
``<run>/wsp_arms_train.log`` (``wsp_arms_decode.log``): the arms are independent, and a
one-thread training leaves the other cores idle. A failed run does not stop the others; the
command then exits non-zero and names the failed runs' logs.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from speechkit.bin.gold_split import manifest_name
from speechkit.data.weak import read_manifest

# The pretraining's model averages its newest checkpoints (see the module docstring).
PRETRAIN_DEFAULT = ["trainer.select_by=step", "trainer.select_mode=max"]
ARMS = ("gold", "mix", "wsp", "mixft", "allgold")  # and wsp_<filter>

__all__ = ["Grid", "Run", "TrainStep", "grid_from_args", "make_run", "plan"]


@dataclass
class TrainStep:
    """One ``speechkit train`` call."""

    out: Path
    train_cuts: list[Path]
    steps: int
    text_field: str = "text"
    init: Path | None = None  # a checkpoint (fine-tuning); None: the tokenizer, from scratch
    finetune: bool = False
    pretrain: bool = False  # a wsp arm's first stage: its model is an intermediate


@dataclass
class Run:
    """One arm at one budget, condition and seed: its training steps; its final model is the
    last step's ``model_avg.pt``."""

    arm: str
    budget: str
    condition: str
    seed: int
    dir: Path
    steps: list[TrainStep]

    @property
    def model(self) -> Path:
        return self.steps[-1].out / "model_avg.pt"

    @property
    def updates(self) -> int:
        return sum(s.steps for s in self.steps)


@dataclass
class Grid:
    """What to run: ``budgets`` (``gold_split`` percents, as named in SPLITS), weak
    ``conditions`` (weak manifest names), ``arms``, ``seeds``; ``steps`` updates per arm, of
    which ``pretrain_steps`` on weak text for the wsp arms."""

    splits: Path
    exp: Path
    budgets: list[str]
    conditions: list[str]
    arms: list[str]
    seeds: list[int] = field(default_factory=lambda: [0])
    steps: int = 800
    pretrain_steps: int = 500

    def __post_init__(self) -> None:
        if not 0 < self.pretrain_steps < self.steps:
            raise ValueError(
                f"pretrain steps ({self.pretrain_steps}) must lie in (0, steps={self.steps})"
            )
        for arm in self.arms:
            if arm not in ARMS and not arm.startswith("wsp_"):
                raise ValueError(f"unknown arm {arm!r}: {', '.join(ARMS)}, wsp_<filter>")


def make_run(grid: Grid, arm: str, budget: str, cond: str, seed: int) -> Run:
    split = grid.splits / f"gold{budget}"
    gold = split / "gold.jsonl.gz"
    if arm == "allgold":
        d = grid.exp / "allgold" / f"s{seed}"
        return Run(
            arm, "100", "", seed, d, [TrainStep(d, [gold, split / "rest.jsonl.gz"], grid.steps)]
        )
    if arm == "gold":
        d = grid.exp / f"gold{budget}" / "gold" / f"s{seed}"
        return Run(arm, budget, "", seed, d, [TrainStep(d, [gold], grid.steps)])
    d = grid.exp / f"gold{budget}" / cond / arm / f"s{seed}"
    weak = split / f"weak_{cond}.jsonl.gz"
    if arm == "mix":
        return Run(
            arm, budget, cond, seed, d, [TrainStep(d, [gold, weak], grid.steps, "weak_text")]
        )
    if arm == "mixft":
        first = [gold, weak]
    else:
        first = [split / f"weak_{cond}{arm[len('wsp') :]}.jsonl.gz"]  # suffix: "" or "_ctc"
    pre = TrainStep(d / "pre", first, grid.pretrain_steps, "weak_text", pretrain=True)
    ft = TrainStep(
        d / "ft",
        [gold],
        grid.steps - grid.pretrain_steps,
        init=pre.out / "model_avg.pt",
        finetune=True,
    )
    return Run(arm, budget, cond, seed, d, [pre, ft])


def plan(grid: Grid) -> list[Run]:
    """Every run of the grid, each once (arms without a condition are shared by conditions)."""
    runs, seen = [], set()
    for budget in grid.budgets:
        for cond in grid.conditions:
            for arm in grid.arms:
                for seed in grid.seeds:
                    run = make_run(grid, arm, budget, cond, seed)
                    if run.dir not in seen:
                        seen.add(run.dir)
                        runs.append(run)
    return runs


def train_argv(step: TrainStep, args: argparse.Namespace) -> list[str]:
    """The ``speechkit train`` command line of one step."""
    argv = [sys.executable, "-m", "speechkit.bin.train", "--config", str(args.config)]
    argv += ["--train-cuts", *map(str, step.train_cuts), "--dev-cuts", *map(str, args.dev_cuts)]
    argv += ["--init", str(step.init)] if step.init else ["--tokenizer", str(args.tokenizer)]
    argv += ["--out", str(step.out), "--resume", "--set", f"trainer.max_steps={step.steps}"]
    argv += [f"data.text_field={step.text_field}", f"trainer.seed={args.run_seed}"]
    argv += args.overrides + (args.finetune_overrides if step.finetune else [])
    argv += args.pretrain_overrides if step.pretrain else []
    return argv


def _call(argv: list[str], dry_run: bool) -> None:
    print("+ " + shlex.join(argv), flush=True)
    if not dry_run:
        subprocess.run(argv, check=True)


def _check_nonempty(step: TrainStep) -> None:
    """A weak manifest that lost every cut to the checks or the filter is a clear error."""
    for path in step.train_cuts:
        if path.is_file() and not read_manifest(path):
            raise SystemExit(f"{path} has no cuts (its .json report says what was dropped)")


def _decode_argv(run: Run, test: Path, args: argparse.Namespace) -> list[str] | None:
    """The ``speechkit decode`` command of one test manifest; None when its hypotheses are newer
    than the run's model."""
    out = run.dir / f"decode_{manifest_name(test)}"
    done = out / "decode_stats.json"
    if done.is_file() and done.stat().st_mtime > run.model.stat().st_mtime:
        print(f"skip: {out} is newer than {run.model}", flush=True)
        return None
    argv = [sys.executable, "-m", "speechkit.bin.decode", "--model", str(run.model)]
    argv += ["--cuts", str(test), "--out", str(out)]
    return argv + ["--beam-size", str(args.beam), "--ctc-weight", str(args.ctc_weight)]


def _score(run: Run, test: Path, args: argparse.Namespace) -> None:
    from speechkit.bin import score

    argv = ["--decode-dir", str(run.dir / f"decode_{manifest_name(test)}")]
    print("+ python -m speechkit.bin.score " + shlex.join(argv), flush=True)
    if not args.dry_run and score.main(argv) != 0:
        raise SystemExit(f"scoring {argv[-1]} failed")


def _run_logged(run: Run, commands: list[list[str]], log: Path) -> str | None:
    """Runs one run's commands in turn, their output appended to ``log``; returns None on
    success, else what failed."""
    start = time.monotonic()
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as f:
        for argv in commands:
            f.write("+ " + shlex.join(argv) + "\n")
            f.flush()
            code = subprocess.run(argv, stdout=f, stderr=subprocess.STDOUT).returncode
            if code != 0:
                print(f"FAILED: {run.dir} (exit {code}; log: {log})", flush=True)
                return f"{run.dir}: exit {code}, see {log}"
    print(f"done: {run.dir} in {time.monotonic() - start:.0f} s", flush=True)
    return None


def _execute(work: list[tuple[Run, list[list[str]]]], args: argparse.Namespace) -> None:
    """Runs each run's commands: in turn in this terminal (``--jobs 1``), or ``--jobs`` runs at
    a time with one log per run."""
    if args.jobs <= 1 or args.dry_run:
        for _, commands in work:
            for argv in commands:
                _call(argv, args.dry_run)
        return
    jobs = [(run, cmds, run.dir / f"wsp_arms_{args.action}.log") for run, cmds in work]
    for _, commands, log in jobs:  # log: train.log is the trainer's own
        for argv in commands:
            print("+ " + shlex.join(argv), flush=True)
        print(f"  (log: {log})", flush=True)
    with ThreadPoolExecutor(args.jobs) as pool:
        failed = [f for f in pool.map(lambda job: _run_logged(*job), jobs) if f is not None]
    if failed:
        raise SystemExit(f"{len(failed)} of {len(work)} runs failed:\n" + "\n".join(failed))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="speechkit wsp_arms", description=__doc__.split("\n")[0])
    p.add_argument("action", choices=("train", "decode", "score"))
    p.add_argument("--config", type=Path, help="experiment YAML (train)")
    p.add_argument("--tokenizer", type=Path, help="tokenizer directory (train)")
    p.add_argument("--splits", type=Path, required=True)
    p.add_argument("--dev-cuts", type=Path, nargs="+", default=[], help="(train)")
    p.add_argument("--test-cuts", type=Path, nargs="*", default=[])
    p.add_argument("--exp", type=Path, required=True)
    p.add_argument("--budgets", required=True, help="comma list, as in SPLITS/gold<P>")
    p.add_argument("--conditions", default="real", help="comma list of weak manifest names")
    p.add_argument("--arms", default="gold,mix,wsp,wsp_ctc")
    p.add_argument("--seeds", default="0")
    p.add_argument("--steps", type=int, default=800, help="updates per arm")
    p.add_argument("--pretrain-steps", type=int, default=500, help="of which on weak text (wsp)")
    p.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[],
                   help="config overrides for every training")  # fmt: skip
    p.add_argument("--finetune-set", dest="finetune_overrides", nargs="+", action="extend", default=[],
                   help="for the fine-tuning stage of the wsp arms")  # fmt: skip
    p.add_argument("--pretrain-set", dest="pretrain_overrides", nargs="+", action="extend",
                   help="for the pretraining stage of the wsp arms (default: "
                   f"{' '.join(PRETRAIN_DEFAULT)}: its model is its last checkpoints)")  # fmt: skip
    p.add_argument("--beam", type=int, default=5)
    p.add_argument("--ctc-weight", type=float, default=0.3)
    p.add_argument("--jobs", type=int, default=1,
                   help="runs at a time (train, decode), each in its own process and log")  # fmt: skip
    p.add_argument("--dry-run", action="store_true", help="print the commands only")
    return p


def grid_from_args(args: argparse.Namespace) -> Grid:
    def items(text: str) -> list[str]:
        return [x.strip() for x in text.split(",") if x.strip()]

    return Grid(
        splits=args.splits,
        exp=args.exp,
        budgets=items(args.budgets),
        conditions=items(args.conditions),
        arms=items(args.arms),
        seeds=[int(s) for s in items(args.seeds)],
        **{k: getattr(args, k) for k in ("steps", "pretrain_steps") if hasattr(args, k)},
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.pretrain_overrides is None:
        args.pretrain_overrides = list(PRETRAIN_DEFAULT)
    if args.action == "train" and not (args.config and args.tokenizer and args.dev_cuts):
        build_parser().error("train needs --config, --tokenizer and --dev-cuts")
    if args.action != "train" and not args.test_cuts:
        build_parser().error(f"{args.action} needs --test-cuts")
    try:
        runs = plan(grid_from_args(args))
    except ValueError as e:
        build_parser().error(str(e))
    if args.action == "score":
        for run in runs:
            for test in args.test_cuts:
                _score(run, test, args)
        return 0
    work = []
    for run in runs:
        args.run_seed = run.seed
        if args.action == "train":
            if not args.dry_run:
                for step in run.steps:
                    _check_nonempty(step)
            commands = [train_argv(step, args) for step in run.steps]
        else:
            commands = [a for t in args.test_cuts if (a := _decode_argv(run, t, args)) is not None]
        if commands:
            work.append((run, commands))
    _execute(work, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
