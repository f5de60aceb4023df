"""LJSpeech preparation: lhotse's recipe on a miniature tree, split and normalisation, errors."""

from __future__ import annotations

import pytest
from corpus_fakes import write_ljspeech
from lhotse import CutSet

from speechkit.bin import prepare_ljspeech as cli
from speechkit.config import ConfigError
from speechkit.data.corpora import CorpusError
from speechkit.data.corpora.ljspeech import LJSpeechConfig, check_ljspeech, prepare_ljspeech


def _prepare(root, out, **kw):
    return prepare_ljspeech(LJSpeechConfig(str(root), str(out), dev_size=2, test_size=3, **kw))


def test_last_clips_make_the_test_and_dev_sets(tmp_path):
    write_ljspeech(tmp_path / "c", n=10)
    paths = _prepare(tmp_path / "c", tmp_path / "out")
    ids = {split: [c.id for c in CutSet.from_file(p)] for split, p in paths.items()}
    assert ids["test"] == ["LJ001-0008", "LJ001-0009", "LJ001-0010"]
    assert ids["dev"] == ["LJ001-0006", "LJ001-0007"]
    assert ids["train"] == [f"LJ001-{i:04d}" for i in range(1, 6)]


def test_cuts_carry_the_normalised_text_at_the_original_rate(tmp_path):
    write_ljspeech(tmp_path, n=8)
    paths = _prepare(tmp_path, tmp_path / "out")
    cut = CutSet.from_file(paths["train"]).to_eager()["LJ001-0002"]
    (sup,) = cut.supervisions
    assert sup.text == "It was printed in eighteen eighty-four by Mister Smith."
    assert sup.custom == {"original_text": "It was printed in 1884 by Mr. Smith."}
    assert (sup.language, sup.speaker, cut.sampling_rate) == ("eng", "ljspeech", 22050)


def test_a_complete_preparation_is_kept(tmp_path, caplog):
    write_ljspeech(tmp_path, n=8)
    paths = _prepare(tmp_path, tmp_path / "out")
    before = paths["train"].stat().st_mtime_ns
    with caplog.at_level("INFO"):
        _prepare(tmp_path, tmp_path / "out")
    assert "skip:" in caplog.text and paths["train"].stat().st_mtime_ns == before


def test_missing_wavs_and_malformed_lines_are_named(tmp_path):
    corpus = write_ljspeech(tmp_path, n=6)
    (corpus / "wavs" / "LJ001-0004.wav").unlink()
    with open(corpus / "metadata.csv", "a") as f:
        f.write("LJ001-0099|only two fields\n")
    with pytest.raises(CorpusError) as err:
        check_ljspeech(corpus)
    assert "metadata.csv:7: 2 fields" in str(err.value)
    assert "1 of 6 clips have no WAV file" in str(err.value) and "LJ001-0004.wav" in str(err.value)


def test_a_missing_corpus_is_named(tmp_path):
    with pytest.raises(CorpusError, match="holds no LJSpeech-1.1/ directory.*--download true"):
        _prepare(tmp_path, tmp_path / "out")
    (tmp_path / "LJSpeech-1.1" / "wavs").mkdir(parents=True)
    with pytest.raises(CorpusError, match="metadata.csv is missing"):
        _prepare(tmp_path, tmp_path / "out")


def test_too_small_a_corpus_for_the_split_is_a_config_error(tmp_path):
    write_ljspeech(tmp_path, n=4)
    with pytest.raises(ConfigError, match="4 clips: too few"):
        _prepare(tmp_path, tmp_path / "out")


def test_cli_exit_status(tmp_path, caplog):
    write_ljspeech(tmp_path, n=8)
    argv = ["--data-root", str(tmp_path), "--out", str(tmp_path / "o"), "--dev-size", "2"]
    assert cli.main([*argv, "--test-size", "2"]) == 0
    assert cli.main(["--data-root", str(tmp_path / "none"), "--out", str(tmp_path / "p")]) == 1
    assert "LJSpeech not found" in caplog.text
