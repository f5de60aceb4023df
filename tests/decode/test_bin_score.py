"""speechkit.bin.score on a hand-made decode directory."""

from __future__ import annotations

import json

import pytest

from speechkit.bin import score


def _write(d, refs, hyps):
    d.mkdir(parents=True)
    (d / "ref.txt").write_text("".join(f"{k} {v}\n" for k, v in refs.items()))
    (d / "hyp.txt").write_text("".join(f"{k} {v}\n" for k, v in hyps.items()))


@pytest.fixture
def decode_dir(tmp_path):
    root = tmp_path / "dec"
    _write(
        root / "asr_eng",
        {"u1": "The cat sat down.", "u2": "Hello world"},
        {"u1": "the dog sat down", "u2": "hello, world!"},
    )
    _write(
        root / "st_eng-deu",
        {"u1": "Die Katze sitzt.", "u2": "Hallo Welt"},
        {"u1": "Die Katze sitzt.", "u2": "Hallo Welt"},
    )
    return root


def test_scores_each_subdir(decode_dir, capsys):
    assert score.main(["--decode-dir", str(decode_dir)]) == 0
    summary = json.loads((decode_dir / "scores.json").read_text())
    by_name = {s["name"]: s for s in summary}
    asr = json.loads((decode_dir / "asr_eng" / "score.json").read_text())
    assert asr == by_name["asr_eng"]
    # One substitution in 6 normalised reference words.
    assert asr["wer"]["errors"] == 1 and asr["wer"]["ref_units"] == 6
    assert asr["wer"]["rate"] == pytest.approx(100 / 6)
    st = by_name["st_eng-deu"]
    assert st["bleu"]["cased"] == pytest.approx(100.0)
    assert st["chrf"]["cased"] == pytest.approx(100.0)
    out = capsys.readouterr().out
    assert "asr_eng" in out and "st_eng-deu" in out


def test_missing_hypothesis_scores_as_deletions(tmp_path):
    root = tmp_path / "dec"
    _write(root / "asr_deu", {"a": "eins zwei", "b": "drei"}, {"a": "eins zwei"})
    assert score.main(["--decode-dir", str(root)]) == 0
    s = json.loads((root / "asr_deu" / "score.json").read_text())
    assert s["missing_hyps"] == 1 and s["wer"]["deletions"] == 1


def test_results_md_section_replaced_in_place(decode_dir, tmp_path):
    md = tmp_path / "RESULTS.md"
    md.write_text("# Results\n\nintro\n\n## run A\n\nold numbers\n\n## other\n\nkeep me\n")
    args = [
        "--decode-dir",
        str(decode_dir),
        "--results-md",
        str(md),
        "--title",
        "run A",
    ]
    assert score.main([*args, "--command", "my decode cmd"]) == 0
    text = md.read_text()
    assert "old numbers" not in text
    assert text.count("## run A") == 1
    assert "keep me" in text and "intro" in text
    assert text.index("## run A") < text.index("## other")
    assert "`my decode cmd`" in text and "machine:" in text and "| asr_eng |" in text
    # A new title is appended; the reconstructed argv is cited when --command is absent.
    assert score.main(["--decode-dir", str(decode_dir), "--results-md", str(md)]) == 0
    text = md.read_text()
    assert text.count("## ") == 3 and f"## {decode_dir}" in text
    assert "speechkit.bin.score --decode-dir" in text


def test_empty_dir_is_an_error(tmp_path):
    assert score.main(["--decode-dir", str(tmp_path)]) == 2


def test_results_md_cites_the_decoding_run(decode_dir, tmp_path):
    stats = {"model": "exp/m/model_avg.pt", "device": "cpu", "rtfx": 42.0,
             "audio_seconds": 10.0, "options": {"beam_size": 5, "ctc_weight": 0.3}}  # fmt: skip
    (decode_dir / "decode_stats.json").write_text(json.dumps(stats))
    md = tmp_path / "RESULTS.md"
    assert score.main(["--decode-dir", str(decode_dir), "--results-md", str(md)]) == 0
    line = next(ln for ln in md.read_text().splitlines() if ln.startswith("- decoded"))
    assert "exp/m/model_avg.pt" in line and "beam 5" in line and "RTFx 42.0" in line
