"""speechkit.bench.padding: one epoch of the training sampler, bucketing on and off."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import pytest
from lhotse import CutSet, SupervisionSegment
from lhotse.testing.dummies import dummy_cut

from speechkit.bench import padding
from speechkit.train.config import load_experiment_config

CONFIG = Path(__file__).resolve().parents[2] / "conf" / "s2t" / "phrasebook_tiny.yaml"


def _manifest(path: Path, n: int = 300) -> Path:
    """Cuts of 1-12 s (no audio: the sampler only reads durations), English with a German
    translation, so that ``multitask: expand`` makes two cuts of each."""
    rng = random.Random(0)
    cuts = []
    for i in range(n):
        d = round(rng.uniform(1.0, 12.0), 2)
        cut = dummy_cut(i, duration=d)
        sup = SupervisionSegment(f"s{i}", cut.recording_id, 0, d, text="a b", language="eng")
        sup.custom = {"translations": {"deu": "c d"}}
        cut.supervisions = [sup]
        cuts.append(cut)
    CutSet.from_cuts(cuts).to_file(path)
    return path


def test_bucketing_pads_less_and_every_cut_is_batched_once(tmp_path):
    cfg = load_experiment_config(CONFIG)
    cuts = padding.training_cuts([str(_manifest(tmp_path / "c.jsonl.gz"))], cfg.data)
    stats = {}
    for name, bucketing in padding.SAMPLERS:
        s = dataclasses.replace(cfg.data.sampler, bucketing=bucketing)
        stats[name] = padding.epoch_stats(cuts, s, seed=0)
        assert stats[name]["batches"] * stats[name]["mean_batch"] == pytest.approx(len(cuts))
    assert stats["lhotse bucketing"]["padding"] < 0.5 * stats["no bucketing (shuffled)"]["padding"]


def test_expand_counts_a_cut_per_task(tmp_path):
    cfg = load_experiment_config(CONFIG)
    manifest = str(_manifest(tmp_path / "c.jsonl.gz", n=10))
    assert len(padding.training_cuts([manifest], cfg.data)) == 10
    data = dataclasses.replace(cfg.data, multitask="expand", st_directions=["eng-deu"])
    assert len(padding.training_cuts([manifest], data)) == 20  # asr + st_deu
    with pytest.raises(SystemExit, match="not found"):
        padding.training_cuts([str(tmp_path / "missing.jsonl.gz")], cfg.data)


def test_cli_prints_both_samplers_and_writes_its_section(tmp_path, capsys):
    manifest = _manifest(tmp_path / "c.jsonl.gz")
    results = tmp_path / "RESULTS.md"
    results.write_text("# Results\n\n## Other section\n\nkept\n")
    argv = ["--config", str(CONFIG), "--cuts", str(manifest), "--results-md", str(results)]
    assert padding.main(argv) == 0
    out = capsys.readouterr().out
    assert "no bucketing (shuffled)" in out and "lhotse bucketing" in out
    text = results.read_text()
    assert "kept" in text and f"## {padding.TITLE}" in text
    rows = [ln for ln in text.splitlines() if ln.startswith("| no bucketing") or "| lhotse" in ln]
    assert len(rows) == 2
    assert f"- command: `python -m speechkit.bench.padding --config {CONFIG}" in text
