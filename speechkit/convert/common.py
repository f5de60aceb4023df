"""What every Whisper converter shares: strict tensor lookup and the packed-directory writer.

A converter fills a speechkit state dict (names of :class:`WhisperModel`) from a
:class:`TensorSource` -- which fails naming the file and the missing tensor, and afterwards
reports tensors it never used -- then calls :func:`write_whisper_dir`. That loads the state
strictly into a ``WhisperModel`` (so shape mistakes surface before anything is written) and
writes the packed directory atomically: into a temporary sibling, renamed at the end.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

import torch
from torch import Tensor

from speechkit.models.whisper import WhisperConfig, WhisperModel
from speechkit.pretrained import save_pretrained, whisper_features
from speechkit.text.whisper import WhisperTokenizer

logger = logging.getLogger(__name__)

__all__ = ["ConversionError", "TensorSource", "copy_modules", "layer_modules", "write_whisper_dir"]


class ConversionError(ValueError):
    """A source model that cannot be converted; the message names the file and the problem."""


class TensorSource:
    """Named tensors read from ``file``; :meth:`take` returns float32 copies and records use."""

    def __init__(self, tensors: dict[str, Tensor], file: str | Path):
        self.tensors, self.file, self.used = tensors, str(file), set()

    def __contains__(self, name: str) -> bool:
        return name in self.tensors

    def take(self, name: str, shape: tuple[int, ...] | None = None) -> Tensor:
        if name not in self.tensors:
            raise ConversionError(f"{self.file}: missing tensor {name!r}")
        self.used.add(name)
        t = self.tensors[name]
        if shape is not None and tuple(t.shape) != tuple(shape):
            raise ConversionError(
                f"{self.file}: tensor {name!r} has shape {tuple(t.shape)}, expected {shape}"
            )
        return t.detach().to(torch.float32).clone()

    def check_all_used(self, ignore: Iterable[str] = ()) -> None:
        """Raises if a tensor was never used: an unknown layout would otherwise be dropped."""
        ignore = set(ignore)
        left = sorted(k for k in self.tensors if k not in self.used and k not in ignore)
        if left:
            more = f" (+{len(left) - 8} more)" if len(left) > 8 else ""
            raise ConversionError(
                f"{self.file}: {len(left)} tensors have no place in a Whisper model: "
                f"{left[:8]}{more}"
            )


def layer_modules(stack: str, i: int, names: dict[str, str], prefix: str) -> list[tuple[str, str]]:
    """(speechkit module, source module) pairs of layer ``i`` of ``stack`` (encoder/decoder).

    ``names`` maps speechkit module suffixes (``attn.q_proj``) to the source's (``attn.query``);
    entries of the other stack (cross-attention in the encoder) are skipped.
    """
    pairs = []
    for ours, theirs in names.items():
        if stack == "encoder" and ours.startswith(("self_", "cross_")):
            continue
        if stack == "decoder" and ours.startswith("attn"):
            continue
        pairs.append((f"{stack}.layers.{i}.{ours}", f"{prefix.format(i=i)}.{theirs}"))
    return pairs


def copy_modules(src: TensorSource, state: dict[str, Tensor], pairs: list[tuple[str, str]]) -> None:
    """Copies ``weight`` and ``bias`` of each (speechkit, source) module pair; key projections
    (``k_proj``) have no bias in speechkit (a key bias cannot change attention)."""
    for ours, theirs in pairs:
        state[f"{ours}.weight"] = src.take(f"{theirs}.weight")
        if not ours.endswith("k_proj"):
            state[f"{ours}.bias"] = src.take(f"{theirs}.bias")
        elif f"{theirs}.bias" in src:  # drop it, but only if it is what Whisper has: none
            bias = src.take(f"{theirs}.bias")
            if bias.abs().max() > 0:
                logger.info("%s: dropping non-zero key bias %s.bias", src.file, theirs)


def _prepare_out_dir(out_dir: Path) -> Path:
    """A fresh temporary sibling of ``out_dir``; ``out_dir`` must not hold anything yet."""
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise FileExistsError(f"{out_dir} already exists and is not empty; remove it first")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.with_name(f".{out_dir.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    return tmp


def load_exact(model: torch.nn.Module, state: dict[str, Tensor], what: str) -> None:
    """Loads ``state`` into ``model``: a shape mismatch, a missing or an unexpected key is a
    ConversionError that starts with ``what`` (e.g. ``"<file>: does not fit <config>"``)."""
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as e:  # shape mismatches
        raise ConversionError(f"{what}: {e}") from e
    if result.missing_keys or result.unexpected_keys:
        raise ConversionError(
            f"{what}: missing {result.missing_keys[:8]}, unexpected {result.unexpected_keys[:8]}"
        )


def pack_atomically(model, tokenizer, features, out_dir: Path, source: str, cfg) -> Path:
    """``save_pretrained`` into a temporary sibling of ``out_dir``, renamed at the end, so an
    interrupted conversion leaves no half-written model; ``out_dir`` must be absent or empty."""
    tmp = _prepare_out_dir(out_dir)
    try:
        save_pretrained(model, tokenizer, features, tmp, source, cfg)
        if out_dir.exists():
            out_dir.rmdir()  # empty (checked above); os.replace needs it gone or empty
        os.replace(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def write_whisper_dir(
    cfg: WhisperConfig,
    state: dict[str, Tensor],
    tokenizer_json: str | Path,
    out_dir: str | Path,
    source: str,
) -> Path:
    """Loads ``state`` into a ``WhisperModel(cfg)`` and packs it with the tokenizer.

    The tokenizer must match the model: same vocabulary size and, from its special tokens, the
    same kind (English-only vs multilingual). Returns ``out_dir``.
    """
    out_dir = Path(out_dir)
    tokenizer_json = Path(tokenizer_json)
    if not tokenizer_json.is_file():
        raise FileNotFoundError(f"Whisper tokenizer file {tokenizer_json} does not exist")
    tokenizer = WhisperTokenizer.from_file(tokenizer_json)
    if tokenizer.vocab_size != cfg.n_vocab or tokenizer.multilingual != cfg.multilingual:
        kind = lambda m: "multilingual" if m else "English-only"  # noqa: E731
        raise ConversionError(
            f"{tokenizer_json}: {kind(tokenizer.multilingual)} tokenizer with "
            f"{tokenizer.vocab_size} ids does not fit the {kind(cfg.multilingual)} model with "
            f"n_vocab {cfg.n_vocab} ({source})"
        )
    model = WhisperModel(cfg)
    load_exact(model, state, f"{source}: converted state does not fit WhisperModel")
    pack_atomically(model, tokenizer, whisper_features(cfg), out_dir, source, cfg)
    logger.info("converted %s -> %s", source, out_dir)
    return out_dir
