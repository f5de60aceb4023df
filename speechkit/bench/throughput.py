"""Padding and training throughput of five batching strategies, on two duration distributions.

    speechkit bench throughput --config conf/s2t/phrasebook_tiny.yaml \
        --cuts data/cuts_train.jsonl.gz --tokenizer data/tokenizer --name "my corpus" \
        [--results-md RESULTS.md] [--batches 5] [--rounds 3] [--threads 1] [--quick]

(or ``python -m speechkit.bench.throughput ...``). ``--cuts`` is any lhotse cut manifest with
transcripts (and ``--tokenizer`` the tokenizer its models train with); without them only the
synthetic corpus below is measured. Nothing is trained for real: the configured model takes
steps on random features of each cut's shape, so no audio is read.

Strategies, all with the config's ``data.sampler.max_duration`` (seconds) as the batch budget,
raised to the corpus's longest cut where that is longer (35 s for the synthetic set):

(a) fixed-size random batches of ``round(max_duration / mean duration)`` cuts (the same audio
    per batch on average as the budget; its peak memory is not capped, which favours (a));
(b) the same sizes over duration-sorted cuts (batch order shuffled);
(c) lhotse 1D dynamic duration buckets (``build_sampler`` as training uses it);
(d) 2D buckets (duration x output tokens; ``estimate_grid`` with its padding targets and
    buckets of at least two batch budgets of audio) with per-bucket batch sizes from
    ``speechkit.train.batch_search`` on CPU, given as memory budget the measured memory of the
    costliest batches (c) produced, so (d) may use no more memory than (c) already does;
(e) as (d), with the memory budget that (a)'s costliest batches need. This is the comparison of
    the Canary paper: a fixed batch size must be small enough for the worst batch it can draw, so
    a machine that runs (a) has that much memory, and per-bucket sizes fill it in every bucket.

Corpora: the ``--cuts`` manifest (durations, and token counts from the tokenizer: each cut's
longest decoder text; named ``--name`` in the report) and a synthetic long-tailed set (lognormal
durations clipped to 1-35 s, about 3 tokens per second with lognormal noise).

Padding, the same formula for every strategy, over one full epoch of batches: frames
``sum_b(n_b * T_max,b - sum_i T_i) / sum_b(n_b * T_max,b)`` (100 frames per second), and decoder
tokens likewise. Peak memory: :func:`~speechkit.train.batch_search.cpu_step_bytes` of the
epoch's costliest batches.

Throughput, real (unpadded) audio-seconds and tokens per wall-clock second of training (forward,
backward, AdamW step of the configured model; one decoder target per cut of the cut's token
length): the epoch's batches are sorted by padded size and cut into ``--batches`` strata of
equal count; the middle batch of each stratum is trained (a systematic sample, so the estimate
``sum(audio) / sum(time)`` stands for the whole epoch). One round trains every strategy's sample
after a warm-up step, strategies interleaved (rotated each round) so that load from other
processes hits all of them alike; the table gives the median over ``--rounds`` rounds, and
"vs (a)" the median of the per-round ratios.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from lhotse import CutSet, SupervisionSegment
from lhotse.testing.dummies import dummy_cut
from tqdm import tqdm

from speechkit.bench import add_cite_argument, cited_command, read_paths_line
from speechkit.data.buckets import TokenCounter, estimate_grid
from speechkit.data.sampler import build_sampler
from speechkit.models import build_model
from speechkit.report import provenance_lines, update_markdown
from speechkit.text import TextTokenizer, load_tokenizer
from speechkit.train.batch_search import GIB, SearchSettings, cpu_step_bytes, search_grid
from speechkit.train.config import load_experiment_config

logger = logging.getLogger(__name__)

STRATEGIES = (
    "(a) fixed-size random",
    "(b) length-sorted",
    "(c) lhotse 1D buckets",
    "(d) 2D buckets + per-bucket sizes",
    "(e) as (d), memory of (a)",
)
TITLE = "Batching strategies: padding and training throughput"
QUICK_MODEL = ["model.d_model=16", "model.encoder_layers=1", "model.decoder_layers=1",
               "model.encoder_ffn=32", "model.decoder_ffn=32", "model.cgmlp_units=32",
               "model.n_heads=2"]  # fmt: skip


@dataclasses.dataclass
class Corpus:
    """What the strategies need of a corpus: per cut, its duration and its decoder length."""

    name: str
    durations: list[float]  # seconds
    tokens: list[int]  # decoder text pieces


@dataclasses.dataclass
class Settings:
    """How much to measure (``--batches``, ``--rounds``...; see ``parse_args``)."""

    batches: int = 5
    rounds: int = 3
    max_batch: int = 256
    seed: int = 0
    work_dir: str = "exp/throughput"


def from_cuts(cuts_path: str, tokenizer: TextTokenizer, max_dur: float, name: str) -> Corpus:
    """The cuts of a manifest no longer than ``max_dur`` seconds (as the sampler keeps them)."""
    count = TokenCounter(tokenizer)
    cuts = [c for c in CutSet.from_file(cuts_path) if c.duration <= max_dur]
    if not cuts:
        raise SystemExit(f"{cuts_path}: no cut of at most {max_dur:g} s")
    return Corpus(name, [c.duration for c in cuts], [count(c) for c in cuts])


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


def _frames(corpus: Corpus, i: int) -> int:
    return math.ceil(100 * corpus.durations[i])


def padded_frames(corpus: Corpus, batch: list[int]) -> int:
    return len(batch) * max(_frames(corpus, i) for i in batch)


def epoch_padding(corpus: Corpus, batches: list[list[int]]) -> dict[str, float]:
    """Padding fractions (frames, tokens) and batch counts of one epoch of ``batches``."""
    frames = [[_frames(corpus, i) for i in b] for b in batches]
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
    frames = torch.tensor([_frames(corpus, i) for i in idx])
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


def costliest(corpus: Corpus, batches: list[list[int]]) -> list[list[int]]:
    """The batches most likely to set the peak memory: largest padded frames, longest cut,
    largest padded tokens."""
    keys = [
        lambda b: padded_frames(corpus, b),
        lambda b: max(corpus.durations[i] for i in b),
        lambda b: len(b) * max(corpus.tokens[i] for i in b),
    ]
    picked = {tuple(max(batches, key=k)) for k in keys}
    return [list(b) for b in picked]


def peak_bytes(corpus: Corpus, batches: list[list[int]], model, cfg) -> int:
    """Bytes (see ``cpu_step_bytes``) of the costliest of ``batches`` for ``model`` (``cfg``)."""
    return max(
        cpu_step_bytes(model, make_batch(corpus, b, cfg.n_mels, cfg.vocab_size), backward=False)
        for b in costliest(corpus, batches)
    )


def stratified_sample(corpus: Corpus, batches: list[list[int]], k: int) -> list[list[int]]:
    """The middle batch of each of ``k`` equal-count strata of batches sorted by padded size."""
    ranked = sorted(batches, key=lambda b: padded_frames(corpus, b))
    k = min(k, len(ranked))
    return [ranked[int((s + 0.5) * len(ranked) / k)] for s in range(k)]


class StepTimer:
    """One model and optimiser per strategy; ``step(batch) -> seconds`` of one training step
    (forward, backward, AdamW update). Not speechkit's trainer: only the step is timed."""

    def __init__(self, model_cfg, seed: int) -> None:
        torch.manual_seed(seed)
        self.model = build_model(model_cfg).train()
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=1e-4)

    def step(self, b: dict) -> float:
        start = time.perf_counter()
        keys = ("feats", "feat_lens", "ys_in", "ys_out", "ctc_targets", "ctc_target_lens")
        self.model(*(b[k] for k in keys))["loss"].backward()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        return time.perf_counter() - start


