"""Tests for speechkit/bin/weak_filter.py (agreement; the CTC filter runs in tests/egs)."""

import json
import sys
from pathlib import Path

from lhotse import CutSet

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
from weak_cuts import corpus  # noqa: E402

from speechkit.bin import weak_filter  # noqa: E402
from speechkit.data.weak import attach_weak  # noqa: E402


def test_agreement_keeps_the_pairs_two_recognisers_agree_on(tmp_path):
    cuts = corpus(2)
    good = {c.id: c.supervisions[0].text for c in cuts}
    other = dict(good)
    bad = [c.id for c in cuts][::3]
    for cut_id in bad:  # both recognisers wrong, differently
        good[cut_id] = "wrong words here"
        other[cut_id] = "other words there"
    weak, _ = attach_weak(cuts, {"a": good, "b": other})
    path = tmp_path / "weak_real.jsonl.gz"
    CutSet.from_cuts(weak).to_file(path)
    argv = ["--cuts", str(path), "--method", "agreement", "--sources", "a,b", "--keep", "0.6"]
    assert weak_filter.main(argv) == 0
    kept = {c.id for c in CutSet.from_file(tmp_path / "weak_real_agreement.jsonl.gz")}
    assert kept and kept.isdisjoint(bad)
    report = json.loads((tmp_path / "weak_real_agreement.json").read_text())
    assert report["num_kept"] == len(kept) and report["fraction_kept"]["all"] < 0.7
    assert report["wer_kept"]["all"]["rate"] == 0.0 < report["wer_dropped"]["all"]["rate"]
