"""Packed model directories: what a model zoo serves and what decoding reads.

Layout (docs/design.md "Checkpoints and packed models")::

    config.yaml       {model_type: s2t | whisper (s2t when absent), model: S2TConfig | WhisperConfig,
                       features: FeatureConfig,
                       tasks: {asr_languages: [...], st_directions: [...]}  (what it was trained on)}
    model.pt          state_dict, float32
    tokenizer.model   sentencepiece model                          (s2t only)
    tokenizer.json    s2t: languages, tasks, special tokens; whisper: the Hugging Face tokenizer.json
    meta.json         {speechkit_version, source, sha256: {file name: hex digest},
                       verified: {file name: {sha256, size, mtime_ns, ino}}  (see below)}

Whisper models (``model_type: whisper``, written by ``speechkit.convert``) load as a
``WhisperModel`` with a ``WhisperTokenizer`` and the Whisper log-mel front end
(``FeatureConfig(kind="whisper")``).

``load_pretrained`` accepts such a directory (checking every file against its sha256) or a
training checkpoint ``.pt`` (which embeds config and tokenizer), and returns a ``Pretrained``
with the model in eval mode. Weights are read with torch's ``weights_only`` loader, so a file that
would run code when unpickled is refused.

Hashing costs seconds for a large model, so it is paid once: ``verified`` records, per file,
the size, mtime and inode it had when it was last hashed (by ``save_pretrained``, the zoo's
install or ``speechkit zoo verify``), and a load hashes only the files whose record no longer
holds (speechkit/integrity.py says what this does and does not catch). Loading never writes.

Example::

    pack("exp/run/model_avg.pt", "exp/run/packed")
    p = load_pretrained("exp/run/packed")
    enc, enc_lens = p.model.encode(feats, feat_lens)
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml
from torch import nn

import speechkit
from speechkit.checkpoint import atomic_write_text, load_checkpoint, save_checkpoint
from speechkit.config import from_dict, to_dict
from speechkit.data.features import FeatureConfig
from speechkit.integrity import (
    IntegrityError,
    UnsafePathError,
    check_files,
    file_record,
    sha256_file,
)
from speechkit.models import MODEL_CONFIGS, build_model
from speechkit.models.s2t import S2TConfig
from speechkit.models.whisper import WhisperConfig
from speechkit.text import TextTokenizer, load_tokenizer, tokenizer_from_state

__all__ = [
    "PackedModelError",
    "Pretrained",
    "load_pretrained",
    "pack",
    "save_pretrained",
    "whisper_features",
]

logger = logging.getLogger(__name__)

CONFIG_FILE, MODEL_FILE, META_FILE = "config.yaml", "model.pt", "meta.json"
TOKENIZER_FILES = ("tokenizer.model", "tokenizer.json")
PACKED_FILES = (CONFIG_FILE, MODEL_FILE, *TOKENIZER_FILES)
# model_type -> the files a packed directory of that type holds (besides meta.json).
FILES_BY_TYPE = {
    "s2t": PACKED_FILES,
    "gated_s2t": PACKED_FILES,  # an s2t model with gates (speechkit/models/gated_s2t.py)
    "whisper": (CONFIG_FILE, MODEL_FILE, "tokenizer.json"),
    "gated_whisper": (CONFIG_FILE, MODEL_FILE, "tokenizer.json"),  # models/gated_whisper.py
}
WHISPER_TYPES = ("whisper", "gated_whisper")  # model types decoded as Whisper
GATED_TYPES = ("gated_s2t", "gated_whisper")  # model types decoded at a --budget
_TASK_KEYS = ("asr_languages", "st_directions")
# How translations were prompted in training (decode's --st-prompt auto reads them).
_PROMPT_KEYS = ("st_source_prompt", "max_prompt_tokens")


def _tasks_of(section: dict | None) -> dict | None:
    """The trained-task lists of a data config (or packed ``tasks``) section, if present, with
    the translation-prompt settings where the section has them."""
    if not section or any(k not in section for k in _TASK_KEYS):
        return None
    tasks = {k: list(section[k]) for k in _TASK_KEYS}
    if section.get("st_source_prompt", 0) > 0:
        tasks.update({k: section[k] for k in _PROMPT_KEYS if k in section})
    return tasks


class PackedModelError(RuntimeError):
    """A packed model directory that is incomplete or does not match its checksums."""


@dataclass
class Pretrained:
    """A ready-to-use model: ``model`` (eval mode, on the requested device), its tokenizer,
    the features it was trained on, its config, and the tasks it was trained for
    (``{"asr_languages": [...], "st_directions": ["eng-deu", ...]}``; None if unknown)."""

    model: nn.Module
    tokenizer: TextTokenizer
    features: FeatureConfig
    config: S2TConfig | WhisperConfig
    tasks: dict | None = None

    @property
    def model_type(self) -> str:
        """``s2t`` or ``whisper``: the registry name of ``model``."""
        return _model_type(self.config)


def _model_type(cfg: S2TConfig | WhisperConfig) -> str:
    for name, cls in MODEL_CONFIGS.items():
        if type(cfg) is cls:  # exact: a GatedS2TConfig is an S2TConfig too
            return name
    raise TypeError(f"no registered model is built from a {type(cfg).__name__}")


def _vocab_size(cfg: S2TConfig | WhisperConfig) -> int:
    return cfg.n_vocab if isinstance(cfg, WhisperConfig) else cfg.vocab_size


def whisper_features(cfg: WhisperConfig) -> FeatureConfig:
    """The log-mel front end a Whisper model expects (pad audio to 30 s for exact parity)."""
    return FeatureConfig(kind="whisper", n_mels=cfg.n_mels, normalize="none")


def save_pretrained(
    model: nn.Module,
    tokenizer: TextTokenizer,
    features_cfg: FeatureConfig,
    out_dir: str | Path,
    source: str = "",
    model_cfg: S2TConfig | WhisperConfig | None = None,
    tasks: dict | None = None,
) -> Path:
    """Writes a packed model directory; ``model_cfg`` defaults to ``model.cfg`` and decides
    ``model_type`` (an S2TConfig packs ``s2t``, a WhisperConfig ``whisper``).

    Weights are stored in float32 whatever the training precision. Each file is written
    atomically, and ``meta.json`` last (after removing an old one), so a directory without it is
    an interrupted pack; it records the files as verified, since they were just hashed.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / META_FILE).unlink(missing_ok=True)
    model_cfg = model_cfg if model_cfg is not None else model.cfg
    model_type = _model_type(model_cfg)
    config = {
        "model_type": model_type,
        "model": to_dict(model_cfg),
        "features": to_dict(features_cfg),
    }
    if tasks is not None:
        config["tasks"] = _tasks_of(tasks)
    atomic_write_text(out / CONFIG_FILE, yaml.safe_dump(config, sort_keys=False))
    state = {
        k: v.detach().cpu().float() if v.is_floating_point() else v.detach().cpu()
        for k, v in model.state_dict().items()
    }
    save_checkpoint(state, out / MODEL_FILE)
    tokenizer.save(out)
    sums = {name: sha256_file(out / name) for name in FILES_BY_TYPE[model_type]}
    meta = {
        "speechkit_version": speechkit.__version__,
        "source": source,
        "sha256": sums,
        "verified": {name: file_record(out / name, digest) for name, digest in sums.items()},
    }
    atomic_write_text(out / META_FILE, json.dumps(meta, indent=2) + "\n")
    logger.info("packed model written to %s", out)
    return out


