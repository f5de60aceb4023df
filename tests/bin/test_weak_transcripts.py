"""Tests for speechkit/bin/weak_transcripts.py: attach, drop and report real weak transcripts."""

import json
import sys
from pathlib import Path

from lhotse import CutSet

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
from weak_cuts import corpus  # noqa: E402

from speechkit.bin import weak_transcripts  # noqa: E402


def test_attaches_prefers_reports_and_drops(tmp_path):
    cuts = corpus(1)
    CutSet.from_cuts(cuts).to_file(tmp_path / "pool.jsonl.gz")
    eng = [c for c in cuts if c.supervisions[0].language == "eng"]
    # An English-only recogniser (tab-separated, as transcribe prints) ...
    lines = [f"{c.id}\t{c.supervisions[0].text.upper()}" for c in eng]
    lines[0] = f"{eng[0].id}\t"  # an empty hypothesis
    (tmp_path / "en.tsv").write_text("\n".join(lines) + "\n")
    # ... and one for every language (Kaldi style), one word wrong everywhere.
    (tmp_path / "all.txt").write_text(
        "".join(f"{c.id} {c.supervisions[0].text.rsplit(' ', 1)[0]} x\n" for c in cuts)
    )
    out = tmp_path / "weak" / "real.jsonl.gz"
    argv = ["--cuts", str(tmp_path / "pool.jsonl.gz"), "--out", str(out),
            "--hyps", f"en={tmp_path / 'en.tsv'}", "--hyps", f"all={tmp_path / 'all.txt'}",
            "--results-md", str(tmp_path / "R.md"), "--command", "./run.sh"]  # fmt: skip
    assert weak_transcripts.main(argv) == 0
    kept = {c.id: c.supervisions[0].custom for c in CutSet.from_file(out)}
    assert eng[0].id not in kept  # its preferred (English) transcript is empty: dropped
    assert kept[eng[1].id]["weak_source"] == "en"
    assert all(v["weak_source"] == "all" for k, v in kept.items() if k.startswith("deu"))
    report = json.loads((tmp_path / "weak" / "real.json").read_text())
    assert report["dropped"] == {"empty": 1, "empty/eng": 1}
    assert report["chosen"] == {"en": 3, "all": 3}
    assert report["wer"]["en"]["eng"]["rate"] > report["wer_kept"]["en"]["eng"]["rate"] == 0.0
    assert report["wer"]["all"]["all"]["utts"] == 6
    md = (tmp_path / "R.md").read_text()
    assert "| en | eng | 3 | 26.7 (0/4/0) | 2 | 0.0 |" in md and "command: `./run.sh`" in md
