"""Padding and training throughput of four batching strategies, on two duration distributions.

    python local/throughput_report.py --config ../../../conf/s2t/phrasebook_tiny.yaml \
        --cuts data/phrasebook/cuts_train.jsonl.gz --tokenizer data/phrasebook/tokenizer \
        --results-md RESULTS.md [--steps 15] [--quick]

Strategies, all with the config's ``data.sampler.max_duration`` as the batch budget:

(a) fixed-size random batches of ``round(max_duration / mean duration)`` cuts;
(b) the same sizes over duration-sorted cuts (batch order shuffled);
(c) lhotse 1D dynamic duration buckets (``build_sampler`` as training uses it);
(d) 2D buckets (duration x output tokens, ``estimate_grid``) with per-bucket batch sizes from
    ``speechkit.train.batch_search`` on CPU, given as budget the measured memory of the
    costliest batch (c) produced (so (d) may use no more memory than (c) already does).

Corpora: the phrasebook training cuts (token counts from the tokenizer: each cut's longest
decoder text) and a synthetic long-tailed set (lognormal durations clipped to 1-35 s, about 3
tokens per second with lognormal noise; features are random, so no audio is read).

Padding is over one full epoch of batches: frames ``1 - sum(T_i) / (B * T_max)`` and decoder
tokens likewise. Throughput: ``--steps`` batches drawn at random from the epoch are trained
(real forward + backward + AdamW step of the configured model, one decoder target per cut of
the cut's token length) after one untimed warm-up step; audio-seconds/s and tokens/s count real
(unpadded) seconds and tokens per wall-clock second.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import random
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
from lhotse import CutSet, SupervisionSegment
from lhotse.testing.dummies import dummy_cut
from tqdm import tqdm

from speechkit.data.buckets import BucketGrid, TokenCounter, estimate_grid
from speechkit.data.sampler import build_sampler
from speechkit.models import build_model
from speechkit.report import provenance_lines, update_markdown
from speechkit.tokenizer import Tokenizer
from speechkit.train.batch_search import GIB, SearchSettings, cpu_step_bytes, search_grid
from speechkit.train.config import load_experiment_config

STRATEGIES = (
    "(a) fixed-size random",
    "(b) length-sorted",
    "(c) lhotse 1D buckets",
    "(d) 2D buckets + per-bucket sizes",
)


@dataclasses.dataclass
class Corpus:
    name: str
    durations: list[float]  # seconds
    tokens: list[int]  # decoder text pieces


def phrasebook(cuts_path: str, tokenizer: Tokenizer, max_dur: float) -> Corpus:
    count = TokenCounter(tokenizer)
    cuts = [c for c in CutSet.from_file(cuts_path) if c.duration <= max_dur]
    return Corpus("phrasebook train", [c.duration for c in cuts], [count(c) for c in cuts])


def synthetic(n: int, seed: int) -> Corpus:
    rng = np.random.default_rng(seed)
    dur = np.clip(rng.lognormal(mean=np.log(6.0), sigma=0.75, size=n), 1.0, 35.0)
    tok = np.maximum(1, np.round(3.0 * dur * rng.lognormal(0.0, 0.35, size=n))).astype(int)
    return Corpus("synthetic long-tailed 1-35 s", dur.round(2).tolist(), tok.tolist())


class _Words:
    """Tokenizer stand-in for the stub cuts: one piece per word of their text."""

    def encode(self, text: str) -> list[int]:
        return [0] * len(text.split())


def _stub_cuts(corpus: Corpus) -> CutSet:
    """Cuts carrying only duration and a text of ``tokens`` words (for lhotse samplers)."""
    cuts = []
    for i, (d, t) in enumerate(zip(corpus.durations, corpus.tokens)):
        cut = dummy_cut(i, duration=d)
        cut.supervisions = [SupervisionSegment(f"s{i}", cut.recording_id, 0, d, text="w " * t)]
        cuts.append(cut)
    return CutSet.from_cuts(cuts)


def _index(batches) -> list[list[int]]:
    return [[int(c.id.split("-")[-1]) for c in b] for b in batches]


def fixed_batches(corpus: Corpus, max_duration: float, sort: bool, seed: int) -> list[list[int]]:
    size = max(1, round(max_duration / float(np.mean(corpus.durations))))
    order = list(range(len(corpus.durations)))
    random.Random(seed).shuffle(order)
    if sort:
        order.sort(key=lambda i: corpus.durations[i])
    batches = [order[i : i + size] for i in range(0, len(order), size)]
    if sort:
        random.Random(seed).shuffle(batches)
    return batches


def epoch_padding(corpus: Corpus, batches: list[list[int]]) -> dict[str, float]:
    frames = [[math.ceil(100 * corpus.durations[i]) for i in b] for b in batches]
    toks = [[corpus.tokens[i] for i in b] for b in batches]

    def pad(groups):
        real = sum(sum(g) for g in groups)
        return 1 - real / sum(max(g) * len(g) for g in groups)

    return {
        "pad_frames": pad(frames),
        "pad_tokens": pad(toks),
        "mean_batch": float(np.mean([len(b) for b in batches])),
        "batches": len(batches),
    }


def make_batch(corpus: Corpus, idx: list[int], n_mels: int, vocab: int) -> dict:
    """Random features and tokens with the shapes (and padding) of the cuts ``idx``."""
    frames = torch.tensor([math.ceil(100 * corpus.durations[i]) for i in idx])
    toks = torch.tensor([corpus.tokens[i] for i in idx])
    ys = torch.randint(7, vocab, (len(idx), int(toks.max()) + 4))
    ys_out = torch.roll(ys, -1, dims=1)
    ys_out[torch.arange(ys.shape[1])[None, :] >= (toks + 4)[:, None]] = -100
    ctc = torch.randint(7, vocab, (len(idx), int(toks.max())))
    return {
        "feats": torch.randn(len(idx), int(frames.max()), n_mels),
        "feat_lens": frames,
        "ys_in": ys,
        "ys_out": ys_out,
        "ctc_targets": ctc,
        "ctc_target_lens": toks,
    }


def throughput(corpus, batches, model_cfg, steps: int, seed: int) -> dict[str, float]:
    """Trains ``steps`` random batches of the epoch (after an untimed warm-up step)."""
    torch.manual_seed(seed)
    model = build_model(model_cfg).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    picks = random.Random(seed).sample(batches, min(len(batches), steps + 1))
    seconds = tokens = 0.0
    elapsed = 0.0
    for k, idx in enumerate(picks):
        b = make_batch(corpus, idx, model_cfg.n_mels, model_cfg.vocab_size)
        start = time.perf_counter()
        loss = model(
            *(b[key] for key in ("feats", "feat_lens", "ys_in", "ys_out")),
            b["ctc_targets"],
            b["ctc_target_lens"],
        )["loss"]
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if k == 0:
            continue  # warm-up
        elapsed += time.perf_counter() - start
        seconds += sum(corpus.durations[i] for i in idx)
        tokens += sum(corpus.tokens[i] for i in idx)
    return {"audio_s_per_s": seconds / elapsed, "tokens_per_s": tokens / elapsed}


def two_d_batches(
    corpus, cuts, sampler_cfg, c_batches, model_cfg, args
) -> tuple[list, BucketGrid, float]:
    """Strategy (d): grid, batch search under (c)'s peak memory, one epoch of batches."""
    grid = estimate_grid(corpus.durations, corpus.tokens, args.rows, args.cols)
    torch.manual_seed(0)
    model = build_model(model_cfg).train()
    costly = sorted(c_batches, key=lambda b: -len(b) * max(corpus.durations[i] for i in b))[:2]
    costly += sorted(c_batches, key=lambda b: -max(corpus.durations[i] for i in b))[:1]
    budget = max(
        cpu_step_bytes(model, make_batch(corpus, b, model_cfg.n_mels, model_cfg.vocab_size))
        for b in costly
    )
    settings = SearchSettings(
        memory_gib=budget / GIB, margin=1.0, max_batch=args.max_batch, device="cpu"
    )
    grid.batch_sizes = search_grid(model_cfg, grid, settings)
    path = Path(args.work_dir) / f"buckets_{corpus.name.split()[0]}.yaml"
    grid.save(path)
    cfg = dataclasses.replace(sampler_cfg, buckets=str(path))
    sampler = build_sampler(cuts, cfg, seed=args.seed, tokenizer=_Words())
    return _index(sampler), grid, budget


