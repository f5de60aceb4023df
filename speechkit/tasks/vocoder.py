"""The ``vocoder`` task: the frame-level TTS vocoder (``speechkit.models.vocoder``) as a GAN.

    speechkit train --config conf/tts/vocoder_cpu.yaml \\
        --train-cuts data/cuts_train.jsonl.gz --dev-cuts data/cuts_dev.jsonl.gz --out exp/vocoder

Each batch is a set of random audio crops (``speechkit.data.waves``: ``data.segment_seconds``,
16 kHz). Their log-mel (``speechkit.tts.mel``, the format the acoustic model predicts) is the
vocoder's input and the crops themselves are its targets. Two optimisers through the one
trainer (``speechkit/tasks/base.py``), with the discriminator and GAN losses of the codec task:

* ``gen`` (the ``Vocoder``): multi-scale mel L1 and multi-resolution STFT losses on the wave
  (``speechkit.nn.spectral_loss``); APNet's losses on the predicted spectra against the
  crop's own STFT at the vocoder's resolution: ``amp`` (mean squared error of log amplitudes)
  and ``phase`` (anti-wrapped instantaneous phase, group delay and phase time difference
  errors); hinge adversarial and feature-matching losses against the discriminator, from its
  first update on;
* ``disc`` (``speechkit.models.codec_disc.MultiScaleSTFTDiscriminator``): hinge loss on real
  against vocoded crops, from update ``disc_start`` on, every ``disc_every`` updates. It reuses
  the generator step's output of the same batch (detached).

Fine-tuning on an acoustic model's mels (HiFi-GAN's recipe against the mismatch between the
sharp mels of real speech a vocoder learns from and the smoothed ones an acoustic model
predicts): ``speechkit tts-gta`` stores each training cut's teacher-forced mel (aligned frame
by frame with its audio), ``input_mel_field: gta_mel`` makes those the vocoder's input while the
crops stay its targets, and ``--init`` starts from a trained vocoder (its generator; the
discriminator starts fresh).

Validation ``loss`` is the L1 distance of the vocoded crop's TTS log-mel to the reference's
(``mel_dist``, natural log, over valid frames): it picks the checkpoints that get averaged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor, nn

from speechkit.config import ConfigError
from speechkit.data.waves import MelCrops, WaveDataConfig, build_wave_dataloader
from speechkit.models.codec_disc import MultiScaleSTFTDiscriminator, STFTDiscConfig
from speechkit.models.vocoder import Spectra, Vocoder, VocoderConfig
from speechkit.nn.spectral_loss import spectrum_losses
from speechkit.tasks import register_task
from speechkit.tasks.base import OptimizerSpec
from speechkit.tasks.wave_gan import WaveGANTask, gan_optim
from speechkit.train.config import OptimConfig, TrainerConfig
from speechkit.train.distributed import unwrap
from speechkit.tts.mel import LogMelSpectrogram, TTSMelConfig

logger = logging.getLogger(__name__)

__all__ = [
    "VocoderGAN",
    "VocoderLossConfig",
    "VocoderTask",
    "VocoderTaskConfig",
]


@dataclass
class VocoderLossConfig:
    """Weights of the generator's losses (0 switches one off; module docstring)."""

    mel: float = 1.0
    stft: float = 1.0
    amp: float = 0.5
    phase: float = 0.3
    adv: float = 0.5
    feat: float = 1.0


