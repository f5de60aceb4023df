"""The codec task through ``speechkit.bin.train``: two optimisers, the distillation losses from a
speechkit S2T teacher, checkpoints that pack into a codec, and the ablation without a teacher."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import soundfile as sf
import torch
from lhotse import CutSet, Recording, SupervisionSegment

from speechkit import codec as codec_api
from speechkit.bin.decode import main as decode_main
from speechkit.bin.train import main as train_main
from speechkit.config import ConfigError, from_dict, read_yaml
from speechkit.data.features import FeatureConfig
from speechkit.models import build_model
from speechkit.models.s2t import S2TConfig
from speechkit.pretrained import save_pretrained
from speechkit.tasks import get_task
from speechkit.tasks.base import TaskInputs
from speechkit.text.sentencepiece import SentencePieceTokenizer, TokenizerConfig

YAML = """
task: codec
model:
  channels: 4
  res_dilations: [1]
  rvq: {dim: 16, num_quantizers: 4, codebook_size: 64, kmeans_iters: 2}
disc: {windows: [512, 256], channels: 4, dilations: [1]}
data: {segment_seconds: 0.4, batch_size: 3}
distill: {enabled: true, teacher: "", weight: 1.0, text_weight: 0.5}
disc_start: 1
trainer: {max_epochs: 5, max_steps: 4, log_every_steps: 1, device: cpu, num_threads: 1,
          keep_checkpoints: 2, average_best: 1, amp: "off"}
"""


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Tone cuts, a codec YAML and a packed tiny S2T teacher (random weights: the test checks
    the plumbing, not what a trained teacher teaches)."""
    root = tmp_path_factory.mktemp("codec_task")
    cuts = []
    for i in range(6):
        t = np.arange(8000) / 16000
        path = root / f"tone{i}.flac"
        sf.write(path, (0.3 * np.sin(2 * math.pi * (150 + 50 * i) * t)).astype(np.float32), 16000)
        cut = Recording.from_file(path, recording_id=f"r{i}").to_cut()
        cut.supervisions = [
            SupervisionSegment(f"s{i}", f"r{i}", 0.0, cut.duration, text="hello", language="eng")
        ]
        cuts.append(cut)
    CutSet.from_cuts(cuts).to_file(root / "cuts.jsonl.gz")
    (root / "codec.yaml").write_text(YAML)
    tok = SentencePieceTokenizer.train(
        ["hello world", "good morning"] * 5, None, TokenizerConfig(vocab_size=20), ["eng"], ["asr"]
    )
    cfg = S2TConfig(
        n_mels=16,
        vocab_size=tok.vocab_size,
        d_model=32,
        n_heads=2,
        encoder_type="transformer",
        encoder_layers=1,
        encoder_ffn=48,
        cgmlp_units=48,
        decoder_layers=1,
        decoder_ffn=48,
        max_target_positions=32,
    )
    torch.manual_seed(0)
    save_pretrained(
        build_model(cfg).eval(), tok, FeatureConfig(n_mels=16), root / "teacher", model_cfg=cfg
    )
    return root


def train(setup, out, *overrides: str) -> int:
    cuts = str(setup / "cuts.jsonl.gz")
    argv = [
        "--config",
        str(setup / "codec.yaml"),
        "--train-cuts",
        cuts,
        "--dev-cuts",
        cuts,
        "--out",
        str(out),
        "--set",
        f"distill.teacher={setup / 'teacher'}",
        *overrides,
    ]
    return train_main(argv)


