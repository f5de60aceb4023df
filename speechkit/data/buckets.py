"""2D buckets: cuts grouped by input duration AND output length, with a batch size per bucket.

What 2D buckets are for: a translation's length does not follow the audio's, so a 1D duration
bucket still mixes a 2 s cut with 3 decoder tokens and a 2 s cut with 40, and the decoder side of
such a batch is mostly padding. A :class:`BucketGrid` splits durations into rows, then each row by
output tokens into columns. Bucket ``(r, c)`` holds cuts with ``duration <= duration_edges[r]``
(and above the previous row's edge) and ``tokens <= token_edges[r][c]`` (above the previous
column's); the last row / column also take anything longer.

How the edges are chosen (:func:`estimate_grid`): padding is a property of a bucket's *spread*, so
rows are cut from the sorted training durations wherever the row's own frame padding
``1 - sum(d) / (n * max(d))`` would exceed a target (a random batch drawn from a row pads less
than the whole row, so the target bounds the epoch's padding); columns are cut the same way on
tokens. Every bucket must hold ``min_bucket_seconds`` of audio (a few batches), or it would only
ever yield partial batches; that is why long, sparse tails get wider buckets. The number of
buckets thus follows the corpus instead of being fixed: few rows where durations are tight,
many where they spread, and columns only in rows with enough audio to fill them.

Units: durations in seconds; tokens are sentencepiece pieces of the longest decoder text of a cut
(its task's text for a task-expanded cut, else the longest of transcript and translations),
without the 4 ``<sos> <lang> <task> <nots>`` prefix tokens and ``<eos>``.

The grid is a YAML file (``speechkit.bin.estimate_buckets`` writes it, and
``speechkit.train.batch_search`` adds ``batch_sizes``)::

    duration_edges: [2.1, 3.4, ...]          # seconds, ascending; one per row
    token_edges: [[9, 14, 30], [12, ...]]    # per row, ascending
    batch_sizes: [[96, 80, 52], ...]         # optional; cuts per batch in each bucket
    targets_per_cut: 4                       # decoder targets one cut can carry (for the search)
    tokenizer: /abs/path/to/tokenizer        # the tokenizer the token counts came from

:class:`Bucket2DConstraint` is the lhotse ``SamplingConstraint`` that routes a cut to its bucket
and closes a batch at that bucket's batch size (from ``batch_sizes``, else
``floor(max_duration / duration_edge)``: a padded-seconds budget). lhotse draws every batch from
a single bucket, so a batch never mixes rows or columns.
"""

from __future__ import annotations

import bisect
import dataclasses
import logging
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from lhotse.dataset.sampling.base import SamplingConstraint

from speechkit.text.sentencepiece import SentencePieceTokenizer

