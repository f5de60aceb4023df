"""Training checkpoints on disk: atomic save, discovery, retention, averaging.

A checkpoint is one ``torch.save`` dict at ``<exp>/checkpoints/step-<N>.pt`` (layout in
docs/design.md: ``model, optimizer, scheduler, sampler, step, epoch, config, tokenizer,
speechkit_version, valid_loss``; the trainer adds ``epoch_done, rng, elapsed, select_score``).

Saving writes ``step-<N>.pt.tmp``, fsyncs it and renames it over the final name, so a crash or
Ctrl-C never leaves a truncated file under a name that resume or averaging would pick up.
Each checkpoint's selection score (lower is better: the validation figure that
``trainer.select_by`` names, negated where higher is better) is also kept in
``checkpoints/index.json`` so retention and "best N" selection do not have to load every file.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import torch

from speechkit.checkpoint import atomic_write, load_checkpoint, save_checkpoint

__all__ = [
    "average_checkpoints",
    "best_checkpoints",
    "checkpoint_path",
    "config_differences",
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "prune_checkpoints",
    "read_index",
    "record_score",
    "save_averaged",
    "save_checkpoint",
]

logger = logging.getLogger(__name__)

_NAME = re.compile(r"^step-(\d+)\.pt$")
_INDEX = "index.json"


def checkpoint_path(ckpt_dir: str | Path, step: int) -> Path:
    """``<ckpt_dir>/step-<step>.pt``."""
    return Path(ckpt_dir) / f"step-{step}.pt"


def list_checkpoints(ckpt_dir: str | Path) -> list[Path]:
    """Complete checkpoints (``step-<N>.pt``, no ``.tmp``) sorted by step, oldest first."""
    ckpt_dir = Path(ckpt_dir)
    if not ckpt_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in ckpt_dir.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def latest_checkpoint(ckpt_dir: str | Path) -> Path | None:
    """The checkpoint with the highest step, or None if there is none (what ``--resume`` uses)."""
    found = list_checkpoints(ckpt_dir)
    return found[-1] if found else None


def read_index(ckpt_dir: str | Path) -> dict[str, float | None]:
    """``{file name: selection score or None}`` for existing checkpoints (lower is better).

    Names missing from ``index.json`` (e.g. the index was deleted) are filled by loading the file
    (its ``select_score``; checkpoints older than ``trainer.select_by`` rank by ``valid_loss``).
    """
    ckpt_dir = Path(ckpt_dir)
    index_file = ckpt_dir / _INDEX
    index = json.loads(index_file.read_text()) if index_file.is_file() else {}
    out = {}
    for p in list_checkpoints(ckpt_dir):
        if p.name not in index:
            ckpt = load_checkpoint(p)
            index[p.name] = ckpt.get("select_score", ckpt.get("valid_loss"))
        out[p.name] = index[p.name]
    return out


def record_score(ckpt_dir: str | Path, name: str, score: float | None) -> None:
    """Adds/overwrites one entry of ``index.json`` (atomically); ``score``: lower is better."""
    ckpt_dir = Path(ckpt_dir)
    index = read_index(ckpt_dir)
    index[name] = score
    text = json.dumps(index, indent=1).encode()
    atomic_write(ckpt_dir / _INDEX, lambda f: f.write(text))


def best_checkpoints(ckpt_dir: str | Path, n: int) -> list[Path]:
    """Up to ``n`` checkpoints with the lowest selection score (best first).

    Checkpoints without a score (Ctrl-C saves) are not ranked. If none has one, the newest
    ``n`` are returned instead, newest first, with a warning.
    """
    ckpt_dir = Path(ckpt_dir)
    index = read_index(ckpt_dir)
    scored = sorted((score, name) for name, score in index.items() if score is not None)
    if scored:
        return [ckpt_dir / name for _, name in scored[:n]]
    newest = list_checkpoints(ckpt_dir)[::-1][:n]
    if newest:
        logger.warning("no checkpoint in %s has a score; using the newest %d", ckpt_dir, n)
    return newest


def prune_checkpoints(ckpt_dir: str | Path, keep_last: int, keep_best: int) -> list[Path]:
    """Deletes checkpoints that are neither among the newest ``keep_last`` nor the best
    ``keep_best`` by selection score. Returns the deleted paths."""
    ckpt_dir = Path(ckpt_dir)
    all_ckpts = list_checkpoints(ckpt_dir)
    keep = {p.name for p in all_ckpts[-keep_last:]} if keep_last > 0 else set()
    keep |= {p.name for p in best_checkpoints(ckpt_dir, keep_best)} if keep_best > 0 else set()
    deleted = [p for p in all_ckpts if p.name not in keep]
    for p in deleted:
        p.unlink(missing_ok=True)
    if deleted:
        index = {k: v for k, v in read_index(ckpt_dir).items() if k in keep}
        text = json.dumps(index, indent=1).encode()
        atomic_write(ckpt_dir / _INDEX, lambda f: f.write(text))
        logger.info("removed old checkpoints: %s", ", ".join(p.name for p in deleted))
    return deleted


def average_checkpoints(paths: list[str | Path]) -> dict[str, torch.Tensor]:
    """The element-wise mean of the ``model`` state dicts of ``paths``.

    Floating tensors are averaged (accumulated in float64, returned in their own dtype);
    integer/bool buffers (e.g. step counters) are taken from the last path. All checkpoints must
    have the same keys and shapes; the error names the first file that differs.
    """
    if not paths:
        raise ValueError("average_checkpoints needs at least one checkpoint")
    paths = [Path(p) for p in paths]
    total: dict[str, torch.Tensor] = {}
    reference: dict[str, torch.Tensor] = {}
    for i, path in enumerate(paths):
        state = load_checkpoint(path)["model"]
        if i == 0:
            reference = state
        elif state.keys() != reference.keys():
            diff = sorted(set(state) ^ set(reference))
            raise ValueError(f"{path}: parameter names differ from {paths[0]}: {diff[:5]}")
        for name, tensor in state.items():
            if tensor.shape != reference[name].shape:
                raise ValueError(
                    f"{path}: '{name}' has shape {tuple(tensor.shape)}, expected "
                    f"{tuple(reference[name].shape)} as in {paths[0]}"
                )
            if tensor.is_floating_point():
                total[name] = total.get(name, 0) + tensor.to(torch.float64)
            else:
                total[name] = tensor.clone()  # last one wins
    return {
        name: (t / len(paths)).to(reference[name].dtype)
        if reference[name].is_floating_point()
        else t
        for name, t in total.items()
    }


def save_averaged(paths: list[str | Path], out: str | Path) -> Path:
    """Writes the average of ``paths`` as a checkpoint dict (the layout decoding loads).

    Config, tokenizer, step and epoch come from the last path (pass them oldest first);
    optimiser, scheduler and sampler states are dropped (an average cannot be resumed);
    ``averaged_from`` lists the inputs.
    """
    paths = [Path(p) for p in paths]
    newest = load_checkpoint(paths[-1])
    state = {
        k: v
        for k, v in newest.items()
        if k not in ("optimizers", "schedulers", "sampler", "scalers", "rng")
    }
    state.update(
        model=average_checkpoints(paths),
        valid_loss=None,
        select_score=None,
        averaged_from=[p.name for p in paths],
    )
    logger.info(
        "averaged %d checkpoints (%s) into %s",
        len(paths),
        ", ".join(p.name for p in paths),
        out,
    )
    return save_checkpoint(state, out)


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix: d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def config_differences(old: dict, new: dict, allowed: set[str] = frozenset()) -> list[str]:
    """Dotted keys whose values differ between two config dicts, except those in ``allowed``.

    Lists and tuples compare equal when their items do (YAML turns tuples into lists). A key
    absent from one side differs from any value; a field added to a config after a checkpoint
    was written is filled with its default first (``Task.fill_stored_config``).
    """
    a, b = _flatten(old), _flatten(new)

    def norm(v: Any) -> Any:
        return [norm(x) for x in v] if isinstance(v, (list, tuple)) else v

    return sorted(
        k
        for k in set(a) | set(b)
        if k not in allowed and (k not in a or k not in b or norm(a[k]) != norm(b[k]))
    )