def run_corpus(corpus: Corpus, cfg, args) -> list[dict]:
    sampler_cfg = dataclasses.replace(
        cfg.data.sampler,
        max_cut_duration=max(corpus.durations),
        max_duration=max(cfg.data.sampler.max_duration, max(corpus.durations)),
    )
    cuts = _stub_cuts(corpus)
    c_batches = _index(
        build_sampler(cuts, dataclasses.replace(sampler_cfg, buckets=None), seed=args.seed)
    )
    d_batches, grid, budget = two_d_batches(corpus, cuts, sampler_cfg, c_batches, cfg.model, args)
    all_batches = [
        fixed_batches(corpus, sampler_cfg.max_duration, sort=False, seed=args.seed),
        fixed_batches(corpus, sampler_cfg.max_duration, sort=True, seed=args.seed),
        c_batches,
        d_batches,
    ]
    rows = []
    for name, batches in tqdm(
        list(zip(STRATEGIES, all_batches)), desc=corpus.name, unit="strategy"
    ):
        row = {"strategy": name, **epoch_padding(corpus, batches)}
        row.update(throughput(corpus, batches, cfg.model, args.steps, args.seed))
        logging.info("%s %s: %s", corpus.name, name, row)
        rows.append(row)
    rows[-1]["grid"] = f"{grid.num_buckets} buckets, memory budget {budget / 2**20:.0f} MiB"
    return rows


