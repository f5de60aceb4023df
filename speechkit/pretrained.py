"""Packed model directories: what a model zoo serves and what decoding reads.

Layout (docs/design.md "Checkpoints and packed models")::

    config.yaml       {model: S2TConfig, features: FeatureConfig,
                       tasks: {asr_languages: [...], st_directions: [...]}  (what it was trained on)}
    model.pt          state_dict, float32
    tokenizer.model   sentencepiece model
    tokenizer.json    languages, tasks, special tokens
    meta.json         {speechkit_version, source, sha256: {file name: hex digest}}

``load_pretrained`` accepts such a directory (checking every file against its sha256) or a
training checkpoint ``.pt`` (which embeds config and tokenizer), and returns a ``Pretrained``
with the model in eval mode.

Example::

    pack("exp/run/model_avg.pt", "exp/run/packed")
    p = load_pretrained("exp/run/packed")
    enc, enc_lens = p.model.encode(feats, feat_lens)
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml
from torch import nn

import speechkit
from speechkit.config import from_dict, to_dict
from speechkit.data.features import FeatureConfig
from speechkit.models import build_model
from speechkit.models.s2t import S2TConfig
from speechkit.tokenizer import Tokenizer

__all__ = [
    "PackedModelError",
    "Pretrained",
    "load_pretrained",
    "pack",
    "save_pretrained",
]

logger = logging.getLogger(__name__)

CONFIG_FILE, MODEL_FILE, META_FILE = "config.yaml", "model.pt", "meta.json"
TOKENIZER_FILES = ("tokenizer.model", "tokenizer.json")
PACKED_FILES = (CONFIG_FILE, MODEL_FILE, *TOKENIZER_FILES)
_TASK_KEYS = ("asr_languages", "st_directions")


def _tasks_of(section: dict | None) -> dict | None:
    """The trained-task lists of a data config (or packed ``tasks``) section, if present."""
    if not section or any(k not in section for k in _TASK_KEYS):
        return None
    return {k: list(section[k]) for k in _TASK_KEYS}


class PackedModelError(RuntimeError):
    """A packed model directory that is incomplete or does not match its checksums."""


@dataclass
class Pretrained:
    """A ready-to-use model: ``model`` (eval mode, on the requested device), its tokenizer,
    the features it was trained on, its config, and the tasks it was trained for
    (``{"asr_languages": [...], "st_directions": ["eng-deu", ...]}``; None if unknown)."""

    model: nn.Module
    tokenizer: Tokenizer
    features: FeatureConfig
    config: S2TConfig
    tasks: dict | None = None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_pretrained(
    model: nn.Module,
    tokenizer: Tokenizer,
    features_cfg: FeatureConfig,
    out_dir: str | Path,
    source: str = "",
    model_cfg: S2TConfig | None = None,
    tasks: dict | None = None,
) -> Path:
    """Writes a packed model directory; ``model_cfg`` defaults to ``model.cfg``.

    Weights are stored in float32 whatever the training precision. ``meta.json`` is written
    last, so a directory without it is an interrupted pack.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / META_FILE).unlink(missing_ok=True)
    model_cfg = model_cfg if model_cfg is not None else model.cfg
    config = {"model": to_dict(model_cfg), "features": to_dict(features_cfg)}
    if tasks is not None:
        config["tasks"] = {k: list(tasks[k]) for k in _TASK_KEYS}
    (out / CONFIG_FILE).write_text(yaml.safe_dump(config, sort_keys=False))
    state = {
        k: v.detach().cpu().float() if v.is_floating_point() else v.detach().cpu()
        for k, v in model.state_dict().items()
    }
    torch.save(state, out / MODEL_FILE)
    tokenizer.save(out)
    meta = {
        "speechkit_version": speechkit.__version__,
        "source": source,
        "sha256": {name: _sha256(out / name) for name in PACKED_FILES},
    }
    (out / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    logger.info("packed model written to %s", out)
    return out


def _from_checkpoint(path: Path) -> tuple[S2TConfig, FeatureConfig, Tokenizer, dict, dict | None]:
    """Config, features, tokenizer and weights from a training checkpoint (or model_avg.pt)."""
    from speechkit.train.checkpoint import (
        load_checkpoint,
    )  # pretrained stays usable sans trainer

    ckpt = load_checkpoint(path)
    for key in ("config", "tokenizer", "model"):
        if not ckpt.get(key):
            raise PackedModelError(f"{path}: not a speechkit training checkpoint (no '{key}')")
    config = ckpt["config"]
    model_cfg = from_dict(S2TConfig, config["model"], source=f"{path}:config.model")
    features = from_dict(FeatureConfig, config["data"]["features"], source=f"{path}:features")
    return (
        model_cfg,
        features,
        Tokenizer.from_state_dict(ckpt["tokenizer"]),
        ckpt["model"],
        _tasks_of(config["data"]),
    )


def pack(checkpoint_path: str | Path, out_dir: str | Path) -> Path:
    """Packs a training checkpoint (e.g. ``exp/run/model_avg.pt``) into ``out_dir``."""
    checkpoint_path = Path(checkpoint_path)
    model_cfg, features, tokenizer, state, tasks = _from_checkpoint(checkpoint_path)
    model = build_model(model_cfg)
    model.load_state_dict(state)
    return save_pretrained(
        model, tokenizer, features, out_dir, str(checkpoint_path), model_cfg, tasks
    )


def _verify(directory: Path) -> None:
    """Checks that every packed file is present and matches meta.json's sha256."""
    meta_path = directory / META_FILE
    if not meta_path.is_file():
        raise PackedModelError(
            f"{directory}: no {META_FILE}; not a packed model (or packing "
            "was interrupted): re-run speechkit.bin.pack_model"
        )
    sums = json.loads(meta_path.read_text()).get("sha256", {})
    missing = [name for name in PACKED_FILES if not (directory / name).is_file()]
    if missing:
        raise PackedModelError(f"{directory}: missing file {', '.join(missing)}")
    for name in PACKED_FILES:
        path = directory / name
        if name not in sums:
            raise PackedModelError(f"{directory}: {META_FILE} has no sha256 for {name}")
        if _sha256(path) != sums[name]:
            raise PackedModelError(
                f"{path}: sha256 does not match {META_FILE}; the file is corrupt or was "
                "modified; download or pack it again"
            )


def _from_packed(directory: Path) -> tuple[S2TConfig, FeatureConfig, Tokenizer, dict, dict | None]:
    _verify(directory)
    config = yaml.safe_load((directory / CONFIG_FILE).read_text()) or {}
    source = str(directory / CONFIG_FILE)
    model_cfg = from_dict(S2TConfig, config.get("model"), source=f"{source}:model")
    features = from_dict(FeatureConfig, config.get("features"), source=f"{source}:features")
    state = torch.load(directory / MODEL_FILE, map_location="cpu", weights_only=True)
    return model_cfg, features, Tokenizer.load(directory), state, _tasks_of(config.get("tasks"))


def load_pretrained(path: str | Path, device: str | torch.device = "cpu") -> Pretrained:
    """Loads a packed directory or a training checkpoint ``.pt`` (see module docstring)."""
    path = Path(path)
    if path.is_dir():
        model_cfg, features, tokenizer, state, tasks = _from_packed(path)
    elif path.is_file():
        model_cfg, features, tokenizer, state, tasks = _from_checkpoint(path)
    else:
        raise FileNotFoundError(f"no packed model directory or checkpoint at {path}")
    if model_cfg.vocab_size != tokenizer.vocab_size:
        raise PackedModelError(
            f"{path}: model.vocab_size {model_cfg.vocab_size} != tokenizer size "
            f"{tokenizer.vocab_size}"
        )
    model = build_model(model_cfg)
    model.load_state_dict(state)
    model.to(device).eval()
    return Pretrained(
        model=model, tokenizer=tokenizer, features=features, config=model_cfg, tasks=tasks
    )
