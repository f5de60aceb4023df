"""Tests for speechkit/bin/gold_split.py: the budget files of a pool and its weak manifests."""

import json
import sys
from pathlib import Path

from lhotse import CutSet

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
from weak_cuts import corpus  # noqa: E402

from speechkit.bin import gold_split  # noqa: E402
from speechkit.data.weak import attach_weak  # noqa: E402


def test_gold_cuts_come_from_the_pool_and_leave_every_weak_manifest(tmp_path):
    pool = corpus(4)
    CutSet.from_cuts(pool).to_file(tmp_path / "pool.jsonl.gz")
    weak, _ = attach_weak(pool[1:], {"s": {c.id: "some words" for c in pool}})  # one lost
    CutSet.from_cuts(weak).to_file(tmp_path / "real.jsonl.gz")
    argv = ["--pool", str(tmp_path / "pool.jsonl.gz"), "--percents", "10,50",
            "--out-dir", str(tmp_path / "splits"), "--weak", str(tmp_path / "real.jsonl.gz")]  # fmt: skip
    assert gold_split.main(argv) == 0
    gold = {}
    for p in ("10", "50"):
        d = tmp_path / "splits" / f"gold{p}"
        gold[p] = {c.id for c in CutSet.from_file(d / "gold.jsonl.gz")}
        rest = {c.id for c in CutSet.from_file(d / "rest.jsonl.gz")}
        weak_ids = {c.id for c in CutSet.from_file(d / "weak_real.jsonl.gz")}
        assert gold[p] | rest == {c.id for c in pool} and not gold[p] & rest
        assert weak_ids == {c.id for c in weak} - gold[p]
        info = json.loads((d / "split.json").read_text())
        assert info["files"]["gold"]["cuts"]["all"] == len(gold[p])
    assert gold["10"] < gold["50"]
    assert all(
        "weak_text" not in (c.supervisions[0].custom or {})
        for c in CutSet.from_file(tmp_path / "splits" / "gold50" / "gold.jsonl.gz")
    )