def table(corpus: Corpus, rows: list[dict], max_duration: float) -> list[str]:
    base = rows[0]
    lines = [
        f"### {corpus.name} ({len(corpus.durations)} cuts, mean {np.mean(corpus.durations):.1f} s, "
        f"max {max(corpus.durations):.1f} s; budget {max_duration:g} s; {rows[-1]['grid']})",
        "",
        "| strategy | padding (frames) | padding (tokens) | batches | mean batch | audio s/s | tokens/s | vs (a) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['strategy']} | {100 * r['pad_frames']:.1f}% | {100 * r['pad_tokens']:.1f}% | "
            f"{r['batches']} | {r['mean_batch']:.1f} | {r['audio_s_per_s']:.1f} | "
            f"{r['tokens_per_s']:.0f} | {r['audio_s_per_s'] / base['audio_s_per_s']:.2f}x |"
        )
    return lines + [""]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", required=True)
    p.add_argument("--cuts", required=True)
    p.add_argument("--tokenizer", required=True)
    p.add_argument("--steps", type=int, default=15)
    p.add_argument("--rows", type=int, default=6, help="2D duration rows")
    p.add_argument("--cols", type=int, default=2, help="2D token columns per row")
    p.add_argument("--max-batch", type=int, default=256)
    p.add_argument("--synthetic-cuts", type=int, default=3000)
    p.add_argument("--work-dir", default="exp/throughput")
    p.add_argument("--results-md", default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="tiny model and corpora, 2 steps (tests)")
    p.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[])
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    overrides = list(args.overrides)
    if args.quick:
        args.steps, args.synthetic_cuts, args.rows, args.max_batch = 2, 300, 3, 32
        overrides += ["model.d_model=16", "model.encoder_layers=1", "model.decoder_layers=1",
                      "model.encoder_ffn=32", "model.decoder_ffn=32", "model.cgmlp_units=32", "model.n_heads=2"]  # fmt: skip
    cfg = load_experiment_config(args.config, overrides)
    tokenizer = Tokenizer.load(args.tokenizer)
    cfg = dataclasses.replace(
        cfg, model=dataclasses.replace(cfg.model, vocab_size=tokenizer.vocab_size)
    )
    corpora = [
        phrasebook(args.cuts, tokenizer, cfg.data.sampler.max_cut_duration),
        synthetic(args.synthetic_cuts, args.seed),
    ]
    if args.quick:
        corpora[0].durations, corpora[0].tokens = (
            corpora[0].durations[:300],
            corpora[0].tokens[:300],
        )
    lines = [
        "## Batching strategies: padding and training throughput",
        "",
        f"Tiny model of `{args.config}`{' (--quick: shrunk)' if args.quick else ''}, "
        f"{args.steps} timed training steps per strategy (forward + backward + AdamW, CPU, "
        f"{torch.get_num_threads()} threads). See the script's docstring for definitions.",
        "",
    ]
    for corpus in corpora:
        lines += table(corpus, run_corpus(corpus, cfg, args), cfg.data.sampler.max_duration)
    lines += [*provenance_lines(shlex.join(["python", *sys.argv])), ""]
    print("\n".join(lines))
    if args.results_md:
        update_markdown(Path(args.results_md), lines[0][3:], "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
