"""Context encoders for context-gated pruning: cuts -> one speaker or event vector per cut.

Two kinds are stored beside the manifests (``speechkit.data.contexts``; language context is the
model's own language-ID posterior and is not stored):

* ``speaker``: the 256-d GE2E d-vector of Resemblyzer's bundled weights
  (``speechkit.models.query_encoders.SpeakerEncoder``), one per cut. Cuts under
  ``min_seconds`` (1 s by default: GE2E partials are 1.6 s) or silent get no vector.
* ``event``: the D-dim clip embedding of an event tagger trained by the recipe on the corpus's
  background classes (``speechkit.models.tagger``; its mean frame embedding over valid frames).

A cut whose context cannot be computed (unreadable audio, too short, silent, a failed or
non-finite embedding) is stored with ``valid = 0`` and its reason is counted
(``ContextResult.reasons``); nothing stops the run. The gate predictor replaces those with its
learned "unknown" context.

    cuts = load_cut_manifests(["data/cuts_dev.jsonl.gz"])
    result = compute_contexts(cuts, [SpeakerContext(), EventContext.from_trained("exp/tagger")])
    result["speaker"].vectors  # (N, 256) float32; .valid (N,) bool; .reasons Counter
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from speechkit.data.audio import AudioError, load_audio

__all__ = [
    "ContextResult",
    "EventContext",
    "SpeakerContext",
    "audio_batches",
    "compute_contexts",
    "load_cut_manifests",
]

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000
EVENT_MIN_SECONDS = 0.1  # 5 tagger frames: below that the clip embedding is a single frame or two
_SILENCE_RMS = 1e-4  # -80 dBFS, as for speaker enrollment
_MAX_WARNINGS = 20  # per kind; the rest are only counted


def load_cut_manifests(paths: Iterable[str | Path]):
    """All cuts of the manifests, in order, as one eager CutSet. A missing or unreadable file, or
    a cut id that occurs twice, is a ``ValueError`` naming the file and the id."""
    from lhotse import CutSet

    cuts, seen = [], {}
    for path in paths:
        if not Path(path).is_file():
            raise ValueError(f"cut manifest {path} does not exist")
        try:
            loaded = list(CutSet.from_file(path))
        except Exception as e:  # lhotse raises many types for a malformed manifest
            raise ValueError(f"cannot read cut manifest {path}: {type(e).__name__}: {e}") from e
        for cut in loaded:
            if cut.id in seen:
                raise ValueError(f"cut id {cut.id!r} occurs twice ({seen[cut.id]} and {path})")
            seen[cut.id] = str(path)
        cuts += loaded
    return CutSet.from_cuts(cuts)


def audio_batches(cuts, batch_size: int) -> Iterator[list[tuple[object, np.ndarray | None, str]]]:
    """Batches of (cut, 16 kHz mono wave or None, reason) in manifest order; an unreadable cut
    comes with ``None`` and the reason instead of stopping the run."""
    batch = []
    for cut in cuts:
        try:
            batch.append((cut, load_audio(cut, SAMPLE_RATE), ""))
        except AudioError as e:
            logger.warning("cannot read %s", e)
            batch.append((cut, None, "unreadable audio"))
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def _rms(wave: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(wave, dtype=np.float64)))) if len(wave) else 0.0


class SpeakerContext:
    """Resemblyzer GE2E d-vectors (256-d unit vectors) of cuts of at least ``min_seconds``."""

    kind = "speaker"
    dim = 256

    def __init__(self, min_seconds: float = 1.0) -> None:
        from speechkit.models.query_encoders import SpeakerEncoder

        self.encoder = SpeakerEncoder()
        self.min_seconds = min_seconds
        self.name = f"resemblyzer GE2E d-vector (256-d, cuts >= {min_seconds:g} s)"

    def reject(self, wave: np.ndarray) -> str:
        """Why ``wave`` (samples,) gets no d-vector ("" when it gets one)."""
        if len(wave) < self.min_seconds * SAMPLE_RATE:
            return f"too short (< {self.min_seconds:g} s)"
        return "silent" if _rms(wave) <= _SILENCE_RMS else ""

    def embed(self, waves: list[np.ndarray]) -> Tensor:
        """(N, 256) d-vectors of N accepted waves."""
        return self.encoder.embed_batch(waves)


class EventContext:
    """Clip embeddings (D-dim, the tagger's ``dim``) of a trained event tagger; ``tag`` also
    gives the clip posteriors (N, K) that the tagger's accuracy is scored from."""

    kind = "event"

    def __init__(self, tagger: torch.nn.Module, name: str = "event tagger") -> None:
        self.tagger = tagger.eval()
        self.dim = int(tagger.cfg.dim)
        self.tags = list(tagger.cfg.tags)
        self.name = f"{name} clip embedding ({self.dim}-d, tags {','.join(self.tags)})"

    @classmethod
    def from_trained(cls, path: str | Path) -> EventContext:
        """The tagger of an experiment dir (its model_avg.pt or newest checkpoint) or a .pt."""
        from speechkit.separate import load_trained

        return cls(load_trained(path, "tagger"), name=f"speechkit tagger {path}")

    def reject(self, wave: np.ndarray) -> str:
        if len(wave) < EVENT_MIN_SECONDS * SAMPLE_RATE:
            return f"too short (< {EVENT_MIN_SECONDS:g} s)"
        return ""

    @torch.no_grad()
    def tag(self, waves: list[np.ndarray]) -> tuple[Tensor, Tensor]:
        """(N, D) clip embeddings and (N, K) clip posteriors of N accepted waves."""
        from speechkit.tasks.tagger import pad_waves

        wave, lengths = pad_waves(waves)
        out = self.tagger(wave, lengths)
        return out["embedding"].float(), out["clip_probs"].float()

    def embed(self, waves: list[np.ndarray]) -> Tensor:
        return self.tag(waves)[0]


@dataclass
class ContextResult:
    """One kind's contexts for N cuts, in cut order; ``reasons`` counts the invalid ones."""

    kind: str
    encoder: str
    ids: list[str]
    vectors: Tensor  # (N, D) float32, zeros where invalid
    valid: Tensor  # (N,) bool
    reasons: Counter = field(default_factory=Counter)

    def summary(self) -> dict:
        return {"cuts": len(self.ids), "valid": int(self.valid.sum()), "dim": self.vectors.shape[1],
                "invalid": dict(self.reasons), "encoder": self.encoder}  # fmt: skip


def _embed_safely(encoder, waves: list[np.ndarray]) -> list[Tensor | str]:
    """One vector (D,) or a failure reason per wave: the batch in one pass, and one by one only
    when the batch fails, so one bad cut costs its own context, not its batch's."""
    try:
        vecs = list(encoder.embed(waves))
    except (RuntimeError, ValueError) as e:
        logger.warning(
            "%s batch of %d failed (%s); retrying one by one", encoder.kind, len(waves), e
        )
        vecs = []
        for w in waves:
            try:
                vecs.append(encoder.embed([w])[0])
            except (RuntimeError, ValueError) as err:
                vecs.append(f"embedding failed ({type(err).__name__})")
    return [v if isinstance(v, str) or torch.isfinite(v).all() else "non-finite embedding"
            for v in vecs]  # fmt: skip


def compute_contexts(cuts, encoders: list, batch_size: int = 32, progress: bool = True) -> dict:
    """``{kind: ContextResult}`` for every cut of ``cuts`` (audio read once for all kinds)."""
    from tqdm import tqdm

    ids: list[str] = []
    rows: dict[str, list[Tensor | None]] = {e.kind: [] for e in encoders}
    reasons: dict[str, Counter] = {e.kind: Counter() for e in encoders}
    n_cuts = len(cuts) if hasattr(cuts, "__len__") else None
    bar = tqdm(total=n_cuts, desc=f"contexts ({','.join(rows)})", unit="cut", disable=not progress)
    for batch in audio_batches(cuts, batch_size):
        ids += [cut.id for cut, _, _ in batch]
        for enc in encoders:
            why = [r or enc.reject(w) for _, w, r in batch]
            ok = [i for i, r in enumerate(why) if not r]
            out: list[Tensor | None] = [None] * len(batch)
            if ok:
                for i, v in zip(ok, _embed_safely(enc, [batch[i][1] for i in ok]), strict=True):
                    if isinstance(v, str):
                        why[i] = v
                    else:
                        out[i] = v
            for (cut, _, _), r in zip(batch, why, strict=True):
                if r:
                    reasons[enc.kind][r] += 1
                    if sum(reasons[enc.kind].values()) <= _MAX_WARNINGS:
                        logger.warning("no %s context for %s: %s", enc.kind, cut.id, r)
            rows[enc.kind] += out
        bar.update(len(batch))
    bar.close()
    results = {}
    for enc in encoders:
        valid = torch.tensor([v is not None for v in rows[enc.kind]], dtype=torch.bool)
        vectors = torch.zeros(len(ids), enc.dim)
        for i, v in enumerate(rows[enc.kind]):
            if v is not None:
                vectors[i] = v
        n_bad = sum(reasons[enc.kind].values())
        if n_bad:
            logger.warning("%d of %d cuts have no %s context (%s); stored with valid=0",
                           n_bad, len(ids), enc.kind, dict(reasons[enc.kind]))  # fmt: skip
        results[enc.kind] = ContextResult(
            enc.kind, enc.name, ids, vectors, valid, reasons[enc.kind]
        )
    return results
