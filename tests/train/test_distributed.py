"""Tests for speechkit/train/distributed.py and the trainer under DDP and FSDP (2 CPU processes,
gloo).

The claim under test: DDP on 2 ranks, each taking half of every batch, follows the same loss
trajectory as one process taking whole batches (no dropout, equal-length utterances, so the
mean of the halves' per-token losses is the whole batch's), with gradient accumulation
(``no_sync`` on the first micro-step), one checkpoint writer, and resumable checkpoints.
"""

from __future__ import annotations

import csv
import os

import pytest
import torch
import torch.multiprocessing as mp
from ddp_fakes import FixedSampler, free_port

from speechkit.config import ConfigError
from speechkit.data import DataConfig, FeatureConfig
from speechkit.models.s2t import S2TConfig, S2TModel
from speechkit.tasks.base import Task
from speechkit.tasks.s2t import S2TTask
from speechkit.train import distributed as dist_utils
from speechkit.train.checkpoint import list_checkpoints, load_checkpoint
from speechkit.train.config import ExperimentConfig, OptimConfig, TrainerConfig
from speechkit.train.trainer import TrainData, Trainer

VOCAB, MELS, BATCH, STEPS, ACCUM = 24, 8, 4, 3, 2


def _batches() -> list[dict]:
    """Fixed batches of BATCH utterances, all of one length (so halves weigh equally)."""
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(STEPS * ACCUM):
        ys = torch.randint(7, VOCAB, (BATCH, 6), generator=g)
        out.append(
            {
                "feats": torch.randn(BATCH, 40, MELS, generator=g),
                "feat_lens": torch.full((BATCH,), 40),
                "ys_in": ys,
                "ys_out": torch.roll(ys, -1, dims=1),
                "ctc_targets": ys[:, :4],
                "ctc_target_lens": torch.full((BATCH,), 4),
                "cut_ids": [f"c{i}" for i in range(BATCH)],
            }
        )
    return out


def _shard(batch: dict, rank: int, world: int) -> dict:
    n = BATCH // world
    return {k: v[rank * n : (rank + 1) * n] for k, v in batch.items()}


class FixedTask(S2TTask):
    """The s2t task's steps and optimiser for a given config, without tokenizer or corpus;
    ``run_config`` as given (compared on resume as it is)."""

    def __init__(self, cfg: ExperimentConfig, run_config: dict) -> None:
        Task.__init__(self, cfg)
        self._run_config = run_config

    def run_config(self) -> dict:
        return self._run_config

    def fill_stored_config(self, stored: dict) -> dict:
        return stored  # (compared as given, too: no defaults of a config it does not write)

    def checkpoint_extras(self) -> dict:
        return {}


def _trainer(out, rank, world, run_config=None, strategy="ddp"):
    torch.manual_seed(0)
    cfg = S2TConfig(
        n_mels=MELS, vocab_size=VOCAB, d_model=16, n_heads=2, encoder_type="transformer",
        encoder_layers=1, encoder_ffn=32, decoder_layers=1, decoder_ffn=32, dropout=0.0,
        attention_dropout=0.0, label_smoothing=0.0, max_target_positions=16,
    )  # fmt: skip
    sampler = FixedSampler([_shard(b, rank, world) for b in _batches()])
    trainer_cfg = TrainerConfig(
        max_epochs=1, log_every_steps=1, device="cpu", num_threads=1, strategy=strategy,
        accum_grad=ACCUM,
    )  # fmt: skip
    exp = ExperimentConfig(
        model=cfg,
        data=DataConfig(features=FeatureConfig(n_mels=MELS), max_target_tokens=8),
        optim=OptimConfig(lr=1e-2, warmup_steps=1, scheduler="constant"),
        trainer=trainer_cfg,
    )
    task = FixedTask(exp, run_config or {"trainer": {"seed": 1}})
    return Trainer(task, S2TModel(cfg), TrainData(sampler, sampler), trainer_cfg, out)


def _losses(out) -> list[float]:
    with open(out / "train_log.csv") as f:
        return [float(r["loss"]) for r in csv.DictReader(f)]


