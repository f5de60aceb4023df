"""Tests for speechkit/data/shar.py: export, the reader, per-rank streams under DDP, training."""

from __future__ import annotations

import copy
import csv
import os
import socket
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.multiprocessing as mp
from lhotse import CutSet, Recording, SupervisionSegment

sys.path.insert(0, str(Path(__file__).resolve().parent / "corpora"))
from corpus_fakes import SENTENCES, tone  # noqa: E402

from speechkit.bin import export_shar as export_cli  # noqa: E402
from speechkit.bin import train as train_cli  # noqa: E402
from speechkit.config import ConfigError  # noqa: E402
from speechkit.data import DataConfig, build_data_sampler  # noqa: E402
from speechkit.data.sampler import SamplerConfig  # noqa: E402
from speechkit.data.shar import INDEX, SharCuts, export_shar, total_duration  # noqa: E402
from speechkit.tasks.base import read_cuts  # noqa: E402
from speechkit.text.sentencepiece import SentencePieceTokenizer, TokenizerConfig  # noqa: E402

N_CUTS, SHARD = 24, 5


def _corpus(root: Path, n: int = N_CUTS) -> Path:
    """``n`` tone cuts (0.5-1.1 s) with English transcripts; the last one has two supervisions."""
    cuts = []
    for i in range(n):
        path = root / f"utt{i:03d}.flac"
        sf.write(path, tone(0.5 + 0.1 * (i % 7), i), 16000)
        cut = Recording.from_file(path, recording_id=f"utt{i:03d}").to_cut()
        text = SENTENCES[i % len(SENTENCES)].lower()
        sup = SupervisionSegment(f"utt{i:03d}", cut.recording_id, 0.0, cut.duration, text=text,
                                 language="eng", speaker=f"spk{i % 3}")  # fmt: skip
        cut.supervisions = [sup]
        cuts.append(cut)
    last = cuts[-1]
    half = last.duration / 2
    last.supervisions = [
        SupervisionSegment("two-a", last.recording_id, 0.0, half, text="first half", language="eng"),
        SupervisionSegment("two-b", last.recording_id, half, half, text="second half", language="eng"),
    ]  # fmt: skip
    path = root / "cuts_train.jsonl.gz"
    CutSet.from_cuts(cuts).to_file(path)
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("shar")
    manifest = _corpus(root)
    shards = export_shar(manifest, root / "shar", shard_size=SHARD)
    texts = [s.text for c in CutSet.from_file(manifest) for s in c.supervisions]
    tok = SentencePieceTokenizer.train(
        texts, root / "tok", TokenizerConfig(vocab_size=40), ["eng"], ["asr"]
    )
    return {"manifest": manifest, "shar": root / "shar", "shards": shards, "tok": tok, "root": root}


def test_export_writes_supervision_level_shards_and_an_index(corpus):
    shards = corpus["shards"]
    assert len(shards) == 5  # 25 supervision-level cuts in shards of 5
    assert [s.num_cuts for s in shards] == [5, 5, 5, 5, 5]
    cuts = list(read_cuts([corpus["shar"]]))
    assert [c.id for c in cuts[-2:]] == ["two-a", "two-b"]  # the two-supervision cut, split
    assert all(len(c.supervisions) == 1 for c in cuts)
    original = CutSet.from_file(corpus["manifest"]).to_eager()
    assert [c.id for c in cuts[:-2]] == [c.id for c in original][:-1]  # manifest order
    assert sum(s.duration for s in shards) == pytest.approx(sum(c.duration for c in cuts))


def test_shar_audio_equals_the_manifests(corpus):
    original = {c.id: c for c in CutSet.from_file(corpus["manifest"])}
    for cut in read_cuts([corpus["shar"]]):
        assert cut.recording.sources[0].type == "memory"  # read from the tar, not the FLAC file
        if cut.id in original:  # FLAC of 16-bit samples: the same samples
            np.testing.assert_allclose(cut.load_audio(), original[cut.id].load_audio(), atol=1e-6)


def test_a_finished_export_is_kept_and_a_changed_manifest_exported_again(corpus, tmp_path, caplog):
    manifest = _corpus(tmp_path, n=6)
    export_shar(manifest, tmp_path / "s", shard_size=4)
    stamp = (tmp_path / "s" / INDEX).stat().st_mtime_ns
    with caplog.at_level("INFO"):
        assert export_cli.main(["--cuts", str(manifest), "--out", str(tmp_path / "s"),
                                "--shard-size", "4"]) == 0  # fmt: skip
    assert "skip:" in caplog.text and (tmp_path / "s" / INDEX).stat().st_mtime_ns == stamp
    assert len(export_shar(manifest, tmp_path / "s", shard_size=2)) == 4  # 7 cuts, new size
    assert export_cli.main(["--cuts", str(tmp_path / "nope.jsonl.gz"), "--out", "x"]) == 1


