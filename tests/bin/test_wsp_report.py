"""Tests for speechkit/bin/wsp_report.py: pooled scores per arm, tables, plots."""

import json
import sys
from pathlib import Path

import pytest
from lhotse import CutSet

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
from weak_cuts import text_cut  # noqa: E402

from speechkit.bin import wsp_report  # noqa: E402


def _decoded(run: Path, test: str, output: str, pairs: dict[str, tuple[str, str]]) -> None:
    d = run / f"decode_{test}" / output
    d.mkdir(parents=True)
    (d / "ref.txt").write_text("".join(f"{k} {r}\n" for k, (r, _) in pairs.items()))
    (d / "hyp.txt").write_text("".join(f"{k} {h}\n" for k, (_, h) in pairs.items()))


@pytest.fixture
def exp(tmp_path):
    cuts = [text_cut("a", "eng", "x"), text_cut("b", "eng", "x"), text_cut("c", "eng", "x")]
    cuts[0].custom = {"event": "babble"}
    cuts[1].custom = {"event": "clean"}
    CutSet.from_cuts(cuts[:2]).to_file(tmp_path / "t1.jsonl.gz")
    CutSet.from_cuts(cuts[2:]).to_file(tmp_path / "t2.jsonl.gz")
    ref = "one two three four five"
    gold = tmp_path / "exp/gold10/gold/s0"
    wsp = tmp_path / "exp/gold10/real/wsp/s0"
    # gold: 3 errors on the babble cut, 1 on the clean one, 2 on test 2: 6 / 15 words.
    _decoded(gold, "t1", "asr_eng", {"a": (ref, "one two"), "b": (ref, "one two three four")})
    _decoded(gold, "t2", "asr_eng", {"c": (ref, "one two three")})
    # wsp: 1 error in all.
    _decoded(wsp, "t1", "asr_eng", {"a": (ref, ref), "b": (ref, "one two three four")})
    _decoded(wsp, "t2", "asr_eng", {"c": (ref, ref)})
    _decoded(
        wsp, "t1", "st_eng-deu", {"a": ("eins zwei drei vier fünf", "eins zwei drei vier fünf")}
    )
    (tmp_path / "weak").mkdir()
    rates = {"weak_text": {"all": {"rate": 40.5}, "eng": {"rate": 31.5}}}
    (tmp_path / "weak" / "real.json").write_text(json.dumps({"wer_kept": rates}))
    return tmp_path


def test_table_pools_test_sets_and_reports_the_gain_over_gold(exp):
    md = exp / "RESULTS.md"
    argv = ["--exp", str(exp / "exp"), "--splits", str(exp / "splits"), "--budgets", "10",
            "--arms", "gold,wsp", "--test-cuts", str(exp / "t1.jsonl.gz"), str(exp / "t2.jsonl.gz"),
            "--weak-dir", str(exp / "weak"), "--results-md", str(md), "--command", "./run.sh"]  # fmt: skip
    assert wsp_report.main(argv) == 0
    text = md.read_text()
    assert "### Weak transcripts: real (weak WER: English 31.5 %, all 40.5 %)" in text
    gold_row = next(ln for ln in text.splitlines() if ln.startswith("| 10 | gold |"))
    wsp_row = next(ln for ln in text.splitlines() if ln.startswith("| 10 | wsp |"))
    assert gold_row.split(" | ")[2] == "40.0"  # 6 errors / 15 words, both test sets
    assert gold_row.split(" | ")[6] == "60.0"  # the babble cut alone: 3 / 5
    assert wsp_row.split(" | ")[2] == "6.7" and wsp_row.split(" | ")[6] == "0.0"
    assert wsp_row.split(" | ")[8] == "100.0"  # en->X BLEU (one direction decoded)
    assert "| +83 % |" in wsp_row  # (40 - 6.7) / 40
    for png in ("wsp_wer_vs_gold.png", "wsp_wer_vs_weak_wer.png"):
        assert (exp / png).read_bytes()[:4] == b"\x89PNG" and f"]({png})" in text
