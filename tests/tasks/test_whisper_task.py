"""The whisper task: fine-tuning through ``speechkit train`` end to end on a tiny random Whisper model and a few synthetic cuts: the
batch format, the front end's parity with the decoder's, the loss going down, checkpoints that
load and pack, and clear errors for a bad --init and bad configs."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest
import torch
from lhotse import CutSet

from speechkit.bin import train
from speechkit.config import ConfigError, load_config
from speechkit.data.dataset import DataConfig, S2TDataset
from speechkit.data.features import FeatureConfig, WhisperFrontEnd
from speechkit.inference import Transcriber
from speechkit.models.whisper import WhisperModel
from speechkit.pretrained import load_pretrained, pack
from speechkit.tasks.whisper import WhisperDataConfig, WhisperTaskConfig, check_tasks
from speechkit.text.whisper import WhisperTokenizer

tokenizers = pytest.importorskip("tokenizers")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from whisper_fakes import tone_cuts, write_tiny_whisper  # noqa: E402

YAML = """
task: whisper
whisper: {pad_to_window: false}
data:
  sampler: {max_duration: 20.0, max_cut_duration: 20.0, bucketing: false, shuffle: false}
  asr_languages: [eng, deu]
  st_directions: [deu-eng]
optim: {lr: 0.01, warmup_steps: 1, scheduler: constant, weight_decay: 0.0}
trainer: {max_steps: 8, max_epochs: 100, log_every_steps: 1, valid_every_steps: 4,
          device: cpu, keep_checkpoints: 2, average_best: 2}