@dataclass
class VocoderTaskConfig:
    """One vocoder training run (module docstring). ``mel`` must describe the same frames as
    ``model`` (rate, hop, bands): it is the format the acoustic model predicts."""

    task: Literal["vocoder"] = "vocoder"
    mel: TTSMelConfig = field(default_factory=TTSMelConfig)
    model: VocoderConfig = field(default_factory=VocoderConfig)
    disc: STFTDiscConfig = field(default_factory=STFTDiscConfig)
    data: WaveDataConfig = field(default_factory=WaveDataConfig)
    loss: VocoderLossConfig = field(default_factory=VocoderLossConfig)
    gen_optim: OptimConfig = field(default_factory=lambda: gan_optim(5e-4))
    disc_optim: OptimConfig = field(default_factory=lambda: gan_optim(5e-4))
    disc_start: int = 0
    disc_every: int = 1
    input_mel_field: str = ""  # cut field of stored input mels (tts-gta); "" = the audio's own
    trainer: TrainerConfig = field(default_factory=TrainerConfig)

    def __post_init__(self) -> None:
        m, v = self.mel, self.model
        if (m.sample_rate, m.hop_length, m.n_mels) != (v.sample_rate, v.hop, v.n_mels):
            raise ConfigError(
                "mel and model must describe the same frames: mel (sample_rate, hop_length, "
                f"n_mels) = {(m.sample_rate, m.hop_length, m.n_mels)}, model (sample_rate, hop, "
                f"n_mels) = {(v.sample_rate, v.hop, v.n_mels)}"
            )
        if self.data.sample_rate != v.sample_rate:
            raise ConfigError(
                f"data.sample_rate ({self.data.sample_rate}) must equal model.sample_rate "
                f"({v.sample_rate})"
            )
        if self.disc_start < 0 or self.disc_every < 1:
            raise ConfigError("disc_start >= 0 and disc_every >= 1 needed")
        if self.data.segment_seconds * v.sample_rate < max(max(self.disc.windows), v.n_fft):
            raise ConfigError(
                f"data.segment_seconds ({self.data.segment_seconds}) is shorter than the longest "
                "discriminator window or the vocoder's n_fft"
            )


class VocoderGAN(nn.Module):
    """What the vocoder task trains: ``generator`` (the ``Vocoder`` that gets packed) and
    ``discriminator``; ``mel`` is the (parameter-free) TTS log-mel front end, here so that it
    moves to the training device with the rest. ``forward(x, part=...)`` dispatches, so
    data-parallel wrappers see every part's forward."""

    def __init__(self, cfg: VocoderTaskConfig):
        super().__init__()
        self.mel = LogMelSpectrogram(cfg.mel)
        self.generator = Vocoder(cfg.model)
        self.discriminator = MultiScaleSTFTDiscriminator(cfg.disc)
        self.register_buffer("disc_updates", torch.zeros((), dtype=torch.int64))

    def forward(self, x: Tensor, part: str = "gen", mel: Tensor | None = None):
        if part == "gen":  # wave (B, S) -> (Spectra (B, F, T), wave (B, S)), T = S // hop + 1
            spectra = self.generator.spectra(self.mel(x) if mel is None else mel)
            return spectra, self.generator.istft(spectra.spec)[:, : x.size(1)]
        if part == "disc":  # (B, S) -> (logits, features)
            return self.discriminator(x)
        raise ValueError(f"unknown part {part!r}")


def _frame_mask(lens: Tensor, frames: int, hop: int) -> Tensor:
    """(B, 1, frames) float: 1 for frames centred on a valid sample."""
    centres = torch.arange(frames, device=lens.device) * hop
    return (centres[None] < lens[:, None]).float()[:, None]


