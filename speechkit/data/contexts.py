"""Per-cut context vectors (speaker, acoustic event), computed once and stored beside a manifest.

Context-gated pruning conditions its gate predictor on who speaks and what sounds behind the
speech. Both are properties of the recording, not of the model being trained, so they are
computed once per cut by a pretrained (speaker) or recipe-trained (event) encoder and read back
at every epoch. Language context is the model's own language-ID posterior, so it is not stored.

On disk, one file per kind in a context directory::

    <dir>/<kind>.safetensors    tensor "vectors" (N, D) float32, tensor "valid" (N,) uint8
                                metadata: "ids" (JSON list of N cut ids), "encoder" (free text)

A cut whose context could not be computed (too short, failed embedding) is stored with
``valid = 0``; readers give it no vector, and the gate predictor substitutes its learned
"unknown" context. Cuts absent from the file are treated the same way and counted.

    write_context_store(dir, "speaker", ids, vectors, valid, encoder="resemblyzer d-vector")
    store = ContextStore.load(dir, "speaker")
    store.dim                         # D
    store.get(cut_id)                 # Tensor (D,) or None
    vecs, known = store.batch(ids)    # (B, D) float32 (zeros where unknown), (B,) bool
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from speechkit.checkpoint import atomic_write

__all__ = ["CONTEXT_KINDS", "STORED_KINDS", "ContextStore", "context_path", "write_context_store"]

CONTEXT_KINDS = ("speaker", "event", "language")
STORED_KINDS = ("speaker", "event")


def context_path(directory: str | Path, kind: str) -> Path:
    if kind not in STORED_KINDS:
        raise ValueError(f"no stored context of kind {kind!r}; stored kinds: {list(STORED_KINDS)}")
    return Path(directory) / f"{kind}.safetensors"


def write_context_store(
    directory: str | Path,
    kind: str,
    ids: list[str],
    vectors: Tensor,
    valid: Tensor | None = None,
    encoder: str = "",
) -> Path:
    """Atomically writes ``vectors`` (N, D) for cut ``ids`` (N); ``valid`` (N,) bool marks the
    rows that hold a real context (default: all). Returns the file written."""
    from safetensors.torch import save

    if vectors.ndim != 2 or vectors.shape[0] != len(ids):
        raise ValueError(f"vectors must be (N={len(ids)}, D), got {tuple(vectors.shape)}")
    if len(set(ids)) != len(ids):
        raise ValueError("duplicate cut ids in a context store")
    if valid is None:
        valid = torch.ones(len(ids), dtype=torch.bool)
    if valid.shape != (len(ids),):
        raise ValueError(f"valid must be ({len(ids)},), got {tuple(valid.shape)}")
    tensors = {
        "vectors": vectors.detach().to(torch.float32).contiguous().cpu(),
        "valid": valid.to(torch.uint8).contiguous().cpu(),
    }
    blob = save(tensors, metadata={"ids": json.dumps(list(ids)), "encoder": encoder, "kind": kind})
    path = context_path(directory, kind)
    atomic_write(path, lambda f: f.write(blob))
    return path


@dataclass
class ContextStore:
    """Context vectors of one kind, by cut id. ``missing`` counts lookups that found none."""

    kind: str
    vectors: Tensor  # (N, D) float32
    valid: Tensor  # (N,) bool
    index: dict[str, int]
    encoder: str = ""
    missing: int = field(default=0)

    @classmethod
    def load(cls, directory: str | Path, kind: str) -> ContextStore:
        from safetensors import safe_open

        path = context_path(directory, kind)
        if not path.is_file():
            raise FileNotFoundError(
                f"no {kind} contexts at {path}; compute them first (speechkit compute-contexts)"
            )
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            vectors, valid = f.get_tensor("vectors"), f.get_tensor("valid").bool()
        ids = json.loads(meta.get("ids", "[]"))
        if len(ids) != vectors.shape[0]:
            raise ValueError(f"{path}: {len(ids)} ids for {vectors.shape[0]} vectors")
        return cls(kind, vectors, valid, {c: i for i, c in enumerate(ids)}, meta.get("encoder", ""))

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def __len__(self) -> int:
        return len(self.index)

    def get(self, cut_id: str) -> Tensor | None:
        i = self.index.get(cut_id)
        if i is None or not bool(self.valid[i]):
            self.missing += 1
            return None
        return self.vectors[i]

    def batch(self, cut_ids: list[str]) -> tuple[Tensor, Tensor]:
        """(B, D) vectors (zeros where unknown) and (B,) bool: which are known."""
        out = torch.zeros(len(cut_ids), self.dim)
        known = torch.zeros(len(cut_ids), dtype=torch.bool)
        for b, cid in enumerate(cut_ids):
            v = self.get(cid)
            if v is not None:
                out[b], known[b] = v, True
        return out, known
