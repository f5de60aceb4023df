"""The tts task: vocabulary from --tokenizer, batches from cuts, a training step that lowers the
loss, and the checkpoint that AcousticModel synthesises from."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from speechkit.bin.train import main as train_main
from speechkit.config import ConfigError, from_dict, read_yaml
from speechkit.tasks import get_task
from speechkit.tasks.base import TaskInputs
from speechkit.tts.acoustic import AcousticModel
from speechkit.tts.mel import griffin_lim
from speechkit.tts.text import TextError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tts_cuts import write_tone_corpus  # noqa: E402

YAML = """
task: tts
model: {n_mels: 80, d_model: 32, n_heads: 2, encoder_layers: 1, decoder_layers: 1,
        ffn_channels: 48, predictor_channels: 32, aligner_channels: 16, dropout: 0.0}
data: {batch_size: 4}
optim: {lr: 0.003, warmup_steps: 0, scheduler: constant}
trainer: {max_epochs: 5, max_steps: 3, log_every_steps: 1, device: cpu, num_threads: 1,
          keep_checkpoints: 1, average_best: 1, amp: "off"}
"""


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Four cuts of gliding tones with texts, two speakers, two languages, and vocab.json."""
    root = write_tone_corpus(tmp_path_factory.mktemp("tts_task"))
    (root / "tts.yaml").write_text(YAML)
    return root


def make_task(root):
    cls = get_task("tts")
    cfg = from_dict(cls.config_class, read_yaml(root / "tts.yaml"))
    return cls(cfg, TaskInputs(tokenizer=str(root)))


def test_batch_layout(setup):
    task = make_task(setup)
    loader, _ = task.build_dataloader(task.load_cuts([setup / "cuts.jsonl.gz"], True), False, 0)
    batch = next(iter(loader))
    assert batch["mel"].shape[:2] == (4, 80) and batch["mel"].shape[2] == int(
        batch["mel_lens"].max()
    )
    assert batch["mel_lens"].tolist() == [16000 // 256 + 1] * 4
    assert batch["phonemes"].shape == (4, int(batch["phoneme_lens"].max()))
    assert batch["speakers"].tolist() == [0, 1, 0, 1] and batch["languages"].tolist() == [
        1,
        1,
        0,
        0,
    ]
    # A gliding tone: voiced where it sounds, pitch rising (octaves re 120 Hz).
    voiced, pitch = batch["voiced"][0], batch["pitch"][0]
    assert voiced[10:55].all() and not voiced[:4].any()
    assert pitch[50] > pitch[15] > 0


def test_training_steps_lower_the_loss(setup):
    torch.manual_seed(0)
    task = make_task(setup)
    loader, _ = task.build_dataloader(task.load_cuts([setup / "cuts.jsonl.gz"], True), False, 0)
    batch = next(iter(loader))
    model = task.build_model()
    spec = task.configure_optimizers(model, 100)[0]
    losses = []
    for _ in range(12):
        out = task.training_step(model, batch, "model")
        spec.optimizer.zero_grad()
        out["loss"].backward()
        spec.optimizer.step()
        losses.append(out["loss"].detach().item())
    assert losses[-1] < 0.7 * losses[0], losses
    assert {"mel", "duration", "pitch", "energy", "forward_sum", "bin"} <= set(out)


def test_vocabulary_is_required(setup):
    cls = get_task("tts")
    cfg = from_dict(cls.config_class, read_yaml(setup / "tts.yaml"))
    with pytest.raises(ConfigError, match="--tokenizer"):
        cls(cfg, TaskInputs())


def test_train_then_synthesise(setup, tmp_path):
    out = tmp_path / "exp"
    argv = ["--config", str(setup / "tts.yaml"), "--tokenizer", str(setup),
            "--train-cuts", str(setup / "cuts.jsonl.gz"), "--out", str(out)]  # fmt: skip
    assert train_main(argv) == 0
    am = AcousticModel.load(out / "model_avg.pt")
    assert am.speakers == ["spk0", "spk1"]
    text = " ".join(["Hello there."] * 30)
    syn = am(text, speaker="spk1", language="eng")
    assert len(syn.phonemes) == 30 and syn.mel.shape[0] == 80
    assert syn.mel.shape[1] == syn.pitch.shape[0] >= sum(int(d.sum()) for d in syn.durations)
    wave = griffin_lim(syn.mel[:, :40], am.mel, n_iter=4)
    assert wave.shape == (1, 39 * 256) and torch.isfinite(wave).all()
    with pytest.raises(ValueError, match="unknown speaker 'nobody'"):
        am("Hello.", speaker="nobody", language="eng")
    with pytest.raises(ValueError, match="unknown language 'fra'"):
        am("Bonjour.", speaker="spk0", language="fra")
    with pytest.raises(TextError, match="nothing to say"):
        am("  ", speaker="spk0", language="eng")
    with pytest.raises(TextError, match="not in the model's vocabulary"):
        am("Zwölf Brötchen, bitte.", speaker="spk0", language="deu")