@register_task
class VocoderTask(WaveGANTask):
    """A frame-level GAN vocoder (module docstring)."""

    name = "vocoder"
    config_class = VocoderTaskConfig
    model_type = "vocoder"

    # ---- model and optimisation ------------------------------------------------------

    takes_init = True  # a trained vocoder's generator

    def __init__(self, cfg: VocoderTaskConfig, inputs=None) -> None:
        super().__init__(cfg, inputs)
        # the input mels of the batch in hand (stored mels), for ``regenerate``
        self._mel: Tensor | None = None

    def build_dataloader(self, cuts, train, seed, rank=0, world_size=1):
        mel = None
        if self.cfg.input_mel_field:
            mel = MelCrops(self.cfg.input_mel_field, self.cfg.mel.hop_length, self.cfg.mel.silence)
        return build_wave_dataloader(cuts, self.cfg.data, train, seed, rank, world_size, mel)

    def build_model(self) -> nn.Module:
        model = VocoderGAN(self.cfg)
        init = self.inputs.init
        if init:
            from speechkit.synthesize import load_vocoder

            trained, mel = load_vocoder(init)
            if mel != self.cfg.mel:
                raise ConfigError(f"--init {init}: its mel format {mel} is not {self.cfg.mel}")
            # a shape mismatch (another model size) is load_state_dict's error
            model.generator.load_state_dict(trained.state_dict())
            logger.info("vocoder initialised from %s", init)
        return model

    def configure_optimizers(self, model: nn.Module, total_steps: int) -> list[OptimizerSpec]:
        m = unwrap(model)
        return self.gan_optimizers(m.generator, m.discriminator, total_steps)

    def _input_mel(self, batch: dict) -> Tensor | None:
        if self.cfg.input_mel_field and "mel" not in batch:
            raise ValueError(f"input_mel_field {self.cfg.input_mel_field!r}: batch without mels")
        return batch.get("mel")

    def training_step(self, model: nn.Module, batch: dict, optimizer: str) -> dict[str, Tensor]:
        audio, lens = batch["audio"], batch["audio_lens"]
        self._mel = self._input_mel(batch)
        if optimizer == "disc":
            return self.disc_step(model, audio, lens)
        spectra, fake = model(audio, part="gen", mel=self._mel)
        self._fake = (audio, fake.detach())
        stats = self._reconstruction(model, spectra, fake, audio, lens)
        w = self.cfg.loss
        loss = w.mel * stats["mel"] + w.stft * stats["stft"]
        loss = loss + w.amp * stats["amp"] + w.phase * stats["phase"]
        adversarial = self.adversarial(model, fake, audio)
        for k, v in adversarial.items():
            loss = loss + getattr(w, k) * v
        stats.update(adversarial)
        return {"loss": loss, **{k: v.detach() for k, v in stats.items()}}

    def _reconstruction(
        self, model: nn.Module, spectra: Spectra, fake: Tensor, audio: Tensor, lens: Tensor
    ) -> dict[str, Tensor]:
        """Wave losses (mel, stft) and APNet's spectrum losses (amp, phase)."""
        ref = unwrap(model).generator.stft(audio)  # (B, F, T), the frames the vocoder predicted
        mask = _frame_mask(lens, ref.size(-1), self.cfg.model.hop)
        return {
            "mel": self.mel_loss.to(audio.device)(fake, audio, lens),
            "stft": self.stft_loss(fake, audio, lens),
            **spectrum_losses(spectra.log_amp, spectra.phase, ref, mask),
        }

    def regenerate(self, model: nn.Module, audio: Tensor, lens: Tensor) -> Tensor:
        return model(audio, part="gen", mel=self._mel)[1]

    def validation_step(self, model: nn.Module, batch: dict) -> dict[str, Tensor]:
        """``loss`` = ``mel_dist`` (TTS log-mel L1 over valid frames), the training
        reconstruction losses; weighted by the number of crops."""
        audio, lens = batch["audio"], batch["audio_lens"]
        spectra, fake = model(audio, part="gen", mel=self._input_mel(batch))
        stats = self._reconstruction(model, spectra, fake, audio, lens)
        mel_fn = unwrap(model).mel
        ref_mel, fake_mel = mel_fn(audio), mel_fn(fake)
        mask = _frame_mask(lens, ref_mel.size(-1), self.cfg.mel.hop_length)
        stats["mel_dist"] = ((ref_mel - fake_mel).abs() * mask).sum() / (
            mask.sum() * ref_mel.size(1)
        ).clamp(min=1)
        weight = torch.tensor(float(audio.size(0)))
        return {"loss": stats["mel_dist"], **stats, "weight": weight}
