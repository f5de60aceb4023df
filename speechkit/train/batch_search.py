"""Per-bucket batch sizes: the largest batch of each 2D bucket's longest shapes that trains.

    python -m speechkit.train.batch_search --config conf/s2t/phrasebook_tiny.yaml \\
        --buckets exp/buckets.yaml --tokenizer data/tokenizer --out exp/buckets_bs.yaml \\
        [--memory-gib 8] [--device auto] [--set model.d_model=256 ...]

For every bucket of a :class:`~speechkit.data.buckets.BucketGrid` it builds synthetic batches
at the bucket's edges (``duration_edge`` seconds of frames, ``token_edge + 4`` decoder tokens,
``targets_per_cut`` targets per utterance) and runs real forward + backward steps of the
configured model, doubling the batch until it no longer fits and then bisecting. What "fits"
means:

* CUDA: the step (forward, backward, AdamW update) runs without ``OutOfMemoryError`` and
  ``torch.cuda.max_memory_allocated`` stays under ``--memory-gib`` (if given) times
  ``--margin``;
* CPU: the step's measured bytes stay under ``--memory-gib * --margin``: activations saved
  for backward (summed over distinct storages via ``saved_tensors_hooks`` during the real
  forward pass, parameters excluded) plus 4x the parameter bytes (weights, gradients, AdamW's
  two moments). This measure is taken in the forward pass, so the search skips the backward.
  At a fixed shape it grows by the same bytes per utterance: real forward passes at batches of
  1, 2 and 3 check that, and the line's crossing of the budget is the batch size (exact, and
  far cheaper than probing at full size). Should the three points not be collinear, the
  crossing is only a first guess, and the search gallops and bisects with real probes.

The result is the bucket file plus ``batch_sizes``; point ``data.sampler.buckets`` at it.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import sys
from collections.abc import Callable

import torch
from torch import nn
from tqdm import tqdm

from speechkit.data.buckets import BucketGrid
from speechkit.models import build_model
from speechkit.models.s2t import S2TConfig
from speechkit.train.trainer import resolve_amp, select_device

__all__ = [
    "cpu_step_bytes",
    "cuda_step_fits",
    "largest_fitting",
    "search_grid",
    "synthetic_batch",
]

logger = logging.getLogger(__name__)

GIB = 1024**3
_PREFIX = 4  # <sos> <lang> <task> <notimestamps> before the text in ys_in
_FIRST_TEXT_ID = 7  # ids below are special tokens without which the batch is still realistic


def synthetic_batch(
    duration: float, tokens: int, batch: int, targets_per_cut: int, cfg: S2TConfig
) -> dict[str, torch.Tensor]:
    """A batch (docs/design.md layout) of ``batch`` utterances of ``duration`` seconds
    (100 frames/s) with ``targets_per_cut`` decoder targets of ``tokens`` text pieces each."""
    frames = max(1, math.ceil(duration * 100))
    length = min(tokens + _PREFIX, cfg.max_target_positions)
    n = batch * targets_per_cut
    hi = max(cfg.vocab_size, _FIRST_TEXT_ID + 1)
    ys = torch.randint(_FIRST_TEXT_ID, hi, (n, length))
    return {
        "feats": torch.randn(batch, frames, cfg.n_mels),
        "feat_lens": torch.full((batch,), frames),
        "ys_in": ys,
        "ys_out": torch.roll(ys, -1, dims=1),
        "ctc_targets": torch.randint(_FIRST_TEXT_ID, hi, (batch, max(1, tokens))),
        "ctc_target_lens": torch.full((batch,), max(1, tokens)),
        "target_utt": torch.arange(batch).repeat_interleave(targets_per_cut),
    }


def _forward(model: nn.Module, batch: dict, device: torch.device, amp) -> torch.Tensor:
    b = {k: v.to(device) for k, v in batch.items()}
    args = [b[k] for k in ("feats", "feat_lens", "ys_in", "ys_out", "ctc_targets")]
    with torch.autocast(device.type, amp, enabled=amp is not None):
        extra = {"target_utt": b["target_utt"]} if "target_utt" in b else {}
        return model(*args, b["ctc_target_lens"], **extra)["loss"]


def cpu_step_bytes(model: nn.Module, batch: dict, backward: bool = True) -> int:
    """Bytes a CPU training step holds at its peak (see module docstring). The measure is
    taken in the forward pass; ``backward=False`` skips the (then unneeded) backward."""
    param_storages = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in param_storages:
            saved[storage.data_ptr()] = storage.nbytes()
        # Detached: a saved output returned as itself points back (grad_fn) at the node that
        # saves it, a C++ reference cycle that leaks the whole graph when no backward runs.
        return t.detach()

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = _forward(model, batch, torch.device("cpu"), None)
    if backward:
        loss.backward()
        model.zero_grad(set_to_none=True)
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    return sum(saved.values()) + 4 * params


def cuda_step_fits(
    model: nn.Module, optimizer, batch: dict, device: torch.device, amp, limit: float | None
) -> bool:
    """Runs a full step on the GPU; False on OOM or a peak above ``limit`` bytes."""
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    try:
        _forward(model, batch, device, amp).backward()
        optimizer.step()
        torch.cuda.synchronize(device)
    except torch.cuda.OutOfMemoryError:
        return False
    finally:
        optimizer.zero_grad(set_to_none=True)
    return limit is None or torch.cuda.max_memory_allocated(device) <= limit


def largest_fitting(fits: Callable[[int], bool], max_batch: int, guess: int | None = None) -> int:
    """The largest ``b`` in [1, max_batch] with ``fits(b)`` (assumed monotone), or 0 if even one
    does not fit: galloping away from ``guess`` (default 1) until the answer is bracketed, then
    bisection. A right guess is confirmed with two probes (``guess`` fits, ``guess + 1`` not)."""
    g = min(max(guess or 1, 1), max_batch)
    step = max(1, g // 8) if guess else g
    good, bad = 0, None
    if fits(g):
        # On CPU the guess comes from an exact affine fit: usually this confirms it.
        if guess and (g == max_batch or not fits(g + 1)):
            return g
        good = g + 1 if guess else g
    else:
        bad = g
    if good:
        while good < max_batch:
            trial = min(good + step, max_batch)
            if not fits(trial):
                bad = trial
                break
            good, step = trial, 2 * step
    else:
        while bad > 1:
            trial = max(bad - step, 1)
            if fits(trial):
                good = trial
                break
            bad, step = trial, 2 * step
        if good == 0:
            return 0
    while bad is not None and bad - good > 1:
        mid = (good + bad) // 2
        good, bad = (mid, bad) if fits(mid) else (good, mid)
    return good


def _affine_crossing(measure: Callable[[int], int], limit: float) -> tuple[int, bool]:
    """Where an affine fit through ``measure(1)`` and ``measure(2)`` crosses ``limit``, and
    whether ``measure(3)`` lies on that line (then the crossing is exact, not a guess). The
    crossing is 0 when a single utterance exceeds ``limit``."""
    one, two, three = measure(1), measure(2), measure(3)
    per_item = max(1, two - one)
    exact = abs(three - (two + per_item)) <= 0.001 * three
    return max(0, int((limit - (one - per_item)) // per_item)), exact


@dataclasses.dataclass
class SearchSettings:
    """``memory_gib``: budget (required on CPU; optional cap on CUDA); ``margin``: fraction of
    it a step may use; ``max_batch``: largest batch tried."""

    memory_gib: float | None = None
    margin: float = 0.9
    max_batch: int = 512
    device: str = "auto"
    amp: str = "auto"


def search_grid(model_cfg: S2TConfig, grid: BucketGrid, s: SearchSettings) -> list[list[int]]:
    """Batch sizes for every bucket of ``grid`` (rows as in ``grid.token_edges``)."""
    device = select_device(s.device)
    if device.type != "cuda" and s.memory_gib is None:
        raise ValueError("batch search on CPU needs a memory budget (--memory-gib)")
    limit = None if s.memory_gib is None else s.memory_gib * s.margin * GIB
    amp = resolve_amp(s.amp, device)
    torch.manual_seed(0)
    model = build_model(model_cfg).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6)
    sizes = []
    for d, t in tqdm(grid.shapes(), desc="buckets", unit="bucket"):

        def measure(b: int, d=d, t=t) -> int:
            batch = synthetic_batch(d, t, b, grid.targets_per_cut, model_cfg)
            return cpu_step_bytes(model, batch, backward=False)

        def fits(b: int, d=d, t=t) -> bool:
            if device.type != "cuda":
                return measure(b) <= limit
            batch = synthetic_batch(d, t, b, grid.targets_per_cut, model_cfg)
            return cuda_step_fits(model, optimizer, batch, device, amp, limit)

        guess, exact = None, False
        if device.type != "cuda":
            # Saved activations grow by the same bytes per utterance at a fixed shape; when
            # three small batches confirm it, the budget's crossing is the answer (no probes
            # at full size, which cost a forward pass each); otherwise it is the first guess.
            guess, exact = _affine_crossing(measure, limit)
        if exact:
            size = min(guess, s.max_batch)
        else:
            if guess is not None:
                # An off line can put the guess far above the budget, and one probe there can
                # exhaust the machine's memory: gallop up from 1 instead (doubling only while
                # the batch fits, so no probe holds more than about twice the budget).
                logger.info("bucket <= %.2f s: memory not affine in the batch; probing", d)
            size = largest_fitting(fits, s.max_batch)
        if size == 0:
            raise RuntimeError(
                f"a single utterance of {d:.1f} s with {t} tokens does not fit in the memory "
                f"budget on {device}; lower data.sampler.max_cut_duration or raise --memory-gib"
            )
        logger.info("bucket <= %.2f s, <= %d tokens: batch %d", d, t, size)
        sizes.append(size)
    it = iter(sizes)
    return [[next(it) for _ in row] for row in grid.token_edges]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--config", required=True, help="experiment YAML (its model section is used)")
    p.add_argument("--buckets", required=True, help="bucket YAML from estimate_buckets")
    p.add_argument("--tokenizer", required=True, help="tokenizer directory (for vocab size)")
    p.add_argument("--out", required=True, help="bucket YAML with batch_sizes to write")
    p.add_argument("--memory-gib", type=float, default=None)
    p.add_argument("--margin", type=float, default=0.9)
    p.add_argument("--max-batch", type=int, default=512)
    p.add_argument("--device", default="auto")
    p.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[])
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from speechkit.text.sentencepiece import SentencePieceTokenizer
    from speechkit.train.config import load_experiment_config

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    tokenizer = SentencePieceTokenizer.load(args.tokenizer)
    cfg = load_experiment_config(args.config, args.overrides)
    model_cfg = dataclasses.replace(cfg.model, vocab_size=tokenizer.vocab_size)
    grid = BucketGrid.load(args.buckets)
    settings = SearchSettings(
        args.memory_gib, args.margin, args.max_batch, args.device, cfg.trainer.amp
    )
    grid.batch_sizes = search_grid(model_cfg, grid, settings)
    grid.save(args.out)
    logger.info("batch sizes %s written to %s", grid.batch_sizes, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