__all__ = [
    "Bucket2DConstraint",
    "BucketGrid",
    "TokenCounter",
    "decoder_texts",
    "estimate_grid",
]

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class BucketGrid:
    """Bucket edges (see module docstring); buckets are numbered row by row."""

    duration_edges: list[float]
    token_edges: list[list[int]]
    batch_sizes: list[list[int]] | None = None
    targets_per_cut: int = 1
    tokenizer: str | None = None

    def __post_init__(self) -> None:
        d, t = self.duration_edges, self.token_edges
        if not d or len(t) != len(d):
            raise ValueError(
                f"bucket grid: {len(d)} duration edges but {len(t)} token-edge rows; "
                "need one token-edge row per duration edge"
            )
        if any(b <= a for a, b in zip(d, d[1:])):
            raise ValueError(f"bucket grid: duration_edges must rise strictly, got {d}")
        for r, row in enumerate(t):
            if not row or any(b <= a for a, b in zip(row, row[1:])):
                raise ValueError(f"bucket grid: token_edges[{r}] must rise strictly, got {row}")
        if self.batch_sizes is not None:
            shape = [len(row) for row in t]
            if [len(row) for row in self.batch_sizes] != shape:
                raise ValueError(
                    f"bucket grid: batch_sizes rows have lengths "
                    f"{[len(r) for r in self.batch_sizes]}, token_edges {shape}"
                )
            if any(b < 1 for row in self.batch_sizes for b in row):
                raise ValueError("bucket grid: every batch size must be >= 1")

    @property
    def num_buckets(self) -> int:
        return sum(len(row) for row in self.token_edges)

    def shapes(self) -> list[tuple[float, int]]:
        """``(max_duration_s, max_tokens)`` of each bucket, in bucket order."""
        return [(d, t) for d, row in zip(self.duration_edges, self.token_edges) for t in row]

    def index(self, duration: float, tokens: int) -> int:
        """The bucket of a cut of ``duration`` seconds and ``tokens`` output tokens."""
        r = min(bisect.bisect_left(self.duration_edges, duration), len(self.duration_edges) - 1)
        row = self.token_edges[r]
        c = min(bisect.bisect_left(row, tokens), len(row) - 1)
        return sum(len(x) for x in self.token_edges[:r]) + c

    def flat_batch_sizes(self) -> list[int] | None:
        return None if self.batch_sizes is None else [b for row in self.batch_sizes for b in row]

    def lhotse_bins(self) -> list[tuple[float, int]]:
        """Sorted placeholders for lhotse's ``duration_bins`` (it makes ``len + 1`` buckets and
        only checks sortedness; :class:`Bucket2DConstraint` does the routing)."""
        return self.shapes()[:-1]

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    def save(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))

    @classmethod
    def load(cls, path: str | Path) -> BucketGrid:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(
                f"bucket file {path} not found (data.sampler.buckets); write it with "
                "python -m speechkit.bin.estimate_buckets"
            )
        data = yaml.safe_load(path.read_text()) or {}
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"{path}: unknown key(s) {sorted(unknown)}")
        try:
            return cls(**data)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{path}: {e}") from None


def _greedy_groups(
    values: np.ndarray, seconds: np.ndarray, max_padding: float, min_seconds: float
) -> list[tuple[int, int]]:
    """Cuts ascending ``values`` (N,) into contiguous ``[start, end)`` groups.

    A group is closed before the value that would lift its padding ``1 - sum(v) / (n * max(v))``
    above ``max_padding``, provided it already holds ``min_seconds`` of audio (``seconds``, (N,));
    a last group short of ``min_seconds`` joins the one before. Equal values are never split
    (a cut is routed by value, so ties must share a group).
    """
    groups: list[tuple[int, int]] = []
    start, total, audio = 0, 0.0, 0.0
    for j, v in enumerate(values.tolist()):
        if j > start and v > values[j - 1] and audio >= min_seconds:
            padding = 1.0 - (total + v) / ((j - start + 1) * v)
            if padding > max_padding:
                groups.append((start, j))
                start, total, audio = j, 0.0, 0.0
        total += v
        audio += float(seconds[j])
    groups.append((start, len(values)))
    if len(groups) > 1 and audio < min_seconds:
        groups[-2:] = [(groups[-2][0], len(values))]
    return groups


def estimate_grid(
    durations: Sequence[float],
    tokens: Sequence[int],
    max_frame_padding: float = 0.03,
    max_token_padding: float = 0.10,
    min_bucket_seconds: float = 120.0,
    max_token_buckets: int = 4,
) -> BucketGrid:
    """Edges (see module docstring) from the training cuts' ``durations`` (s) and ``tokens``.

    Rows keep their frame padding under ``max_frame_padding`` and columns their token padding
    under ``max_token_padding``, each bucket holding at least ``min_bucket_seconds`` of audio
    (so a row is split into at most ``max_token_buckets`` columns, fewer when it holds less
    audio). Each edge is the largest value it covers.
    """
    if len(durations) != len(tokens) or not durations:
        raise ValueError("estimate_grid needs one token count per duration, and at least one cut")
    if not (0 < max_frame_padding < 1 and 0 < max_token_padding < 1):
        raise ValueError("estimate_grid: padding targets must lie in (0, 1)")
    if min_bucket_seconds < 0 or max_token_buckets < 1:
        raise ValueError("estimate_grid: min_bucket_seconds >= 0 and max_token_buckets >= 1")
    order = np.argsort(np.asarray(durations, dtype=float), kind="stable")
    dur = np.asarray(durations, dtype=float)[order]
    tok = np.asarray(tokens, dtype=int)[order]
    duration_edges, token_edges = [], []
    for start, end in _greedy_groups(dur, dur, max_frame_padding, min_bucket_seconds):
        row_dur, row_tok = dur[start:end], tok[start:end]
        by_tokens = np.argsort(row_tok, kind="stable")
        # Columns share the row's audio: no more than max_token_buckets of them.
        min_col = max(min_bucket_seconds, float(row_dur.sum()) / max_token_buckets)
        cols = _greedy_groups(row_tok[by_tokens], row_dur[by_tokens], max_token_padding, min_col)
        duration_edges.append(float(row_dur[-1]))
        token_edges.append([int(row_tok[by_tokens][e - 1]) for _, e in cols])
    return BucketGrid(duration_edges=duration_edges, token_edges=token_edges)