def _worker(rank, world, port, out, results, strategy="ddp"):
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist_utils.init_distributed("cpu")
    try:
        trainer = _trainer(out, rank, world, strategy=strategy)
        results[f"wrapped{rank}"] = type(trainer.model).__name__
        trainer.fit()
        if strategy == "fsdp":  # each rank holds a shard of the parameters, not all of them
            results[f"local{rank}"] = sum(p.to_local().numel() for p in trainer.model.parameters())
            # the full checkpoint loads back into the shards (model and optimiser state)
            resumed = _trainer(out, rank, world, strategy=strategy)
            results[f"resumed{rank}"] = resumed.fit(resume=True)["step"]
            shards = {n: p.to_local() for n, p in trainer.model.named_parameters()}
            results[f"same{rank}"] = all(
                torch.equal(p.to_local(), shards[n]) for n, p in resumed.model.named_parameters()
            )
            return
        # A resumed run whose config differs from its checkpoint fails on every rank.
        try:
            _trainer(out, rank, world, run_config={"trainer": {"seed": 2}}).fit(resume=True)
        except ConfigError as e:
            results[f"error{rank}"] = str(e)
    finally:
        dist_utils.destroy()


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch without distributed")
def test_two_ranks_match_one_process_and_resume_anywhere(tmp_path):
    single = _trainer(tmp_path / "single", 0, 1)
    single.fit()
    expected = _losses(tmp_path / "single")
    assert len(expected) == STEPS

    results = mp.Manager().dict()
    mp.spawn(_worker, args=(2, free_port(), tmp_path / "ddp", results), nprocs=2, join=True)
    assert results["wrapped0"] == results["wrapped1"] == "DistributedDataParallel"
    got = _losses(tmp_path / "ddp")
    assert got == pytest.approx(expected, abs=1e-5)
    assert expected[-1] < expected[0]  # and it trains
    # Rank 0 wrote the only logs and an unwrapped checkpoint (no "module." prefix) ...
    assert not list((tmp_path / "ddp").rglob("*.tmp"))
    ckpts = list_checkpoints(tmp_path / "ddp" / "checkpoints")
    state = load_checkpoint(ckpts[-1])
    assert state["step"] == STEPS and not any(k.startswith("module.") for k in state["model"])
    single_state = load_checkpoint(list_checkpoints(tmp_path / "single" / "checkpoints")[-1])
    for k, v in single_state["model"].items():
        torch.testing.assert_close(state["model"][k], v, atol=1e-5, rtol=1e-4)
    # ... which one process resumes (here: finds the epoch done and stops).
    resumed = _trainer(tmp_path / "ddp", 0, 1)
    assert resumed.fit(resume=True)["step"] == STEPS
    for rank in (0, 1):
        assert (
            "cannot resume" in results[f"error{rank}"] and "trainer.seed" in results[f"error{rank}"]
        )


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch without distributed")
def test_fsdp_on_two_ranks_matches_one_process(tmp_path):
    """FSDP (parameters, gradients and optimiser state sharded over 2 CPU ranks, gloo) follows
    the single-process trajectory, and rank 0 writes a full, unsharded checkpoint that one
    process resumes."""
    single = _trainer(tmp_path / "single", 0, 1)
    single.fit()
    results = mp.Manager().dict()
    args = (2, free_port(), tmp_path / "fsdp", results, "fsdp")
    mp.spawn(_worker, args=args, nprocs=2, join=True)
    assert results["wrapped0"] == results["wrapped1"] == "FSDPS2TModel"  # sharded in place
    full = sum(p.numel() for p in single.model.parameters())
    assert results["local0"] + results["local1"] >= full > results["local0"]
    assert results["resumed0"] == results["resumed1"] == STEPS
    assert results["same0"] and results["same1"]
    assert _losses(tmp_path / "fsdp") == pytest.approx(_losses(tmp_path / "single"), abs=1e-5)
    state = load_checkpoint(list_checkpoints(tmp_path / "fsdp" / "checkpoints")[-1])
    single_state = load_checkpoint(list_checkpoints(tmp_path / "single" / "checkpoints")[-1])
    assert state["model"].keys() == single_state["model"].keys()
    for k, v in single_state["model"].items():
        torch.testing.assert_close(state["model"][k], v, atol=1e-5, rtol=1e-4)
    assert _trainer(tmp_path / "fsdp", 0, 1).fit(resume=True)["step"] == STEPS


class DyingSampler(FixedSampler):
    """Rank 1's batches; the process dies (raises) when it draws batch ``die_at``."""

    def __init__(self, batches, die_at):
        super().__init__(batches)
        self.die_at = die_at

    def __iter__(self):
        for batch in super().__iter__():
            if self.pos == self.die_at:
                raise RuntimeError("rank 1 died")
            yield batch


def _dying_worker(rank, world, port, out):
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist_utils.init_distributed("cpu", timeout_minutes=1.0)  # a hang fails within a minute
    try:
        trainer = _trainer(out, rank, world)
        trainer.cfg.valid_every_steps = 1  # a checkpoint after every update
        if rank == 1:
            sampler = DyingSampler(trainer.data.sampler.batches, die_at=2 * ACCUM + 1)
            trainer.data = TrainData(sampler, sampler)
        trainer.fit()
    finally:
        dist_utils.destroy()


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch without distributed")
def test_a_rank_dying_mid_epoch_leaves_complete_checkpoints_to_resume(tmp_path):
    """Rank 1 dies during the third update: the group stops, the checkpoints of updates 1-2 are
    whole (no .tmp left), and resuming from them ends where an uninterrupted run ends."""
    single = _trainer(tmp_path / "single", 0, 1)
    single.fit()
    with pytest.raises(mp.ProcessRaisedException, match="rank 1 died"):
        mp.spawn(_dying_worker, args=(2, free_port(), tmp_path / "ddp"), nprocs=2, join=True)
    ckpts = list_checkpoints(tmp_path / "ddp" / "checkpoints")
    assert [c.name for c in ckpts] == ["step-1.pt", "step-2.pt"]
    assert not list((tmp_path / "ddp").rglob("*.tmp"))
    assert load_checkpoint(ckpts[-1])["step"] == 2
    resumed = _trainer(tmp_path / "ddp", 0, 1)
    assert resumed.fit(resume=True)["step"] == STEPS
    for k, v in single.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[k], v, atol=1e-5, rtol=1e-4)


def test_global_micro_batches_must_divide_by_world_size():
    assert dist_utils.accum_steps(3, 0, 4) == 3
    assert dist_utils.accum_steps(3, 8, 4) == 2
    with pytest.raises(
        ConfigError, match="global_micro_batches=6 is not divisible by the world size 4"
    ):
        dist_utils.accum_steps(1, 6, 4)


def test_single_process_helpers_are_no_ops():
    model = torch.nn.Linear(2, 1)
    assert dist_utils.wrap_model(model, "ddp", torch.device("cpu")) is model
    assert dist_utils.all_reduce_sums({"a": 1.5}) == {"a": 1.5}
    assert dist_utils.any_rank(True) and not dist_utils.any_rank(False)
    assert dist_utils.dist_info().is_main and dist_utils.dist_info().world_size == 1
