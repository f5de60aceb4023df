"""Fine-tune a pretrained Whisper model on lhotse cuts with speechkit's training loop.

    python -m speechkit.bin.finetune_whisper --config conf/whisper/finetune_tiny_en.yaml \\
        --init whisper-tiny.en --train-cuts data/cuts_train.jsonl.gz \\
        --dev-cuts data/cuts_dev.jsonl.gz --out exp/whisper_tiny_en_ft [--resume] \\
        [--set optim.lr=2e-5 trainer.max_steps=300 ...]

``--init``: a zoo name (``whisper-tiny.en``, downloaded into the cache if needed), a packed model
directory or a training checkpoint ``.pt`` of a Whisper model. Each cut becomes one decoder
target per configured task, in Whisper's format (``data/whisper_dataset.py``): English ASR for
English-only models; ASR in ``data.asr_languages`` and X -> English translation
(``data.st_directions: [deu-eng, ...]``) for multilingual ones.

Writes ``OUT/config.yaml`` (the fine-tuning config, the model's dimensions and ``--init``),
``OUT/checkpoints/step-<N>.pt`` (with config and tokenizer: ``load_pretrained`` reads them and
``speechkit.bin.pack_model`` packs them), ``OUT/train_log.csv``, ``OUT/valid_log.csv``,
``OUT/tensorboard/``, ``OUT/train.log`` and finally ``OUT/model_avg.pt`` (the best
``trainer.average_best`` checkpoints by valid loss, averaged).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from functools import partial
from pathlib import Path

import yaml
from lhotse import CutSet, combine

from speechkit.config import ConfigError, add_overrides_argument, to_dict
from speechkit.data.dataset import DataConfig
from speechkit.data.tasks import cut_tasks
from speechkit.data.whisper_dataset import build_whisper_dataloader
from speechkit.models import build_model
from speechkit.models.whisper import WhisperConfig
from speechkit.pretrained import Pretrained
from speechkit.train.checkpoint import best_checkpoints, save_averaged
from speechkit.train.finetune_config import FinetuneConfig, load_finetune_config
from speechkit.train.trainer import TrainData, Trainer, seed_everything

logger = logging.getLogger("speechkit.bin.finetune_whisper")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m speechkit.bin.finetune_whisper",
        description=__doc__,
        formatter_class=argparse.RawTextHelpFormatter,
    )
    p.add_argument("--config", required=True, help="fine-tuning YAML (conf/whisper/...)")
    p.add_argument("--init", required=True, help="zoo name, packed directory or checkpoint .pt")
    p.add_argument("--train-cuts", required=True, nargs="+", help="lhotse cut manifest(s)")
    p.add_argument("--dev-cuts", nargs="+", default=[], help="validation cut manifest(s)")
    p.add_argument("--out", required=True, help="experiment directory")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint")
    add_overrides_argument(p, "optim.lr=2e-5 trainer.max_steps=300")
    return p


def load_init(init: str) -> Pretrained:
    """The pretrained Whisper model named by ``--init`` (path first, then zoo name)."""
    from speechkit import zoo

    try:
        pre = zoo.load(init)
    except zoo.UnknownModelError as e:
        raise ValueError(
            f"--init {init!r} is neither a file, a directory nor a zoo model: {e}"
        ) from None
    if pre.model_type != "whisper":
        raise ValueError(f"--init {init!r} is a {pre.model_type} model, not a Whisper model")
    return pre


def check_tasks(cfg: FinetuneConfig, pre: Pretrained, source: str) -> None:
    """Fails early when the config asks for a language or task the model's tokenizer lacks."""
    tok = pre.tokenizer
    langs = list(cfg.data.asr_languages) + [d.split("-")[0] for d in cfg.data.st_directions]
    try:
        for lang in langs:
            tok.lang_id(lang)
        if cfg.data.st_directions:
            tok.task_id("st_eng")
    except KeyError as e:
        kind = "English-only" if not tok.multilingual else "multilingual"
        raise ConfigError(
            f"{source}: the {kind} --init model cannot train these tasks ({str(e).strip(chr(39))})"
            "; English-only models take data.asr_languages [eng] and data.st_directions []"
        ) from None


def prepare(cfg: FinetuneConfig, pre: Pretrained) -> tuple:
    """The model to train (fine-tuning options applied), its config, and the dataset config
    with the model's own front end."""
    model_cfg: WhisperConfig = dataclasses.replace(
        pre.config,
        label_smoothing=cfg.whisper.label_smoothing,
        attention_backend=cfg.whisper.attention_backend,
    )
    model = build_model(model_cfg, "whisper")
    model.load_state_dict(pre.model.state_dict())
    if cfg.whisper.freeze_encoder:
        model.encoder.requires_grad_(False)
    return model, model_cfg, cfg.data.data_config(pre.features)


