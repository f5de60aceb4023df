"""speechkit.bench.scores_by_speaker on a hand-made decode directory."""

from __future__ import annotations

import json

import pytest
from lhotse import CutSet, MonoCut, SupervisionSegment

from speechkit.bench import scores_by_speaker


def test_scores_are_split_by_speaker(tmp_path, capsys):
    cuts = [
        MonoCut(
            f"c{i}",
            0.0,
            1.0,
            0,
            supervisions=[
                SupervisionSegment(f"c{i}", f"r{i}", 0.0, 1.0, language="eng", speaker=spk)
            ],
        )  # fmt: skip
        for i, spk in enumerate(["a", "a", "b"])
    ]
    CutSet.from_cuts(cuts).to_file(tmp_path / "cuts.jsonl.gz")
    rows = {
        "asr_eng": [("c0", "one two", "one two"), ("c1", "three four", "three four"),
                    ("c2", "five six", "five seven")],
        "st_eng-deu": [("c0", "eins zwei drei vier", "eins zwei drei vier")],
        "asr_deu": [("c0", "x", "y")],  # another source language: not reported
    }  # fmt: skip
    for name, recs in rows.items():
        d = tmp_path / "dec" / name
        d.mkdir(parents=True)
        lines = [json.dumps({"id": i, "ref": r, "hyp": h, "score": 0.0}) for i, r, h in recs]
        (d / "hyps.jsonl").write_text("\n".join(lines) + "\n")
    argv = ["--cuts", str(tmp_path / "cuts.jsonl.gz"), "--decode-dir", str(tmp_path / "dec")]
    assert scores_by_speaker.main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "asr_eng: a WER 0.0 (2); b WER 50.0 (1)",
        "st_eng-deu: a BLEU 100.0 (1)",
    ]
    # a hypothesis of a cut the manifest does not have: an error naming it, not a KeyError
    with (tmp_path / "dec" / "asr_eng" / "hyps.jsonl").open("a") as f:
        f.write(json.dumps({"id": "stray", "ref": "a", "hyp": "a", "score": 0.0}) + "\n")
    with pytest.raises(SystemExit, match="'stray' is not in --cuts"):
        scores_by_speaker.main(argv)
