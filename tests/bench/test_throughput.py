"""speechkit.bench.throughput: padding arithmetic, and the report (--quick)."""

from __future__ import annotations

from pathlib import Path

import pytest

from speechkit.bench import throughput as tr
from speechkit.bin import bench, prepare_phrasebook, train_tokenizer

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "conf" / "s2t" / "phrasebook_tiny.yaml"


def test_epoch_padding_counts_frames_and_tokens_of_every_batch():
    corpus = tr.Corpus("x", durations=[1.0, 2.0, 2.0, 4.0], tokens=[2, 4, 3, 6])
    pad = tr.epoch_padding(corpus, [[0, 1], [2, 3]])
    # frames: (100 + 200) / (2 * 200) and (200 + 400) / (2 * 400) -> 900 real of 1200 padded
    assert abs(pad["pad_frames"] - 0.25) < 1e-9
    assert abs(pad["pad_tokens"] - 0.25) < 1e-9  # 15 real of 20 padded
    assert (pad["batches"], pad["mean_batch"]) == (2, 2.0)


def test_fixed_batches_hold_the_budget_on_average_and_sorting_groups_lengths():
    corpus = tr.synthetic(200, seed=0)
    mean = sum(corpus.durations) / len(corpus.durations)
    for sort in (False, True):
        batches = tr.fixed_batches(corpus, max_duration=4 * mean, sort=sort, seed=0)
        assert sorted(i for b in batches for i in b) == list(range(200))  # each cut once
        assert {len(b) for b in batches[:-1]} == {4}
    random_pad = tr.epoch_padding(corpus, tr.fixed_batches(corpus, 4 * mean, False, 0))
    sorted_pad = tr.epoch_padding(corpus, tr.fixed_batches(corpus, 4 * mean, True, 0))
    assert sorted_pad["pad_frames"] < 0.1 < random_pad["pad_frames"]


def test_quick_report_writes_five_strategies_per_corpus(tmp_path):
    data = tmp_path / "data"
    assert prepare_phrasebook.main(["--out", str(data), "--hours", "0.01", "--num-jobs", "1"]) == 0
    argv = ["--cuts", str(data / "cuts_train.jsonl.gz"), "--config", str(CONFIG)]
    assert train_tokenizer.main(argv + ["--out", str(data / "tokenizer")]) == 0
    results = tmp_path / "RESULTS.md"
    results.write_text("# Results\n\n## Other section\n\nkept\n")
    argv += ["--tokenizer", str(data / "tokenizer"), "--name", "phrasebook train", "--quick"]
    argv += ["--work-dir", str(tmp_path / "work"), "--results-md", str(results)]
    argv += ["--cite-path", f"{data}=data/phrasebook"]
    assert bench.main(["throughput", *argv]) == 0  # as `speechkit bench throughput`
    text = results.read_text()
    assert "kept" in text and "## Batching strategies" in text
    # The cited command runs the package module, with the recipe's paths; the real ones noted.
    command = next(ln for ln in text.splitlines() if ln.startswith("- command:"))
    assert (
        "python -m speechkit.bench.throughput --cuts data/phrasebook/cuts_train.jsonl.gz" in command
    )
    assert str(data) not in command and "--cite-path" not in command
    assert f"data read for this run: `{data}` (cited as `data/phrasebook`)" in text
    tables = text.split("### ")[1:]
    assert [t.split(" (")[0] for t in tables] == [
        "phrasebook train",
        "synthetic long-tailed 1-35 s",
    ]
    for table in tables:
        rows = {
            r.split("|")[1].strip()[:3]: [c.strip() for c in r.split("|")[2:-1]]
            for r in table.splitlines()
            if r.startswith("| (")
        }
        assert list(rows) == ["(a)", "(b)", "(c)", "(d)", "(e)"]
        pad = {k: float(v[0].rstrip("%")) for k, v in rows.items()}
        mean_batch = {k: float(v[3]) for k, v in rows.items()}
        peak = {k: float(v[4]) for k, v in rows.items()}
        assert pad["(d)"] < pad["(a)"] and pad["(e)"] < pad["(a)"]
        # (e) searches its batch sizes under (a)'s memory: larger batches, no more memory
        assert mean_batch["(e)"] >= mean_batch["(d)"]
        assert peak["(e)"] <= 1.05 * peak["(a)"]
        assert all(float(v[5]) > 0 for v in rows.values())  # audio seconds per second


def test_cuts_need_a_tokenizer_and_the_synthetic_corpus_alone_needs_a_vocabulary(capsys):
    with pytest.raises(SystemExit):
        tr.main(["--config", str(CONFIG), "--cuts", "cuts.jsonl.gz"])
    assert "--cuts needs --tokenizer" in capsys.readouterr().err
    # phrasebook_tiny.yaml leaves model.vocab_size to the tokenizer (0)
    with pytest.raises(SystemExit, match="model.vocab_size"):
        tr.main(["--config", str(CONFIG), "--quick"])


def test_the_cuts_corpus_is_named_after_its_manifest_unless_named():
    assert tr._corpus_name("/data/ls/cuts_dev-clean.jsonl.gz") == "cuts_dev-clean"
    assert tr._corpus_name("cuts.jsonl") == "cuts"
