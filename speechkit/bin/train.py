"""Train a speech-to-text model, then average its best checkpoints.

    python -m speechkit.bin.train --config conf/s2t/phrasebook_tiny.yaml \\
        --train-cuts data/cuts_train.jsonl.gz --dev-cuts data/cuts_dev.jsonl.gz \\
        --tokenizer data/tokenizer --out exp/run [--resume] [--set optim.lr=5e-4 ...]

Fine-tuning a pretrained model (a packed directory, a checkpoint, or a zoo name such as an
imported OWSM model) with the same recipe: ``--init PATH_OR_ZOO_NAME`` instead of
``--tokenizer``. The model's tokenizer, model config (replacing the YAML's ``model`` section) and
features (replacing ``data.features``; global MVN travels inside the model) are used, and its
weights are loaded before training. ``--set model.KEY=VALUE`` still applies, to the pretrained
model's config (e.g. ``model.dropout=0.1``)::

    python -m speechkit.bin.train --config conf/s2t/owsm_finetune.yaml --init owsm-v3.1-ebf-base \\
        --train-cuts data/cuts_train.jsonl.gz --out exp/owsm_ft

Writes ``OUT/config.yaml`` (the full experiment config, vocab size filled from the tokenizer),
``OUT/checkpoints/``, ``OUT/train_log.csv``, ``OUT/valid_log.csv``, ``OUT/tensorboard/``,
``OUT/train.log`` and finally ``OUT/model_avg.pt`` (the best ``trainer.average_best``
checkpoints by valid loss, averaged; loadable by decode and pack_model).

Data-parallel on N processes (docs/distributed.md)::

    torchrun --nproc_per_node N -m speechkit.bin.train --config ... --out exp/run

Each rank trains on its shard of every step's batches; rank 0 alone writes files.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import sys
from pathlib import Path

from lhotse import CutSet, combine

from speechkit.config import (
    ConfigError,
    add_overrides_argument,
    apply_overrides,
    from_dict,
    save_config,
    to_dict,
)
from speechkit.data import build_dataloader, expand_tasks
from speechkit.models import build_model
from speechkit.pretrained import Pretrained
from speechkit.text.sentencepiece import SentencePieceTokenizer
from speechkit.train import distributed as dist_utils
from speechkit.train.checkpoint import best_checkpoints, save_averaged
from speechkit.train.config import ExperimentConfig, load_experiment_config
from speechkit.train.trainer import TrainData, Trainer, seed_everything

logger = logging.getLogger("speechkit.bin.train")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--config", required=True, help="experiment YAML (conf/...)")
    p.add_argument("--train-cuts", required=True, nargs="+", help="lhotse cut manifest(s)")
    p.add_argument("--dev-cuts", nargs="+", default=[], help="validation cut manifest(s)")
    p.add_argument("--tokenizer", help="directory written by train_tokenizer (not with --init)")
    p.add_argument(
        "--init",
        help="start from a pretrained model: packed dir, checkpoint .pt or zoo name; its "
        "tokenizer, model config and features replace --tokenizer, the YAML's model section "
        "and data.features",
    )
    p.add_argument("--out", required=True, help="experiment directory")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint")
    add_overrides_argument(p, "optim.lr=5e-4 trainer.max_epochs=3")
    args = p.parse_args(argv)
    if not args.tokenizer and not args.init:
        p.error("one of --tokenizer or --init is required")
    return args


def load_init(init: str) -> Pretrained:
    """The ``--init`` model: a packed directory or checkpoint path, else a zoo name."""
    from speechkit import zoo  # imported only for --init

    return zoo.load(init)


def with_pretrained(
    cfg: ExperimentConfig, pretrained: Pretrained, source: str, overrides: list[str] = ()
) -> ExperimentConfig:
    """The pretrained model's config and features replace the YAML's (both are logged); the
    command line's ``model.*`` overrides then apply to the pretrained config (dropout, CTC
    weight, attention backend; a changed shape fails when the weights are loaded)."""
    if pretrained.model_type != "s2t":
        raise ConfigError(f"--init {source}: a {pretrained.model_type} model; train needs s2t")
    model_overrides = [o[len("model.") :] for o in overrides if o.startswith("model.")]
    model_dict = apply_overrides(to_dict(pretrained.config), model_overrides)
    model = from_dict(type(pretrained.config), model_dict, source=f"--init {source} + --set")
    logger.info("--init %s: model section replaced by %s", source, to_dict(model))
    logger.info("--init %s: data.features replaced by %s", source, to_dict(pretrained.features))
    data = dataclasses.replace(cfg.data, features=pretrained.features)
    return dataclasses.replace(cfg, model=model, data=data)


def with_vocab(
    cfg: ExperimentConfig, tokenizer: SentencePieceTokenizer, source: str
) -> ExperimentConfig:
    """Fills ``model.vocab_size`` from the tokenizer (a different non-zero value is an error)."""
    given = cfg.model.vocab_size
    if given not in (0, tokenizer.vocab_size):
        raise ConfigError(
            f"{source}: model.vocab_size is {given} but the tokenizer has {tokenizer.vocab_size} "
            "ids; set model.vocab_size to 0 (filled automatically) or to the tokenizer's size"
        )
    model = dataclasses.replace(cfg.model, vocab_size=tokenizer.vocab_size)
    return dataclasses.replace(cfg, model=model)


def load_cuts(paths: list[str], cfg: ExperimentConfig) -> CutSet:
    """Reads manifests; with ``data.multitask: expand`` one cut per (cut, task), else as is
    (the dataset then gives each cut a decoder target per task, sharing one encoder pass)."""
    missing = [p for p in paths if not Path(p).is_file()]
    if missing:
        raise FileNotFoundError(f"cut manifest not found: {missing[0]}")
    parts = [CutSet.from_file(p) for p in paths]
    cuts = parts[0] if len(parts) == 1 else combine(parts)
    if cfg.data.multitask == "shared":
        return cuts
    return expand_tasks(cuts, cfg.data.asr_languages, cfg.data.st_directions)


def estimate_total_steps(cuts: CutSet, cfg: ExperimentConfig, world_size: int = 1) -> int:
    """Expected optimiser updates in the run, for the LR schedule (a lower bound: dynamic
    batches are never fuller than ``max_duration``). An update takes a batch from each rank."""
    if cfg.trainer.max_steps:
        return cfg.trainer.max_steps
    seconds = sum(c.duration for c in cuts)
    batches = max(1, math.ceil(seconds / cfg.data.sampler.max_duration))
    accum = dist_utils.accum_steps(
        cfg.optim.accum_grad, cfg.trainer.global_micro_batches, world_size
    )
    return max(1, batches * cfg.trainer.max_epochs // (accum * world_size))


def average_best(out: Path, n: int) -> Path | None:
    """Averages the best ``n`` checkpoints by valid loss into ``out/model_avg.pt``."""
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
    args = parse_args(argv)
    out = Path(args.out)
    rank = int(os.environ.get("RANK", "0"))  # set by torchrun
    handler = setup_logging(out, rank)
    try:
        return train(args, out)
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
        dist_utils.destroy()


def train(args: argparse.Namespace, out: Path) -> int:
    """Config, data, model, training loop, then checkpoint averaging."""
    pretrained = load_init(args.init) if args.init else None
    if pretrained is not None and args.tokenizer:
        logger.warning("--tokenizer %s ignored: --init brings its own tokenizer", args.tokenizer)
    tokenizer = (
        pretrained.tokenizer
        if pretrained is not None
        else SentencePieceTokenizer.load(args.tokenizer)
    )
    cfg = load_experiment_config(args.config, args.overrides)
    if pretrained is not None:
        cfg = with_pretrained(cfg, pretrained, args.init, args.overrides)
    cfg = with_vocab(cfg, tokenizer, args.config)
    info = dist_utils.init_distributed(cfg.trainer.device)
    marker = out / "train_done.json"
    if args.resume and marker.is_file():
        done = json.loads(marker.read_text())
        if done.get("config") == to_dict(cfg):
            logger.info("skip: %s finished training with this config (%s)", out, marker)
            return 0
    if info.is_main:
        save_config(cfg, out / "config.yaml")

    train_cuts = load_cuts(args.train_cuts, cfg)
    dev_cuts = load_cuts(args.dev_cuts, cfg) if args.dev_cuts else None
    seed = cfg.trainer.seed
    seed_everything(seed)
    model = build_model(cfg.model)
    if pretrained is not None:
        model.load_state_dict(pretrained.model.state_dict())
        del pretrained
    shard = {"world_size": info.world_size, "rank": info.rank}
    train_loader, sampler = build_dataloader(
        train_cuts, tokenizer, cfg.data, train=True, seed=seed, **shard
    )
    dev_loader = None
    if dev_cuts is not None:
        dev_loader, _ = build_dataloader(
            dev_cuts, tokenizer, cfg.data, train=False, seed=seed, **shard
        )

    trainer = Trainer(
        model,
        TrainData(train_loader, sampler, dev_loader),
        cfg.optim,
        cfg.trainer,
        out,
        run_config=to_dict(cfg),
        tokenizer_state=tokenizer.state_dict(),
        total_steps=estimate_total_steps(train_cuts, cfg, info.world_size),
    )
    try:
        summary = trainer.fit(resume=args.resume)
    except KeyboardInterrupt:
        logger.warning("interrupted; run again with --resume to continue")
        return 130
    logger.info("training finished: %s", summary)
    if not info.is_main:
        return 0
    average_best(out, cfg.trainer.average_best)
    # A time budget or Ctrl-C leaves the run resumable; only a finished schedule is final.
    if str(summary.get("stop_reason")).startswith(("max_steps", "max_epochs")):
        marker.write_text(json.dumps({"summary": summary, "config": to_dict(cfg)}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
