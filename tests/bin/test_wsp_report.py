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


def test_break_even_interpolates_between_the_last_gain_and_the_first_loss():
    # gains +30 % at 20, +10 % at 30, -10 % at 50: zero halfway between 30 and 50.
    assert wsp_report.break_even([(50.0, -10.0), (20.0, 30.0), (30.0, 10.0)]).startswith("40 %")
    assert wsp_report.break_even([(10.0, 5.0), (25.0, 1.0)]).startswith("above 25.0 %")
    assert wsp_report.break_even([(10.0, -5.0), (25.0, -9.0)]).startswith("below 10.0 %")
    assert wsp_report.break_even([(10.0, -5.0), (25.0, 3.0)]).startswith("no single crossing")
    assert wsp_report.break_even([]) == ""


def _weak_condition(exp: Path, cond: str, rate: float, hyps: tuple[str, str, str]) -> None:
    """A wsp run on weak condition ``cond`` (English weak WER ``rate``) with these hypotheses
    for the cuts a, b (test 1) and c (test 2), whose reference is five words."""
    ref = "one two three four five"
    run = exp / f"exp/gold10/{cond}/wsp/s0"
    _decoded(run, "t1", "asr_eng", {"a": (ref, hyps[0]), "b": (ref, hyps[1])})
    _decoded(run, "t2", "asr_eng", {"c": (ref, hyps[2])})
    rates = {"weak_text": {"all": {"rate": rate}, "eng": {"rate": rate}}}
    (exp / "weak" / f"{cond}.json").write_text(json.dumps({"wer_kept": rates}))


def _report(exp: Path, conditions: str) -> str:
    md = exp / "RESULTS.md"
    argv = ["--exp", str(exp / "exp"), "--splits", str(exp / "splits"), "--budgets", "10",
            "--conditions", conditions, "--arms", "gold,wsp", "--test-cuts",
            str(exp / "t1.jsonl.gz"), str(exp / "t2.jsonl.gz"), "--weak-dir", str(exp / "weak"),
            "--results-md", str(md)]  # fmt: skip
    assert wsp_report.main(argv) == 0
    return md.read_text()


def test_section_says_where_pretraining_stops_paying(exp):
    # 9 errors / 15 words: 60 %, where gold-only has 40 %.
    _weak_condition(exp, "syn45", 45.0, ("one", "one two three", "one two"))
    lines = _report(exp, "syn45,real").splitlines()
    head = lines.index("### Where pretraining stops paying (English test WER against gold-only)")
    assert lines[head + 2].startswith("| gold % | arm | real (31.5) | syn45 (45.0) |")  # by rate
    row = next(ln for ln in lines[head:] if ln.startswith("| 10 | wsp |"))
    # +83 % at 31.5, -50 % at 45: zero at 31.5 + 13.5 * 83.3 / 133.3 = 39.9.
    assert "| 6.7 (+83 %) | 60.0 (-50 %) | 40 % (between 31.5 and 45.0) |" in row
    assert not any(ln.startswith("| 10 | gold |") for ln in lines[head : head + 6])


def test_the_crossing_is_read_from_the_synthetic_series_when_there_is_one(exp):
    full = "one two three four five"
    _weak_condition(exp, "syn20", 20.0, (full, "one two three four", "one two three four"))
    _weak_condition(exp, "syn45", 45.0, ("one", "one two three", "one two"))
    text = _report(exp, "real,syn20,syn45")
    assert "The crossing is interpolated on syn20, syn45 only." in text
    row = next(ln for ln in text.split("stops paying")[1].splitlines() if ln.startswith("| 10 |"))
    # syn20 +67 % (2 / 15 errors), real +83 % (shown, not used), syn45 -50 %: zero at
    # 20 + 25 * 66.7 / 116.7 = 34.3; with the real point it would have been 40.
    assert "| 13.3 (+67 %) | 6.7 (+83 %) | 60.0 (-50 %) |" in row
    assert row.endswith("| 34 % (between 20.0 and 45.0) |")


def _png_width(path: Path) -> int:
    return int.from_bytes(path.read_bytes()[16:20], "big")  # the IHDR chunk's width


def test_weak_wer_plot_has_a_panel_per_budget(exp):
    ref = "one two three four five"
    for budget in ("5", "10"):
        gold = exp / f"exp/gold{budget}/gold/s0"
        if not gold.is_dir():
            _decoded(gold, "t1", "asr_eng", {"a": (ref, "one"), "b": (ref, "one")})
            _decoded(gold, "t2", "asr_eng", {"c": (ref, "one")})

    def grid(budgets):
        return wsp_report.Grid(exp / "splits", exp / "exp", budgets, ["real"], ["gold", "wsp"])

    table = wsp_report.collect(grid(["5", "10"]), [exp / "t1.jsonl.gz", exp / "t2.jsonl.gz"], set())
    assert {key for key, row in table.items() if row} == {
        ("5", "real", "gold"),
        ("10", "real", "gold"),
        ("10", "real", "wsp"),
    }
    widths = []
    for budgets in (["10"], ["5", "10"]):
        out = exp / f"plots{len(budgets)}"
        wsp_report.plot(grid(budgets), table, exp / "weak", out)
        widths.append(_png_width(out / "wsp_wer_vs_weak_wer.png"))
    # A second budget adds a panel of its own (4.2 inches at 120 dpi), not a line in the first.
    assert widths[1] - widths[0] == pytest.approx(4.2 * 120, abs=2)