_Loaded = tuple[S2TConfig | WhisperConfig, FeatureConfig, TextTokenizer, dict,
                dict | None]  # fmt: skip


def _model_type_of(config: dict, source: str) -> str:
    """The ``model_type`` key of a packed or checkpoint config (``s2t`` when absent)."""
    if not isinstance(config, dict):
        raise PackedModelError(f"{source}: not a YAML mapping")
    model_type = config.get("model_type", "s2t")
    if model_type == "codec":  # packed by speechkit.codec, which loads it
        raise PackedModelError(f"{source}: a speech codec; load it with speechkit.codec.load")
    if model_type not in FILES_BY_TYPE:
        raise PackedModelError(
            f"{source}: unknown model_type {model_type!r}; known: {sorted(FILES_BY_TYPE)}"
        )
    return model_type


def _from_checkpoint(path: Path) -> _Loaded:
    """Config, features, tokenizer and weights from a training checkpoint (or model_avg.pt)."""
    ckpt = load_checkpoint(path)
    for key in ("config", "tokenizer", "model"):
        if not ckpt.get(key):
            raise PackedModelError(f"{path}: not a speechkit training checkpoint (no '{key}')")
    config = ckpt["config"]
    model_type = _model_type_of(config, str(path))
    cfg_cls = MODEL_CONFIGS[model_type]
    model_cfg = from_dict(cfg_cls, config["model"], source=f"{path}:config.model")
    features = from_dict(FeatureConfig, config["data"]["features"], source=f"{path}:features")
    return (
        model_cfg,
        features,
        tokenizer_from_state(ckpt["tokenizer"]),
        ckpt["model"],
        _tasks_of(config["data"]),
    )