def decoder_texts(cut) -> list[str]:
    """The decoder texts one cut can train: its task's text (task-expanded cut), else the
    transcript and every translation (``supervisions[0].custom["translations"]``)."""
    if not cut.supervisions:
        return []
    sup = cut.supervisions[0]
    translations = (sup.custom or {}).get("translations") or {}
    task = (cut.custom or {}).get("task")
    if task == "asr":
        return [sup.text or ""]
    if task:
        return [translations.get(task[len("st_") :], "") or ""]
    return [sup.text or ""] + [t for t in translations.values() if isinstance(t, str)]


class TokenCounter:
    """``counter(cut) -> int``: pieces of the cut's longest decoder text (bounded cache by id).

    The cache saves re-tokenising while a cut waits in a bucket (lhotse re-measures bucket
    contents for every batch); entries beyond ``cache_size`` are forgotten and recomputed.
    """

    def __init__(self, tokenizer: SentencePieceTokenizer, cache_size: int = 200_000) -> None:
        self.tokenizer = tokenizer
        self.cache_size = cache_size
        self._cache: OrderedDict[str, int] = OrderedDict()

    def __call__(self, cut) -> int:
        n = self._cache.get(cut.id)
        if n is None:
            n = max((len(self.tokenizer.encode(t)) for t in decoder_texts(cut)), default=0)
            self._cache[cut.id] = n
            if len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return n


class Bucket2DConstraint(SamplingConstraint):
    """Routes cuts to 2D buckets and closes a batch at its bucket's batch size.

    ``num_tokens(cut) -> int`` measures output length (a :class:`TokenCounter`). Batch size of
    bucket b: ``grid.batch_sizes`` if present, else ``max(1, floor(max_duration / d_b))`` with
    ``d_b`` the bucket's duration edge, so that ``size * d_b`` padded seconds fit the budget.
    """

    def __init__(
        self,
        grid: BucketGrid,
        num_tokens: Callable[[Any], int],
        max_duration: float | None = None,
    ) -> None:
        self.grid, self.num_tokens = grid, num_tokens
        sizes = grid.flat_batch_sizes()
        if sizes is None:
            if max_duration is None:
                raise ValueError("Bucket2DConstraint needs grid.batch_sizes or a max_duration")
            sizes = [max(1, int(max_duration // d)) for d, _ in grid.shapes()]
        self.batch_sizes = sizes
        self.current_bucket: int | None = None
        self.num_cuts = 0

    def bucket_of(self, cut) -> int:
        return self.grid.index(cut.duration, self.num_tokens(cut))

    def select_bucket(self, buckets: Any = None, example: Any = None, example_len: Any = None):
        if example is None:
            raise ValueError("Bucket2DConstraint.select_bucket needs the cut (example=)")
        return self.bucket_of(example)

    def add(self, example) -> None:
        if self.current_bucket is None:
            self.current_bucket = self.bucket_of(example)
        self.num_cuts += 1

    def _limit(self) -> int:
        return self.batch_sizes[self.current_bucket] if self.current_bucket is not None else 1

    def exceeded(self) -> bool:
        return self.num_cuts > self._limit()

    def close_to_exceeding(self) -> bool:
        return self.num_cuts >= self._limit()

    def reset(self) -> None:
        self.current_bucket, self.num_cuts = None, 0

    def measure_length(self, example) -> float:
        return example.duration
