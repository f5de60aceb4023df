"""speechkit score-tagger: accuracy, per-class recall/precision and the confusion matrix of the
tagger's events against the corpus events; unreadable cuts are counted and left out."""

from __future__ import annotations

import json

from context_cuts import write_corpus, write_tagger

from speechkit.bin.score_tagger import main, score_events


def test_scores_follow_the_confusion_matrix():
    classes = ["clean", "noise", "music"]
    refs = ["clean", "clean", "noise", "music", "music", "music"]
    hyps = ["clean", "noise", "noise", "music", "clean", "music"]
    s = score_events(refs, hyps, classes)
    assert s["cuts"] == 6 and s["accuracy"] == round(4 / 6, 4)
    assert s["confusion"] == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    assert s["per_class"]["clean"] == {"count": 2, "recall": 0.5, "precision": 0.5}
    assert s["per_class"]["noise"] == {"count": 1, "recall": 1.0, "precision": 0.5}
    assert s["per_class"]["music"]["recall"] == round(2 / 3, 4)


def test_cli_scores_readable_cuts_and_writes_a_results_section(tmp_path, capsys):
    manifest, events = write_corpus(tmp_path / "data")
    tagger = write_tagger(tmp_path / "tagger")
    md = tmp_path / "RESULTS.md"
    argv = ["--tagger", str(tagger), "--cuts", str(manifest), "--results-md", str(md),
            "--title", "tagger: synthetic", "--json", str(tmp_path / "s.json")]  # fmt: skip
    assert main(argv) == 0
    scores = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert scores["cuts"] == len(events) - 1 and scores["skipped"] == {"unreadable audio": 1}
    assert sum(map(sum, scores["confusion"])) == scores["cuts"]
    assert json.loads((tmp_path / "s.json").read_text())["accuracy"] == scores["accuracy"]
    text = md.read_text()
    assert "## tagger: synthetic" in text and "speechkit score-tagger" in text