def run_config(cfg: FinetuneConfig, model_cfg: WhisperConfig, data: DataConfig, init: str) -> dict:
    """What checkpoints embed (and resuming compares): ``load_pretrained`` reads
    ``model_type``, ``model`` and ``data`` (front end, trained tasks) from it."""
    config = {"model_type": "whisper", "model": to_dict(model_cfg), **to_dict(cfg)}
    return config | {"data": to_dict(data), "init": init}


def load_cuts(paths: list[str], data: DataConfig) -> CutSet:
    """The cuts of ``paths`` that have a configured task (an English-only model leaves out
    the other languages here, so they do not thin out every batch)."""
    parts = [CutSet.from_file(p) for p in paths]
    cuts = parts[0] if len(parts) == 1 else combine(parts)
    langs, directions = list(data.asr_languages), list(data.st_directions)
    logger.info("%s: keeping cuts with a task in %s / %s", ", ".join(paths), langs, directions)
    return cuts.filter(partial(_has_task, languages=langs, directions=directions))


def _has_task(cut, languages: list[str], directions: list[str]) -> bool:
    return bool(cut_tasks(cut, languages, directions))  # (a picklable filter, unlike a lambda)


def setup_logging(out: Path) -> logging.Handler:
    """Logs to stderr and ``out/train.log``; returns the file handler (removed at the end)."""
    out.mkdir(parents=True, exist_ok=True)
    fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=logging.INFO, format=fmt, stream=sys.stderr)
    handler = logging.FileHandler(out / "train.log")
    handler.setFormatter(logging.Formatter(fmt))
    logging.getLogger().addHandler(handler)
    return handler


def setup(args: argparse.Namespace) -> tuple:
    """Config, pretrained model, the model to train and the run config; raises ValueError
    (ConfigError) or FileNotFoundError with a message naming the bad argument or key."""
    cfg = load_finetune_config(args.config, args.overrides)
    pre = load_init(args.init)
    check_tasks(cfg, pre, args.config)
    for path in [*args.train_cuts, *args.dev_cuts]:
        if not Path(path).is_file():
            raise FileNotFoundError(f"cut manifest not found: {path}")
    model, model_cfg, data = prepare(cfg, pre)
    return cfg, data, pre, model, run_config(cfg, model_cfg, data, args.init)


def finetune(args: argparse.Namespace, out: Path, cfg, data, pre, model, config) -> int:
    """Data, training loop, checkpoint averaging."""
    marker = out / "train_done.json"
    if args.resume and marker.is_file() and json.loads(marker.read_text())["config"] == config:
        logger.info("skip: %s finished fine-tuning with this config (%s)", out, marker)
        return 0
    (out / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    seed_everything(cfg.trainer.seed)
    pad = cfg.whisper.pad_to_window
    train_loader, sampler = build_whisper_dataloader(
        load_cuts(args.train_cuts, data), pre.tokenizer, data, True, pad, seed=cfg.trainer.seed
    )
    dev_loader = None
    if args.dev_cuts:
        dev_loader, _ = build_whisper_dataloader(
            load_cuts(args.dev_cuts, data), pre.tokenizer, data, False, pad
        )
    logger.info(
        "fine-tuning %s: %d of %d parameters trainable, 30 s padding %s",
        args.init,
        model.num_parameters(trainable_only=True),
        model.num_parameters(),
        "on" if pad else "off",
    )
    trainer = Trainer(
        model,
        TrainData(train_loader, sampler, dev_loader),
        cfg.optim,
        cfg.trainer,
        out,
        run_config=config,
        tokenizer_state=pre.tokenizer.state_dict(),
        total_steps=cfg.trainer.max_steps,
    )
    summary = trainer.fit(resume=args.resume)
    logger.info("fine-tuning finished: %s", summary)
    best = best_checkpoints(out / "checkpoints", cfg.trainer.average_best)
    save_averaged(sorted(best, key=lambda p: int(p.stem.split("-")[1])), out / "model_avg.pt")
    if str(summary.get("stop_reason")).startswith(("max_steps", "max_epochs")):
        marker.write_text(json.dumps({"summary": summary, "config": config}, indent=1))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    out = Path(args.out)
    handler = setup_logging(out)
    try:
        try:
            prepared = setup(args)
        except (ValueError, FileNotFoundError) as e:  # ConfigError is a ValueError
            parser.error(str(e))
        return finetune(args, out, *prepared)
    except KeyboardInterrupt:
        logger.warning("interrupted; run again with --resume to continue")
        return 130
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()


if __name__ == "__main__":
    sys.exit(main())
