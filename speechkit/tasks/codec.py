"""The ``codec`` task: a neural speech codec trained as a GAN, with a semantic first codebook.

    speechkit train --config conf/codec/spectral_cpu.yaml \\
        --train-cuts data/cuts_train.jsonl.gz --dev-cuts data/cuts_dev.jsonl.gz --out exp/codec \\
        --set distill.teacher=exp/s2t_tiny/model_avg.pt

Two optimisers through the one trainer (``speechkit/tasks/base.py``):

* ``gen`` (encoder, quantiser, decoder, distillation heads): multi-resolution STFT + mel
  reconstruction losses (with the spectral backbone optionally APNet's losses on the decoder's
  predicted spectra: amplitude, phase, STFT consistency and real/imaginary parts, ``loss.amp``
  / ``loss.phase`` / ``loss.consistency`` / ``loss.real_imag``), hinge adversarial
  and relative feature-matching losses against the discriminator, the RVQ commitment loss, and
  the distillation losses below;
* ``disc`` (``speechkit.models.codec_disc``): hinge loss on real against reconstructed waves,
  from update ``disc_start`` on, every ``disc_every`` updates. The generator's adversarial and
  feature-matching losses start with the discriminator's first step.

**Semantic distillation of the first codebook** (DM-Codec / SpeechTokenizer style): a trained
speechkit S2T model is the teacher (``distill.teacher``: packed directory, checkpoint or zoo
name; frozen, never saved with the codec). Its encoder output (B, T', D_t), linearly
interpolated to the codec's frames, is the target of a linear projection of the first
codebook's quantised latent: loss ``1 - cos`` per valid frame (``distill.weight``). With
``distill.text_weight > 0`` a second head predicts, per frame, the teacher's CTC token
posteriors (its text representation aligned to frames by its own CTC head): KL divergence.
``distill.enabled: false`` trains the same codec without a teacher (the ablation). Both heads
train with the generator and are dropped when the codec is packed.

The generator's reconstruction is computed once per micro-batch: the discriminator's step
reuses it (detached), so the quantiser's EMA statistics see each batch once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from speechkit.config import ConfigError
from speechkit.data.features import LogMel
from speechkit.data.waves import WaveDataConfig
from speechkit.models.codec import Codec, CodecConfig
from speechkit.models.codec_disc import MultiScaleSTFTDiscriminator, STFTDiscConfig
from speechkit.nn.spectral_loss import consistency_losses, si_sdr, spectrum_losses
from speechkit.tasks import register_task
from speechkit.tasks.base import OptimizerSpec, TaskInputs
from speechkit.tasks.wave_gan import WaveGANTask, gan_optim
from speechkit.train.config import OptimConfig, TrainerConfig
from speechkit.train.distributed import unwrap

__all__ = ["CodecGAN", "CodecLossConfig", "CodecTask", "CodecTaskConfig", "DistillConfig"]

logger = logging.getLogger(__name__)


@dataclass
class CodecLossConfig:
    """Weights of the generator's losses (0 switches one off). ``amp`` and ``phase``: APNet's
    log-amplitude and phase losses on the spectral decoder's predicted spectra
    (``speechkit.nn.spectral_loss.spectrum_losses``); ``consistency`` and ``real_imag``: its
    STFT-spectrum losses on them (``consistency_losses``). Spectral backbone only."""

    stft: float = 1.0
    mel: float = 1.0
    adv: float = 1.0
    feat: float = 2.0
    commit: float = 1.0
    amp: float = 0.0
    phase: float = 0.0
    consistency: float = 0.0
    real_imag: float = 0.0

    def spectral(self) -> dict[str, float]:
        """The weights of the losses on predicted spectra that are switched on."""
        names = ("amp", "phase", "consistency", "real_imag")
        return {k: getattr(self, k) for k in names if getattr(self, k)}


@dataclass
class DistillConfig:
    """Semantic distillation of the first codebook (module docstring).

    teacher: packed S2T directory, training checkpoint or zoo name (required when enabled;
        a path, so usually given as ``--set distill.teacher=...``).
    weight: of the ``1 - cos`` loss to the teacher encoder's frames.
    text_weight: of the KL loss to the teacher's per-frame CTC token posteriors (0 = off).
    """

    enabled: bool = True
    teacher: str = ""
    weight: float = 1.0
    text_weight: float = 0.0


@dataclass
class CodecTaskConfig:
    """One codec training run (module docstring)."""

    task: Literal["codec"] = "codec"
    model: CodecConfig = field(default_factory=CodecConfig)
    disc: STFTDiscConfig = field(default_factory=STFTDiscConfig)
    data: WaveDataConfig = field(default_factory=WaveDataConfig)
    loss: CodecLossConfig = field(default_factory=CodecLossConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    gen_optim: OptimConfig = field(default_factory=lambda: gan_optim(3e-4))
    disc_optim: OptimConfig = field(default_factory=lambda: gan_optim(3e-4))
    disc_start: int = 0
    disc_every: int = 1
    trainer: TrainerConfig = field(default_factory=TrainerConfig)

    def __post_init__(self) -> None:
        if self.data.sample_rate != self.model.sample_rate:
            raise ConfigError(
                f"data.sample_rate ({self.data.sample_rate}) must equal model.sample_rate "
                f"({self.model.sample_rate})"
            )
        if self.disc_start < 0 or self.disc_every < 1:
            raise ConfigError("disc_start >= 0 and disc_every >= 1 needed")
        if self.loss.spectral() and self.model.backbone != "spectral":
            on = ", ".join(f"loss.{k}" for k in self.loss.spectral())
            raise ConfigError(
                f"{on} act on predicted spectra: they need model.backbone: spectral, "
                f"got {self.model.backbone!r}"
            )
        if self.data.segment_seconds * self.model.sample_rate < max(self.disc.windows):
            raise ConfigError(
                f"data.segment_seconds ({self.data.segment_seconds}) is shorter than the longest "
                f"discriminator window ({max(self.disc.windows)} samples)"
            )


class CodecGAN(nn.Module):
    """What the codec task trains: ``generator`` (the ``Codec`` that gets packed),
    ``discriminator``, and the distillation heads (``distill_proj``: latent -> teacher encoder
    width; ``text_head``: latent -> teacher vocabulary, or None). ``forward(x, part=...)``
    dispatches, so data-parallel wrappers see every part's forward."""

    def __init__(self, cfg: CodecTaskConfig, teacher_dim: int = 0, teacher_vocab: int = 0):
        super().__init__()
        self.generator = Codec(cfg.model)
        self.discriminator = MultiScaleSTFTDiscriminator(cfg.disc)
        dim = cfg.model.rvq.dim
        self.distill_proj = nn.Linear(dim, teacher_dim) if teacher_dim else None
        self.text_head = nn.Linear(dim, teacher_vocab) if teacher_vocab else None
        # Discriminator updates so far: the generator's adversarial losses wait for the first
        # (a buffer, so a resumed run knows it too).
        self.register_buffer("disc_updates", torch.zeros((), dtype=torch.int64))

    def forward(self, x: Tensor, lengths: Tensor | None = None, part: str = "gen"):
        if part == "gen":  # (B, S) -> CodecOutput
            return self.generator(x, lengths)
        if part == "disc":  # (B, S) -> (logits, features)
            return self.discriminator(x)
        if part == "distill":  # (B, D, T) -> (B, T, D_t), (B, T, V) or None
            h = x.transpose(1, 2)
            text = self.text_head(h) if self.text_head is not None else None
            return self.distill_proj(h), text
        raise ValueError(f"unknown part {part!r}")


