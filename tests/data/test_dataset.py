"""Tests for speechkit/data/dataset.py: batch layout, skipping, prompts, the dataloader."""

import dataclasses

import numpy as np
import pytest
import soundfile as sf
import torch
from lhotse import CutSet, MonoCut, Recording, SupervisionSegment

from speechkit.config import ConfigError, from_dict
from speechkit.data import DataConfig, S2TDataset, build_dataloader, expand_tasks
from speechkit.data.dataset import CTC_PAD_ID, IGNORE_ID
from speechkit.data.features import FeatureConfig, num_frames
from speechkit.data.sampler import SamplerConfig
from speechkit.data.specaug import SpecAugConfig
from speechkit.text.sentencepiece import SentencePieceTokenizer, TokenizerConfig

TEXTS = {
    "eng": "the small cat sleeps",
    "deu": "die kleine katze schläft",
    "spa": "el gato pequeño duerme",
}


@pytest.fixture(scope="module")
def tok():
    texts = list(TEXTS.values()) * 5 + ["a longer sentence about the weather today"] * 5
    return SentencePieceTokenizer.train(
        texts,
        None,
        TokenizerConfig(vocab_size=60),
        ["eng", "deu", "spa"],
        ["asr", "st_eng", "st_deu"],
    )


def _make_cut(tmp_path, name, lang, text, seconds=0.5, sr=16000, channels=1, **custom):
    """A cut over a sine-tone file; ``custom`` goes to cut.custom (snr_db, event)."""
    path = tmp_path / f"{name}.flac"
    n = int(seconds * sr)
    tone = 0.2 * np.sin(2 * np.pi * 300 * np.arange(n) / sr).astype(np.float32)
    sf.write(path, np.stack([tone] * channels, axis=1) if channels > 1 else tone, sr)
    rec = Recording.from_file(path, recording_id=name)
    translations = {k: v for k, v in TEXTS.items() if k != lang}
    sup = SupervisionSegment(
        f"{name}-sup",
        name,
        0.0,
        rec.duration,
        text=text,
        language=lang,
        speaker=f"{lang}-spk",
        custom={"translations": translations},
    )
    cut_custom = {"event": "clean", "snr_db": None, "sentence_id": "s1", **custom}
    return MonoCut(name, 0.0, rec.duration, 0, recording=rec, supervisions=[sup], custom=cut_custom)


def _cfg(**kw):
    defaults = dict(
        features=FeatureConfig(n_mels=40),
        specaug=SpecAugConfig(enabled=False),
        sampler=SamplerConfig(max_duration=10.0, max_cut_duration=5.0, shuffle=False),
        asr_languages=["eng", "deu"],
        st_directions=["eng-deu", "deu-eng"],
    )
    return DataConfig(**{**defaults, **kw})


