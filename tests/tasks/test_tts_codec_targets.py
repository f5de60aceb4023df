"""The tts task with codec codes as targets: codes in the batch on the mel's frames, the latent
and code losses, the checks that tie a model to one codec, and synthesis through the codec's
decoder (speechkit.synthesize.CodecVocoder)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from speechkit import codec as codec_api
from speechkit.bin.codec import main as codec_main
from speechkit.bin.train import main as train_main
from speechkit.checkpoint import save_checkpoint
from speechkit.config import ConfigError, from_dict, read_yaml, to_dict
from speechkit.models.codec import Codec, CodecConfig, SpectralConfig
from speechkit.nn.quantize import RVQConfig
from speechkit.synthesize import TTS, CodecVocoder, load_tts, load_vocoder
from speechkit.tasks import get_task
from speechkit.tasks.base import TaskInputs
from speechkit.tasks.tts import codec_losses

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tts_cuts import write_tone_corpus  # noqa: E402

YAML = """
task: tts
mel: {sample_rate: 16000, n_fft: 1024, hop_length: 320, win_length: 1024, n_mels: 80}
model: {n_mels: 80, d_model: 32, n_heads: 2, encoder_layers: 1, decoder_layers: 1,
        ffn_channels: 48, predictor_channels: 32, aligner_channels: 16, dropout: 0.0}
data: {batch_size: 4}
codec: {model: CODEC}
optim: {lr: 0.003, warmup_steps: 0, scheduler: constant}
trainer: {max_epochs: 5, max_steps: 3, log_every_steps: 1, device: cpu, num_threads: 1,
          keep_checkpoints: 1, average_best: 1, amp: "off"}
"""


def _codec(seed: int, out):
    """A small spectral codec (hop 320, 4 codebooks of 64), k-means initialised on tones."""
    torch.manual_seed(seed)
    cfg = CodecConfig(
        backbone="spectral",
        rvq=RVQConfig(dim=16, num_quantizers=4, codebook_size=64, kmeans_iters=2),
        spectral=SpectralConfig(dim=32, enc_layers=1, dec_layers=1),
    )
    model = Codec(cfg).train()
    t = torch.arange(16000) / 16000
    model(torch.stack([0.3 * torch.sin(2 * math.pi * (150 + 30 * k) * t) for k in range(4)]))
    return codec_api.save(model.eval(), out, "test")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Four one-second gliding tones with texts (two speakers, two languages), vocab.json, a
    packed codec, the cuts encoded by ``speechkit codec encode --cuts``, and the config."""
    root = write_tone_corpus(tmp_path_factory.mktemp("tts_codec"))
    codec = _codec(0, root / "codec")
    argv = ["encode", "--model", str(codec), "--cuts", str(root / "cuts.jsonl.gz"),
            "--out", str(root / "coded")]  # fmt: skip
    assert codec_main(argv) == 0
    (root / "tts.yaml").write_text(YAML.replace("CODEC", str(codec)))
    return root


@pytest.fixture(scope="module")
def trained(setup, tmp_path_factory):
    """A training directory of the tts task with codec targets (3 updates)."""
    out = tmp_path_factory.mktemp("tts_codec_exp") / "exp"
    argv = ["--config", str(setup / "tts.yaml"), "--tokenizer", str(setup),
            "--train-cuts", str(setup / "coded" / "cuts.jsonl.gz"), "--out", str(out)]  # fmt: skip
    assert train_main(argv) == 0
    return out


def make_task(root, **overrides):
    cls = get_task("tts")
    raw = read_yaml(root / "tts.yaml")
    for section, values in overrides.items():
        raw[section] = {**raw.get(section, {}), **values}
    return cls(from_dict(cls.config_class, raw), TaskInputs(tokenizer=str(root)))


def first_batch(task, root):
    cuts = task.load_cuts([root / "coded" / "cuts.jsonl.gz"], True)
    loader, _ = task.build_dataloader(cuts, False, 0)
    return next(iter(loader))


