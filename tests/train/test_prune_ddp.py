"""The prune task under DDP and FSDP on 2 CPU processes (gloo): utterance-dependent gates, with
each rank's utterances choosing different modules, train without hanging or erroring."""

from __future__ import annotations

import csv
import os

import pytest
import torch
import torch.multiprocessing as mp
from ddp_fakes import FixedSampler, free_port

from speechkit.data import DataConfig, FeatureConfig
from speechkit.models.gated_s2t import GatedS2TConfig, GatedS2TModel
from speechkit.tasks.base import Task
from speechkit.tasks.prune import PruneConfig, PruneOptions, PruneTask
from speechkit.train import distributed as dist_utils
from speechkit.train.config import OptimConfig, TrainerConfig
from speechkit.train.trainer import TrainData, Trainer

VOCAB, MELS, BATCH, STEPS = 24, 8, 4, 3


class FixedPruneTask(PruneTask):
    """The prune task's steps without --init, tokenizer or stored contexts."""

    def __init__(self, cfg: PruneConfig) -> None:
        Task.__init__(self, cfg)
        self.stores, self._unknown_logged = {}, 0

    def checkpoint_extras(self) -> dict:
        return {}


def _batches(rank: int) -> list[dict]:
    g = torch.Generator().manual_seed(rank)
    out = []
    for _ in range(STEPS):
        ys = torch.randint(7, VOCAB, (BATCH, 6), generator=g)
        lens = torch.randint(24, 41, (BATCH,), generator=g)
        out.append({
            "feats": torch.randn(BATCH, 40, MELS, generator=g), "feat_lens": lens,
            "ys_in": ys, "ys_out": torch.roll(ys, -1, dims=1), "ctc_targets": ys[:, :4],
            "ctc_target_lens": torch.full((BATCH,), 4),
            "cut_ids": [f"r{rank}c{i}" for i in range(BATCH)],
            "context": {"language": ["eng" if rank == 0 else "deu"] * BATCH},
        })  # fmt: skip
    return out


def _trainer(out, rank, strategy):
    torch.manual_seed(0)
    model_cfg = GatedS2TConfig(
        n_mels=MELS, vocab_size=VOCAB, d_model=16, n_heads=2, encoder_type="ebranchformer",
        encoder_layers=2, encoder_ffn=32, cgmlp_units=16, cgmlp_kernel=3, merge_conv_kernel=3,
        decoder_layers=2, decoder_ffn=32, dropout=0.0, attention_dropout=0.0,
        max_target_positions=16, gate_contexts=["language"], languages=["eng", "deu"],
        gate_hidden=8,
    )  # fmt: skip
    trainer_cfg = TrainerConfig(max_epochs=1, log_every_steps=1, device="cpu", num_threads=1,
                                strategy=strategy)  # fmt: skip
    cfg = PruneConfig(
        model=model_cfg, data=DataConfig(features=FeatureConfig(n_mels=MELS), max_target_tokens=8),
        optim=OptimConfig(lr=1e-2, warmup_steps=1, scheduler="constant"), trainer=trainer_cfg,
        prune=PruneOptions(alpha=5.0, budget_min=0.2, budget_max=0.4),
    )  # fmt: skip
    model = GatedS2TModel(model_cfg)
    with torch.no_grad():  # start half the gates near 50/50, so rows and ranks differ
        model.predictor.enc_mlp[2].bias.zero_()
        model.predictor.dec_mlp[2].bias.zero_()
    sampler = FixedSampler(_batches(rank))
    return Trainer(FixedPruneTask(cfg), model, TrainData(sampler, sampler), trainer_cfg, out)


def _worker(rank, world, port, out, strategy, results):
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist_utils.init_distributed("cpu", timeout_minutes=1.0)  # a hang fails within a minute
    try:
        trainer = _trainer(out, rank, strategy)
        results[f"step{rank}"] = trainer.fit()["step"]
    finally:
        dist_utils.destroy()


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch without distributed")
@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_two_ranks_with_different_gates_train(tmp_path, strategy):
    results = mp.Manager().dict()
    args = (2, free_port(), tmp_path, strategy, results)
    mp.spawn(_worker, args=args, nprocs=2, join=True)
    assert results["step0"] == results["step1"] == STEPS
    with open(tmp_path / "train_log.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == STEPS and all(0.0 < float(r["kept"]) < 1.0 for r in rows)
