"""LibriSpeech preparation: lhotse's recipe on a miniature tree, normalisation, clear errors."""

from __future__ import annotations

import json

import pytest
from corpus_fakes import write_librispeech
from lhotse import CutSet

from speechkit.bin import prepare_librispeech as cli
from speechkit.config import ConfigError
from speechkit.data.corpora import CorpusError
from speechkit.data.corpora.librispeech import (
    LibriSpeechConfig,
    check_librispeech,
    find_librispeech,
    prepare_librispeech,
)

ALL = ["train-clean-100", "dev-clean", "dev-other", "test-clean", "test-other"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("ls")
    write_librispeech(root, ALL)
    return root


@pytest.fixture(scope="module")
def prepared(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("prepared")
    return out, prepare_librispeech(LibriSpeechConfig(data_root=str(corpus), out_dir=str(out)))


def test_writes_one_manifest_per_split_with_every_utterance(prepared):
    out, paths = prepared
    assert sorted(paths) == ["dev", "test-clean", "test-other", "train"]
    assert paths["test-clean"] == out / "cuts_test_clean.jsonl.gz"
    counts = {split: len(CutSet.from_file(p)) for split, p in paths.items()}
    # 3 utterances per chapter; train-clean-100 has two speakers, dev = dev-clean + dev-other.
    assert counts == {"train": 6, "dev": 6, "test-clean": 3, "test-other": 3}


def test_cuts_follow_speechkit_conventions(prepared, corpus):
    _, paths = prepared
    cut = CutSet.from_file(paths["train"]).to_eager()["103-1240-0001"]
    (sup,) = cut.supervisions
    assert sup.language == "eng" and sup.speaker == "librispeech-103"
    trans = corpus / "LibriSpeech/train-clean-100/103/1240/103-1240.trans.txt"
    original = dict(line.split(" ", 1) for line in trans.read_text().splitlines())
    assert sup.text == original["103-1240-0001"].lower()
    assert cut.custom == {"event": "clean"}
    assert cut.load_audio().shape[1] == round(cut.duration * 16000)


def test_a_complete_preparation_is_kept(prepared, corpus, caplog):
    out, paths = prepared
    before = paths["train"].stat().st_mtime_ns
    with caplog.at_level("INFO"):
        prepare_librispeech(LibriSpeechConfig(data_root=str(corpus), out_dir=str(out)))
    assert "skip:" in caplog.text
    assert paths["train"].stat().st_mtime_ns == before
    assert json.loads((out / "prepare_args.json").read_text())["train_parts"] == ["train-clean-100"]


def test_other_arguments_prepare_again(prepared, corpus):
    out, paths = prepared
    cfg = LibriSpeechConfig(data_root=str(corpus), out_dir=str(out), lowercase=False)
    prepare_librispeech(cfg)
    texts = [c.supervisions[0].text for c in CutSet.from_file(paths["train"])]
    assert all(t.isupper() for t in texts)
    prepare_librispeech(LibriSpeechConfig(data_root=str(corpus), out_dir=str(out)))  # restore


def test_data_root_may_be_the_librispeech_directory(corpus):
    assert find_librispeech(corpus) == corpus / "LibriSpeech"
    assert find_librispeech(corpus / "LibriSpeech") == corpus / "LibriSpeech"


def test_a_missing_corpus_is_named(tmp_path):
    with pytest.raises(CorpusError, match="does not exist.*--download true"):
        find_librispeech(tmp_path / "nowhere")
    with pytest.raises(CorpusError, match="holds no LibriSpeech/ directory"):
        find_librispeech(tmp_path)


def test_missing_and_partial_parts_are_listed(tmp_path):
    corpus = write_librispeech(tmp_path, ["train-clean-100", "dev-clean", "test-clean"])
    (corpus / "train-clean-100/1034/121119/1034-121119-0002.flac").unlink()
    for trans in (corpus / "dev-clean").rglob("*.trans.txt"):
        trans.unlink()
    parts = ["train-clean-100", "dev-clean", "test-clean", "test-other"]
    with pytest.raises(CorpusError) as err:
        check_librispeech(corpus, parts)
    message = str(err.value)
    assert "train-clean-100: 1 of 6 utterances" in message
    assert "1034-121119-0002.flac" in message
    assert "dev-clean: no <speaker>/<chapter>/<speaker>-<chapter>.trans.txt" in message
    assert f"test-other: directory {corpus / 'test-other'} is missing" in message
    assert "test-clean" not in message.replace(str(corpus), "")  # complete parts pass


def test_nothing_is_written_for_an_incomplete_corpus(tmp_path):
    write_librispeech(tmp_path / "c", ["train-clean-100"])
    cfg = LibriSpeechConfig(data_root=str(tmp_path / "c"), out_dir=str(tmp_path / "out"))
    with pytest.raises(CorpusError, match="dev-clean: directory"):
        prepare_librispeech(cfg)
    assert not (tmp_path / "out" / "prepare_args.json").exists()


def test_unknown_parts_are_config_errors():
    with pytest.raises(ConfigError, match="train-clean-1000"):
        LibriSpeechConfig(data_root=".", out_dir=".", train_parts=["train-clean-1000"])


def test_cli_reports_a_missing_part_with_exit_status_1(tmp_path, caplog):
    write_librispeech(tmp_path / "c", ["train-clean-100"])
    argv = ["--data-root", str(tmp_path / "c"), "--out", str(tmp_path / "o"), "--dev-parts"]
    argv += ["--test-parts", "test-other"]
    assert cli.main(argv) == 1
    assert "test-other: directory" in caplog.text
    with pytest.raises(SystemExit):
        cli.main([*argv, "--download", "maybe"])