def test_the_task_takes_its_settings_from_the_codec(setup):
    task = make_task(setup)
    cfg = task.cfg
    assert cfg.model.codec_dim == 16 and cfg.data.codes and cfg.codec.n_q == 4
    assert len(cfg.codec.sha256) == 64
    assert make_task(setup, codec={"n_q": 2}).cfg.codec.n_q == 2


def test_codes_sit_on_the_mel_frames(setup):
    task = make_task(setup)
    batch = first_batch(task, setup)
    # 16000 samples: the codec has ceil(16000 / 320) = 50 frames, the mel 51 (it centres one
    # frame past the last sample); every row keeps the 50 both have.
    assert batch["codes"].shape == (4, 4, 50) and batch["codes"].dtype == torch.int64
    assert batch["mel"].shape == (4, 80, 50) and batch["mel_lens"].tolist() == [50] * 4
    assert batch["pitch"].shape == (4, 50)
    codec = codec_api.load(setup / "codec")
    wave, _ = sf.read(setup / "w2.flac", dtype="float32")
    assert torch.equal(batch["codes"][2], codec.encode(wave)[0])


def test_latent_and_code_losses(tmp_path):
    torch.manual_seed(0)
    rvq = codec_api.load(_codec(1, tmp_path / "c")).model.quantizer
    codes = torch.randint(0, 64, (2, 4, 7))
    lens = torch.tensor([7, 5])
    exact = rvq.decode(codes)
    right = codec_losses(exact, codes, lens, rvq)
    assert right["latent"].item() < 1e-6
    # one codebook: the exact latent is that code's vector, the nearest code is the right one
    one = codec_losses(rvq.decode(codes[:, :1]), codes[:, :1], lens, rvq)
    assert one["latent"].item() < 1e-6 and one["code_acc"].item() == 1.0
    wrong = codec_losses(exact + torch.randn_like(exact), codes, lens, rvq)
    assert wrong["latent"] > 0.5 and wrong["codes"] > right["codes"]
    # frames past a row's length do not count
    spoilt = exact.clone()
    spoilt[1, :, 5:] += 100.0
    assert codec_losses(spoilt, codes, lens, rvq)["latent"].item() < 1e-6


def test_training_steps_lower_the_latent_and_code_losses(setup):
    torch.manual_seed(0)
    task = make_task(setup)
    batch = first_batch(task, setup)
    model = task.build_model()
    spec = task.configure_optimizers(model, 100)[0]
    first = None
    for _ in range(15):
        out = task.training_step(model, batch, "model")
        spec.optimizer.zero_grad()
        out["loss"].backward()
        spec.optimizer.step()
        first = first or {k: v.item() for k, v in out.items()}
    assert {"mel", "latent", "codes", "code_acc"} <= set(out)
    assert out["latent"].item() < 0.8 * first["latent"]
    assert out["codes"].item() < first["codes"]


def test_bad_settings_and_cuts_without_codes(setup):
    with pytest.raises(ConfigError, match="rate and hop"):
        make_task(setup, mel={"hop_length": 256})
    with pytest.raises(ConfigError, match="is not the codec's latent width"):
        make_task(setup, model={"codec_dim": 8})
    with pytest.raises(ConfigError, match="codec has 4 codebooks"):
        make_task(setup, codec={"n_q": 5})
    with pytest.raises(ConfigError, match="not the codec this run trained on"):
        make_task(setup, codec={"sha256": "0" * 64})
    with pytest.raises(ConfigError, match="data.codes needs codec.model"):
        make_task(setup, codec={"model": ""}, data={"codes": True})
    task = make_task(setup)
    plain = task.load_cuts([setup / "cuts.jsonl.gz"], True)  # not encoded
    loader, _ = task.build_dataloader(plain, False, 0)
    assert next(iter(loader)) is None and task.dataset.skipped["no codec codes"] == 4


