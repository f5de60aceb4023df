"""LibriMix preparation: lhotse's recipe on miniature LibriSpeech + WHAM! + metadata, separation
cuts with their sources kept, min/max mixtures, enrollments, and errors naming what is missing."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from corpus_fakes import write_librimix
from lhotse import CutSet

from speechkit.bin import prepare_librimix as cli
from speechkit.config import ConfigError
from speechkit.data.corpora import CorpusError
from speechkit.data.corpora.librimix import LibriMixConfig, check_librimix, prepare_librimix
from speechkit.data.mixtures import load_mixture
from speechkit.tasks.separation import SeparationData, SeparationDataConfig

PARTS = ["train-clean-100", "dev-clean", "test-clean"]
CLASSES = ["speech", "noise", "babble", "beeps", "music"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_librimix(tmp_path_factory.mktemp("librimix"))


def _config(corpus, out, **kw) -> LibriMixConfig:
    kw = {"train_parts": ["train-clean-100"], "mix": ["clean", "both"], **kw}
    return LibriMixConfig(data_root=str(corpus), out_dir=str(out), **kw)


@pytest.fixture(scope="module")
def prepared(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("prepared")
    paths = prepare_librimix(_config(corpus, out))
    return out, {split: list(CutSet.from_file(p)) for split, p in paths.items()}


def _rows(corpus, part: str) -> dict[str, dict]:
    with open(corpus / "metadata" / "Libri2Mix" / f"libri2mix_{part}.csv", newline="") as f:
        return {row["mixture_ID"]: row for row in csv.DictReader(f)}


def test_every_split_has_two_target_cuts_and_one_noisy_cut_a_mixture(prepared):
    out, cuts = prepared
    assert sorted(cuts) == ["dev", "test", "train"]
    for split in cuts:
        events = sorted(c.custom["event"] for c in cuts[split])
        assert events == ["noise"] * 3 + ["speaker"] * 6  # 3 mixtures a part
    ids = {c.id for c in cuts["test"]}
    assert {"1089-134686-0000_121-121726-0000-1", "1089-134686-0000_121-121726-0000-2",
            "1089-134686-0000_121-121726-0000-noisy"} <= ids  # fmt: skip
    assert json.loads((out / "prepare_args.json").read_text())["mode"] == "min"


def test_sources_are_kept_and_add_up_to_the_mixture(prepared, corpus):
    _, cuts = prepared
    rows = _rows(corpus, "test-clean")
    speech_dir = corpus / "LibriSpeech"
    for cut in cuts["test"]:
        mix, speech, interference = load_mixture(cut)
        assert mix.shape == speech.shape == interference.shape == (cut.num_samples,)
        np.testing.assert_allclose(mix, cut.load_audio()[0], atol=1e-6)
        mixture_id, _, which = cut.id.rpartition("-")
        row = rows[mixture_id]
        if which == "noisy":  # both talkers from noise: the noise is WHAM!'s channel 0 x gain
            noise_file = corpus / "wham_noise" / row["noise_path"]
            noise = sf.read(noise_file, dtype="float32")[0][:, 0] * float(row["noise_gain"])
            n = 6000  # lhotse lengthens the 1 s noise with a cross-fade after its first 0.5 s
            np.testing.assert_allclose(interference[:n], noise[:n], atol=1e-4)
            continue
        k = int(which)  # target source k, the other talker is the interference
        for wave, j in ((speech, k), (interference, 3 - k)):
            src = sf.read(speech_dir / row[f"source_{j}_path"], dtype="float32")[0]
            src = src[: len(wave)] * float(row[f"source_{j}_gain"])
            np.testing.assert_allclose(wave[: len(src)], src, atol=1e-4)
            assert not wave[len(src) :].any()  # zero after a shorter source (max mode only)


def test_min_mixtures_end_with_the_shorter_talker_max_with_the_longer(prepared, corpus, tmp_path):
    _, cuts = prepared
    max_cuts = CutSet.from_file(prepare_librimix(_config(corpus, tmp_path, mode="max"))["test"])
    longer = {c.id: c.duration for c in max_cuts}
    speech_dir = corpus / "LibriSpeech"
    rows = _rows(corpus, "test-clean")
    for cut in cuts["test"]:
        row = rows[cut.id.rpartition("-")[0]]
        durations = [sf.info(speech_dir / row[f"source_{j}_path"]).duration for j in (1, 2)]
        assert cut.duration == pytest.approx(min(durations), abs=1e-3)
        assert longer[cut.id] == pytest.approx(max(durations), abs=1e-3)
    assert any(d > c.duration + 0.1 for c, d in zip(cuts["test"], longer.values()))


def test_targets_enrollments_and_supervisions(prepared):
    _, cuts = prepared
    for cut in (c for split in cuts.values() for c in split):
        target = cut.supervisions[0]
        assert target.language == "eng" and target.speaker.startswith("librispeech-")
        assert target.text == target.text.lower()
        if cut.custom["event"] == "noise":
            assert cut.custom["speech_tracks"] == 2 and "enroll" not in cut.custom
            continue
        utterances = cut.id.rpartition("-")[0].split("_")
        k = int(cut.id.rpartition("-")[2])
        assert target.id == utterances[k - 1]
        assert cut.custom["interferer"] == cut.supervisions[1].speaker != target.speaker
        # another utterance of the target speaker, from the same LibriSpeech part
        enroll = cut.custom["enroll_id"]
        assert enroll != target.id and enroll.split("-")[0] == target.id.split("-")[0]
        assert cut.custom["enroll"].load_audio().shape[1] > 16000


def test_snr_is_recorded_on_dev_and_test_only(prepared):
    _, cuts = prepared
    assert all(c.custom["snr_db"] is None for c in cuts["train"])
    for cut in cuts["dev"] + cuts["test"]:
        _, speech, interference = load_mixture(cut)
        snr = 10 * np.log10(np.mean(speech.astype(np.float64) ** 2)
                            / np.mean(interference.astype(np.float64) ** 2))  # fmt: skip
        assert cut.custom["snr_db"] == pytest.approx(snr, abs=0.01)


def test_the_separation_task_reads_the_cuts(prepared):
    _, cuts = prepared
    two_talkers = [c for c in cuts["test"] if c.custom["event"] == "speaker"][:1]
    noisy = [c for c in cuts["test"] if c.custom["event"] == "noise"][:1]
    cfg = SeparationDataConfig(query_weights={"class": 1.0}, segment_seconds=0, background_prob=0)
    batch = SeparationData(cfg, CLASSES, train=True)[two_talkers + noisy]
    assert batch["has_alt"].tolist() == [True, False]  # either talker answers "speech"
    n = int(batch["lengths"][0])
    mix, speech, interference = load_mixture(two_talkers[0])
    np.testing.assert_allclose(batch["target"][0, :n].numpy(), speech, atol=1e-6)
    np.testing.assert_allclose(batch["alt"][0, :n].numpy(), interference, atol=1e-6)
    # the noisy cut's target is both talkers
    np.testing.assert_allclose(batch["target"][1, : int(batch["lengths"][1])].numpy(),
                               load_mixture(noisy[0])[1], atol=1e-6)  # fmt: skip
    dev = SeparationData(cfg, CLASSES, train=False)[two_talkers]
    assert dev["kind"].tolist() == [2] and dev["speaker"].abs().sum() > 0  # enrolled speaker


def test_a_complete_preparation_is_kept(prepared, corpus, caplog):
    out, _ = prepared
    before = (out / "cuts_train.jsonl.gz").stat().st_mtime_ns
    with caplog.at_level("INFO"):
        prepare_librimix(_config(corpus, out))
    assert "skip:" in caplog.text
    assert (out / "cuts_train.jsonl.gz").stat().st_mtime_ns == before


def test_clean_only_mixtures(corpus, tmp_path):
    paths = prepare_librimix(_config(corpus, tmp_path, mix=["clean"]))
    cuts = CutSet.from_file(paths["dev"])
    assert len(cuts) == 6 and {c.custom["event"] for c in cuts} == {"speaker"}
    assert all(len(c.tracks) == 2 for c in cuts)  # no noise track


def test_missing_inputs_are_named(corpus, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(corpus, broken)
    (broken / "metadata/Libri2Mix/libri2mix_test-clean.csv").unlink()
    shutil.rmtree(broken / "wham_noise/cv")
    shutil.rmtree(broken / "LibriSpeech/dev-clean")
    with pytest.raises(CorpusError) as err:
        check_librimix(broken, PARTS)
    message = str(err.value)
    assert "libri2mix_test-clean.csv is missing" in message
    assert f"{broken / 'wham_noise/cv'} is missing" in message
    assert "dev-clean: directory" in message
    assert "--download true" in message and "generated, not downloaded" in message


def test_files_listed_in_the_metadata_must_exist(corpus, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(corpus, broken)
    # a transcript line without its FLAC is LibriSpeech's own check; a CSV row pointing at an
    # utterance LibriSpeech does not have, and a noise that is not there, are LibriMix's
    csv_path = broken / "metadata/Libri2Mix/libri2mix_dev-clean.csv"
    text = csv_path.read_text().replace("84-121123-0002.flac", "84-121123-0009.flac")
    csv_path.write_text(text)
    (broken / "wham_noise/tt/401a010x_1.1_01xo031a_-1.1.wav").unlink()
    with pytest.raises(CorpusError) as err:
        check_librimix(broken, PARTS)
    message = str(err.value)
    assert "libri2mix_dev-clean.csv: 1 missing files (of its 3 mixtures)" in message
    assert "84-121123-0009.flac" in message
    assert "libri2mix_test-clean.csv: 1 missing files" in message and "401a010x_1.1" in message
    # the training CSV's sp08 noise is made from its original, which exists: no complaint
    assert "train-clean-100" not in message


def test_nothing_is_written_for_incomplete_inputs(tmp_path):
    with pytest.raises(CorpusError, match="does not exist"):
        prepare_librimix(_config(tmp_path / "nowhere", tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_bad_options_are_config_errors():
    with pytest.raises(ConfigError, match="train_parts"):
        LibriMixConfig(data_root=".", out_dir=".", train_parts=["train-other-500"])
    with pytest.raises(ConfigError, match="mix"):
        LibriMixConfig(data_root=".", out_dir=".", mix=["single"])


def test_cli_reports_missing_inputs_with_exit_status_1(corpus, tmp_path, caplog):
    broken = tmp_path / "broken"
    shutil.copytree(corpus, broken)
    shutil.rmtree(broken / "wham_noise")
    argv = ["--data-root", str(broken), "--out", str(tmp_path / "o"), "--train-parts",
            "train-clean-100"]  # fmt: skip
    assert cli.main(argv) == 1
    assert "WHAM! noise" in caplog.text and "wham_noise/tr" in caplog.text
    with pytest.raises(SystemExit):
        cli.main([*argv, "--mix", "single"])


def test_download_fetches_the_three_inputs_before_preparing(corpus, tmp_path, monkeypatch):
    # The network is replaced by copies from the miniature corpus: what is checked is that each
    # of lhotse's downloaders is asked for its input, into data_root, before the check runs.
    import lhotse.recipes

    calls = []

    def downloader(name: str, folder: str):
        def fetch(target_dir, **kwargs):
            calls.append((name, Path(target_dir), kwargs))
            shutil.copytree(corpus / folder, Path(target_dir) / folder, dirs_exist_ok=True)

        return fetch

    for name, folder in (("librispeech", "LibriSpeech"), ("wham", "wham_noise"),
                         ("librimix", "metadata")):  # fmt: skip
        monkeypatch.setattr(lhotse.recipes, f"download_{name}", downloader(name, folder))
    root = tmp_path / "downloads"
    paths = prepare_librimix(_config(root, tmp_path / "out", download=True, mix=["clean"]))
    assert [(name, target) for name, target, _ in calls] == [
        ("librispeech", root), ("wham", root), ("librimix", root)]  # fmt: skip
    assert calls[0][2] == {"dataset_parts": PARTS}
    assert len(CutSet.from_file(paths["test"])) == 6
