"""End-to-end test of speechkit/data/phrasebook/prepare.py on a tiny build (a few dozen cuts)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import soundfile as sf

from speechkit.config import ConfigError
from speechkit.data.phrasebook.grammar import LANGUAGES, get_sentence, split_sentences
from speechkit.data.phrasebook.prepare import (
    SPLITS,
    PrepareConfig,
    is_complete,
    manifest_path,
    plan_corpus,
    prepare_phrasebook,
)

pytestmark = pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="espeak-ng not installed (tools/setup.sh)"
)
LANGS = ["eng", "fra"]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("phrasebook")
    cfg = PrepareConfig(out_dir=str(out), hours=0.015, seed=3, num_jobs=1, languages=LANGS)
    stats = prepare_phrasebook(cfg)
    return cfg, stats


def _cuts(cfg, split):
    from lhotse import CutSet

    return CutSet.from_file(manifest_path(cfg.out_dir, "cuts", split))


def test_manifests_load_and_carry_every_context_field(built):
    from lhotse import RecordingSet, SupervisionSet

    cfg, _ = built
    for split in SPLITS:
        cuts = _cuts(cfg, split)
        assert len(cuts) >= len(LANGS)
        assert len(RecordingSet.from_file(manifest_path(cfg.out_dir, "recordings", split))) == len(
            cuts
        )
        assert len(
            SupervisionSet.from_file(manifest_path(cfg.out_dir, "supervisions", split))
        ) == len(cuts)
        for cut in cuts:
            sup = cut.supervisions[0]
            assert sup.language in LANGS
            assert sup.speaker.startswith(sup.language + "-")
            sentence = get_sentence(cut.custom["sentence_id"])
            assert sup.text == sentence.texts[sup.language]
            translations = sup.custom["translations"]
            assert set(translations) == set(LANGUAGES) - {sup.language}
            assert all(translations[lang] == sentence.texts[lang] for lang in translations)
            assert cut.custom["event"] in ("clean", "noise", "babble", "beeps", "music")
            if cut.custom["event"] == "clean":
                assert cut.custom["snr_db"] is None
            else:
                assert cfg.snr_min_db - 0.01 <= cut.custom["snr_db"] <= cfg.snr_max_db + 0.01


def test_audio_is_16k_mono_loadable_and_matches_the_manifest(built):
    cfg, _ = built
    for cut in _cuts(cfg, "train").subset(first=6):
        audio = cut.load_audio()
        assert audio.shape == (1, cut.num_samples)
        info = sf.info(cut.recording.sources[0].source)
        assert info.samplerate == 16000 and info.channels == 1 and info.format == "FLAC"
        assert 0.3 < cut.duration < 6.0
        assert np.abs(audio).max() > 0.01


def test_splits_hold_out_speakers_and_novel_sentences(built):
    cfg, _ = built
    cuts = {split: list(_cuts(cfg, split)) for split in SPLITS}
    speakers = {s: {c.supervisions[0].speaker for c in cs} for s, cs in cuts.items()}
    sentences = {s: {c.custom["sentence_id"] for c in cs} for s, cs in cuts.items()}
    for test in ("test_seen", "test_novel", "dev"):
        assert not speakers["train"] & speakers[test]
    assert not sentences["train"] & sentences["test_novel"]
    assert not sentences["dev"] & sentences["test_novel"]
    assert sentences["test_seen"] <= sentences["train"]
    novel = {s.sentence_id for s in split_sentences(cfg.seed, cfg.novel_fraction)["novel"]}
    assert sentences["test_novel"] <= novel


def test_stats_and_languages_are_balanced(built):
    cfg, stats = built
    on_disk = json.loads(
        (manifest_path(cfg.out_dir, "cuts", "train").parent / "stats.json").read_text()
    )
    assert on_disk == stats
    for split in SPLITS:
        langs = stats[split]["languages"]
        assert set(langs) == set(LANGS) and max(langs.values()) - min(langs.values()) <= 1
        assert sum(stats[split]["events"].values()) == stats[split]["utterances"]


def test_second_run_skips_and_changed_args_rebuild(built, caplog):
    cfg, stats = built
    assert is_complete(cfg.out_dir, cfg)
    flac = next((manifest_path(cfg.out_dir, "cuts", "train").parent / "audio").rglob("*.flac"))
    mtime = flac.stat().st_mtime_ns
    with caplog.at_level("INFO"):
        assert prepare_phrasebook(cfg) == stats
    assert "skipping" in caplog.text
    assert flac.stat().st_mtime_ns == mtime
    other = PrepareConfig(cfg.out_dir, cfg.hours, seed=cfg.seed + 1, languages=LANGS)
    assert not is_complete(cfg.out_dir, other)


def test_interrupted_build_does_not_look_complete(tmp_path):
    cfg = PrepareConfig(out_dir=str(tmp_path), hours=0.001, num_jobs=1, languages=["deu"])
    prepare_phrasebook(cfg)
    assert is_complete(tmp_path, cfg)
    manifest_path(tmp_path, "cuts", "dev").unlink()  # as if killed while moving manifests in
    assert not is_complete(tmp_path, cfg)
    (tmp_path / "prepare_args.json").write_text("{trunc")
    assert not is_complete(tmp_path, cfg)


def test_plan_is_deterministic_and_config_is_checked():
    cfg = PrepareConfig(out_dir="unused", hours=0.01, seed=5, languages=["spa", "deu"])
    assert plan_corpus(cfg) == plan_corpus(cfg)
    with pytest.raises(ConfigError, match="languages"):
        PrepareConfig(out_dir="x", languages=["eng", "ita"])
    with pytest.raises(ConfigError, match="hours"):
        PrepareConfig(out_dir="x", hours=0)


def test_recorded_snr_is_the_planned_one(built):
    cfg, _ = built
    planned = {u.utt_id: u.snr_db for u in plan_corpus(cfg)}
    for split in SPLITS:
        for cut in _cuts(cfg, split):
            if planned[cut.id] is None:
                assert cut.custom["snr_db"] is None
            else:  # mixing rescales only jointly, so the achieved SNR equals the target
                assert cut.custom["snr_db"] == pytest.approx(planned[cut.id], abs=0.01)


def test_cli_builds_with_a_process_pool_and_rejects_bad_languages(tmp_path):
    from speechkit.bin.prepare_phrasebook import main

    out = tmp_path / "pb"
    args = [
        "--out",
        str(out),
        "--hours",
        "0.003",
        "--num-jobs",
        "2",
        "--languages",
        "deu,spa",
    ]
    assert main(args) == 0
    stats = json.loads((out / "stats.json").read_text())
    assert stats["num_jobs"] == 2
    assert sum(stats[s]["utterances"] for s in SPLITS) >= 2 * len(SPLITS)
    assert main(["--out", str(out), "--languages", "eng,xx"]) == 1


def test_language_weights_set_each_split_share_and_keep_every_voice_in_turn():
    from collections import Counter

    from speechkit.data.phrasebook.prepare import language_schedule

    assert language_schedule(["eng", "deu"], {}, 6) == ["eng", "deu"] * 3
    assert language_schedule(["eng", "deu", "fra"], {"eng": 2}, 8) == [
        "eng", "deu", "fra", "eng", "eng", "deu", "fra", "eng"
    ]  # fmt: skip
    cfg = PrepareConfig(out_dir="unused", hours=0.05, languages=["eng", "deu"],
                        language_weights={"eng": 3})  # fmt: skip
    plan = plan_corpus(cfg)
    for split in SPLITS:
        utts = [u for u in plan if u.split == split]
        langs = Counter(u.speaker.language for u in utts)
        assert abs(langs["eng"] - 3 * len(utts) / 4) <= 1, (split, langs)
        eng_voices = Counter(u.speaker.speaker_id for u in utts if u.speaker.language == "eng")
        assert max(eng_voices.values()) - min(eng_voices.values()) <= 1  # voices take turns
    assert cfg.build_args()["language_weights"] == {"eng": 3}
    with pytest.raises(ConfigError, match="language_weights"):
        PrepareConfig(out_dir="x", languages=["eng"], language_weights={"fra": 2})
    with pytest.raises(ConfigError, match="language_weights"):
        PrepareConfig(out_dir="x", languages=["eng"], language_weights={"eng": 0})


def test_cli_parses_language_weights_and_names_a_bad_item():
    from speechkit.bin.prepare_phrasebook import parse_weights

    assert parse_weights("eng=2, deu=1.5") == {"eng": 2.0, "deu": 1.5}
    assert parse_weights("") == {}
    for bad in ("eng", "eng=x"):
        with pytest.raises(ConfigError, match=bad):
            parse_weights(bad)


def test_a_tiny_weighted_build_still_has_every_language_in_every_split():
    cfg = PrepareConfig(out_dir="unused", hours=0.001, language_weights={"eng": 5})
    plan = plan_corpus(cfg)
    for split in SPLITS:
        assert {u.speaker.language for u in plan if u.split == split} == set(LANGUAGES), split
