"""Atomic saving, discovery, retention and averaging of checkpoints."""

from __future__ import annotations

import pytest
import torch

from speechkit.train import checkpoint as ck


def fake_ckpt(step: int, valid_loss: float | None, weight: float) -> dict:
    return {
        "model": {
            "w": torch.full((2, 3), weight),
            "b": torch.tensor([weight], dtype=torch.float16),
            "count": torch.tensor(step, dtype=torch.int64),
        },
        "step": step,
        "epoch": 1,
        "valid_loss": valid_loss,
        "config": {"a": 1},
        "tokenizer": None,
        "optimizers": {"model": {"state": {}, "param_groups": []}},
        "rng": {"python": None},
    }


def save(tmp_path, step, valid_loss=None, weight=0.0):
    path = ck.save_checkpoint(
        fake_ckpt(step, valid_loss, weight), ck.checkpoint_path(tmp_path, step)
    )
    ck.record_score(tmp_path, path.name, valid_loss)
    return path


def test_interrupted_save_leaves_no_partial_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    path = save(tmp_path, 5, weight=1.0)

    def broken_save(obj, f):
        f.write(b"half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(ck.torch, "save", broken_save)
    with pytest.raises(KeyboardInterrupt):
        ck.save_checkpoint(fake_ckpt(5, None, 2.0), path)
    with pytest.raises(KeyboardInterrupt):
        ck.save_checkpoint(fake_ckpt(6, None, 2.0), ck.checkpoint_path(tmp_path, 6))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.json", "step-5.pt"]
    assert float(ck.load_checkpoint(path)["model"]["w"][0, 0]) == 1.0


def test_listing_ignores_tmp_files_and_sorts_by_step(tmp_path):
    for step in (10, 2, 100):
        save(tmp_path, step)
    (tmp_path / "step-200.pt.tmp").write_bytes(b"partial")
    assert [p.name for p in ck.list_checkpoints(tmp_path)] == [
        "step-2.pt",
        "step-10.pt",
        "step-100.pt",
    ]
    assert ck.latest_checkpoint(tmp_path).name == "step-100.pt"
    assert ck.latest_checkpoint(tmp_path / "missing") is None


def test_prune_keeps_newest_and_best(tmp_path):
    losses = {1: 5.0, 2: 1.0, 3: 4.0, 4: 2.0, 5: 3.0, 6: None}
    for step, loss in losses.items():
        save(tmp_path, step, loss)
    deleted = ck.prune_checkpoints(tmp_path, keep_last=2, keep_best=2)
    assert sorted(p.name for p in deleted) == ["step-1.pt", "step-3.pt"]
    assert [p.name for p in ck.best_checkpoints(tmp_path, 2)] == [
        "step-2.pt",
        "step-4.pt",
    ]
    (tmp_path / "index.json").unlink()  # rebuilt from the files themselves
    assert ck.read_index(tmp_path) == {
        "step-2.pt": 1.0,
        "step-4.pt": 2.0,
        "step-5.pt": 3.0,
        "step-6.pt": None,
    }


def test_average_is_the_float_mean_and_integer_buffers_come_from_the_last(tmp_path):
    paths = [save(tmp_path, s, weight=w) for s, w in ((1, 1.0), (2, 2.0), (3, 6.0))]
    avg = ck.average_checkpoints(paths)
    assert torch.equal(avg["w"], torch.full((2, 3), 3.0))
    assert avg["b"].dtype == torch.float16 and float(avg["b"]) == 3.0
    assert int(avg["count"]) == 3 and avg["count"].dtype == torch.int64

    out = ck.save_averaged(paths, tmp_path / "avg.pt")
    state = ck.load_checkpoint(out)
    assert state["averaged_from"] == ["step-1.pt", "step-2.pt", "step-3.pt"]
    assert (
        state["step"] == 3
        and "optimizers" not in state
        and "rng" not in state
        and state["config"] == {"a": 1}
    )


def test_average_rejects_mismatched_checkpoints(tmp_path):
    a = save(tmp_path, 1)
    other = fake_ckpt(2, None, 0.0)
    other["model"]["w"] = torch.zeros(3, 3)
    b = ck.save_checkpoint(other, tmp_path / "step-2.pt")
    with pytest.raises(ValueError, match="step-2.pt.*'w' has shape"):
        ck.average_checkpoints([a, b])


def test_config_differences_names_dotted_keys_and_respects_allowed():
    old = {"optim": {"lr": 1e-3, "betas": (0.9, 0.98)}, "trainer": {"max_epochs": 3}}
    new = {
        "optim": {"lr": 1e-4, "betas": [0.9, 0.98]},
        "trainer": {"max_epochs": 9},
        "x": 1,
    }
    assert ck.config_differences(old, new) == ["optim.lr", "trainer.max_epochs", "x"]
    assert ck.config_differences(old, new, {"trainer.max_epochs", "x"}) == ["optim.lr"]


def test_a_key_absent_from_one_side_differs_until_filled_with_its_default():
    # config_differences itself knows no defaults: the trainer fills the stored config first
    # (Task.fill_stored_config); see tests/train/test_prune_train.py for a real resume
    old = {"model": {"d_model": 8}}
    for value in ([], None, 1):
        new = {"model": {"d_model": 8, "pruned_modules": value}}
        assert ck.config_differences(old, new) == ["model.pruned_modules"]
        assert ck.config_differences(new, old) == ["model.pruned_modules"]
    filled = {"model": {"d_model": 8, "pruned_modules": []}}
    assert ck.config_differences(filled, {"model": {"d_model": 8, "pruned_modules": ()}}) == []


def test_load_reports_missing_and_corrupt_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        ck.load_checkpoint(tmp_path / "nope.pt")
    (tmp_path / "bad.pt").write_bytes(b"garbage")
    with pytest.raises(RuntimeError, match="bad.pt"):
        ck.load_checkpoint(tmp_path / "bad.pt")