def test_batch_layout(tok, tmp_path):
    cuts = CutSet.from_cuts(
        [
            _make_cut(tmp_path, "a", "eng", TEXTS["eng"], seconds=0.5),
            _make_cut(tmp_path, "b", "deu", TEXTS["deu"], seconds=0.8, event="music", snr_db=5.0),
        ]
    )
    expanded = expand_tasks(cuts, ["eng", "deu"], ["eng-deu"])
    batch = S2TDataset(tok, _cfg(), train=False)[expanded]
    assert batch["cut_ids"] == ["a__asr", "a__st_deu", "b__asr"]
    b = len(batch["cut_ids"])

    assert batch["feats"].dtype == torch.float32 and batch["feats"].shape[2] == 40
    assert batch["feat_lens"].dtype == torch.int64
    assert batch["feat_lens"].tolist() == [num_frames(8000, FeatureConfig())] * 2 + [81]
    assert batch["feats"].shape[:2] == (b, 81) and batch["feats"][0, 51:].abs().sum() == 0

    ys_in, ys_out = batch["ys_in"], batch["ys_out"]
    assert ys_in.shape == ys_out.shape and ys_in.dtype == ys_out.dtype == torch.int64
    targets = [TEXTS["eng"], TEXTS["deu"], TEXTS["deu"]]
    for i, (lang, task) in enumerate([("eng", "asr"), ("eng", "st_deu"), ("deu", "asr")]):
        valid = ys_out[i] != IGNORE_ID
        n = int(valid.sum())
        assert valid[:n].all() and not valid[n:].any()  # ignore only on the padding tail
        assert ys_in[i, :4].tolist() == tok.sot_sequence(lang, task)
        assert torch.equal(ys_out[i, : n - 1], ys_in[i, 1:n])  # shifted left ...
        assert ys_out[i, n - 1] == tok.eos_id  # ... then <eos>
        assert (ys_in[i, n:] == tok.eos_id).all()  # padded with eos
        assert tok.decode(ys_out[i, 3 : n - 1].tolist()) == targets[i]
        assert batch["tasks"][i] == task
    assert batch["target_utt"].tolist() == [0, 1, 2]  # expanded cuts: one target each

    ctc, ctc_lens = batch["ctc_targets"], batch["ctc_target_lens"]
    for i, text in enumerate([TEXTS["eng"], TEXTS["eng"], TEXTS["deu"]]):
        n = int(ctc_lens[i])
        assert tok.decode(ctc[i, :n].tolist()) == text  # spoken language, also for ST
        assert (ctc[i, n:] == CTC_PAD_ID).all()

    ctx = batch["context"]
    assert ctx["language"] == ["eng", "eng", "deu"] and ctx["speaker"][2] == "deu-spk"
    assert ctx["event"] == ["clean", "clean", "music"]
    assert ctx["snr_db"].dtype == torch.float32
    assert torch.isnan(ctx["snr_db"][:2]).all() and ctx["snr_db"][2] == 5.0


def test_shared_multitask_batch_has_one_row_per_cut_and_a_target_per_task(tok, tmp_path):
    cuts = CutSet.from_cuts(
        [
            _make_cut(tmp_path, "a", "eng", TEXTS["eng"], seconds=0.5),
            _make_cut(tmp_path, "b", "deu", TEXTS["deu"], seconds=0.8),
        ]
    )
    cfg = _cfg(st_directions=["eng-deu"])  # "b" (German) has no configured ST direction
    batch = S2TDataset(tok, cfg, train=False)[cuts]
    assert batch["cut_ids"] == ["a", "b"] and batch["feats"].shape[0] == 2
    assert batch["tasks"] == ["asr", "st_deu", "asr"]
    assert batch["target_utt"].tolist() == [0, 0, 1]
    assert batch["ys_in"].shape[0] == 3 and batch["ctc_targets"].shape[0] == 2
    for row, (lang, task, text) in enumerate(
        [
            ("eng", "asr", TEXTS["eng"]),
            ("eng", "st_deu", TEXTS["deu"]),
            ("deu", "asr", TEXTS["deu"]),
        ]
    ):
        n = int((batch["ys_out"][row] != IGNORE_ID).sum())
        assert batch["ys_in"][row, :4].tolist() == tok.sot_sequence(lang, task)
        assert tok.decode(batch["ys_out"][row, 3 : n - 1].tolist()) == text


def test_st_source_prompt_puts_the_transcript_before_translations_only(tok, tmp_path):
    cuts = CutSet.from_cuts([_make_cut(tmp_path, "a", "eng", TEXTS["eng"], seconds=0.5)])
    cfg = _cfg(st_directions=["eng-deu"], st_source_prompt=1.0)
    batch = S2TDataset(tok, cfg, train=True)[cuts]
    assert batch["tasks"] == ["asr", "st_deu"]
    transcript = tok.encode(TEXTS["eng"])
    asr_in, st_in = batch["ys_in"].tolist()
    assert asr_in[:4] == tok.sot_sequence("eng", "asr")
    p = 1 + len(transcript)
    assert st_in[:p] == [tok.sop_id, *transcript]
    assert st_in[p : p + 4] == tok.sot_sequence("eng", "st_deu")
    st_out = batch["ys_out"][1]
    # Nothing of the prompt is a target; the prefix after <sos> and the translation are.
    assert (st_out[:p] == IGNORE_ID).all()
    assert st_out[p : p + 3].tolist() == tok.sot_sequence("eng", "st_deu")[1:]
    n = int((st_out != IGNORE_ID).sum())
    assert tok.decode(st_out[p + 3 : p + 3 + n - 1].tolist()) == TEXTS["deu"]
    # Evaluation batches are never prompted.
    evaluation = S2TDataset(tok, cfg, train=False)[cuts]
    assert evaluation["ys_in"][1, :4].tolist() == tok.sot_sequence("eng", "st_deu")