class Teacher:
    """A frozen S2T model giving per-frame targets: encoder output and CTC log-posteriors."""

    def __init__(self, source: str):
        from speechkit import zoo  # (a zoo name, packed directory or checkpoint)

        pretrained = zoo.load(source)
        if pretrained.model_type != "s2t":
            raise ConfigError(
                f"distill.teacher {source}: a {pretrained.model_type} model; the codec's teacher "
                "is a speechkit S2T model (its encoder and CTC head)"
            )
        self.model = pretrained.model.eval().requires_grad_(False)
        self.front_end = LogMel(pretrained.features)
        self.dim = pretrained.config.d_model
        self.vocab = pretrained.config.vocab_size

    @torch.no_grad()
    def targets(self, audio: Tensor, lens: Tensor, frames: int) -> tuple[Tensor, Tensor]:
        """(B, S) 16 kHz waves -> encoder output (B, frames, D_t) and CTC log-posteriors
        (B, frames, V), linearly interpolated from the teacher's frames to ``frames``."""
        if next(self.model.parameters()).device != audio.device:
            self.model.to(audio.device)
            self.front_end.to(audio.device)
        feats, feat_lens = self.front_end(audio.float(), lens)
        enc, _ = self.model.encode(feats, feat_lens)  # (B, T', D_t)
        logp = self.model.ctc_log_probs(enc)  # (B, T', V)

        def resample(x: Tensor) -> Tensor:
            return F.interpolate(
                x.transpose(1, 2), size=frames, mode="linear", align_corners=False
            ).transpose(1, 2)

        return resample(enc), resample(logp.exp())


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``x`` (B, T) over ``mask`` (B, T) bool."""
    return (x * mask).sum() / mask.sum().clamp(min=1)


@register_task
class CodecTask(WaveGANTask):
    """A neural speech codec (module docstring)."""

    name = "codec"
    config_class = CodecTaskConfig
    model_type = "codec"

    def __init__(self, cfg: CodecTaskConfig, inputs: TaskInputs | None = None) -> None:
        super().__init__(cfg, inputs)
        self.teacher = None
        if cfg.distill.enabled:
            if not cfg.distill.teacher:
                raise ConfigError(
                    "distill.enabled needs distill.teacher (a packed S2T model, checkpoint or zoo "
                    "name): --set distill.teacher=exp/s2t/model_avg.pt, or distill.enabled=false"
                )
            self.teacher = Teacher(cfg.distill.teacher)

    # ---- model and optimisation ------------------------------------------------------

    def build_model(self) -> nn.Module:
        t = self.teacher
        text = t.vocab if t is not None and self.cfg.distill.text_weight > 0 else 0
        return CodecGAN(self.cfg, t.dim if t is not None else 0, text)

    def configure_optimizers(self, model: nn.Module, total_steps: int) -> list[OptimizerSpec]:
        m = unwrap(model)
        gen_parts = nn.ModuleList([m.generator, m.distill_proj, m.text_head])  # (None skipped)
        return self.gan_optimizers(gen_parts, m.discriminator, total_steps)

    def training_step(self, model: nn.Module, batch: dict, optimizer: str) -> dict[str, Tensor]:
        audio, lens = batch["audio"], batch["audio_lens"]
        if optimizer == "disc":
            return self.disc_step(model, audio, lens)
        out = model(audio, lens, part="gen")
        recon = out.wave[:, : audio.size(1)]
        self._fake = (audio, recon.detach())
        stats = self._reconstruction(recon, audio, lens)
        w = self.cfg.loss
        loss = w.stft * stats["stft"] + w.mel * stats["mel"] + w.commit * out.commit_loss
        if w.spectral():
            stats.update(self._spectrum(model, out, audio))
            loss = loss + sum(weight * stats[k] for k, weight in w.spectral().items())
        stats["commit"] = out.commit_loss.detach()
        adversarial = self.adversarial(model, recon, audio)
        for k, v in adversarial.items():
            loss = loss + getattr(w, k) * v
        stats.update(adversarial)
        if self.teacher is not None:
            distill = self._distill(model, out, audio, lens)
            loss = loss + self.cfg.distill.weight * distill["distill"]
            if "distill_text" in distill:
                loss = loss + self.cfg.distill.text_weight * distill["distill_text"]
            stats.update(distill)
        stats = {k: v.detach() for k, v in stats.items()}
        return {"loss": loss, **stats}

    def _reconstruction(self, recon: Tensor, audio: Tensor, lens: Tensor) -> dict[str, Tensor]:
        return {
            "stft": self.stft_loss(recon, audio, lens),
            "mel": self.mel_loss(recon, audio, lens),
        }

    def _spectrum(self, model: nn.Module, out, audio: Tensor) -> dict[str, Tensor]:
        """APNet's losses on the decoder's spectra: ``amp``, ``phase`` and ``real_imag`` against
        the STFT of the input zero-padded to whole frames, taken as the decoder synthesises
        (its window and hop, frame ``t`` centred on sample ``t * hop``), over valid frames;
        ``consistency`` against the same analysis of the decoder's own output, over the valid
        frames whose window lies inside that output (the inverse STFT drops what the edge
        frames hold beyond it, so no prediction could be consistent there)."""
        generator = unwrap(model).generator
        decoder = generator.decoder
        spectra = out.spectra
        frames = spectra.spec.size(-1)
        # (B, F, T): the last centre, past the padded end, is not predicted
        ref = decoder.stft(generator.pad(audio))[..., :frames]
        mask = out.frame_mask.float()[:, None]
        stats = spectrum_losses(spectra.log_amp, spectra.phase, ref, mask)
        centres = torch.arange(frames, device=mask.device) * decoder.cfg.hop
        half = decoder.cfg.n_fft // 2
        inside = (centres >= half) & (centres + half <= out.wave.size(-1))
        reanalysed = decoder.stft(out.wave)[..., :frames]
        stats.update(consistency_losses(spectra.spec, reanalysed, ref, mask * inside))
        return stats

    def regenerate(self, model: nn.Module, audio: Tensor, lens: Tensor) -> Tensor:
        # eval mode: quantiser statistics (EMA codebooks, dead-code restarts) stay untouched
        generator = unwrap(model).generator
        was = generator.training
        generator.eval()
        try:
            return model(audio, lens, part="gen").wave[:, : audio.size(1)]
        finally:
            generator.train(was)

    def _distill(self, model: nn.Module, out, audio: Tensor, lens: Tensor) -> dict[str, Tensor]:
        """1 - cos to the teacher's encoder frames (and KL to its CTC posteriors)."""
        target, posteriors = self.teacher.targets(audio, lens, out.first.size(-1))
        proj, text_logits = model(out.first, part="distill")
        cos = F.cosine_similarity(proj.float(), target.float(), dim=-1)  # (B, T)
        stats = {"distill": masked_mean(1 - cos, out.frame_mask)}
        if text_logits is not None:
            kl = F.kl_div(
                text_logits.float().log_softmax(-1),
                posteriors.float().clamp(min=1e-8),
                reduction="none",
            ).sum(-1)  # B, T
            stats["distill_text"] = masked_mean(kl, out.frame_mask)
        return stats

    def validation_step(self, model: nn.Module, batch: dict) -> dict[str, Tensor]:
        """All codebooks: ``loss`` = mel distance (chooses the best checkpoints), STFT loss,
        SI-SDR (dB), with the spectral backbone APNet's four spectrum losses; weighted
        by the number of crops."""
        audio, lens = batch["audio"], batch["audio_lens"]
        out = model(audio, lens, part="gen")
        recon = out.wave[:, : audio.size(1)]
        stats = self._reconstruction(recon, audio, lens)
        stats["sisdr"] = si_sdr(recon, audio, lens).mean()
        if out.spectra is not None:
            stats.update(self._spectrum(model, out, audio))
        if self.teacher is not None:
            stats.update(self._distill(model, out, audio, lens))
        return {"loss": stats["mel"], **stats, "weight": torch.tensor(float(audio.size(0)))}
