"""Tests for speechkit/bin/estimate_buckets.py."""

import random

from lhotse import CutSet, SupervisionSegment
from lhotse.testing.dummies import dummy_cut

from speechkit.bin.estimate_buckets import main
from speechkit.data.buckets import BucketGrid
from speechkit.text.sentencepiece import SentencePieceTokenizer, TokenizerConfig

WORDS = "one two three four five six seven eight nine ten".split()


def _write_corpus(tmp_path):
    rng = random.Random(0)
    cuts = []
    for i in range(120):
        cut = dummy_cut(i, duration=round(rng.uniform(0.5, 12.0), 2))
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 25)))
        cut.supervisions = [
            SupervisionSegment(
                f"s{i}",
                cut.recording_id,
                0.0,
                cut.duration,
                text=text,
                language="eng",
                custom={"translations": {"deu": "eins zwei"}},
            )
        ]
        cuts.append(cut)
    long_cut = dummy_cut(999, duration=50.0)
    long_cut.supervisions = [SupervisionSegment("l", long_cut.recording_id, 0, 50.0, text="one")]
    cuts.append(long_cut)
    CutSet.from_cuts(cuts).to_file(tmp_path / "cuts.jsonl.gz")
    texts = [c.supervisions[0].text for c in cuts] + ["eins zwei drei"]
    SentencePieceTokenizer.train(
        texts, tmp_path / "tok", TokenizerConfig(vocab_size=40), ["eng", "deu"], ["asr", "st_deu"]
    )
    return cuts


def test_writes_a_grid_that_covers_the_cuts(tmp_path, caplog):
    cuts = _write_corpus(tmp_path)
    out = tmp_path / "exp" / "buckets.yaml"
    argv = ["--cuts", str(tmp_path / "cuts.jsonl.gz"), "--tokenizer", str(tmp_path / "tok")]
    argv += ["--min-bucket-seconds", "30", "--max-token-buckets", "2", "--max-cut-duration", "20"]
    argv += ["--max-frame-padding", "0.2"]
    caplog.set_level("WARNING")
    assert main(argv + ["--out", str(out)]) == 0
    assert "left out 1 cuts longer than 20.0 s" in caplog.text
    grid = BucketGrid.load(out)
    # ~740 s of audio, rows padding <= 20%, buckets of >= 30 s.
    assert 2 <= len(grid.duration_edges) <= 12
    assert max(len(r) for r in grid.token_edges) <= 2  # --max-token-buckets
    assert grid.num_buckets * 30 <= sum(c.duration for c in cuts[:-1])
    assert grid.targets_per_cut == 2  # transcript + German translation
    tok = SentencePieceTokenizer.load(grid.tokenizer)
    longest = max(len(tok.encode(c.supervisions[0].text)) for c in cuts[:-1])
    assert grid.duration_edges[-1] == max(c.duration for c in cuts[:-1])
    assert max(row[-1] for row in grid.token_edges) == longest


def test_missing_manifest_is_an_error(tmp_path, caplog):
    argv = ["--cuts", str(tmp_path / "nope.jsonl.gz"), "--tokenizer", "x", "--out", "o.yaml"]
    assert main(argv) == 2
    assert "nope.jsonl.gz" in caplog.text


def test_bad_padding_target_is_an_error(tmp_path, caplog):
    argv = ["--cuts", "c", "--tokenizer", "t", "--out", "o.yaml", "--max-frame-padding", "5"]
    assert main(argv) == 2
    assert "--max-frame-padding" in caplog.text
