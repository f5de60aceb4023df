"""speechkit bench tts-augment: arms x seeds, test cuts split by whether their sentence was
synthesised into training, WER and BLEU per output, pooled rows, the RESULTS section."""

from __future__ import annotations

import json

import pytest
from lhotse import CutSet, Recording, SupervisionSegment, SupervisionSet

from speechkit.bench.tts_augment import main

SENT = {"c1": "s1", "c2": "s2", "c3": "s3"}  # cut -> sentence; s1 is the only one added


def _cuts(path):
    cuts = []
    for cut_id, sid in SENT.items():
        cut = Recording(cut_id, [], 16000, 16000, 1.0).to_cut()
        cut.custom = {"sentence_id": sid}
        cuts.append(cut)
    CutSet.from_cuts(cuts).to_file(path)


def _decode(root, hyps: dict[str, dict[str, str]]):
    """A decode directory: {output: {cut: hyp}}, references 'a b c d' for asr, 'x y z w' for st."""
    for out, by_cut in hyps.items():
        (root / out).mkdir(parents=True)
        ref = "a b c d" if out.startswith("asr_") else "x y z w"
        lines = [json.dumps({"id": c, "hyp": h, "ref": ref}) for c, h in by_cut.items()]
        (root / out / "hyps.jsonl").write_text("\n".join(lines) + "\n")
    return str(root)


def test_arms_seeds_and_subsets(tmp_path, capsys):
    _cuts(tmp_path / "test.jsonl.gz")
    added = [SupervisionSegment("t1", "t1", 0, 0, text="x", custom={"sentence_id": "s1"})]
    SupervisionSet.from_segments(added).to_file(tmp_path / "added.jsonl.gz")
    perfect = {c: "a b c d" for c in SENT}
    base = [
        _decode(tmp_path / "b1", {"asr_eng": {"c1": "a b", "c2": "a b c d", "c3": "a b c d"},
                                  "asr_deu": perfect,
                                  "st_eng-deu": {c: "x y z w" for c in SENT},
                                  "st_deu-eng": {c: "q q q q" for c in SENT}}),
        _decode(tmp_path / "b2", {"asr_eng": perfect, "asr_deu": perfect,
                                  "st_eng-deu": {c: "x y z w" for c in SENT},
                                  "st_deu-eng": {c: "x y z w" for c in SENT}}),
    ]  # fmt: skip
    aug = [_decode(tmp_path / "a1", {"asr_eng": {"c1": "a b c d", "c2": "a", "c3": "a b c d"},
                                     "asr_deu": perfect, "st_eng-deu": {c: "x y z w" for c in SENT},
                                     "st_deu-eng": {c: "x y z w" for c in SENT}})]  # fmt: skip
    md = tmp_path / "RESULTS.md"
    argv = ["--cuts", str(tmp_path / "test.jsonl.gz"), "--added", str(tmp_path / "added.jsonl.gz"),
            "--arm", "baseline", *base, "--arm", "augmented", *aug, "--results-md", str(md)]  # fmt: skip
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["counts"] == {"added": 1, "not added": 2}
    b1, b2 = out["results"]["baseline"]
    assert b1["asr_eng"] == {"added": 50.0, "not added": 0.0, "all": pytest.approx(16.67)}
    assert b2["asr_eng"] == {"added": 0.0, "not added": 0.0, "all": 0.0}
    assert b1["asr (all)"]["added"] == 25.0  # 2 of 8 words: c1 in asr_eng and in asr_deu
    assert b1["st_deu-eng"]["all"] == 0.0 and b1["en->X"]["all"] == pytest.approx(100.0)
    assert b1["X->en"] == b1["st_deu-eng"]  # one direction: its own figure
    (a1,) = out["results"]["augmented"]
    assert a1["asr_eng"] == {"added": 0.0, "not added": 37.5, "all": 25.0}
    text = md.read_text()
    assert "| output | baseline: added | baseline: not added | baseline: all |" in text
    assert (
        "| asr_eng | 25.00 (50.0, 0.0) | 0.00 (0.0, 0.0) | 8.34 (16.7, 0.0) | 0.00 (0.0) |" in text
    )
    assert "python -m speechkit.bench.tts_augment --cuts" in text


def test_bad_arms_and_manifests_are_named(tmp_path, capsys):
    _cuts(tmp_path / "test.jsonl.gz")
    dec = _decode(tmp_path / "d", {"asr_eng": {"c1": "a", "c9": "b"}})
    base = ["--cuts", str(tmp_path / "test.jsonl.gz"), "--added", str(tmp_path / "test.jsonl.gz")]
    with pytest.raises(SystemExit):
        main([*base, "--arm", "baseline"])
    assert "give the arm's decode directories" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*base, "--arm", "x", dec, "--arm", "x", dec])
    assert "two arms of one name" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="cut 'c9' is not in --cuts"):
        main([*base, "--arm", "x", dec])
    no_ids = tmp_path / "no_ids.jsonl.gz"
    CutSet.from_cuts([Recording("r", [], 16000, 16000, 1.0).to_cut()]).to_file(no_ids)
    with pytest.raises(SystemExit, match="has no custom.sentence_id"):
        main(["--cuts", str(no_ids), "--added", str(no_ids), "--arm", "x", dec])
