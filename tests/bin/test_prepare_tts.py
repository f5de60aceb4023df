"""speechkit.bin.prepare_tts: validation cuts drawn from training (--valid) or given (--dev)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data" / "corpora"))
import corpus_fakes  # noqa: E402
from lhotse import CutSet  # noqa: E402

from speechkit.bin.prepare_tts import hold_out, main  # noqa: E402
from speechkit.data.corpora.ljspeech import LJSpeechConfig, prepare_ljspeech  # noqa: E402


@pytest.fixture(scope="module")
def ljspeech(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("ljspeech")
    corpus_fakes.write_ljspeech(root, n=9)
    return prepare_ljspeech(LJSpeechConfig(str(root), str(root / "cuts"), dev_size=2, test_size=2))


def _ids(path: Path) -> list[str]:
    return sorted(c.id for c in CutSet.from_file(path))


def test_dev_cuts_are_the_validation_set_and_training_keeps_every_cut(ljspeech, tmp_path):
    argv = ["--train", str(ljspeech["train"]), "--dev", str(ljspeech["dev"])]
    assert main([*argv, "--test", str(ljspeech["test"]), "--out", str(tmp_path)]) == 0
    assert _ids(tmp_path / "cuts_valid.jsonl.gz") == _ids(ljspeech["dev"])
    assert _ids(tmp_path / "cuts_train.jsonl.gz") == _ids(ljspeech["train"])
    assert _ids(tmp_path / "cuts_test.jsonl.gz") == _ids(ljspeech["test"])
    valid = CutSet.from_file(tmp_path / "cuts_valid.jsonl.gz")
    assert all(c.supervisions[0].custom["phonemes"] for c in valid)
    vocab = json.loads((tmp_path / "vocab.json").read_text())
    assert vocab["speakers"] == ["ljspeech"] and vocab["languages"] == ["eng"]


def test_without_dev_validation_cuts_are_drawn_from_training(ljspeech, tmp_path):
    assert main(["--train", str(ljspeech["train"]), "--valid", "2", "--out", str(tmp_path)]) == 0
    valid, train = _ids(tmp_path / "cuts_valid.jsonl.gz"), _ids(tmp_path / "cuts_train.jsonl.gz")
    assert len(valid) == 2 and len(train) == 3
    assert sorted(valid + train) == _ids(ljspeech["train"])


def test_dev_and_a_drawn_validation_set_are_refused_together(ljspeech, tmp_path, capsys):
    argv = ["--train", str(ljspeech["train"]), "--dev", str(ljspeech["dev"]), "--valid", "2"]
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "--dev gives the validation cuts" in capsys.readouterr().err


def test_held_out_cuts_keep_their_voice_in_training():
    from types import SimpleNamespace

    def cut(i, speaker):
        return SimpleNamespace(id=i, supervisions=[SimpleNamespace(speaker=speaker)])

    cuts = [cut("a1", "a"), cut("b1", "b"), cut("a2", "a"), cut("c1", "c"), cut("a3", "a")]
    valid, train = hold_out(cuts, 3)
    # b and c have one cut each: they stay in training; a gives two and keeps one
    assert [c.id for c in valid] == ["a1", "a2"]
    assert [c.id for c in train] == ["b1", "c1", "a3"]
    assert [c.id for c in hold_out(cuts, 1)[0]] == ["a1"]