def log_rows(path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def test_codec_trains_with_distillation_and_packs(setup):
    out = setup / "exp"
    assert train(setup, out) == 0
    rows = log_rows(out / "train_log.csv")
    assert len(rows) == 4
    for column in (
        "gen_loss",
        "gen_stft",
        "gen_mel",
        "gen_commit",
        "gen_distill",
        "gen_distill_text",
        "disc_loss",
        "disc_real_score",
    ):
        assert column in rows[0], column
    # the discriminator starts at update 1; the generator's adversarial loss after its first step
    assert rows[0]["disc_loss"] == "" and rows[1]["disc_loss"] != ""
    assert rows[0]["gen_adv"] == "" and rows[2]["gen_adv"] != ""
    valid = log_rows(out / "valid_log.csv")
    assert {"valid_loss", "valid_mel", "valid_sisdr", "valid_distill"} <= set(valid[0])
    ckpt = torch.load(out / "model_avg.pt", weights_only=True)
    assert any(k.startswith("distill_proj.") for k in ckpt["model"])
    packed = codec_api.pack(out / "model_avg.pt", setup / "packed")
    codec = codec_api.load(packed)
    assert not any(k.startswith(("disc", "distill")) for k in codec.model.state_dict())
    assert codec.encode(np.zeros(8000, np.float32), kbps=0.5).shape == (1, 1, 25)


def test_ablation_without_a_teacher(setup):
    out = setup / "exp_nodistill"
    assert train(setup, out, "distill.enabled=false", "trainer.max_steps=2") == 0
    rows = log_rows(out / "train_log.csv")
    assert "gen_distill" not in rows[0] and "gen_mel" in rows[0]


def test_apnet_spectrum_losses_train_the_spectral_decoder(setup):
    out = setup / "exp_apnet"
    spectral = (
        "model.backbone=spectral",
        "model.spectral.dim=16",
        "model.spectral.enc_layers=1",
        "model.spectral.dec_layers=1",
        "distill.enabled=false",
        "disc_start=100",
        "trainer.max_steps=3",
    )
    assert train(setup, out, *spectral, "loss.amp=0.5", "loss.phase=0.3") == 0
    rows = log_rows(out / "train_log.csv")
    amp = [float(r["gen_amp"]) for r in rows]
    phase = [float(r["gen_phase"]) for r in rows]
    assert all(a > 0 for a in amp) and all(0 < p < 3 * math.pi for p in phase)
    # the weighted terms are part of what the generator minimises
    for r, a, p in zip(rows, amp, phase):
        rest = float(r["gen_stft"]) + float(r["gen_mel"]) + float(r["gen_commit"])
        assert float(r["gen_loss"]) == pytest.approx(rest + 0.5 * a + 0.3 * p, rel=1e-4)
    valid = {"valid_amp", "valid_phase", "valid_consistency", "valid_real_imag"}
    assert valid <= set(log_rows(out / "valid_log.csv")[0])
    # without the weights the run is the old one: no spectrum losses in its training log
    assert train(setup, setup / "exp_noapnet", *spectral, "trainer.max_steps=1") == 0
    assert "gen_amp" not in log_rows(setup / "exp_noapnet" / "train_log.csv")[0]
    # the STFT-spectrum losses, on their own, are what the generator adds to its loss
    out = setup / "exp_consistency"
    stft = ("loss.consistency=0.7", "loss.real_imag=0.2")
    assert train(setup, out, *spectral, *stft) == 0
    for r in log_rows(out / "train_log.csv"):
        c, ri = float(r["gen_consistency"]), float(r["gen_real_imag"])
        assert c > 0 and ri > 0  # amp and phase are logged too, with weight 0
        rest = float(r["gen_stft"]) + float(r["gen_mel"]) + float(r["gen_commit"])
        assert float(r["gen_loss"]) == pytest.approx(rest + 0.7 * c + 0.2 * ri, rel=1e-4)


def test_spectrum_losses_need_the_spectral_backbone(setup):
    data = read_yaml(setup / "codec.yaml")
    with pytest.raises(ConfigError, match="backbone: spectral"):
        from_dict(get_task("codec").config_class, dict(data, loss={"phase": 0.3}))
    with pytest.raises(ConfigError, match="loss.consistency act on predicted spectra"):
        from_dict(get_task("codec").config_class, dict(data, loss={"consistency": 1.0}))


def test_distillation_needs_a_teacher_and_the_teacher_must_be_s2t(setup):
    data = read_yaml(setup / "codec.yaml")
    cfg = from_dict(get_task("codec").config_class, data)
    with pytest.raises(ConfigError, match="distill.teacher"):
        get_task("codec")(cfg, TaskInputs())
    with pytest.raises(ConfigError, match="--init is not supported"):
        get_task("codec")(cfg, TaskInputs(init="x"))
    bad = dict(data, data={"segment_seconds": 0.01})
    with pytest.raises(ConfigError, match="longest discriminator window"):
        from_dict(get_task("codec").config_class, bad)


S2T_CODES_YAML = """
task: s2t
model: {n_mels: 80, d_model: 32, n_heads: 2, encoder_type: transformer, encoder_layers: 1,
        encoder_ffn: 48, cgmlp_units: 48, decoder_layers: 1, decoder_ffn: 48,
        max_target_positions: 32, codec_codebooks: 2, codec_codebook_size: 64}
tokenizer: {vocab_size: 20}
data:
  features: {kind: codec, hop_length: 320, codec: "", codec_codebooks: 2}
  specaug: {enabled: false}
  sampler: {max_duration: 2.0, num_buckets: 1, bucketing: false, max_cut_duration: 2.0}
  asr_languages: [eng]
  st_directions: []
  max_target_tokens: 20
optim: {lr: 0.002, warmup_steps: 1}
trainer: {max_epochs: 1, max_steps: 2, log_every_steps: 1, device: cpu, num_threads: 1,
          average_best: 1, amp: "off"}
"""


def test_an_s2t_model_trains_on_codec_codes(setup):
    """Item 4 of the issue: the S2T encoder reads the codes of a (frozen) codec."""
    from speechkit.bench.codec import s2t_recognizer
    from speechkit.models.codec import Codec
    from speechkit.pretrained import load_pretrained
    from speechkit.tasks.s2t import codec_front_end
    from speechkit.train.config import ExperimentConfig

    codec_cfg = from_dict(get_task("codec").config_class, read_yaml(setup / "codec.yaml")).model
    torch.manual_seed(0)
    packed = codec_api.save(Codec(codec_cfg), setup / "codes_codec")
    (setup / "s2t_codes.yaml").write_text(S2T_CODES_YAML)
    SentencePieceTokenizer.train(
        ["hello"] * 10, setup / "codes_tok", TokenizerConfig(vocab_size=20), ["eng"], ["asr"]
    )
    cuts, out = str(setup / "cuts.jsonl.gz"), setup / "exp_codes"
    argv = [
        "--config",
        str(setup / "s2t_codes.yaml"),
        "--train-cuts",
        cuts,
        "--dev-cuts",
        cuts,
        "--tokenizer",
        str(setup / "codes_tok"),
        "--out",
        str(out),
        "--set",
        f"data.features.codec={packed}",
    ]
    assert train_main(argv) == 0
    rows = log_rows(out / "train_log.csv")
    assert len(rows) == 2 and float(rows[-1]["loss"]) > 0
    model = load_pretrained(out / "model_avg.pt")
    assert model.features.kind == "codec" and model.config.codec_codebooks == 2
    hyps = s2t_recognizer(str(out / "model_avg.pt"))([np.zeros(8000, np.float32)])
    assert len(hyps) == 1 and isinstance(hyps[0], str)
    # the one decode path reads codes too: the packed S2T model names its codec
    dec = setup / "decode_codes"
    args = ["--model", str(out / "model_avg.pt"), "--cuts", cuts, "--out", str(dec),
            "--tasks", "asr", "--beam-size", "1", "--max-len", "4"]  # fmt: skip
    assert decode_main(args) == 0
    assert len((dec / "asr_eng" / "hyp.txt").read_text().splitlines()) == 6

    data = read_yaml(setup / "s2t_codes.yaml")
    with pytest.raises(ConfigError, match="codec_codebooks"):
        from_dict(ExperimentConfig, {**data, "model": {**data["model"], "codec_codebooks": 1}})
    cfg = from_dict(ExperimentConfig, data)
    with pytest.raises(ConfigError, match="needs data.features.codec"):
        codec_front_end(cfg.data.features, cfg.model)


def test_a_resumed_run_reproduces_the_uninterrupted_one(setup):
    """Codebooks (EMA buffers), the discriminator counter, quantiser dropout draws and crops all
    resume: 2 + 2 updates give the weights of 4."""
    full, split = setup / "exp_full", setup / "exp_split"
    assert train(setup, full, "trainer.max_steps=4") == 0
    assert train(setup, split, "trainer.max_steps=2") == 0
    assert train(setup, split, "trainer.max_steps=4", "--resume") == 0
    ref = torch.load(full / "checkpoints" / "step-4.pt", weights_only=True)["model"]
    got = torch.load(split / "checkpoints" / "step-4.pt", weights_only=True)["model"]
    assert int(got["disc_updates"]) == 3  # the discriminator stepped on updates 1, 2, 3
    for name, value in ref.items():
        torch.testing.assert_close(got[name], value, rtol=0, atol=0, msg=name)