def test_an_incomplete_export_is_refused(corpus, tmp_path):
    with pytest.raises(FileNotFoundError, match="not a complete Shar export"):
        read_cuts([tmp_path])
    with pytest.raises(FileNotFoundError, match="cannot mix"):
        read_cuts([corpus["shar"], corpus["manifest"]])


def test_total_duration_comes_from_the_index(corpus, monkeypatch):
    cuts = read_cuts([corpus["shar"]])
    expected = sum(c.duration for c in cuts)
    monkeypatch.setattr(SharCuts, "__iter__", lambda self: pytest.fail("read the audio"))
    assert total_duration(cuts) == pytest.approx(expected, abs=1e-2)


def test_shards_are_dealt_to_ranks_by_audio_and_reshuffled_each_epoch(corpus):
    source = SharCuts([corpus["shar"]])
    ranks = [source.for_ranks(r, 2, seed=3, shuffle_shards=True) for r in (0, 1)]
    for epoch in (0, 1):
        mine = [r.shards_of(epoch) for r in ranks]
        assert not {s.cuts for s in mine[0]} & {s.cuts for s in mine[1]}
        assert {s.cuts for m in mine for s in m} == {s.cuts for s in source.shards}
        loads = [sum(s.duration for s in m) for m in mine]
        assert abs(loads[0] - loads[1]) <= max(s.duration for s in source.shards)
    assert ranks[0].shards_of(0) != ranks[0].shards_of(1)  # a new order per epoch ...
    assert ranks[0].shards_of(1) == copy.copy(ranks[0]).shards_of(1)  # ... but a fixed one
    with pytest.raises(ConfigError, match="5 Shar shards cannot feed 8 ranks"):
        source.for_ranks(0, 8, seed=0, shuffle_shards=True)


def _batches(cuts, tok, **sampler):
    cfg = DataConfig(sampler=SamplerConfig(max_duration=3.0, max_cut_duration=3.0, num_buckets=2,
                                           **sampler))  # fmt: skip
    sampler = build_data_sampler(cuts, tok, cfg, train=True, seed=7)
    return sampler, [[c.id for c in b] for b in sampler]


def test_one_rank_samples_the_same_batches_as_from_the_manifest(corpus):
    _, from_manifest = _batches(read_cuts([corpus["manifest"]]), corpus["tok"])
    _, from_shar = _batches(read_cuts([corpus["shar"]]), corpus["tok"], shuffle_shards=False)
    assert from_shar == from_manifest
    _, reshuffled = _batches(read_cuts([corpus["shar"]]), corpus["tok"])
    assert sorted(sum(reshuffled, [])) == sorted(sum(from_manifest, []))


def _drain(sampler) -> list[list[str]]:
    """The rest of an epoch (``for`` would call ``iter()`` again, which restarts a sampler)."""
    rest = []
    while True:
        try:
            rest.append([c.id for c in next(sampler)])
        except StopIteration:
            return rest


def test_resume_continues_a_shar_stream_mid_epoch(corpus):
    sampler, full = _batches(read_cuts([corpus["shar"]]), corpus["tok"])
    sampler.set_epoch(1)
    it = iter(sampler)
    head = [[c.id for c in next(it)] for _ in range(3)]
    state = copy.deepcopy(sampler.state_dict())
    rest = _drain(it)
    restored, _ = _batches(read_cuts([corpus["shar"]]), corpus["tok"])
    restored.load_state_dict(state)
    assert [[c.id for c in b] for b in restored] == rest
    assert sorted(sum(head + rest, [])) == sorted(sum(full, []))


def _rank_worker(rank, port, shar_dir, tok_dir, results):
    os.environ.update(RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))  # fmt: skip
    torch.distributed.init_process_group("gloo", rank=rank, world_size=2)
    try:
        tok = SentencePieceTokenizer.load(tok_dir)
        cfg = DataConfig(sampler=SamplerConfig(max_duration=2.0, max_cut_duration=2.0,
                                               num_buckets=2))  # fmt: skip
        sampler = build_data_sampler(read_cuts([shar_dir]), tok, cfg, True, 0, 2, rank)
        sampler.set_epoch(0)
        batches = [list(b) for b in sampler]
        results[f"ids{rank}"] = [c.id for b in batches for c in b]
        results[f"origins{rank}"] = sorted({str(c.shard_origin) for b in batches for c in b})
        results[f"own{rank}"] = sorted(s.cuts for s in sampler_source(sampler).shards_of(0))
        results[f"n{rank}"] = len(batches)
        # Resume after two batches: the same remaining batches on each rank.
        sampler.set_epoch(1)
        it = iter(sampler)
        next(it), next(it)
        state = copy.deepcopy(sampler.state_dict())
        rest = _drain(it)
        again = build_data_sampler(read_cuts([shar_dir]), tok, cfg, True, 0, 2, rank)
        again.load_state_dict(state)
        results[f"resumed{rank}"] = [[c.id for c in b] for b in again] == rest and bool(rest)
    finally:
        torch.distributed.destroy_process_group()