def test_prompts_must_fit_the_decoder_positions():
    from speechkit.train.config import ExperimentConfig

    model = {"max_target_positions": 65}
    data = {"max_target_tokens": 40, "max_prompt_tokens": 20}
    assert from_dict(ExperimentConfig, {"model": model, "data": data})  # no prompt: 45 <= 65
    with pytest.raises(ConfigError, match="21-token prompt"):
        from_dict(ExperimentConfig, {"model": model, "data": {**data, "st_source_prompt": 0.5}})
    ok = {**data, "max_prompt_tokens": 19, "prompt_prob": 0.5}
    assert from_dict(ExperimentConfig, {"model": model, "data": ok})


def test_bad_cuts_are_skipped_and_counted(tok, tmp_path, caplog):
    good = _make_cut(tmp_path, "good", "eng", TEXTS["eng"])
    stereo = _make_cut(tmp_path, "stereo8k", "deu", TEXTS["deu"], seconds=1.0, sr=8000, channels=2)
    empty = _make_cut(tmp_path, "empty", "eng", "   ")
    long = _make_cut(tmp_path, "long", "eng", "the small cat sleeps " * 10)
    corrupt = _make_cut(tmp_path, "corrupt", "eng", TEXTS["eng"])
    (tmp_path / "corrupt.flac").write_bytes(b"garbage" * 100)
    dataset = S2TDataset(tok, _cfg(max_target_tokens=30), train=False)
    caplog.set_level("WARNING")
    batch = dataset[CutSet.from_cuts([good, stereo, empty, long, corrupt])]

    assert batch["cut_ids"] == ["good", "stereo8k"]
    assert batch["feat_lens"][1] == num_frames(16000, FeatureConfig())  # resampled to 16 kHz
    assert dataset.skipped == {"audio": 1, "empty_text": 1, "too_long": 1}
    for cut_id in ("corrupt", "empty", "long"):
        assert f"skipping cut {cut_id}" in caplog.text

    assert dataset[CutSet.from_cuts([empty, corrupt])] is None
    assert dataset.skipped["empty_text"] == 2


def _sup(cut, **custom):
    """``cut`` with ``custom`` added to its supervision's custom (text_prev, translations_prev)."""
    sup = cut.supervisions[0]
    sup.custom = {**(sup.custom or {}), **custom}
    return cut


def test_prompt_is_the_preceding_segments_text(tok, tmp_path):
    prev = "die kleine katze"
    cut = _sup(_make_cut(tmp_path, "p", "deu", TEXTS["deu"]), text_prev=prev)
    plain = _make_cut(tmp_path, "q", "eng", TEXTS["eng"])
    dataset = S2TDataset(tok, _cfg(prompt_prob=1.0, st_directions=[]), train=True)
    batch = dataset[CutSet.from_cuts([cut, plain])]
    ys_in, ys_out = batch["ys_in"], batch["ys_out"]

    k = 1 + len(tok.encode(prev))  # <sop> + prompt pieces
    assert ys_in[0, 0] == tok.sop_id
    assert tok.decode(ys_in[0, 1:k].tolist()) == prev
    assert ys_in[0, k : k + 4].tolist() == tok.sot_sequence("deu", "asr")
    assert (ys_out[0, :k] == IGNORE_ID).all()  # prompt pieces and <sos> are not predicted
    assert ys_out[0, k] == tok.lang_id("deu")
    n = int((ys_out[0] != IGNORE_ID).sum()) + k
    assert (
        tok.decode(ys_out[0, k : n - 1].tolist()) == TEXTS["deu"] and ys_out[0, n - 1] == tok.eos_id
    )
    # The English cut has no preceding segment: no prompt.
    assert batch["target_utt"].tolist() == [0, 1] and ys_in[1, 0] == tok.sos_id

    # Evaluation never prompts.
    evaluation = S2TDataset(tok, _cfg(prompt_prob=1.0), train=False)[CutSet.from_cuts([cut])]
    assert evaluation["ys_in"][0, 0] == tok.sos_id


