"""Train any task family, then average its best checkpoints.

    speechkit train --config conf/s2t/phrasebook_tiny.yaml --tokenizer data/tokenizer \\
        --train-cuts data/cuts_train.jsonl.gz --dev-cuts data/cuts_dev.jsonl.gz \\
        --out exp/run [--resume] [--set optim.lr=5e-4 ...]

The config's ``task:`` key picks the family (``speechkit/tasks/``; ``s2t`` when absent):

* ``s2t``: OWSM-style speech-to-text from scratch (``--tokenizer``) or fine-tuned from a packed,
  imported or zoo model (``--init owsm-v3.1-ebf-base``; its tokenizer, model config and
  features replace the YAML's);
* ``whisper``: fine-tuning a Whisper model (``--init whisper-base``; ``conf/whisper/``);
* ``vocoder``: from scratch, or from a trained vocoder (``--init exp/vocoder``), e.g. fine-tuned
  on an acoustic model's mels (``conf/tts/vocoder_gta_cpu.yaml``, ``speechkit tts-gta``).

Writes ``OUT/config.yaml`` (the full experiment config), ``OUT/checkpoints/``,
``OUT/train_log.csv``, ``OUT/valid_log.csv``, ``OUT/tensorboard/``, ``OUT/train.log`` and finally
``OUT/model_avg.pt`` (the best ``trainer.average_best`` checkpoints by ``trainer.select_by``,
averaged; loadable by decode and pack_model). ``OUT/train_done.json`` marks a finished
schedule: a ``--resume`` with the same config (a field added since counts as its default) then
does nothing.

Data-parallel on N processes (docs/distributed.md)::

    torchrun --nproc_per_node N -m speechkit.bin.train --config ... --out exp/run

Each rank trains on its shard of every step's batches; rank 0 alone writes files.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

import yaml

from speechkit.checkpoint import atomic_write_text
from speechkit.config import ConfigError, add_overrides_argument, from_dict, read_yaml
from speechkit.tasks import Task, TaskInputs, get_task
from speechkit.train import distributed as dist_utils
from speechkit.train.checkpoint import best_checkpoints, config_differences, save_averaged
from speechkit.train.trainer import TrainData, Trainer, seed_everything

logger = logging.getLogger("speechkit.bin.train")

DEFAULT_TASK = "s2t"  # configs written before tasks existed name none


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="speechkit train", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    p.add_argument("--config", required=True, help="experiment YAML (conf/...)")
    p.add_argument("--train-cuts", required=True, nargs="+", help="lhotse cut manifest(s)")
    p.add_argument("--dev-cuts", nargs="+", default=[], help="validation cut manifest(s)")
    p.add_argument(
        "--tokenizer", help="directory written by train_tokenizer (s2t, not with --init)"
    )
    p.add_argument(
        "--init",
        help="start from a pretrained model: packed dir, checkpoint .pt or zoo name (what it "
        "replaces of the config depends on the task)",
    )
    p.add_argument("--out", required=True, help="experiment directory")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint")
    add_overrides_argument(p, "optim.lr=5e-4 trainer.max_epochs=3")
    return p


def build_task(args: argparse.Namespace) -> Task:
    """The task the config names, built from the config, ``--init`` and ``--tokenizer``."""
    data = read_yaml(args.config, args.overrides)
    task_cls = get_task(data.get("task", DEFAULT_TASK))
    cfg = from_dict(task_cls.config_class, data, source=str(args.config))
    inputs = TaskInputs(args.init, args.tokenizer, list(args.overrides), str(args.config))
    return task_cls(cfg, inputs)


def average_best(out: Path, n: int) -> Path | None:
    """Averages the best ``n`` checkpoints (``trainer.select_by``) into ``out/model_avg.pt``."""
    best = best_checkpoints(out / "checkpoints", n)
    if not best:
        logger.warning("no checkpoints in %s; nothing to average", out / "checkpoints")
        return None
    by_step = sorted(best, key=lambda p: int(p.stem.split("-")[1]))
    return save_averaged(by_step, out / "model_avg.pt")


def setup_logging(out: Path, rank: int = 0) -> logging.Handler:
    """Logs to stderr and to ``out/train.log`` (``train.rank<N>.log`` and warnings only on
    other ranks); returns the file handler (to remove at the end)."""
    out.mkdir(parents=True, exist_ok=True)
    fmt = f"%(asctime)s %(levelname)s {'' if rank == 0 else f'[rank {rank}] '}%(name)s: %(message)s"
    level = logging.INFO if rank == 0 else logging.WARNING
    logging.basicConfig(level=level, format=fmt, stream=sys.stderr)
    handler = logging.FileHandler(out / ("train.log" if rank == 0 else f"train.rank{rank}.log"))
    handler.setFormatter(logging.Formatter(fmt))
    logging.getLogger().addHandler(handler)
    return handler


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    out = Path(args.out)
    rank = int(os.environ.get("RANK", "0"))  # set by torchrun
    handler = setup_logging(out, rank)
    try:
        try:
            task = build_task(args)
        except (ConfigError, FileNotFoundError) as e:  # a bad argument or key: say which
            parser.error(str(e))
        return train(task, args, out)
    except KeyboardInterrupt:
        logger.warning("interrupted; run again with --resume to continue")
        return 130
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
        dist_utils.destroy()


def train(task: Task, args: argparse.Namespace, out: Path) -> int:
    """Data, model, training loop, then checkpoint averaging."""
    trainer_cfg = task.cfg.trainer
    info = dist_utils.init_distributed(trainer_cfg.device)
    run_config = task.run_config()
    marker = out / "train_done.json"
    if args.resume and marker.is_file():
        done = json.loads(marker.read_text()).get("config")
        if done is not None and not config_differences(task.fill_stored_config(done), run_config):
            logger.info("skip: %s finished training with this config (%s)", out, marker)
            return 0
    if info.is_main:
        atomic_write_text(out / "config.yaml", yaml.safe_dump(run_config, sort_keys=False))

    train_cuts = task.load_cuts(args.train_cuts, train=True)
    dev_cuts = task.load_cuts(args.dev_cuts, train=False) if args.dev_cuts else None
    seed = trainer_cfg.seed
    seed_everything(seed)
    model = task.build_model()
    shard = {"world_size": info.world_size, "rank": info.rank}
    train_loader, sampler = task.build_dataloader(train_cuts, True, seed, **shard)
    dev_loader = None
    if dev_cuts is not None:
        dev_loader, _ = task.build_dataloader(dev_cuts, False, seed, **shard)
    trainer = Trainer(
        task,
        model,
        TrainData(train_loader, sampler, dev_loader),
        trainer_cfg,
        out,
        total_steps=task.total_steps(train_cuts, info.world_size),
    )
    summary = trainer.fit(resume=args.resume)
    logger.info("training finished: %s", summary)
    if not info.is_main:
        return 0
    average_best(out, trainer_cfg.average_best)
    # A time budget or Ctrl-C leaves the run resumable; only a finished schedule is final.
    if str(summary.get("stop_reason")).startswith(("max_steps", "max_epochs")):
        done = json.dumps({"summary": summary, "config": run_config}, indent=1)
        atomic_write_text(marker, done)
    return 0


if __name__ == "__main__":
    sys.exit(main())
