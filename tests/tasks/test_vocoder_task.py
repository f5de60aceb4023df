"""The vocoder task: config checks, APNet's phase losses, GAN steps, a run through the CLI."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import soundfile as sf
import torch
from lhotse import CutSet, Recording, SupervisionSegment

from speechkit.bin.train import main as train_main
from speechkit.config import ConfigError, from_dict, read_yaml
from speechkit.synthesize import load_vocoder, pack_vocoder
from speechkit.tasks import get_task
from speechkit.tasks.vocoder import VocoderTaskConfig

YAML = """
task: vocoder
model: {dim: 16, layers: 2}
disc: {windows: [1024, 256], channels: 4, dilations: [1]}
data: {segment_seconds: 0.128, batch_size: 3}
disc_start: 1
trainer: {max_epochs: 5, max_steps: 4, log_every_steps: 1, device: cpu, num_threads: 1,
          keep_checkpoints: 2, average_best: 1, amp: "off"}
"""


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("vocoder_task")
    cuts = []
    for i in range(6):
        t = np.arange(6000) / 16000
        path = root / f"tone{i}.flac"
        sf.write(path, (0.3 * np.sin(2 * math.pi * (150 + 50 * i) * t)).astype(np.float32), 16000)
        cut = Recording.from_file(path, recording_id=f"r{i}").to_cut()
        cut.supervisions = [SupervisionSegment(f"s{i}", f"r{i}", 0.0, cut.duration, text="hi")]
        cuts.append(cut)
    CutSet.from_cuts(cuts).to_file(root / "cuts.jsonl.gz")
    (root / "vocoder.yaml").write_text(YAML)
    return root


@pytest.fixture(autouse=True)
def one_thread():
    # tiny ops on a shared machine spend their time waiting for a second thread
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _task(root, **overrides):
    data = read_yaml(root / "vocoder.yaml", [f"{k}={v}" for k, v in overrides.items()])
    cls = get_task("vocoder")
    return cls(from_dict(cls.config_class, data, source="test"))


def test_mel_and_model_must_describe_the_same_frames():
    with pytest.raises(ConfigError, match="same frames"):
        from_dict(VocoderTaskConfig, {"model": {"hop": 128, "win": 512, "n_fft": 512}})
    with pytest.raises(ConfigError, match="shorter than"):
        from_dict(VocoderTaskConfig, {"data": {"segment_seconds": 0.01}})


def test_generator_and_discriminator_steps_change_the_loss(data):
    torch.manual_seed(0)
    task = _task(data)
    model = task.build_model()
    specs = {s.name: s for s in task.configure_optimizers(model, 10)}
    loader, _ = task.build_dataloader(task.load_cuts([data / "cuts.jsonl.gz"], True), True, 0)
    batch = next(iter(loader))
    assert batch["audio"].shape == (3, 2048)
    losses = []
    for _ in range(3):
        out = task.training_step(model, batch, "gen")
        assert {"mel", "stft", "amp", "phase"} <= out.keys()
        specs["gen"].optimizer.zero_grad()
        out["loss"].backward()
        specs["gen"].optimizer.step()
        losses.append(float(out["loss"].detach()))
        disc = task.training_step(model, batch, "disc")
        specs["disc"].optimizer.zero_grad()
        disc["loss"].backward()
        specs["disc"].optimizer.step()
    assert losses[-1] != losses[0]
    assert int(model.disc_updates) == 3
    out = task.training_step(model, batch, "gen")  # adversarial terms after the first disc step
    assert {"adv", "feat"} <= out.keys() and torch.isfinite(out["loss"])
    valid = task.validation_step(model, batch)
    assert valid["loss"] == valid["mel_dist"] and valid["weight"] == 3


def test_train_cli_writes_both_optimisers_logs_and_a_loadable_vocoder(data, tmp_path):
    out = tmp_path / "exp"
    cuts = str(data / "cuts.jsonl.gz")
    rc = train_main(
        ["--config", str(data / "vocoder.yaml"), "--train-cuts", cuts, "--dev-cuts", cuts,
         "--out", str(out)]
    )  # fmt: skip
    assert rc == 0
    rows = list(csv.DictReader(open(out / "train_log.csv")))
    assert "gen_loss" in rows[0] and "disc_loss" in rows[-1]
    assert rows[-1]["disc_loss"] != ""
    voc, mel = load_vocoder(out)  # the training directory's model_avg.pt
    assert mel.hop_length == voc.cfg.hop == 256
    packed = pack_vocoder(out / "model_avg.pt", tmp_path / "packed")
    voc2, _ = load_vocoder(packed)
    m = torch.randn(1, 80, 5)
    torch.testing.assert_close(voc(m), voc2(m))
    (packed / "config.yaml").write_text("model_type: codec\n")  # tampered with
    with pytest.raises(RuntimeError, match="sha256 does not match"):
        load_vocoder(packed)


def _with_stored_mels(data, root, offset: float, skip: set[str] = frozenset()):
    """The tone cuts, each with a stored "mel" (frames, bands): its own log-mel + ``offset``."""
    from lhotse.features.io import NumpyFilesWriter
    from lhotse.utils import fastcopy

    from speechkit.tts.mel import TTSMelConfig, mel_spectrogram

    done = []
    with NumpyFilesWriter(root / "mels") as writer:
        for cut in CutSet.from_file(data / "cuts.jsonl.gz"):
            if cut.id in skip:
                done.append(cut)
                continue
            mel = mel_spectrogram(torch.from_numpy(cut.load_audio()[0]), TTSMelConfig())[0]
            array = writer.store_array(cut.id, (mel.T + offset).numpy(), frame_shift=0.016,
                                       temporal_dim=0, start=cut.start)  # fmt: skip
            done.append(fastcopy(cut, custom={"gta_mel": array}))
    CutSet.from_cuts(done).to_file(root / "gta.jsonl.gz")
    return root / "gta.jsonl.gz"


def test_stored_mels_are_the_input_with_crops_on_frame_boundaries(data, tmp_path):
    torch.manual_seed(0)
    cuts_path = _with_stored_mels(data, tmp_path, offset=1.0, skip={"r5"})
    task = _task(data, input_mel_field="gta_mel")
    cuts = task.load_cuts([cuts_path], True)
    loader, _ = task.build_dataloader(cuts, True, 0)
    seen = 0
    for batch in loader:
        by_id = {c.id: c for c in cuts}
        for row, cut_id in enumerate(batch["cut_ids"]):
            wave = torch.from_numpy(by_id[cut_id].load_audio()[0])
            stored = torch.from_numpy(by_id[cut_id].load_custom("gta_mel")).T  # (M, T)
            # the row's frames are the stored ones from some frame k, and its audio starts at
            # sample k * hop
            mel = batch["mel"][row]
            assert mel.shape == (80, 2048 // 256 + 1)
            k = [j for j in range(stored.size(1) - 8) if torch.equal(stored[:, j : j + 9], mel)]
            assert k, "the crop's mel is not a run of the stored frames"
            torch.testing.assert_close(batch["audio"][row], wave[k[0] * 256 : k[0] * 256 + 2048])
            seen += 1
    assert seen == 5 and loader.dataset.skipped["no stored mel"] == 1
    # the stored mel, not the audio's own, is what the generator hears
    model = task.build_model()
    batch["mel"] = batch["mel"].clone()
    a = task.training_step(model, batch, "gen")["mel"]
    batch["mel"] += 2.0
    b = task.training_step(model, batch, "gen")["mel"]
    assert a != b
    assert torch.isfinite(task.validation_step(model, batch)["loss"])


def test_init_starts_from_a_trained_vocoder(data, tmp_path):
    from speechkit.tasks.base import TaskInputs

    cuts = str(data / "cuts.jsonl.gz")
    out = tmp_path / "exp"
    args = ["--config", str(data / "vocoder.yaml"), "--train-cuts", cuts, "--out", str(out)]
    assert train_main(args) == 0
    trained, _ = load_vocoder(out)
    cls = get_task("vocoder")
    cfg = from_dict(cls.config_class, read_yaml(data / "vocoder.yaml"), source="test")
    model = cls(cfg, TaskInputs(init=str(out))).build_model()
    for name, value in trained.state_dict().items():
        torch.testing.assert_close(model.generator.state_dict()[name], value)
    fresh = cls(cfg).build_model()
    assert any(
        not torch.equal(fresh.generator.state_dict()[n], v) for n, v in trained.state_dict().items()
    )
    other = from_dict(cls.config_class, {**read_yaml(data / "vocoder.yaml"),
                                         "mel": {"f_max": 7000.0}}, source="test")  # fmt: skip
    with pytest.raises(ConfigError, match="mel format"):
        cls(other, TaskInputs(init=str(out))).build_model()
    # the whole run through the CLI, fine-tuning on the stored mels
    gta = _with_stored_mels(data, tmp_path, offset=0.5)
    rc = train_main(
        ["--config", str(data / "vocoder.yaml"), "--train-cuts", str(gta), "--dev-cuts", str(gta),
         "--out", str(tmp_path / "ft"), "--init", str(out), "--set", "input_mel_field=gta_mel"]
    )  # fmt: skip
    assert rc == 0 and (tmp_path / "ft" / "model_avg.pt").is_file()