def test_train_then_synthesise_through_the_codec(setup, trained, tmp_path):
    out = trained
    tts = load_tts(out, setup / "codec")
    assert isinstance(tts.vocoder, CodecVocoder) and tts.vocoder.n_q == 4
    syn = tts.acoustic("Hello there. Good morning?", speaker="spk1", language="eng")
    assert syn.latent.shape[0] == 16 and syn.latent.shape[1] == syn.mel.shape[1]
    codes = tts.vocoder.codes(syn.latent)
    assert codes.shape == (1, 4, syn.latent.shape[1])
    wave, sr = tts.synthesize("Hello there.", "spk0", "eng")
    frames = tts.chunk_features("Hello there.", "spk0", "eng").shape[1]
    assert sr == 16000 and len(wave) == frames * 320 and np.isfinite(wave).all()
    # the codec's decoder without the quantiser, and fewer codebooks, decode too
    raw = CodecVocoder(codec_api.load(setup / "codec"), n_q=2, quantize=False)
    assert raw.vocode(syn.latent).shape == (syn.latent.shape[1] * 320,)
    # the same codec as a training directory (codec-task checkpoint) is the same vocoder
    weights = torch.load(setup / "codec" / "model.pt", weights_only=True)
    state = {f"generator.{k}": v for k, v in weights.items()}
    (tmp_path / "codec_run").mkdir()
    config = {"task": "codec", "model": to_dict(codec_api.load(setup / "codec").cfg)}
    save_checkpoint({"model": state, "config": config}, tmp_path / "codec_run" / "model_avg.pt")
    from_run, mel = load_vocoder(tmp_path / "codec_run")
    assert mel is None and from_run.fingerprint == tts.vocoder.fingerprint
    assert TTS(tts.acoustic, from_run).vocoder.n_q == 4
    # another codec (other codebooks) is refused, and so is a mel-only model
    other, _ = load_vocoder(_codec(7, tmp_path / "other"))
    with pytest.raises(ValueError, match="codes of another codec"):
        TTS(tts.acoustic, other)
    mel_only = load_tts(out, setup / "codec").acoustic
    mel_only.codec = None
    with pytest.raises(ValueError, match="predicts log-mel only"):
        TTS(mel_only, other)


def test_tts_synthesize_cli_through_the_codec(setup, trained, tmp_path, capsys):
    from speechkit.bin.tts_synthesize import main as synth_main

    out = trained
    base = ["--model", str(out / "model_avg.pt"), "--cuts", str(setup / "cuts.jsonl.gz")]
    for extra, detail in ((["--codec-n-q", "2"], "2 codebooks"), (["--codec-raw"], "as predicted")):
        synth = tmp_path / f"synth{len(extra)}"
        argv = [*base, "--vocoder", str(setup / "codec"), "--out", str(synth), *extra]
        assert synth_main(argv) == 0
        speed = json.loads((synth / "speed.json").read_text())
        assert speed["utterances"] == 4 and detail in speed["vocoder_detail"]
        assert len(list((synth / "wav").glob("*.wav"))) == 4
    with pytest.raises(SystemExit) as e:
        synth_main([*base, "--out", str(tmp_path / "gl"), "--codec-raw"])
    assert e.value.code == 2 and "need a codec" in capsys.readouterr().err


def test_synthesize_cli_speaks_through_the_codec_and_will_not_pack_it(
    setup, trained, tmp_path, capsys
):
    from speechkit.bin.synthesize import main as cli

    out = trained
    wav = tmp_path / "hello.wav"
    argv = ["--model", str(out), "--vocoder", str(setup / "codec"), "--speaker", "spk0",
            "--language", "eng", "Hello there.", "-o", str(wav)]  # fmt: skip
    assert cli(argv) == 0
    wave, sr = sf.read(wav)
    assert sr == 16000 and len(wave) > 0 and len(wave) % 320 == 0
    assert cli(["--vocoder", str(setup / "codec"), "--pack", str(tmp_path / "p")]) == 2
    assert "speechkit codec pack" in capsys.readouterr().err