def test_prompt_is_not_another_utterance_of_the_speaker(tok, tmp_path):
    """Two recordings of one speaker in a batch: neither is the other's preceding segment."""
    a = _make_cut(tmp_path, "a", "eng", TEXTS["eng"])
    b = _make_cut(tmp_path, "b", "eng", "a longer sentence about the weather today")
    assert a.supervisions[0].speaker == b.supervisions[0].speaker
    batch = S2TDataset(tok, _cfg(prompt_prob=1.0), train=True)[CutSet.from_cuts([a, b])]
    assert (batch["ys_in"][:, 0] == tok.sos_id).all()


def test_translation_targets_are_prompted_with_the_preceding_translation(tok, tmp_path):
    cut = _sup(
        _make_cut(tmp_path, "p", "eng", TEXTS["eng"]),
        text_prev="the cat",
        translations_prev={"deu": "die katze"},
    )
    cfg = _cfg(prompt_prob=1.0, st_directions=["eng-deu"])
    batch = S2TDataset(tok, cfg, train=True)[CutSet.from_cuts([cut])]
    assert batch["tasks"] == ["asr", "st_deu"]
    for row, prev in enumerate(["the cat", "die katze"]):
        k = 1 + len(tok.encode(prev))
        assert batch["ys_in"][row, 0] == tok.sop_id
        assert tok.decode(batch["ys_in"][row, 1:k].tolist()) == prev


def test_specaug_only_in_training(tok, tmp_path):
    cuts = CutSet.from_cuts([_make_cut(tmp_path, "a", "eng", TEXTS["eng"], seconds=1.0)])
    cfg = DataConfig(features=FeatureConfig(n_mels=40), specaug=SpecAugConfig(num_time_masks=20))
    eval1 = S2TDataset(tok, cfg, train=False)[cuts]["feats"]
    eval2 = S2TDataset(tok, cfg, train=False)[cuts]["feats"]
    torch.manual_seed(0)
    train = S2TDataset(tok, cfg, train=True)[cuts]["feats"]
    assert torch.equal(eval1, eval2) and not torch.equal(eval1, train)


def _loader_batches(tok, cuts, cfg, train, epoch=0):
    loader, sampler = build_dataloader(CutSet.from_cuts(cuts), tok, cfg, train=train, seed=1)
    sampler.set_epoch(epoch)
    return list(loader)


def test_speed_perturbed_batches_keep_to_max_duration(tok, tmp_path):
    """The sampler budgets perturbed durations: two 1 s cuts fit 2 s, but not at speed 0.9."""
    cuts = [_make_cut(tmp_path, f"c{i}", "eng", TEXTS["eng"], seconds=1.0) for i in range(4)]
    cfg = _cfg(speed_perturb=[0.9])
    cfg.sampler = SamplerConfig(max_duration=2.0, max_cut_duration=2.0, bucketing=False)
    hop, sr = cfg.features.hop_length, cfg.features.sample_rate
    batches = _loader_batches(tok, cuts, cfg, train=True)
    assert sorted(i for b in batches for i in b["cut_ids"]) == [c.id for c in cuts]
    for batch in batches:
        # Every cut lasts round(16000 / 0.9) samples, and its frames say so ...
        frames = num_frames(round(16000 / 0.9), cfg.features)
        assert batch["feat_lens"].tolist() == [frames] * len(batch["cut_ids"])
        # ... so no batch holds more audio than the budget.
        assert int(batch["feat_lens"].sum() - len(batch["feat_lens"])) * hop / sr <= 2.0
    # Unperturbed, two cuts share each batch.
    plain = _loader_batches(tok, cuts, dataclasses.replace(cfg, speed_perturb=[]), train=True)
    assert [len(b["cut_ids"]) for b in plain] == [2, 2]