def throughput(
    corpus: Corpus, samples: list[list[list[int]]], model_cfg, s: Settings
) -> list[dict]:
    """Median audio-s/s and tokens/s of each strategy's sample, and median ratio vs the first."""
    n_mels, vocab = model_cfg.n_mels, model_cfg.vocab_size
    trainers = [StepTimer(model_cfg, s.seed) for _ in samples]
    for trainer, sample in zip(trainers, samples):  # warm-up (allocator, kernels): untimed
        trainer.step(make_batch(corpus, sample[0], n_mels, vocab))
    per_round = []  # [round][strategy] -> (audio_s_per_s, tokens_per_s)
    bar = tqdm(total=s.rounds * sum(map(len, samples)), desc="timed steps", unit="step")
    for r in range(s.rounds):
        elapsed = [0.0] * len(samples)
        order = [(i + r) % len(samples) for i in range(len(samples))]
        for k in range(max(map(len, samples))):
            for i in order:
                if k < len(samples[i]):
                    batch = make_batch(corpus, samples[i][k], n_mels, vocab)
                    elapsed[i] += trainers[i].step(batch)
                    bar.update()
        per_round.append(
            [
                (
                    sum(corpus.durations[i] for b in sample for i in b) / t,
                    sum(corpus.tokens[i] for b in sample for i in b) / t,
                )
                for sample, t in zip(samples, elapsed)
            ]
        )
    bar.close()
    return [
        {
            "audio_s_per_s": statistics.median(rd[i][0] for rd in per_round),
            "tokens_per_s": statistics.median(rd[i][1] for rd in per_round),
            "vs_a": statistics.median(rd[i][0] / rd[0][0] for rd in per_round),
        }
        for i in range(len(samples))
    ]


