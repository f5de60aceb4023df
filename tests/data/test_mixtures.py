"""Separation mixtures: sources kept and adding up to the mixture, SNRs exact, enrollments of
the same speaker, test SNR bands filled, the clean speech as cuts of its own, rebuilds skipped,
bad arguments refused."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from lhotse import CutSet

sys.path.insert(0, str(Path(__file__).parent))
from mixture_fakes import make_corpus  # noqa: E402

from speechkit.config import ConfigError  # noqa: E402
from speechkit.data.mixtures import (  # noqa: E402
    MIX_EVENTS,
    MixtureConfig,
    load_mixture,
    make_mixtures,
    snr_band,
)
from speechkit.data.phrasebook.backgrounds import power_db  # noqa: E402


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("mix")
    corpus = make_corpus(root / "corpus")
    cfg = MixtureConfig(str(corpus), str(root / "mix"), per_utterance={"train": 3, "test": 8},
                        speaker_share=0.3)  # fmt: skip
    counts = make_mixtures(cfg)
    return cfg, counts


def test_sources_add_up_to_the_mixture_at_the_recorded_snr(built):
    cfg, counts = built
    cuts = CutSet.from_file(Path(cfg.out_dir) / "cuts_train.jsonl.gz")
    assert len(cuts) == counts["train"] == 9 * 3  # 9 clean utterances x 3
    for cut in cuts:
        mix, speech, interf = cut.load_audio()[0], cut.load_speech()[0], cut.load_interference()[0]
        assert mix.shape == speech.shape == interf.shape
        np.testing.assert_allclose(speech + interf, mix, atol=1e-5)  # 24-bit FLAC rounding
        assert abs(power_db(speech) - power_db(interf) - cut.custom["snr_db"]) < 0.01
        assert -5.01 <= cut.custom["snr_db"] <= 15.01
        assert cut.custom["event"] in MIX_EVENTS
        assert cut.supervisions[0].text.startswith("utt")


def test_load_mixture_reads_the_sources_of_file_mixtures(built):
    cfg, _ = built
    cut = next(iter(CutSet.from_file(Path(cfg.out_dir) / "cuts_train.jsonl.gz")))
    mix, speech, interf = load_mixture(cut)
    np.testing.assert_array_equal(mix, cut.load_audio()[0])
    np.testing.assert_array_equal(speech, cut.load_speech()[0])
    np.testing.assert_array_equal(interf, cut.load_interference()[0])


def test_speech_cuts_are_the_clean_speech_under_each_mixture(built):
    cfg, counts = built
    out = Path(cfg.out_dir)
    mixes = {c.id: c for c in CutSet.from_file(out / "cuts_test.jsonl.gz")}
    speech = list(CutSet.from_file(out / "cuts_test_speech.jsonl.gz"))
    assert len(speech) == counts["test"] and len({c.id for c in speech}) == len(speech)
    for cut in speech:
        mix = mixes[cut.custom["mixture"]]
        assert cut.id == f"{mix.id}.speech" and cut.custom["event"] == "clean"
        assert cut.supervisions[0].text == mix.supervisions[0].text
        assert cut.supervisions[0].recording_id == cut.recording.id
        np.testing.assert_array_equal(cut.load_audio()[0], load_mixture(mix)[1])
    assert (out / "cuts_train_speech.jsonl.gz").is_file()


def test_events_enrollments_and_interferers(built):
    cfg, _ = built
    cuts = list(CutSet.from_file(Path(cfg.out_dir) / "cuts_train.jsonl.gz"))
    events = {c.custom["event"] for c in cuts}
    assert "speaker" in events and len(events - {"speaker"}) >= 3
    for cut in cuts:
        speaker = cut.supervisions[0].speaker
        assert cut.custom["enroll_id"] != cut.custom["source_cut"]
        assert (
            cut.custom["enroll_id"].rsplit("-", 1)[0] == cut.custom["source_cut"].rsplit("-", 1)[0]
        )
        assert cut.custom["enroll"].load_audio().shape[1] > 0
        if cut.custom["event"] == "speaker":
            assert cut.custom["interferer"] != speaker
    # only clean utterances are targets: the noisy corpus cuts (index 3) never are
    assert not any(c.custom["source_cut"].endswith("-3") for c in cuts)


def test_test_split_fills_every_snr_band_and_uses_both_test_splits(built):
    cfg, _ = built
    cuts = list(CutSet.from_file(Path(cfg.out_dir) / "cuts_test.jsonl.gz"))
    bands = [snr_band(c.custom["snr_db"]) for c in cuts]
    assert {b: bands.count(b) for b in set(bands)} == {b: len(cuts) // 4 for b in
                                                       ("[-5,0)", "[0,5)", "[5,10)", "[10,15]")}  # fmt: skip
    assert {c.custom["source_cut"].split("-")[0] for c in cuts} == {"test_seen", "test_novel"}
    # background classes are not tied to bands
    pairs = {(c.custom["event"], snr_band(c.custom["snr_db"])) for c in cuts}
    assert len({e for e, _ in pairs if e != "speaker"}) >= 3
    assert all(len({b for e2, b in pairs if e2 == e}) >= 2 for e, _ in pairs)


def test_complete_build_is_skipped_and_arguments_are_checked(built, caplog):
    cfg, counts = built
    stamp = (Path(cfg.out_dir) / "cuts_train.jsonl.gz").stat().st_mtime_ns
    assert make_mixtures(cfg) == counts
    assert (Path(cfg.out_dir) / "cuts_train.jsonl.gz").stat().st_mtime_ns == stamp
    with pytest.raises(ConfigError, match="unknown splits"):
        MixtureConfig("a", "b", per_utterance={"valid": 1})
    with pytest.raises(ConfigError, match="snr_min_db"):
        MixtureConfig("a", "b", snr_min_db=5, snr_max_db=0)
    with pytest.raises(FileNotFoundError, match="cuts_train"):
        make_mixtures(MixtureConfig(str(Path(cfg.out_dir) / "nope"), str(Path(cfg.out_dir) / "x")))


def test_snr_bands():
    assert [snr_band(x) for x in (-5.0, -0.1, 0.0, 9.99, 10.0, 15.0)] == [
        "[-5,0)", "[-5,0)", "[0,5)", "[5,10)", "[10,15]", "[10,15]"]  # fmt: skip