def pack(checkpoint_path: str | Path, out_dir: str | Path) -> Path:
    """Packs a training checkpoint (e.g. ``exp/run/model_avg.pt``) into ``out_dir``."""
    checkpoint_path = Path(checkpoint_path)
    model_cfg, features, tokenizer, state, tasks = _from_checkpoint(checkpoint_path)
    model = build_model(model_cfg, _model_type(model_cfg))
    model.load_state_dict(state)
    return save_pretrained(
        model, tokenizer, features, out_dir, str(checkpoint_path), model_cfg, tasks
    )


def _verify(directory: Path, files: tuple[str, ...]) -> None:
    """Checks that every packed file is present and matches meta.json's sha256 (hashing only the
    files whose verification record no longer holds)."""
    meta_path = directory / META_FILE
    if not meta_path.is_file():
        raise PackedModelError(
            f"{directory}: no {META_FILE}; not a packed model (or packing "
            "was interrupted): re-run speechkit.bin.pack_model"
        )
    meta = json.loads(meta_path.read_text())
    sums = meta.get("sha256", {})
    missing = [name for name in files if not (directory / name).is_file()]
    if missing:
        raise PackedModelError(f"{directory}: missing file {', '.join(missing)}")
    unlisted = [name for name in files if name not in sums]
    if unlisted:
        raise PackedModelError(f"{directory}: {META_FILE} has no sha256 for {unlisted[0]}")
    try:
        check_files(directory, {name: sums[name] for name in files}, meta.get("verified"))
    except (IntegrityError, UnsafePathError) as e:
        raise PackedModelError(f"{e}; download or pack it again") from e


def _from_packed(directory: Path) -> _Loaded:
    source = str(directory / CONFIG_FILE)
    if not (directory / CONFIG_FILE).is_file():
        _verify(directory, PACKED_FILES)  # names what is missing (meta.json first)
    config = yaml.safe_load((directory / CONFIG_FILE).read_text()) or {}
    model_type = _model_type_of(config, source)
    _verify(directory, FILES_BY_TYPE[model_type])
    cfg_cls = MODEL_CONFIGS[model_type]
    model_cfg = from_dict(cfg_cls, config.get("model"), source=f"{source}:model")
    features = from_dict(FeatureConfig, config.get("features"), source=f"{source}:features")
    try:
        # Mapped, not read: the model takes these tensors as its own (``_with_weights``).
        state = load_checkpoint(directory / MODEL_FILE, mmap=True)
    except RuntimeError as e:
        raise PackedModelError(str(e)) from e
    tokenizer = load_tokenizer(
        directory, model_cfg.n_vocab if model_type in WHISPER_TYPES else None
    )
    return model_cfg, features, tokenizer, state, _tasks_of(config.get("tasks"))


def _with_weights(model_cfg, state: dict) -> nn.Module:
    """The model of ``model_cfg`` holding the tensors of ``state`` themselves (``assign``).

    With the memory-mapped checkpoint that ``_from_packed`` loads, the weights are then never
    copied: the randomly initialised ones are freed and the process holds the file's pages
    instead of a second, anonymous copy, so loading no longer needs twice the model's size.
    (Building on the meta device would also skip the random init, but torch routes meta
    ``normal_`` and ``arange`` through torch._dynamo, which imports triton: 70 MiB more.)
    Tensors of another dtype than the model's are copied as usual.
    """
    model = build_model(model_cfg, _model_type(model_cfg))
    own = {**dict(model.named_parameters()), **dict(model.named_buffers())}
    same = all(k not in own or own[k].dtype == v.dtype for k, v in state.items())
    model.load_state_dict(state, assign=same)
    return model


def load_pretrained(path: str | Path, device: str | torch.device = "cpu") -> Pretrained:
    """Loads a packed directory or a training checkpoint ``.pt`` (see module docstring)."""
    path = Path(path)
    if path.is_dir():
        model_cfg, features, tokenizer, state, tasks = _from_packed(path)
    elif path.is_file():
        model_cfg, features, tokenizer, state, tasks = _from_checkpoint(path)
    else:
        raise FileNotFoundError(f"no packed model directory or checkpoint at {path}")
    if _vocab_size(model_cfg) != tokenizer.vocab_size:
        raise PackedModelError(
            f"{path}: model vocabulary {_vocab_size(model_cfg)} != tokenizer size "
            f"{tokenizer.vocab_size}"
        )
    model = _with_weights(model_cfg, state)
    model.to(device).eval()
    return Pretrained(
        model=model, tokenizer=tokenizer, features=features, config=model_cfg, tasks=tasks
    )
