"""The ``separation`` task: a query-conditioned extractor, supervised or from weak labels.

    speechkit train --config conf/separation/tfnet_supervised.yaml \\
        --train-cuts data/mixtures/cuts_train.jsonl.gz --dev-cuts data/mixtures/cuts_dev.jsonl.gz \\
        --out exp/sep_supervised
    speechkit train --config conf/separation/tfnet_weak.yaml \\
        --train-cuts data/anchors/cuts_train.jsonl.gz --dev-cuts data/mixtures/cuts_dev.jsonl.gz \\
        --out exp/sep_weak

Two arms (``data.arm``), one model (``speechkit.models.separation``):

* ``supervised``: mixtures with their sources kept (``speechkit.data.mixtures``; LibriMix's,
  ``speechkit.data.corpora.librimix``, keep them as tracks). Each mixture
  gets a query drawn by ``data.query_weights``: a class or a text description of the speech (or,
  with ``data.background_prob``, of the background), or the enrolled target speaker. A class
  query ``speech`` on a two-speaker mixture has two right answers: the loss takes the better of
  the two (permutation-invariant over the candidate sources).
* ``weak``: anchor segments of weakly labelled clips (``speechkit.data.anchors``, found by the
  tagger; no clean sources). Each anchor is mixed on the fly with an anchor of another class (or,
  for a speaker query, a speech anchor of another speaker) at a random level; the query names the
  anchor's class (or gives another clip of its speaker) and the target is the anchor itself.

The baseline, task ``separation_convtasnet`` (``ConvTasNetSeparationTask``): asteroid's
Conv-TasNet (``speechkit.models.convtasnet_baseline``) through the same data, loss and trainer,
class queries only (``conf/separation/convtasnet_baseline.yaml``).

Both validate on supervised mixtures (``--dev-cuts``: true sources) with a fixed query per
mixture (the enrolled speaker for two-speaker mixtures, else the class ``speech``); the loss is
negative SI-SDR (torchmetrics), ``sisdri`` the improvement over the mixture in dB.

Batch layout (B rows, S samples at 16 kHz)::

    mix       float32 (B, S)    mixture, zero-padded
    target    float32 (B, S)    what the query asks for
    alt       float32 (B, S)    a second right answer (two speakers, class query), else zeros
    has_alt   bool    (B,)
    lengths   int64   (B,)      valid samples
    kind, class_id, text, speaker: the query (speechkit.models.separation docstring)
    events    list[str] (B), cut_ids list[str] (B)
"""

from __future__ import annotations

import logging
import random
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from lhotse.dataset import DynamicCutSampler
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from speechkit.config import ConfigError
from speechkit.data.audio import AudioError, load_audio
from speechkit.data.mixtures import load_mixture
from speechkit.data.queries import describe
from speechkit.models import build_model
from speechkit.models.convtasnet_baseline import ConvTasNetBaselineConfig
from speechkit.models.query_encoders import (
    SPEAKER_DIM,
    TEXT_DIM,
    SentenceEncoder,
    SpeakerEncoder,
)
from speechkit.models.separation import QUERY_KINDS, SeparatorConfig
from speechkit.tasks import register_task
from speechkit.tasks.base import OptimizerSpec, Task
from speechkit.tasks.tagger import pad_waves
from speechkit.train.config import OptimConfig, TrainerConfig
from speechkit.train.optim import build_optimizer, build_scheduler

__all__ = ["ConvTasNetSeparationTask", "ConvTasNetTaskConfig", "SeparationData",
           "SeparationDataConfig", "SeparationTask", "SeparationTaskConfig", "neg_si_sdr"]  # fmt: skip

logger = logging.getLogger(__name__)
SAMPLE_RATE = 16000