def two_d_batches(corpus, cuts, sampler_cfg, budget: int, model_cfg, s: Settings, tag: str):
    """Strategies (d) and (e): grid, batch search under ``budget`` bytes, one epoch of batches."""
    grid = estimate_grid(
        corpus.durations, corpus.tokens, min_bucket_seconds=2 * sampler_cfg.max_duration
    )
    search = SearchSettings(
        memory_gib=budget / GIB, margin=1.0, max_batch=s.max_batch, device="cpu"
    )
    grid.batch_sizes = search_grid(model_cfg, grid, search)
    path = Path(s.work_dir) / f"buckets_{corpus.name.split()[0]}_{tag}.yaml"
    grid.save(path)
    cfg = dataclasses.replace(sampler_cfg, buckets=str(path))
    return _index(build_sampler(cuts, cfg, seed=s.seed, tokenizer=_Words())), grid


def run_corpus(corpus: Corpus, cfg, s: Settings) -> tuple[list[dict], list[str]]:
    """Table rows (one per strategy) and notes for one corpus."""
    sampler_cfg = dataclasses.replace(
        cfg.data.sampler,
        max_cut_duration=max(corpus.durations),
        max_duration=batch_budget(corpus, cfg.data.sampler.max_duration),
    )
    cuts = _stub_cuts(corpus)
    one_d = dataclasses.replace(sampler_cfg, buckets=None)
    c_batches = _index(build_sampler(cuts, one_d, seed=s.seed))
    torch.manual_seed(0)
    probe = build_model(cfg.model).train()
    a_batches = fixed_batches(corpus, sampler_cfg.max_duration, sort=False, seed=s.seed)
    budget = peak_bytes(corpus, c_batches, probe, cfg.model)
    budget_a = peak_bytes(corpus, a_batches, probe, cfg.model)
    d_batches, grid = two_d_batches(corpus, cuts, sampler_cfg, budget, cfg.model, s, "d")
    e_batches, grid_e = two_d_batches(corpus, cuts, sampler_cfg, budget_a, cfg.model, s, "e")
    all_batches = [
        a_batches,
        fixed_batches(corpus, sampler_cfg.max_duration, sort=True, seed=s.seed),
        c_batches,
        d_batches,
        e_batches,
    ]
    rows = [{"strategy": n, **epoch_padding(corpus, b)} for n, b in zip(STRATEGIES, all_batches)]
    for row, batches in zip(rows, all_batches):
        row["peak_mib"] = peak_bytes(corpus, batches, probe, cfg.model) / 2**20
    samples = [stratified_sample(corpus, b, s.batches) for b in all_batches]
    for row, speed in zip(rows, throughput(corpus, samples, cfg.model, s)):
        row.update(speed)
        logger.info("%s %s: %s", corpus.name, row["strategy"], row)
    # The same number of 1D duration buckets as (d) has rows: what 2D adds beyond frames.
    rows_1d = dataclasses.replace(one_d, num_buckets=len(grid.duration_edges))
    same_rows = epoch_padding(corpus, _index(build_sampler(cuts, rows_1d, seed=s.seed)))
    notes = [
        f"(d) grid: {len(grid.duration_edges)} duration rows, {grid.num_buckets} buckets, "
        f"batch sizes {min(grid.flat_batch_sizes())}-{max(grid.flat_batch_sizes())}, memory "
        f"budget {budget / 2**20:.0f} MiB (the peak of (c)). For comparison, lhotse 1D with "
        f"{len(grid.duration_edges)} duration buckets pads {100 * same_rows['pad_frames']:.1f}% "
        f"of frames and {100 * same_rows['pad_tokens']:.1f}% of tokens (padding only, not timed).",
        f"(e) the same grid, batch sizes {min(grid_e.flat_batch_sizes())}-"
        f"{max(grid_e.flat_batch_sizes())}, memory budget {budget_a / 2**20:.0f} MiB (the peak "
        "of (a)).",
    ]
    return rows, notes


def batch_budget(corpus: Corpus, max_duration: float) -> float:
    """The batch budget in seconds: the config's, raised to the longest cut so that it fits."""
    return max(max_duration, max(corpus.durations))