def sampler_source(sampler) -> SharCuts:
    """The bound SharCuts a training sampler reads (through lhotse's long-cut filter)."""
    data = sampler.cuts[0].data
    return data.iterator.data if not isinstance(data, SharCuts) else data


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch without distributed")
def test_ddp_ranks_read_their_own_shards_in_step(corpus):
    results = mp.Manager().dict()
    args = (_free_port(), corpus["shar"], corpus["root"] / "tok", results)
    mp.spawn(_rank_worker, args=args, nprocs=2, join=True)
    assert results["n0"] == results["n1"] > 0  # in step: no rank left waiting
    assert not set(results["ids0"]) & set(results["ids1"])
    for rank in (0, 1):
        assert results[f"origins{rank}"] == results[f"own{rank}"]  # only its own shards read
        assert results[f"resumed{rank}"]
    used = len(results["ids0"]) + len(results["ids1"])
    assert used >= N_CUTS + 1 - SHARD  # at most (less than) a shard's cuts skipped


TINY_YAML = """
task: s2t
model: {n_mels: 20, d_model: 32, n_heads: 2, encoder_type: transformer, encoder_layers: 1,
        encoder_ffn: 64, decoder_layers: 1, decoder_ffn: 64, dropout: 0.0,
        attention_dropout: 0.0, max_target_positions: 64}
tokenizer: {vocab_size: 40}
data:
  features: {n_mels: 20}
  sampler: {max_duration: 3.0, num_buckets: 2, max_cut_duration: 3.0, shuffle_shards: false}
  asr_languages: [eng]
  st_directions: []
  max_target_tokens: 40
optim: {lr: 0.002, warmup_steps: 2}
trainer: {max_epochs: 2, log_every_steps: 1, device: cpu, num_threads: 1, average_best: 1}
"""


def _loss_curve(out: Path) -> list[float]:
    with open(out / "train_log.csv") as f:
        return [float(row["loss"]) for row in csv.DictReader(f)]


def test_training_from_shar_follows_the_manifests_loss_curve(corpus, tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY_YAML)
    curves = {}
    for name, data in (("manifest", corpus["manifest"]), ("shar", corpus["shar"])):
        argv = ["--config", str(config), "--train-cuts", str(data), "--tokenizer",
                str(corpus["root"] / "tok"), "--out", str(tmp_path / name)]  # fmt: skip
        assert train_cli.main(argv) == 0
        curves[name] = _loss_curve(tmp_path / name)
    assert len(curves["manifest"]) >= 8  # two epochs of a few batches each
    # FLAC holds the 16-bit samples exactly: the same batches give the same losses.
    assert curves["shar"] == curves["manifest"]


def _train_worker(rank, port, argv, results):
    os.environ.update(RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))  # fmt: skip
    results[rank] = train_cli.main(argv)


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch without distributed")
def test_two_rank_training_from_shar_ends_every_epoch_together(corpus, tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY_YAML.replace("shuffle_shards: false", "shuffle_shards: true"))
    out = tmp_path / "ddp"
    argv = ["--config", str(config), "--train-cuts", str(corpus["shar"]), "--tokenizer",
            str(corpus["root"] / "tok"), "--out", str(out)]  # fmt: skip
    results = mp.Manager().dict()
    ctx = mp.spawn(_train_worker, args=(_free_port(), argv, results), nprocs=2, join=False)
    deadline = time.monotonic() + 240
    while not ctx.join(timeout=5):  # a rank left waiting in a collective would hang here
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.kill()
            pytest.fail("two-rank training from Shar did not finish (ranks out of step?)")
    assert dict(results) == {0: 0, 1: 0}
    with open(out / "train_log.csv") as f:
        epochs = [int(row["epoch"]) for row in csv.DictReader(f)]
    assert sorted(set(epochs)) == [1, 2] and (out / "train_done.json").is_file()
