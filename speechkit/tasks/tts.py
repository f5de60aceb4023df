"""The ``tts`` task: FastSpeech 2 with a jointly learned aligner (``speechkit.models.tts``).

    speechkit train --config conf/tts/phrasebook_fs2_cpu.yaml --tokenizer data/tts \\
        --train-cuts data/tts/cuts_train.jsonl.gz --dev-cuts data/tts/cuts_valid.jsonl.gz \\
        --out exp/fs2

``--tokenizer`` is the directory ``speechkit.bin.prepare_tts`` wrote: its ``vocab.json`` holds
the phoneme vocabulary, speakers and languages, which fill ``model.phonemes``, ``model.speakers``
and ``model.languages`` (so every checkpoint embeds them and speaks alone). A config whose
model already lists them (a resumed run's ``config.yaml``) needs no ``--tokenizer``.

Losses (weights in ``loss``), all means over valid positions:

* ``mel``: L1 between predicted and target log-mel frames;
* ``duration``: MSE of the predicted log(1 + frames) against the alignment's durations;
* ``pitch``, ``energy``: MSE of the phoneme-level predictions against the targets averaged over
  each phoneme's frames (pitch in octaves, energy in mean log-mel);
* ``forward_sum``, ``bin``: the aligner's losses (``speechkit/models/tts.py``);
* ``latent``, ``codes`` (models with codec targets, ``codec.model`` set): L1 between the
  predicted codec latent and the sum of the codebook vectors of the frame's codes, and the
  cross-entropy of each codebook's code given the prediction minus the earlier codebooks'
  true vectors, with minus the squared distance to every code of that codebook as logits
  (the residual quantiser's own choice rule, made soft), averaged over codebooks.
  ``code_acc`` (logged, not a loss) is how often the first codebook's nearest code is right.

**Codec targets.** With ``codec.model`` (a packed codec, checkpoint or zoo name,
``speechkit.codec.load``) the cuts must carry that codec's codes (``speechkit codec encode
--cuts``, all its codebooks); the task reads its quantiser (frozen) to turn codes into target
latents, sets ``model.codec_dim`` and ``data.codes``, checks that the mel has the codec's rate
and hop, and records a fingerprint of the codebooks in ``codec.sha256``, so that synthesis can
refuse a different codec (``speechkit.synthesize.CodecVocoder``) and a resumed run a changed one.

Validation runs the same pass without dropout (the alignment's durations, not predicted ones,
so frames line up with the reference); ``loss`` is the weighted sum.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from speechkit.config import ConfigError
from speechkit.data.tts import TTSDataConfig, TTSDataset, build_tts_dataloader
from speechkit.models.tts import FastSpeech2, FastSpeech2Config, TTSOutput
from speechkit.nn.masks import lengths_to_mask
from speechkit.tasks import register_task
from speechkit.tasks.base import OptimizerSpec, Task, TaskInputs
from speechkit.train.config import OptimConfig, TrainerConfig
from speechkit.train.distributed import unwrap
from speechkit.train.optim import build_optimizer, build_scheduler
from speechkit.tts.mel import TTSMelConfig
from speechkit.tts.text import PhonemeVocab

__all__ = [
    "TTSCodecConfig",
    "TTSLossConfig",
    "TTSTask",
    "TTSTaskConfig",
    "codebook_fingerprint",
    "codec_losses",
    "read_tts_vocab",
    "tts_losses",
]

VOCAB_FILE = "vocab.json"


@dataclass
class TTSLossConfig:
    """Weights of the losses (module docstring); 0 switches one off."""

    mel: float = 1.0
    duration: float = 1.0
    pitch: float = 1.0
    energy: float = 0.1
    forward_sum: float = 1.0
    bin: float = 0.5
    latent: float = 1.0
    codes: float = 0.1


@dataclass
class TTSCodecConfig:
    """Codec codes as targets (module docstring). model: the codec ("" = mel targets only).
    n_q: codebooks that make the target latent and get the cross-entropy, and that synthesis
    quantises to (0 = all of the codec's). sha256: the codebooks' fingerprint, filled in by the
    task (:func:`codebook_fingerprint`)."""

    model: str = ""
    n_q: int = 0
    sha256: str = ""

    def __post_init__(self) -> None:
        if self.n_q < 0:
            raise ConfigError(f"codec.n_q must be >= 0, got {self.n_q}")


@dataclass
class TTSTaskConfig:
    """One acoustic-model training run (module docstring)."""

    task: Literal["tts"] = "tts"
    mel: TTSMelConfig = field(default_factory=TTSMelConfig)
    model: FastSpeech2Config = field(default_factory=FastSpeech2Config)
    data: TTSDataConfig = field(default_factory=TTSDataConfig)
    loss: TTSLossConfig = field(default_factory=TTSLossConfig)
    codec: TTSCodecConfig = field(default_factory=TTSCodecConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)

    def __post_init__(self) -> None:
        if self.model.n_mels != self.mel.n_mels:
            raise ConfigError(
                f"model.n_mels ({self.model.n_mels}) must equal mel.n_mels ({self.mel.n_mels})"
            )


def read_tts_vocab(directory: str | Path) -> dict[str, list[str]]:
    """``{"phonemes": [...], "speakers": [...], "languages": [...]}`` from
    ``directory/vocab.json`` (written by ``speechkit.bin.prepare_tts``)."""
    path = Path(directory) / VOCAB_FILE
    if not path.is_file():
        raise ConfigError(
            f"--tokenizer {directory}: no {VOCAB_FILE} (run speechkit.bin.prepare_tts)"
        )
    vocab = json.loads(path.read_text())
    missing = {"phonemes", "speakers", "languages"} - set(vocab)
    if missing:
        raise ConfigError(f"{path}: missing {sorted(missing)}")
    return vocab


def _masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    return (x * mask).sum() / mask.sum().clamp(min=1)


def tts_losses(
    out: TTSOutput, mel: Tensor, mel_lens: Tensor, phoneme_lens: Tensor
) -> dict[str, Tensor]:
    """Unweighted losses of a training pass against the target ``mel`` (B, M, T)."""
    frames = lengths_to_mask(mel_lens, mel.size(2))  # (B, T)
    phones = lengths_to_mask(phoneme_lens, out.durations.size(1)).float()  # (B, N)
    mel_l1 = (out.mel - mel).abs().mean(1)  # (B, T)
    log_dur = torch.log1p(out.durations.float())
    return {
        "mel": _masked_mean(mel_l1, frames.float()),
        "duration": _masked_mean((out.log_duration_pred - log_dur) ** 2, phones),
        "pitch": _masked_mean((out.pitch_pred - out.pitch_target) ** 2, phones),
        "energy": _masked_mean((out.energy_pred - out.energy_target) ** 2, phones),
        "forward_sum": out.forward_sum_loss,
        "bin": out.bin_loss,
    }


def codebook_fingerprint(rvq) -> str:
    """sha256 (hex) of a residual quantiser's codebooks (``speechkit.nn.quantize.ResidualVQ``):
    what ties an acoustic model's latent to one codec."""
    h = hashlib.sha256()
    for q in rvq.quantizers:
        h.update(q.codebook.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def codec_losses(latent: Tensor, codes: Tensor, frame_lens: Tensor, rvq) -> dict[str, Tensor]:
    """``latent`` (B, D, T) predicted, ``codes`` (B, n, T) int64 targets, ``frame_lens`` (B,)
    valid frames, ``rvq`` the codec's (frozen) residual quantiser -> ``latent`` (L1 to the
    codes' summed vectors), ``codes`` (cross-entropy, mean over the n codebooks), ``code_acc``
    (first codebook, nearest code): module docstring."""
    frames = lengths_to_mask(frame_lens, latent.size(2))  # (B, T)
    with torch.no_grad():
        target = rvq.decode(codes).to(latent.dtype)  # (B, D, T)
    l1 = _masked_mean((latent - target).abs().mean(1), frames.float())
    pred = latent.transpose(1, 2)[frames]  # (N, D)
    true = codes.transpose(1, 2)[frames]  # (N, n)
    known = torch.zeros_like(pred)  # the true vectors of the codebooks before this one
    ce, acc = pred.new_zeros(()), pred.new_zeros(())
    for i in range(codes.size(1)):
        ch = rvq.channels(i)
        book = rvq.quantizers[i].codebook.to(pred.dtype)  # (K, d)
        r = (pred - known)[:, ch]
        logits = 2 * r @ book.t() - book.pow(2).sum(1)[None] - r.pow(2).sum(1, keepdim=True)
        ce = ce + F.cross_entropy(logits, true[:, i])
        if i == 0:
            acc = (logits.argmax(1) == true[:, 0]).float().mean()
        known[:, ch] = known[:, ch] + book[true[:, i]]
    return {"latent": l1, "codes": ce / codes.size(1), "code_acc": acc.detach()}


@register_task
class TTSTask(Task):
    """FastSpeech 2 acoustic model (module docstring)."""

    name = "tts"
    config_class = TTSTaskConfig
    model_type = ""

    def __init__(self, cfg: TTSTaskConfig, inputs: TaskInputs | None = None) -> None:
        super().__init__(cfg, inputs)
        if inputs is not None and inputs.init:
            raise ConfigError("the tts task trains from scratch; --init is not supported yet")
        if inputs is not None and inputs.tokenizer:
            vocab = read_tts_vocab(inputs.tokenizer)
            cfg.model = dataclasses.replace(
                cfg.model,
                phonemes=list(vocab["phonemes"]),
                speakers=list(vocab["speakers"]),
                languages=list(vocab["languages"]),
            )
        if not cfg.model.phonemes:
            raise ConfigError(
                "the tts task needs its vocabulary: --tokenizer DIR (the directory "
                "speechkit.bin.prepare_tts wrote, with vocab.json)"
            )
        if cfg.data.codes and not cfg.codec.model:
            raise ConfigError(
                "data.codes needs codec.model: the codec whose codes are the targets "
                "(--set codec.model=DIR, a packed codec or codec checkpoint)"
            )
        self.quantizer = self._codec_targets(cfg) if cfg.codec.model else None
        self.dataset = TTSDataset(
            PhonemeVocab(cfg.model.phonemes),
            cfg.model.speakers,
            cfg.model.languages,
            cfg.mel,
            cfg.data,
        )

    @staticmethod
    def _codec_targets(cfg: TTSTaskConfig):
        """Loads the codec of ``cfg.codec`` and fills ``cfg`` from it (module docstring);
        returns its frozen residual quantiser."""
        from speechkit import codec as codec_api

        try:
            codec = codec_api.load(cfg.codec.model)
        except (FileNotFoundError, ValueError, KeyError) as e:
            raise ConfigError(f"codec.model {cfg.codec.model}: {e}") from e
        c = codec.cfg
        if (cfg.mel.sample_rate, cfg.mel.hop_length) != (c.sample_rate, c.hop):
            raise ConfigError(
                f"codec targets need the mel at the codec's rate and hop: mel (rate, hop) "
                f"{(cfg.mel.sample_rate, cfg.mel.hop_length)}, codec {(c.sample_rate, c.hop)}"
            )
        if cfg.model.codec_dim not in (0, c.rvq.dim):
            raise ConfigError(
                f"model.codec_dim {cfg.model.codec_dim} is not the codec's latent width {c.rvq.dim}"
            )
        n_q = cfg.codec.n_q or c.rvq.num_quantizers
        if n_q > c.rvq.num_quantizers:
            raise ConfigError(f"codec.n_q {n_q}: the codec has {c.rvq.num_quantizers} codebooks")
        rvq = codec.model.quantizer.eval().requires_grad_(False)
        fingerprint = codebook_fingerprint(rvq)
        if cfg.codec.sha256 and cfg.codec.sha256 != fingerprint:
            raise ConfigError(
                f"codec.model {cfg.codec.model} is not the codec this run trained on "
                "(its codebooks' fingerprint differs from codec.sha256)"
            )
        cfg.model = dataclasses.replace(cfg.model, codec_dim=c.rvq.dim)
        cfg.data = dataclasses.replace(cfg.data, codes=True)
        cfg.codec = dataclasses.replace(cfg.codec, n_q=n_q, sha256=fingerprint)
        return rvq

    def build_dataloader(self, cuts, train, seed, rank=0, world_size=1):
        return build_tts_dataloader(cuts, self.dataset, train, seed, rank, world_size)

    def total_steps(self, cuts, world_size: int) -> int:
        if self.cfg.trainer.max_steps:
            return self.cfg.trainer.max_steps
        per_epoch = math.ceil(len(cuts) / (self.cfg.data.batch_size * world_size))
        return max(1, per_epoch * self.cfg.trainer.max_epochs // self.cfg.trainer.accum_grad)

    def batch_lengths(self, batch: dict) -> list[int]:
        return batch["mel_lens"].tolist()

    def build_model(self) -> nn.Module:
        return FastSpeech2(self.cfg.model)

    def configure_optimizers(self, model: nn.Module, total_steps: int) -> list[OptimizerSpec]:
        opt = build_optimizer(unwrap(model), self.cfg.optim)
        sched = build_scheduler(opt, self.cfg.optim, total_steps)
        return [OptimizerSpec("model", opt, sched, grad_clip=self.cfg.optim.grad_clip)]

    def training_step(self, model: nn.Module, batch: dict, optimizer: str) -> dict[str, Tensor]:
        out = model(
            batch["phonemes"],
            batch["phoneme_lens"],
            batch["speakers"],
            batch["languages"],
            batch["mel"],
            batch["mel_lens"],
            batch["pitch"],
            batch["voiced"],
        )
        stats = tts_losses(out, batch["mel"], batch["mel_lens"], batch["phoneme_lens"])
        if self.quantizer is not None:
            n_q, codes = self.cfg.codec.n_q, batch["codes"]
            if codes.size(1) < n_q:
                raise ValueError(
                    f"the cuts carry {codes.size(1)} codebooks, codec.n_q is {n_q}: encode "
                    "them with every codebook (speechkit codec encode without --kbps)"
                )
            self.quantizer.to(out.latent.device)
            stats.update(
                codec_losses(out.latent, codes[:, :n_q], batch["mel_lens"], self.quantizer)
            )
        w = dataclasses.asdict(self.cfg.loss)
        loss = sum(w[k] * v for k, v in stats.items() if k in w)
        return {"loss": loss, **{k: v.detach() for k, v in stats.items()}}

    def validation_step(self, model: nn.Module, batch: dict) -> dict[str, Tensor]:
        stats = self.training_step(model, batch, "model")
        weight = torch.tensor(float(batch["mel_lens"].sum()))
        return {**{k: v.detach() for k, v in stats.items()}, "weight": weight}