def test_speed_perturb_only_in_training(tok, tmp_path):
    cuts = [_make_cut(tmp_path, "a", "eng", TEXTS["eng"], seconds=1.0)]
    cfg = _cfg(speed_perturb=[0.8])
    (train,) = _loader_batches(tok, cuts, cfg, train=True)
    (evaluation,) = _loader_batches(tok, cuts, cfg, train=False)
    assert int(evaluation["feat_lens"][0]) == num_frames(16000, cfg.features)
    assert int(train["feat_lens"][0]) == num_frames(20000, cfg.features)


def _plain_sampling(**kw):
    sampler = SamplerConfig(max_duration=10.0, max_cut_duration=5.0, bucketing=False, shuffle=False)
    return _cfg(sampler=sampler, **kw)


def _two_segment_cut(tmp_path, sr=16000):
    """A 2 s recording, one cut over all of it, two supervisions with different texts."""
    path = tmp_path / "long.flac"
    t = np.arange(2 * sr) / sr
    sf.write(path, (0.2 * np.sin(2 * np.pi * 300 * t)).astype(np.float32), sr)
    rec = Recording.from_file(path, recording_id="long")
    texts = [("seg1", 0.1, 0.8, TEXTS["eng"]), ("seg2", 1.0, 0.9, "a longer sentence")]
    sups = [
        SupervisionSegment(sid, "long", start, dur, text=text, language="eng", speaker="spk")
        for sid, start, dur, text in texts
    ]
    return MonoCut("long", 0.0, rec.duration, 0, recording=rec, supervisions=sups), texts


def test_each_segment_of_a_cut_is_trained_on_its_own_audio_and_text(tok, tmp_path):
    cut, texts = _two_segment_cut(tmp_path)
    (batch,) = _loader_batches(tok, [cut], _plain_sampling(), train=False)
    assert batch["cut_ids"] == ["seg1", "seg2"]
    for i, (_, _, seconds, text) in enumerate(texts):
        assert int(batch["feat_lens"][i]) == num_frames(round(seconds * 16000), FeatureConfig())
        n = int(batch["ctc_target_lens"][i])
        assert tok.decode(batch["ctc_targets"][i, :n].tolist()) == text


def test_a_segment_is_prompted_with_the_preceding_segment_of_its_recording(tok, tmp_path):
    cut, texts = _two_segment_cut(tmp_path)
    (batch,) = _loader_batches(tok, [cut], _plain_sampling(prompt_prob=1.0), train=True)
    assert batch["cut_ids"] == ["seg1", "seg2"]
    assert batch["ys_in"][0, 0] == tok.sos_id  # the first segment has no predecessor
    k = 1 + len(tok.encode(texts[0][3]))
    assert batch["ys_in"][1, 0] == tok.sop_id
    assert tok.decode(batch["ys_in"][1, 1:k].tolist()) == texts[0][3]


def test_dataset_refuses_a_cut_with_several_supervisions(tok, tmp_path, caplog):
    cut, _ = _two_segment_cut(tmp_path)
    dataset = S2TDataset(tok, _cfg(), train=True)
    caplog.set_level("WARNING")
    assert dataset[CutSet.from_cuts([cut])] is None
    assert dataset.skipped == {"several_supervisions": 1}
    assert "split_supervisions" in caplog.text


def test_build_dataloader_skips_empty_batches(tok, tmp_path):
    cuts = [_make_cut(tmp_path, f"c{i}", "eng", TEXTS["eng"], seconds=1.0) for i in range(4)]
    cuts.append(_make_cut(tmp_path, "bad", "eng", ""))
    cfg = _cfg()
    cfg.sampler = SamplerConfig(
        max_duration=1.0, max_cut_duration=1.0, bucketing=False, shuffle=False
    )
    loader, sampler = build_dataloader(CutSet.from_cuts(cuts), tok, cfg, train=True)
    batches = list(loader)
    assert [b["cut_ids"] for b in batches] == [["c0"], ["c1"], ["c2"], ["c3"]]
    assert hasattr(sampler, "state_dict") and loader.dataset.skipped == {"empty_text": 1}


