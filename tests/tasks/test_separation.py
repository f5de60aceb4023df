"""The separation and tagger tasks through ``speechkit.bin.train``: the tagger trains on clip
labels, anchors are mined with it, and the separator trains a few steps in both arms; the batch
layout and the permutation-invariant loss."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest
import torch
from lhotse import CutSet

sys.path.insert(0, str(Path(__file__).parents[1] / "data"))
from mixture_fakes import make_corpus  # noqa: E402

from speechkit.bin.mine_anchors import main as mine  # noqa: E402
from speechkit.bin.train import main as train  # noqa: E402
from speechkit.config import ConfigError  # noqa: E402
from speechkit.data.mixtures import MixtureConfig, make_mixtures  # noqa: E402
from speechkit.separate import load_trained  # noqa: E402
from speechkit.tasks.separation import (  # noqa: E402
    SeparationData,
    SeparationDataConfig,
    neg_si_sdr,
)

pytest.importorskip("torchmetrics", reason="the separation extra is not installed")
TRAINER = ("trainer: {max_steps: 3, max_epochs: 5, valid_every_steps: 3, log_every_steps: 1, "
           "device: cpu, num_threads: 1, amp: 'off', average_best: 1}\n")  # fmt: skip
SEP = ("task: separation\nmodel: {channels: 16, hidden: 24, query_dim: 8, dilations: [1, 2], "
       "stacks: 1}\ndata: {arm: %s, max_duration: 8.0, segment_seconds: 1.0, "
       "query_weights: {class: 1.0}}\n" + TRAINER)  # fmt: skip
TAGGER = ("task: tagger\nmodel: {n_mels: 32, channels: [4, 8], dim: 16, context_layers: 1}\n"
          "data: {max_duration: 10.0}\n" + TRAINER)  # fmt: skip


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("septask")
    corpus = make_corpus(root / "corpus")
    make_mixtures(MixtureConfig(str(corpus), str(root / "mix"), per_utterance={"train": 2, "dev": 1},
                                speaker_share=0.3))  # fmt: skip
    for name, text in (("sup", SEP % "supervised"), ("weak", SEP % "weak"), ("tagger", TAGGER)):
        (root / f"{name}.yaml").write_text(text)
    return root


def _valid_rows(out: Path) -> list[dict]:
    with open(out / "valid_log.csv") as f:
        return list(csv.DictReader(f))


def test_tagger_anchors_and_both_arms_train_through_the_cli(data):
    corpus = data / "corpus"
    assert train(["--config", str(data / "tagger.yaml"), "--train-cuts",
                  str(corpus / "cuts_train.jsonl.gz"), "--dev-cuts", str(corpus / "cuts_dev.jsonl.gz"),
                  "--out", str(data / "tagger")]) == 0  # fmt: skip
    assert "valid_event_acc" in _valid_rows(data / "tagger")[0]
    anchors = data / "anchors" / "cuts_train.jsonl.gz"  # a directory mine-anchors makes
    assert mine(["--tagger", str(data / "tagger"), "--cuts", str(corpus / "cuts_train.jsonl.gz"),
                 "--out", str(anchors), "--window-s", "0.5"]) == 0  # fmt: skip
    mined = CutSet.from_file(anchors)
    # one anchor per clip label: 12 clips of speech, 3 of them also music
    classes = sorted(c.custom["anchor_class"] for c in mined)
    assert classes == ["music"] * 3 + ["speech"] * 12
    assert all(c.duration <= 0.5 + 1e-6 for c in mined)

    mix = data / "mix"
    for arm, cuts in (("sup", mix / "cuts_train.jsonl.gz"), ("weak", anchors)):
        out = data / f"sep_{arm}"
        assert train(["--config", str(data / f"{arm}.yaml"), "--train-cuts", str(cuts),
                      "--dev-cuts", str(mix / "cuts_dev.jsonl.gz"), "--out", str(out)]) == 0  # fmt: skip
        row = _valid_rows(out)[-1]
        assert row["step"] == "3" and float(row["valid_sisdri"]) == pytest.approx(
            float(row["valid_sisdri"]))  # a number  # fmt: skip
        model = load_trained(out, "separator")
        assert model.cfg.channels == 16
    with pytest.raises(ConfigError, match="are anchors; use data.arm weak"):
        train(["--config", str(data / "sup.yaml"), "--train-cuts", str(anchors),
               "--out", str(data / "bad")])  # fmt: skip


def test_batch_layout_and_permutation_invariant_class_query(data):
    cuts = list(CutSet.from_file(data / "mix" / "cuts_train.jsonl.gz"))
    two_talkers = [c for c in cuts if c.custom["event"] == "speaker"][:1]
    backgrounds = [c for c in cuts if c.custom["event"] != "speaker"][:2]
    cfg = SeparationDataConfig(query_weights={"class": 1.0}, segment_seconds=0, background_prob=0)
    ds = SeparationData(cfg, ["speech", "noise", "babble", "beeps", "music"], train=True)
    batch = ds[backgrounds + two_talkers]
    b, s = batch["mix"].shape
    assert b == 3 and batch["target"].shape == batch["alt"].shape == (3, s)
    assert batch["lengths"].max() == s
    assert batch["kind"].tolist() == [0, 0, 0]  # class queries only (weights)
    # validation asks for the enrolled speaker in a two-talker mixture
    dev = SeparationData(cfg, ["speech", "noise", "babble", "beeps", "music"], train=False)
    assert dev[two_talkers]["kind"].tolist() == [2]
    assert batch["has_alt"].tolist() == [False, False, True]
    # the two-talker row: target and alt are the two talkers, adding up to the mixture
    n = int(batch["lengths"][2])
    torch.testing.assert_close(batch["target"][2, :n] + batch["alt"][2, :n], batch["mix"][2, :n],
                               atol=1e-4, rtol=0)  # fmt: skip
    # the loss takes the better talker: an estimate equal to the alt source scores as perfect
    loss = neg_si_sdr(batch["alt"], batch["target"], batch["alt"], batch["has_alt"])
    assert loss[2] < -60 and loss[0] > -60


def test_bad_data_configs():
    with pytest.raises(ConfigError, match="query_weights"):
        SeparationDataConfig(query_weights={"image": 1.0})
    with pytest.raises(ConfigError, match="background_prob"):
        SeparationDataConfig(background_prob=2.0)


def test_init_continues_from_a_trained_separator(data):
    mix = data / "mix"
    args = ["--config", str(data / "sup.yaml"), "--train-cuts", str(mix / "cuts_train.jsonl.gz"),
            "--dev-cuts", str(mix / "cuts_dev.jsonl.gz")]  # fmt: skip
    assert train([*args, "--out", str(data / "init_a"), "--set", "trainer.seed=1"]) == 0
    # a near-zero learning rate: what --init loaded is what comes out
    assert train([*args, "--out", str(data / "init_b"), "--init", str(data / "init_a"),
                  "--set", "optim.lr=1e-12", "trainer.seed=2"]) == 0  # fmt: skip
    assert train([*args, "--out", str(data / "init_c"), "--set", "optim.lr=1e-12",
                  "trainer.seed=2"]) == 0  # fmt: skip
    a, b, c = (load_trained(data / f"init_{x}", "separator").state_dict() for x in "abc")
    for name in a:
        torch.testing.assert_close(b[name], a[name], atol=1e-6, rtol=0)
    assert any(not torch.allclose(c[n], a[n], atol=1e-4) for n in a)


def test_weak_arm_mixes_speech_anchors_with_speech_free_clips_where_there_are_some(data):
    """A speech anchor's partner must not hold speech: with speech-free background clips in the
    pool, the partner comes from them, never from a (speech + music) clip of the corpus."""
    from speechkit.data.anchors import anchor_cuts
    from speechkit.data.background_clips import BackgroundClipConfig, make_background_clips

    make_background_clips(BackgroundClipConfig(str(data / "corpus"), str(data / "bg"),
                                               classes=["noise"], per_class=3,
                                               seconds=(1.0, 1.5)))  # fmt: skip
    corpus = list(CutSet.from_file(data / "corpus" / "cuts_train.jsonl.gz"))
    clips = list(CutSet.from_file(data / "bg" / "cuts_train.jsonl.gz"))
    anchors = []
    for cut in corpus:  # clean clips: a speech anchor; music clips: speech and music anchors
        tags = ["speech"] + ([cut.custom["event"]] if cut.custom["event"] != "clean" else [])
        anchors += anchor_cuts(cut, [(t, 0, 0.5) for t in tags], 0.02, 0.8)
    noise = [a for c in clips for a in anchor_cuts(c, [("noise", 0, 0.9)], 0.02, 0.8)]
    classes = ["speech", "noise", "babble", "beeps", "music"]
    cfg = SeparationDataConfig(arm="weak", query_weights={"class": 1.0}, background_prob=0)
    speech = [a for a in anchors if a.custom["anchor_class"] == "speech"]
    with_clips = SeparationData(cfg, classes, train=True, pool=anchors + noise)
    partners = {e for _ in range(4) for e in with_clips[speech]["events"]}
    assert partners == {"noise"}
    # without them the corpus's music anchors (speech underneath) are the only partners left
    without = SeparationData(cfg, classes, train=True, pool=anchors)
    assert {e for e in without[speech]["events"]} == {"music"}
    # a background clip's anchor (no supervision, no speaker) is a target too
    batch = with_clips[noise]
    assert batch["class_id"].tolist() == [classes.index("noise")] * len(noise)