"""


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    """A packed directory holding a tiny random multilingual Whisper model."""
    return write_tiny_whisper(tmp_path_factory.mktemp("init") / "tiny-whisper")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("cuts")
    tone_cuts(root, 4).to_file(root / "train.jsonl.gz")
    tone_cuts(root, 2, offset=10).to_file(root / "dev.jsonl.gz")
    (root / "ft.yaml").write_text(YAML)
    return root


def _data_cfg(st_directions=(), **kw) -> DataConfig:
    features = FeatureConfig(kind="whisper", n_mels=80, normalize="none")
    return DataConfig(features=features, asr_languages=["eng", "deu"],
                      st_directions=list(st_directions), **kw)  # fmt: skip


def test_batch_has_whisper_targets_and_shared_encoder_rows(packed, corpus):
    tok = load_pretrained(packed).tokenizer
    cuts = CutSet.from_file(corpus / "train.jsonl.gz").subset(first=2)  # one eng, one deu
    data = _data_cfg(st_directions=["deu-eng"])
    batch = _dataset(tok, data, pad_to_window=True)[cuts]
    assert batch["feats"].shape == (2, 3000, 80) and batch["feat_lens"].tolist() == [3000, 3000]
    assert batch["tasks"] == ["asr", "asr", "st_eng"]
    assert batch["target_utt"].tolist() == [0, 1, 1]
    sot, nots = tok.sos_id, tok.notimestamps_id
    en, de = tok.lang_id("eng"), tok.lang_id("deu")
    expected = [
        [sot, en, tok.transcribe_id, nots] + tok.encode("number one"),
        [sot, de, tok.transcribe_id, nots] + tok.encode("Zahl zwei"),
        [sot, de, tok.translate_id, nots] + tok.encode("number two"),
    ]
    for row, seq in enumerate(expected):
        n = len(seq)
        assert batch["ys_in"][row, :n].tolist() == seq
        assert batch["ys_out"][row, : n - 1].tolist() == seq[1:]
        assert batch["ys_out"][row, n - 1].item() == tok.eos_id
        assert (batch["ys_out"][row, n:] == -100).all()
    unpadded = _dataset(tok, data, pad_to_window=False)[cuts]
    assert unpadded["feat_lens"].tolist() == [c.num_samples // 160 for c in cuts]
    assert unpadded["feats"].shape[1] == max(unpadded["feat_lens"].tolist())


def test_front_end_matches_the_transcriber(packed, corpus):
    """Training features equal what speechkit transcribe feeds the encoder."""
    pre = load_pretrained(packed)
    cut = CutSet.from_file(corpus / "train.jsonl.gz")[0]
    batch = _dataset(pre.tokenizer, _data_cfg(), pad_to_window=True)[CutSet.from_cuts([cut])]
    wave = cut.load_audio()[0]
    window = Transcriber(pre).features(wave)[:-1]  # the decoder's content frames
    n = window.shape[0]
    torch.testing.assert_close(batch["feats"][0, :n], window, atol=1e-5, rtol=1e-5)
    assert (batch["feats"][0, n:] == 0).all()


def test_finetune_lowers_the_loss_and_writes_loadable_checkpoints(packed, corpus, tmp_path):
    out = tmp_path / "exp"
    argv = ["--config", str(corpus / "ft.yaml"), "--init", str(packed),
            "--train-cuts", str(corpus / "train.jsonl.gz"),
            "--dev-cuts", str(corpus / "dev.jsonl.gz"), "--out", str(out)]  # fmt: skip
    assert train.main(argv) == 0
    with open(out / "train_log.csv") as f:
        losses = [float(r["loss"]) for r in csv.DictReader(f)]
    assert len(losses) == 8  # one batch per epoch: the same 4 cuts at every step
    assert losses[-1] < losses[0] - 1.0 and max(losses[1:]) < losses[0], losses
    ckpts = sorted((out / "checkpoints").glob("step-*.pt"))
    assert len(ckpts) == 2 and ckpts[-1].name == "step-8.pt"  # keep_checkpoints: 2
    fine = load_pretrained(ckpts[-1])
    assert isinstance(fine.model, WhisperModel)
    assert isinstance(fine.tokenizer, WhisperTokenizer)
    assert fine.tasks == {"asr_languages": ["eng", "deu"], "st_directions": ["deu-eng"]}
    assert fine.features == load_pretrained(packed).features
    init = load_pretrained(packed).model.state_dict()
    key = "decoder.embed.weight"
    assert not torch.equal(fine.model.state_dict()[key], init[key])  # it did train
    repacked = load_pretrained(pack(out / "model_avg.pt", tmp_path / "packed"))
    assert repacked.model_type == "whisper"
    # A finished run is not trained again by --resume.
    assert train.main([*argv, "--resume"]) == 0
    assert sorted((out / "checkpoints").glob("step-*.pt")) == ckpts


def test_freeze_encoder_keeps_the_encoder(packed, corpus, tmp_path):
    out = tmp_path / "frozen"
    argv = ["--config", str(corpus / "ft.yaml"), "--init", str(packed),
            "--train-cuts", str(corpus / "train.jsonl.gz"), "--out", str(out),
            "--set", "whisper.freeze_encoder=true", "trainer.max_steps=2",
            "whisper.pad_to_window=true"]  # fmt: skip
    assert train.main(argv) == 0
    fine = load_pretrained(out / "model_avg.pt").model.state_dict()
    init = load_pretrained(packed).model.state_dict()
    assert all(torch.equal(fine[k], init[k]) for k in init if k.startswith("encoder."))
    assert not torch.equal(fine["decoder.embed.weight"], init["decoder.embed.weight"])


def test_bad_init_name_is_a_clear_error(corpus, tmp_path, capsys):
    argv = ["--config", str(corpus / "ft.yaml"), "--init", "whisper-nonexistent",
            "--train-cuts", str(corpus / "train.jsonl.gz"), "--out", str(tmp_path / "x")]  # fmt: skip
    with pytest.raises(SystemExit) as e:
        train.main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "--init 'whisper-nonexistent'" in err and "zoo model" in err


def test_config_rules(tmp_path):
    assert (
        load_config(
            WhisperTaskConfig, _write(tmp_path, "trainer: {max_steps: 5}")
        ).trainer.max_steps
        == 5
    )
    for text, match in (
        ("whisper: {freeze: true}", "unknown key 'whisper.freeze'"),
        ("data: {st_directions: [eng-deu]}", "translates only into English"),
        ("trainer: {max_steps: 0}", "max_steps must be > 0"),
        ("data: {features: {kind: fbank}}", "unknown key 'data.features'"),
        ("data: {asr_languages: []}", "both empty"),
    ):
        with pytest.raises(ConfigError, match=match):
            load_config(WhisperTaskConfig, _write(tmp_path, text))
    assert (
        WhisperTaskConfig().data.data_config(FeatureConfig(kind="whisper")).specaug.enabled is False
    )


def test_english_only_task_check(packed):
    pre = load_pretrained(packed)
    pre.tokenizer.multilingual = False  # as an English-only (.en) model's tokenizer
    cfg = WhisperTaskConfig(data=WhisperDataConfig(asr_languages=["eng", "deu"]))
    with pytest.raises(ConfigError, match="English-only .* cannot train"):
        check_tasks(cfg, pre, "x.yaml")


def _dataset(tok, data: DataConfig, pad_to_window: bool) -> S2TDataset:
    """The whisper task's dataset: S2TDataset with Whisper's 30 s front end."""
    return S2TDataset(
        tok, data, train=False, frontend=WhisperFrontEnd(data.features, pad_to_window)
    )


def _write(tmp_path, text: str):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path