def test_data_config_validation():
    with pytest.raises(ConfigError, match="st_directions"):
        from_dict(DataConfig, {"st_directions": ["engdeu"]})
    with pytest.raises(ConfigError, match="prompt_prob"):
        from_dict(DataConfig, {"prompt_prob": 2.0})
    with pytest.raises(ConfigError, match="speed_perturb"):
        from_dict(DataConfig, {"speed_perturb": [0.9, 3.0]})
    cfg = from_dict(DataConfig, {"features": {"n_mels": 128}, "sampler": {"max_duration": 50}})
    assert cfg.features.n_mels == 128 and len(cfg.st_directions) == 6


def _weak(cut, text):
    """The cut with a weak transcript attached (speechkit/data/weak.py's field)."""
    sup = dataclasses.replace(
        cut.supervisions[0],
        custom={**cut.supervisions[0].custom, "weak_text": text, "weak_source": "test"},
    )
    return dataclasses.replace(cut, supervisions=[sup])


def _decoded_targets(tok, batch):
    out = []
    for row in range(batch["ys_in"].shape[0]):
        n = int((batch["ys_out"][row] != IGNORE_ID).sum())
        out.append((batch["tasks"][row], tok.decode(batch["ys_out"][row, 3 : n - 1].tolist())))
    return out


def test_weak_text_field_trains_weak_cuts_on_their_weak_transcript_only(tok, tmp_path):
    weak_text = "the small dog sleeps"
    weak = _weak(_make_cut(tmp_path, "w", "eng", TEXTS["eng"]), weak_text)
    gold = _make_cut(tmp_path, "g", "eng", TEXTS["eng"], seconds=0.6)
    cuts = CutSet.from_cuts([weak, gold])
    batch = S2TDataset(tok, _cfg(text_field="weak_text"), train=True)[cuts]
    rows = dict(zip(batch["cut_ids"], range(2)))
    targets = _decoded_targets(tok, batch)
    by_cut = [
        (batch["cut_ids"][batch["target_utt"][i]], task, text)
        for i, (task, text) in enumerate(targets)
    ]
    # The weak cut: its weak transcript, and no translation (weak speech has none).
    assert [(t, x) for c, t, x in by_cut if c == "w"] == [("asr", weak_text)]
    # The gold cut of the same manifest trains as usual: gold transcript and translation.
    assert [(t, x) for c, t, x in by_cut if c == "g"] == [
        ("asr", TEXTS["eng"]),
        ("st_deu", TEXTS["deu"]),
    ]
    n = int(batch["ctc_target_lens"][rows["w"]])
    assert tok.decode(batch["ctc_targets"][rows["w"], :n].tolist()) == weak_text


def test_gold_text_field_ignores_weak_transcripts(tok, tmp_path):
    cut = _weak(_make_cut(tmp_path, "w", "eng", TEXTS["eng"]), "the small dog sleeps")
    batch = S2TDataset(tok, _cfg(), train=False)[CutSet.from_cuts([cut])]
    assert _decoded_targets(tok, batch) == [("asr", TEXTS["eng"]), ("st_deu", TEXTS["deu"])]


def test_an_empty_weak_transcript_is_skipped_and_counted(tok, tmp_path, caplog):
    cut = _weak(_make_cut(tmp_path, "w", "eng", TEXTS["eng"]), "  ")
    ds = S2TDataset(tok, _cfg(text_field="weak_text"), train=True)
    assert ds[CutSet.from_cuts([cut])] is None
    assert ds.skipped == {"empty_weak_text": 1}
    assert "w" in caplog.text


def test_expanded_translation_of_a_weak_cut_is_skipped(tok, tmp_path):
    cut = _weak(_make_cut(tmp_path, "w", "eng", TEXTS["eng"]), "the small dog")
    expanded = expand_tasks(CutSet.from_cuts([cut]), ["eng"], ["eng-deu"])
    ds = S2TDataset(tok, _cfg(text_field="weak_text", multitask="expand"), train=True)
    batch = ds[expanded]
    assert batch["cut_ids"] == ["w__asr"] and ds.skipped == {"weak_no_translation": 1}


def test_text_field_is_checked():
    with pytest.raises(ConfigError, match="text_field"):
        from_dict(DataConfig, {"text_field": "captions"}, source="test")