@dataclass
class SeparationDataConfig:
    """arm: ``supervised`` or ``weak`` (module docstring). segment_seconds: training crops (0 =
    whole cuts). max_duration: seconds of (uncropped) audio per batch. query_weights: how often
    each query kind is drawn. background_prob: share of class/text queries that ask for the
    background. snr_min_db / snr_max_db: weak arm, level of the anchor over its partner."""

    arm: Literal["supervised", "weak"] = "supervised"
    segment_seconds: float = 2.0
    max_duration: float = 24.0
    query_weights: dict[str, float] = field(
        default_factory=lambda: {"class": 0.4, "text": 0.3, "speaker": 0.3}
    )
    background_prob: float = 0.25
    snr_min_db: float = -5.0
    snr_max_db: float = 15.0
    num_workers: int = 0

    def __post_init__(self) -> None:
        bad = sorted(set(self.query_weights) - set(QUERY_KINDS))
        if bad or not any(w > 0 for w in self.query_weights.values()):
            raise ConfigError(
                f"data.query_weights: keys from {list(QUERY_KINDS)} with a positive weight, "
                f"got {self.query_weights}"
            )
        if not 0.0 <= self.background_prob <= 1.0:
            raise ConfigError(
                f"data.background_prob must lie in [0, 1], got {self.background_prob}"
            )


@dataclass
class SeparationTaskConfig:
    task: Literal["separation"] = "separation"
    model: SeparatorConfig = field(default_factory=SeparatorConfig)
    data: SeparationDataConfig = field(default_factory=SeparationDataConfig)
    optim: OptimConfig = field(
        default_factory=lambda: OptimConfig(lr=1e-3, warmup_steps=100, grad_clip=5.0)
    )
    trainer: TrainerConfig = field(default_factory=TrainerConfig)

    def __post_init__(self) -> None:
        if self.model.sample_rate != SAMPLE_RATE:
            raise ConfigError(f"model.sample_rate must be {SAMPLE_RATE} (the corpus rate)")


