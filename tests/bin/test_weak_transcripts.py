"""Tests for speechkit/bin/weak_transcripts.py: attach, drop and report real weak transcripts."""

import json
import sys
from pathlib import Path

import pytest
from lhotse import CutSet

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
from weak_cuts import corpus, text_cut  # noqa: E402

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


def _dev_setup(tmp_path):
    """A pool and a gold dev set, each transcribed by an English recogniser (exact) and by a
    recogniser for every language that is good on the pool but garbage on the dev set."""
    pool = corpus(1)
    CutSet.from_cuts(pool).to_file(tmp_path / "pool.jsonl.gz")
    dev = [text_cut(f"dev-{c.id}", c.supervisions[0].language, c.supervisions[0].text)
           for c in pool]  # fmt: skip
    CutSet.from_cuts(dev).to_file(tmp_path / "dev.jsonl.gz")
    eng = lambda cuts: [c for c in cuts if c.supervisions[0].language == "eng"]  # noqa: E731
    for name, cuts in (("pool", pool), ("dev", dev)):
        (tmp_path / f"en_{name}.tsv").write_text(
            "".join(f"{c.id}\t{c.supervisions[0].text}\n" for c in eng(cuts))
        )
    (tmp_path / "seed_pool.txt").write_text(
        "".join(f"{c.id} {c.supervisions[0].text}\n" for c in pool)
    )
    # Garbage in German only: three words for four, none right (100 % WER); English exact.
    (tmp_path / "seed_dev.txt").write_text("".join(
        f"{c.id} {'x y z' if c.supervisions[0].language == 'deu' else c.supervisions[0].text}\n"
        for c in dev))  # fmt: skip
    return pool, [
        "--cuts", str(tmp_path / "pool.jsonl.gz"), "--out", str(tmp_path / "w" / "sel.jsonl.gz"),
        "--hyps", f"en={tmp_path / 'en_pool.tsv'}", "--hyps", f"seed={tmp_path / 'seed_pool.txt'}",
    ]  # fmt: skip


def test_sources_are_chosen_per_language_by_their_dev_wer(tmp_path):
    pool, argv = _dev_setup(tmp_path)
    argv += ["--dev-cuts", str(tmp_path / "dev.jsonl.gz"), "--max-dev-wer", "50",
             "--dev-hyps", f"en={tmp_path / 'en_dev.tsv'}",
             "--dev-hyps", f"seed={tmp_path / 'seed_dev.txt'}",
             "--results-md", str(tmp_path / "R.md")]  # fmt: skip
    assert weak_transcripts.main(argv) == 0
    kept = {
        c.id: c.supervisions[0].custom for c in CutSet.from_file(tmp_path / "w" / "sel.jsonl.gz")
    }
    # German: only the seed transcribed it, and its German failed on the dev set: all dropped,
    # although its pool text is perfect (the pool's gold text decides nothing).
    assert sorted(kept) == sorted(c.id for c in pool if c.supervisions[0].language == "eng")
    assert all(v["weak_source"] == "en" for v in kept.values())
    report = json.loads((tmp_path / "w" / "sel.json").read_text())
    assert report["admitted"] == {"en": ["eng"], "seed": ["eng"]}
    assert report["dev_wer"]["seed"]["deu"]["rate"] == 100.0
    assert report["dropped"] == {"source_rejected": 3, "source_rejected/deu": 3}
    assert report["chosen"] == {"en": 3, "rejected": 3}
    seed_deu = report["wer"]["seed"]["deu"]  # the pool WER is still reported, for the study
    assert (seed_deu["rate"], seed_deu["utts"]) == (0.0, 3)
    md = (tmp_path / "R.md").read_text()
    assert "| seed | deu | 3 | 100.0 | no |" in md and "| en | eng | 3 | 0.0 | yes |" in md
    # A looser threshold admits the seed's German again.
    argv[argv.index("--max-dev-wer") + 1] = "100"
    assert weak_transcripts.main(argv) == 0
    assert len(CutSet.from_file(tmp_path / "w" / "sel.jsonl.gz")) == len(pool)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--max-dev-wer", "50"], "needs --dev-cuts"),
        (["--dev-cuts", "d.jsonl.gz", "--dev-hyps", "en=x.tsv"], "only with --max-dev-wer"),
        (["--max-dev-wer", "50", "--dev-cuts", "{dev}", "--dev-hyps", "en={en}"], "missing"),
        (
            [
                "--max-dev-wer",
                "50",
                "--dev-cuts",
                "{dev}",
                "--dev-hyps",
                "en={en}",
                "--dev-hyps",
                "seed={en}",
                "--dev-hyps",
                "other={en}",
            ],
            "unknown",
        ),  # fmt: skip
        (
            [
                "--max-dev-wer",
                "50",
                "--dev-cuts",
                "{dev}",
                "--dev-hyps",
                "en={pool_en}",
                "--dev-hyps",
                "seed={pool_en}",
            ],
            "matches a cut id",
        ),  # fmt: skip
    ],
)
def test_bad_dev_selection_arguments_are_refused(tmp_path, capsys, extra, message):
    _, argv = _dev_setup(tmp_path)
    paths = {"dev": tmp_path / "dev.jsonl.gz", "en": tmp_path / "en_dev.tsv",
             "pool_en": tmp_path / "en_pool.tsv"}  # fmt: skip
    extra = [e.format(**paths) for e in extra]
    with pytest.raises(SystemExit):
        weak_transcripts.main(argv + extra)
    assert message in capsys.readouterr().err
    assert not (tmp_path / "w" / "sel.jsonl.gz").exists()
