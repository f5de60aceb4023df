"""speechkit.bench.encdec_split: the phrasebook's equal-size configs, and the report on a tiny
corpus."""

from __future__ import annotations

from pathlib import Path

import pytest

from speechkit.bench import encdec_split
from speechkit.bin import prepare_phrasebook, train_tokenizer
from speechkit.train.config import load_experiment_config

REPO = Path(__file__).resolve().parents[2]
# The two configs the phrasebook recipe compares (egs/phrasebook/s2t1/RESULTS.md).
CONFIGS = [
    REPO / "conf" / "s2t" / "phrasebook_tiny_balanced.yaml",
    REPO / "conf" / "s2t" / "phrasebook_tiny_deepenc.yaml",
]
SHRINK = [
    "model.d_model=16",
    "model.n_heads=2",
    "model.encoder_ffn=32",
    "model.cgmlp_units=32",
    "model.decoder_ffn=32",
    "model.subsampling_channels=8",
    "trainer.max_steps=2",
    "trainer.average_best=1",
    "data.num_workers=0",
]


@pytest.mark.parametrize("vocab", [250, 1000])
def test_configs_have_equal_parameter_counts_split_differently(vocab):
    balanced, deep = (encdec_split.param_counts(c, vocab) for c in CONFIGS)
    assert abs(balanced["total"] - deep["total"]) <= 0.03 * max(balanced["total"], deep["total"])
    assert deep["encoder"] > 1.1 * balanced["encoder"]
    assert deep["decoder"] < 0.6 * balanced["decoder"]
    models = [load_experiment_config(c).model for c in CONFIGS]
    assert models[1].decoder_layers == 2 < models[0].decoder_layers
    assert models[0].d_model == models[1].d_model  # only the split differs


def test_report_on_a_tiny_corpus(tmp_path):
    data = tmp_path / "data"
    assert prepare_phrasebook.main(["--out", str(data), "--hours", "0.01", "--num-jobs", "1"]) == 0
    config = str(CONFIGS[0])
    argv = ["--cuts", str(data / "cuts_train.jsonl.gz"), "--config", config]
    assert train_tokenizer.main(argv + ["--out", str(data / "tokenizer")]) == 0
    results = tmp_path / "RESULTS.md"
    results.write_text("# Results\n\n## Other section\n\nkept\n")
    argv = ["--configs", *map(str, CONFIGS), "--tokenizer", str(data / "tokenizer")]
    argv += ["--train-cuts", str(data / "cuts_train.jsonl.gz")]
    argv += ["--dev-cuts", str(data / "cuts_dev.jsonl.gz")]
    argv += ["--test-cuts", str(data / "cuts_test_seen.jsonl.gz"), "--minutes", "0.2"]
    argv += ["--out-dir", str(tmp_path / "exp"), "--results-md", str(results), "--beam-size", "1"]
    assert encdec_split.main(argv + ["--set", *SHRINK]) == 0
    text = results.read_text()
    assert "kept" in text and "## Encoder/decoder split" in text
    rows = [ln for ln in text.splitlines() if ln.startswith("| phrasebook_tiny_")]
    assert [r.split("|")[1].strip() for r in rows] == [
        "phrasebook_tiny_balanced.yaml",
        "phrasebook_tiny_deepenc.yaml",
    ]
    for row in rows:
        rtfx, wer = (float(x) for x in row.split("|")[-3:-1])
        assert rtfx > 0 and wer >= 0
    assert "short run" in text and "speechkit.bin.decode" in text
    assert "python -m speechkit.bench.encdec_split --configs" in text
    with pytest.raises(SystemExit, match="previous run"):
        encdec_split.main(argv)
