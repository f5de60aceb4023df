"""Tests for speechkit/bin/corrupt_text.py: synthetic weak manifests and their reports."""

import json
import sys
from pathlib import Path

import pytest
from lhotse import CutSet

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
from weak_cuts import corpus  # noqa: E402

from speechkit.bin import corrupt_text  # noqa: E402


def test_writes_one_manifest_per_rate_with_the_achieved_wer(tmp_path):
    CutSet.from_cuts(corpus(20)).to_file(tmp_path / "pool.jsonl.gz")
    argv = ["--cuts", str(tmp_path / "pool.jsonl.gz"), "--wer", "10,40",
            "--proportions", "0.5,0.25,0.25", "--out-dir", str(tmp_path)]  # fmt: skip
    assert corrupt_text.main(argv) == 0
    achieved = {}
    for w in (10, 40):
        report = json.loads((tmp_path / f"syn{w}.json").read_text())
        assert report["source"] == f"synthetic-wer{w}" and report["target_wer"] == w
        assert report["shares"] == pytest.approx({"sub": 0.5, "del": 0.25, "ins": 0.25})
        achieved[w] = report["wer"]["weak_text"]["all"]["rate"]
        cut = next(iter(CutSet.from_file(tmp_path / f"syn{w}.jsonl.gz")))
        assert cut.supervisions[0].custom["weak_source"] == f"synthetic-wer{w}"
    assert 5 < achieved[10] < 15 and 30 < achieved[40] < 48


def test_proportions_come_from_a_weak_transcripts_report(tmp_path):
    CutSet.from_cuts(corpus(2)).to_file(tmp_path / "pool.jsonl.gz")
    wer = {"substitutions": 8, "deletions": 0, "insertions": 2}
    (tmp_path / "real.json").write_text(json.dumps({"wer": {"weak_text": {"all": wer}}}))
    argv = ["--cuts", str(tmp_path / "pool.jsonl.gz"), "--wer", "25", "--out-dir", str(tmp_path),
            "--proportions-from", str(tmp_path / "real.json")]  # fmt: skip
    assert corrupt_text.main(argv) == 0
    shares = json.loads((tmp_path / "syn25.json").read_text())["shares"]
    assert shares == pytest.approx({"sub": 0.8, "del": 0.0, "ins": 0.2})