def _fit(wave: np.ndarray, n: int, rng: random.Random) -> np.ndarray:
    """Cropped (random start) or tiled to ``n`` samples: a partner anchor under a target."""
    if len(wave) >= n:
        start = rng.randint(0, len(wave) - n)
        return wave[start : start + n]
    return np.tile(wave, n // len(wave) + 1)[:n]


def _power(x: np.ndarray) -> float:
    return float(np.mean(np.square(x, dtype=np.float64))) + 1e-10


class SeparationData(Dataset):
    """Cuts -> the batch of the module docstring. ``pool``: for the weak arm, every anchor cut
    (partners and enrollments are drawn from it); the encoders load on first use."""

    def __init__(self, cfg: SeparationDataConfig, class_names: list[str], train: bool, pool=()):
        self.cfg, self.classes, self.train = cfg, list(class_names), train
        self.by_class: dict[str, list] = defaultdict(list)
        self.by_speaker: dict[str, list] = defaultdict(list)
        for cut in pool:
            self.by_class[cut.custom["anchor_class"]].append(cut)
            if cut.custom["anchor_class"] == "speech":
                self.by_speaker[cut.supervisions[0].speaker].append(cut)
        self._text: SentenceEncoder | None = None
        self._speaker: SpeakerEncoder | None = None
        self._dvectors: dict[str, Tensor] = {}

    # ---- query vectors -------------------------------------------------------------------
    def text_vector(self, text: str) -> Tensor:
        if self._text is None:
            self._text = SentenceEncoder()
        return self._text([text])[0]

    def speaker_vector(self, key: str, load) -> Tensor:
        """d-vector of an enrollment clip, cached by ``key``; ``load()`` gives its audio."""
        if key not in self._dvectors:
            if self._speaker is None:
                self._speaker = SpeakerEncoder()
            self._dvectors[key] = self._speaker(load())
        return self._dvectors[key]

    # ---- examples ------------------------------------------------------------------------
    def _kind(self, rng: random.Random, allowed: list[str]) -> str:
        weights = {k: self.cfg.query_weights.get(k, 0.0) for k in allowed}
        if not any(weights.values()):
            return allowed[0]
        return rng.choices(list(weights), list(weights.values()))[0]

    def _query(self, kind: str, name: str, background: str, rng, enroll=None) -> dict:
        q = {"kind": QUERY_KINDS.index(kind), "class_id": self.classes.index(name),
             "text": torch.zeros(TEXT_DIM), "speaker": torch.zeros(SPEAKER_DIM)}  # fmt: skip
        if kind == "text":
            q["text"] = self.text_vector(describe(name, background, rng))
        elif kind == "speaker":
            q["speaker"] = self.speaker_vector(*enroll)
        return q

    def _mixture(self, cut, rng: random.Random) -> dict:
        """A supervised mixture cut (sources kept) and a query for it."""
        event = cut.custom["event"]
        mix, speech, interf = load_mixture(cut)
        enroll = None
        if "enroll" in cut.custom:
            # (the enrollment Recording has its own length: load it whole, not as the cut)
            recording = cut.custom["enroll"]
            enroll = (cut.custom["enroll_id"], lambda: recording.load_audio().mean(0))
        allowed = ["class", "text"] + (["speaker"] if enroll else [])
        if event == "speaker":  # a text query would not say which talker
            allowed = ["class"] + (["speaker"] if enroll else [])
        if not self.train:  # a fixed query per dev mixture
            allowed = allowed[-1:] if event == "speaker" else ["class"]
        kind = self._kind(rng, allowed)
        alt = None
        name, target = "speech", speech
        if kind == "class" and event == "speaker":
            alt = interf  # either talker is "speech": permutation-invariant target
        elif kind != "speaker" and self.train and rng.random() < self.cfg.background_prob:
            name, target = event, interf
        return {"mix": mix, "target": target, "alt": alt, "event": event,
                **self._query(kind, name, event, rng, enroll)}  # fmt: skip

    def _anchor(self, cut, rng: random.Random) -> dict:
        """A weak-arm example: this anchor mixed with a partner anchor of another class."""
        name = cut.custom["anchor_class"]
        wave = load_audio(cut)
        # (a speech-free background clip has no supervision, so no speaker)
        speaker = cut.supervisions[0].speaker if cut.supervisions else None
        same = [c for c in self.by_speaker.get(speaker, []) if c.id != cut.id]
        others = [c for s, cs in self.by_speaker.items() if s != speaker for c in cs]
        allowed = ["class", "text"] + (["speaker"] if name == "speech" and same and others else [])
        kind = self._kind(rng, allowed)
        if kind == "speaker":
            partner, background, enrolled = rng.choice(others), "speaker", rng.choice(same)
            enroll = (enrolled.id, lambda: load_audio(enrolled))
        else:
            labels = set(cut.custom.get("clip_labels", [name]))
            pool = [
                c
                for k, cs in self.by_class.items()
                if k != name
                for c in cs
                if name not in c.custom.get("clip_labels", [k])
            ] or [  # fmt: skip
                c for k, cs in self.by_class.items() if k != name for c in cs
            ]
            if not pool:
                raise ValueError("weak arm: the anchor pool has a single class")
            partner, enroll = rng.choice(pool), None
            background = partner.custom["anchor_class"] if name == "speech" else name
            del labels
        other = _fit(load_audio(partner), len(wave), rng)
        snr = rng.uniform(self.cfg.snr_min_db, self.cfg.snr_max_db)
        other = other * np.sqrt(_power(wave) / _power(other) / 10 ** (snr / 10))
        mix = wave + other
        peak = max(1.0, float(np.abs(mix).max()) / 0.95)
        return {"mix": mix / peak, "target": wave / peak, "alt": None, "event": background,
                **self._query(kind, name, background, rng, enroll)}  # fmt: skip

    def _crop(self, ex: dict, rng: random.Random) -> dict:
        n = int(self.cfg.segment_seconds * SAMPLE_RATE)
        size = len(ex["mix"])
        if not self.train or n <= 0 or size <= n:
            return ex
        start = rng.randint(0, size - n)
        for key in ("mix", "target", "alt"):
            if ex[key] is not None:
                ex[key] = ex[key][start : start + n]
        return ex

    def __getitem__(self, cuts) -> dict | None:
        rows, ids = [], []
        for cut in cuts:
            # Training draws from the global RNG (seeded, restored on resume by the trainer);
            # validation is a fixed function of the cut.
            rng = random.Random(random.random()) if self.train else random.Random(cut.id)
            try:
                ex = (
                    self._anchor(cut, rng)
                    if "anchor_class" in cut.custom
                    else self._mixture(cut, rng)
                )
            except (AudioError, ValueError, OSError) as e:
                logger.warning("dropping cut %s: %s", cut.id, e)
                continue
            rows.append(self._crop(ex, rng))
            ids.append(cut.id)
        if not rows:
            return None
        mix, lengths = pad_waves([r["mix"] for r in rows])
        target, _ = pad_waves([r["target"] for r in rows])
        alt, _ = pad_waves([r["alt"] if r["alt"] is not None else np.zeros(1) for r in rows])
        alt = torch.nn.functional.pad(alt, (0, mix.shape[1] - alt.shape[1]))
        return {
            "mix": mix,
            "target": target,
            "alt": alt,
            "has_alt": torch.tensor([r["alt"] is not None for r in rows]),
            "lengths": lengths,
            "kind": torch.tensor([r["kind"] for r in rows]),
            "class_id": torch.tensor([r["class_id"] for r in rows]),
            "text": torch.stack([r["text"] for r in rows]),
            "speaker": torch.stack([r["speaker"] for r in rows]),
            "events": [r["event"] for r in rows],
            "cut_ids": ids,
        }


def neg_si_sdr(est: Tensor, target: Tensor, alt: Tensor, has_alt: Tensor) -> Tensor:
    """Per-row loss (B,): minus the SI-SDR (dB) of ``est`` to ``target``, or to ``alt`` where
    ``has_alt`` and that is better (permutation-invariant over the candidate sources)."""
    from torchmetrics.functional.audio import scale_invariant_signal_distortion_ratio as sisdr

    score = sisdr(est, target)
    if bool(has_alt.any()):
        score = torch.where(has_alt, torch.maximum(score, sisdr(est, alt)), score)
    return -score


@register_task
class SeparationTask(Task):
    """Trains ``speechkit.models.separation.Separator`` (see the module docstring)."""

    name = "separation"
    config_class = SeparationTaskConfig
    model_type = "separator"

    def build_dataloader(self, cuts, train, seed, rank=0, world_size=1):
        pool = []
        if train and self.cfg.data.arm == "weak":
            pool = [c for c in cuts if "anchor_class" in c.custom]
            if not pool:
                raise ConfigError("data.arm weak: --train-cuts hold no anchor cuts (mine_anchors)")
        elif train and any("anchor_class" in c.custom for c in cuts.subset(first=20)):
            raise ConfigError("data.arm supervised: --train-cuts are anchors; use data.arm weak")
        sampler = DynamicCutSampler(cuts, max_duration=self.cfg.data.max_duration, shuffle=train,
                                    seed=seed, world_size=world_size, rank=rank)  # fmt: skip
        data = SeparationData(self.cfg.data, self.cfg.model.class_names, train, pool)
        loader = DataLoader(data, sampler=sampler, batch_size=None,
                            num_workers=self.cfg.data.num_workers)  # fmt: skip
        return loader, sampler

    def batch_lengths(self, batch: dict) -> list[int]:
        return batch["lengths"].tolist()

    def build_model(self) -> nn.Module:
        model = build_model(self.cfg.model, "separator")
        if self.inputs.init:
            # --init DIR: continue from a trained separator of the same shape (e.g. with other
            # query weights); a shape mismatch is load_state_dict's error.
            from speechkit.separate import load_trained

            model.load_state_dict(load_trained(self.inputs.init, "separator").state_dict())
            logger.info("separator initialised from %s", self.inputs.init)
        logger.info("separator: %d parameters, %.2f s context each side",
                    model.num_parameters(), self.cfg.model.receptive_field_s)  # fmt: skip
        return model

    def configure_optimizers(self, model: nn.Module, total_steps: int) -> list[OptimizerSpec]:
        optimizer = build_optimizer(model, self.cfg.optim)
        scheduler = build_scheduler(optimizer, self.cfg.optim, total_steps)
        return [OptimizerSpec("model", optimizer, scheduler, grad_clip=self.cfg.optim.grad_clip)]

    @staticmethod
    def _estimate(model: nn.Module, batch: dict) -> Tensor:
        return model(
            batch["mix"], batch["kind"], batch["class_id"], batch["text"], batch["speaker"]
        )

    def training_step(self, model: nn.Module, batch: dict, optimizer: str) -> dict[str, Tensor]:
        est = self._estimate(model, batch)
        loss = neg_si_sdr(est, batch["target"], batch["alt"], batch["has_alt"]).mean()
        return {"loss": loss}

    def validation_step(self, model: nn.Module, batch: dict) -> dict[str, Tensor]:
        est = self._estimate(model, batch)
        loss = neg_si_sdr(est, batch["target"], batch["alt"], batch["has_alt"])
        base = neg_si_sdr(batch["mix"], batch["target"], batch["alt"], batch["has_alt"])
        return {"loss": loss.mean(), "sisdri": (base - loss).mean(),
                "weight": torch.tensor(float(len(loss)))}  # fmt: skip

    def run_config(self) -> dict:
        return {"model_type": "separator", **super().run_config()}


@dataclass
class ConvTasNetTaskConfig(SeparationTaskConfig):
    """The separation task with asteroid's Conv-TasNet (``models.convtasnet_baseline``) as the
    model: the baseline, trained on the same mixtures with the same loss. It takes class
    queries only, so ``data.query_weights`` must name ``class`` alone."""

    task: Literal["separation_convtasnet"] = "separation_convtasnet"
    model: ConvTasNetBaselineConfig = field(default_factory=ConvTasNetBaselineConfig)
    data: SeparationDataConfig = field(
        default_factory=lambda: SeparationDataConfig(query_weights={"class": 1.0})
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if any(w > 0 for k, w in self.data.query_weights.items() if k != "class"):
            raise ConfigError(
                "task separation_convtasnet: Conv-TasNet takes class queries only; "
                f"data.query_weights must be {{class: 1.0}}, got {self.data.query_weights}"
            )


@register_task
class ConvTasNetSeparationTask(SeparationTask):
    """The Conv-TasNet baseline through the separation task's data, loss and validation."""

    name = "separation_convtasnet"
    config_class = ConvTasNetTaskConfig
    model_type = "convtasnet"

    def build_model(self) -> nn.Module:
        if self.inputs.init:
            raise ConfigError(
                "task separation_convtasnet: --init is not supported (train it fresh)"
            )
        model = build_model(self.cfg.model, "convtasnet")
        logger.info("Conv-TasNet baseline: %d parameters", model.num_parameters())
        return model

    def validation_step(self, model: nn.Module, batch: dict) -> dict[str, Tensor]:
        # Dev asks a two-talker mixture for its enrolled speaker, which Conv-TasNet cannot
        # take: those rows ask for "speech" instead, either talker right (the other one is
        # mix - target: validation does not crop, the sources add up to the mixture).
        spk = batch["kind"] != 0
        if bool(spk.any()):
            batch = dict(batch)
            batch["kind"] = torch.zeros_like(batch["kind"])
            batch["class_id"] = torch.where(spk, 0, batch["class_id"])
            batch["alt"] = torch.where(spk[:, None], batch["mix"] - batch["target"], batch["alt"])
            batch["has_alt"] = batch["has_alt"] | spk
        return super().validation_step(model, batch)

    def run_config(self) -> dict:
        return {"model_type": "convtasnet", **Task.run_config(self)}