def table(corpus: Corpus, rows: list[dict], notes: list[str], max_duration: float) -> list[str]:
    max_duration = batch_budget(corpus, max_duration)
    lines = [
        f"### {corpus.name} ({len(corpus.durations)} cuts, mean {np.mean(corpus.durations):.1f} s,"
        f" max {max(corpus.durations):.1f} s; batch budget {max_duration:g} s)",
        "",
        "| strategy | padding (frames) | padding (tokens) | batches | mean batch | peak MiB "
        "| audio s/s | tokens/s | vs (a) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['strategy']} | {100 * r['pad_frames']:.1f}% | {100 * r['pad_tokens']:.1f}% | "
            f"{r['batches']} | {r['mean_batch']:.1f} | {r['peak_mib']:.0f} | "
            f"{r['audio_s_per_s']:.1f} | {r['tokens_per_s']:.0f} | {r['vs_a']:.2f}x |"
        )
    return lines + [""] + [f"- {n}" for n in notes] + [""]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="speechkit bench throughput", description=__doc__.split("\n")[0]
    )
    p.add_argument("--config", required=True, help="experiment YAML: model and sampler")
    p.add_argument("--cuts", help="lhotse cut manifest measured beside the synthetic corpus")
    p.add_argument("--tokenizer", help="tokenizer directory counting --cuts' decoder tokens")
    p.add_argument("--name", help="the --cuts corpus in the report (default: the file name)")
    p.add_argument("--batches", type=int, default=5, help="timed batches per strategy and round")
    p.add_argument("--rounds", type=int, default=3, help="timing rounds (medians are reported)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (the CPU is shared)")
    p.add_argument("--max-batch", type=int, default=256)
    p.add_argument("--synthetic-cuts", type=int, default=3000)
    p.add_argument("--work-dir", default="exp/throughput", help="bucket files written here")
    p.add_argument("--results-md", default=None, help="write the section into this file")
    add_cite_argument(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="tiny model and corpora, 2 steps (tests)")
    p.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[])
    args = p.parse_args(argv)
    if args.cuts and not args.tokenizer:
        p.error("--cuts needs --tokenizer (to count each cut's decoder tokens)")
    return args


def _corpus_name(path: str) -> str:
    return Path(path).name.removesuffix(".gz").removesuffix(".jsonl")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    overrides = list(args.overrides)
    settings = Settings(args.batches, args.rounds, args.max_batch, args.seed, args.work_dir)
    if args.quick:
        settings = dataclasses.replace(settings, batches=2, rounds=1, max_batch=32)
        args.synthetic_cuts = 300
        overrides += QUICK_MODEL
    cfg = load_experiment_config(args.config, overrides)
    corpora = [synthetic(args.synthetic_cuts, args.seed)]
    vocab = cfg.model.vocab_size
    if args.cuts:
        tokenizer = load_tokenizer(args.tokenizer)
        vocab = tokenizer.vocab_size
        name = args.name or _corpus_name(args.cuts)
        limit = cfg.data.sampler.max_cut_duration
        corpora.insert(0, from_cuts(args.cuts, tokenizer, limit, name))
    if vocab <= 0:
        raise SystemExit("no --tokenizer: give the model's vocabulary, --set model.vocab_size=N")
    if args.quick:
        corpora = [Corpus(c.name, c.durations[:300], c.tokens[:300]) for c in corpora]
    # The synthetic tail has longer texts than the tiny model's position table: widen it (a
    # few parameters) rather than drop or clip the cuts that make the tail.
    positions = max(cfg.model.max_target_positions, 5 + max(max(c.tokens) for c in corpora))
    model = dataclasses.replace(cfg.model, vocab_size=vocab, max_target_positions=positions)
    cfg = dataclasses.replace(cfg, model=model)
    lines = [
        f"## {TITLE}",
        "",
        f"Model of `{Path(args.config).name}`{' (--quick: shrunk)' if args.quick else ''}, "
        f"max_target_positions {positions}, CPU, {args.threads} thread(s); timing: median of "
        f"{settings.rounds} round(s) of {settings.batches} stratified batches per strategy "
        "(every definition: the docstring of `speechkit.bench.throughput`).",
        "",
    ]
    for corpus in corpora:
        rows, notes = run_corpus(corpus, cfg, settings)
        lines += table(corpus, rows, notes, cfg.data.sampler.max_duration)
    command = cited_command("throughput", argv, args.cite_path)
    lines += [*provenance_lines(command), *read_paths_line(args.cite_path), ""]
    print("\n".join(lines))
    if args.results_md:
        update_markdown(Path(args.results_md), TITLE, "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
