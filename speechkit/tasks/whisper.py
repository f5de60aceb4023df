"""The ``whisper`` task: fine-tuning a pretrained Whisper model on lhotse cuts.

    speechkit train --config conf/whisper/finetune_tiny_en.yaml --init whisper-tiny.en \\
        --train-cuts data/cuts_train.jsonl.gz --dev-cuts data/cuts_dev.jsonl.gz --out exp/ft

``--init`` (required): a zoo name (``whisper-tiny.en``, downloaded into the cache if needed), a
packed model directory or a training checkpoint ``.pt`` of a Whisper model. The model's
dimensions come from it, not from YAML; the YAML in ``conf/whisper/`` says what to train and how:
which parameters move (``whisper``), which tasks the cuts become (``data``), the optimiser
(``optim``) and the loop (``trainer``). Fine-tuning is budgeted in updates, so
``trainer.max_steps`` must be set.

Each cut becomes one decoder target per configured task, in Whisper's format (the tokenizer's
``sot_sequence``): English ASR for English-only models; ASR in ``data.asr_languages`` and
X -> English translation (``data.st_directions: [deu-eng, ...]``) for multilingual ones. Batches
have ``S2TDataset``'s layout with Whisper's front end (``WhisperFrontEnd``: the 30 s log-mel
window of decoding time). Checkpoints carry ``model_type: whisper``, the model's dimensions and
the tokenizer: ``speechkit.pretrained.load_pretrained`` reads them, ``speechkit pack_model``
packs them, ``speechkit decode`` decodes them.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Literal

from lhotse import CutSet
from torch import nn

from speechkit.config import ConfigError, to_dict
from speechkit.data.dataset import DataConfig, build_dataloader
from speechkit.data.features import FeatureConfig, WhisperFrontEnd
from speechkit.data.sampler import SamplerConfig
from speechkit.data.segments import split_supervisions
from speechkit.data.specaug import SpecAugConfig
from speechkit.data.tasks import cut_tasks, parse_direction
from speechkit.models import build_model
from speechkit.models.whisper import WhisperConfig
from speechkit.tasks import register_task
from speechkit.tasks.base import Task, TaskInputs, read_cuts
from speechkit.tasks.s2t import S2TTask
from speechkit.train.config import OptimConfig, TrainerConfig

__all__ = ["WhisperDataConfig", "WhisperFinetuneOptions", "WhisperTask", "WhisperTaskConfig"]

logger = logging.getLogger(__name__)


@dataclass
class WhisperFinetuneOptions:
    """What moves and what the model sees.

    freeze_encoder: train the decoder only (the encoder then runs without autograd: about 3x
        cheaper per step, and the acoustic model Whisper learned is kept as is).
    pad_to_window: pad every utterance to Whisper's 30 s window, as at decoding time (see
        ``speechkit.data.features.WhisperFrontEnd``); False trains on unpadded utterances (cheaper, mismatched).
    label_smoothing: of the decoder cross-entropy (0 = none).
    attention_backend: ``sdpa``, ``eager`` or ``triton`` (see docs/design.md).
    """

    freeze_encoder: bool = False
    pad_to_window: bool = True
    label_smoothing: float = 0.0
    attention_backend: Literal["sdpa", "eager", "triton"] = "sdpa"


def _utterance_batches() -> SamplerConfig:
    # Padded to 30 s every utterance costs the same, so batches of similar durations save
    # nothing: one shuffled stream, ~8 phrasebook utterances (2-3 s) per 20 s batch.
    return SamplerConfig(max_duration=20.0, max_cut_duration=20.0, num_buckets=1, bucketing=False)


@dataclass
class WhisperDataConfig:
    """Cuts -> batches. The front end is not configurable: it is the ``--init`` model's.

    asr_languages / st_directions: the tasks each cut becomes (ISO 639-3; directions
        ``<src>-eng`` only). max_target_tokens: longer targets are skipped (Whisper's decoder
        has 448 positions). specaug: off by default (Whisper was trained without it).
    """

    sampler: SamplerConfig = field(default_factory=_utterance_batches)
    asr_languages: list[str] = field(default_factory=lambda: ["eng"])
    st_directions: list[str] = field(default_factory=list)
    max_target_tokens: int = 440
    specaug: SpecAugConfig = field(default_factory=lambda: SpecAugConfig(enabled=False))
    num_workers: int = 0

    def __post_init__(self) -> None:
        for direction in self.st_directions:
            try:
                target = parse_direction(direction)[1]
            except ValueError as e:
                raise ConfigError(f"data.st_directions: {e}") from None
            if target != "eng":
                raise ConfigError(
                    f"data.st_directions: {direction!r}: Whisper translates only into English; "
                    "use '<src>-eng' directions"
                )
        if not 1 <= self.max_target_tokens <= 443:
            raise ConfigError(
                f"data.max_target_tokens must lie in [1, 443] (448 decoder positions minus "
                f"prefix and <|endoftext|>), got {self.max_target_tokens}"
            )
        if not self.asr_languages and not self.st_directions:
            raise ConfigError("data.asr_languages and data.st_directions are both empty")

    def data_config(self, features: FeatureConfig) -> DataConfig:
        """The dataset's ``DataConfig`` with the model's front end ``features``."""
        return DataConfig(
            features=features,
            specaug=self.specaug,
            sampler=self.sampler,
            asr_languages=list(self.asr_languages),
            st_directions=list(self.st_directions),
            max_target_tokens=self.max_target_tokens,
            num_workers=self.num_workers,
        )


def _fine_tuning_optim() -> OptimConfig:
    return OptimConfig(lr=1e-5, betas=(0.9, 0.98), eps=1e-8, warmup_steps=20, grad_clip=1.0)


@dataclass
class WhisperTaskConfig:
    """One fine-tuning run of a Whisper model (see the module docstring)."""

    task: Literal["whisper"] = "whisper"
    whisper: WhisperFinetuneOptions = field(default_factory=WhisperFinetuneOptions)
    data: WhisperDataConfig = field(default_factory=WhisperDataConfig)
    optim: OptimConfig = field(default_factory=_fine_tuning_optim)
    trainer: TrainerConfig = field(default_factory=lambda: TrainerConfig(max_steps=200))

    def __post_init__(self) -> None:
        if self.trainer.max_steps <= 0:
            raise ConfigError(
                "trainer.max_steps must be > 0: a fine-tuning run is budgeted in updates"
            )
        if not 0.0 <= self.whisper.label_smoothing < 1.0:
            raise ConfigError(
                f"whisper.label_smoothing must lie in [0, 1), got {self.whisper.label_smoothing}"
            )


def load_init(init: str):
    """The pretrained Whisper model named by ``--init`` (path first, then zoo name)."""
    from speechkit import zoo

    try:
        pre = zoo.load(init)
    except zoo.UnknownModelError as e:
        raise ConfigError(
            f"--init {init!r} is neither a file, a directory nor a zoo model: {e}"
        ) from None
    if pre.model_type != "whisper":
        raise ConfigError(
            f"--init {init!r} is a {pre.model_type} model, not a Whisper model (for it use a "
            f"config with task: {pre.model_type})"
        )
    return pre


def check_tasks(cfg: WhisperTaskConfig, pre, source: str) -> None:
    """Fails early when the config asks for a language or task the model's tokenizer lacks."""
    tok = pre.tokenizer
    langs = list(cfg.data.asr_languages) + [d.split("-")[0] for d in cfg.data.st_directions]
    try:
        for lang in langs:
            tok.lang_id(lang)
        if cfg.data.st_directions:
            tok.task_id("st_eng")
    except KeyError as e:
        kind = "English-only" if not tok.multilingual else "multilingual"
        raise ConfigError(
            f"{source}: the {kind} --init model cannot train these tasks ({str(e).strip(chr(39))})"
            "; English-only models take data.asr_languages [eng] and data.st_directions []"
        ) from None


def _has_task(cut, languages: list[str], directions: list[str]) -> bool:
    return bool(cut_tasks(cut, languages, directions))  # (a picklable filter, unlike a lambda)


@register_task
class WhisperTask(S2TTask):
    """Fine-tunes a Whisper model (see the module docstring). Its steps, optimiser and
    checkpoint contents are the s2t task's (``WhisperModel.forward`` has ``S2TModel``'s
    signature and ignores CTC targets); the model, front end, targets and cuts are Whisper's."""

    name = "whisper"
    config_class = WhisperTaskConfig
    model_type = "whisper"

    def __init__(self, cfg: WhisperTaskConfig, inputs: TaskInputs | None = None) -> None:
        inputs = inputs or TaskInputs()
        if not inputs.init:
            raise ConfigError("the whisper task fine-tunes a pretrained model: give --init")
        if inputs.tokenizer:
            logger.warning("--tokenizer %s ignored: --init brings its own", inputs.tokenizer)
        Task.__init__(self, cfg, inputs)  # (not S2TTask's: no sentencepiece tokenizer here)
        self.pretrained = load_init(inputs.init)
        check_tasks(cfg, self.pretrained, inputs.config_path)
        self.tokenizer = self.pretrained.tokenizer
        self.model_cfg: WhisperConfig = dataclasses.replace(
            self.pretrained.config,
            label_smoothing=cfg.whisper.label_smoothing,
            attention_backend=cfg.whisper.attention_backend,
        )
        self.data = cfg.data.data_config(self.pretrained.features)

    def load_cuts(self, paths: Iterable[str | Path], train: bool) -> CutSet:
        """The cuts that have a configured task (an English-only model leaves out the other
        languages here, so they do not thin out every batch)."""
        langs, directions = list(self.data.asr_languages), list(self.data.st_directions)
        logger.info("keeping cuts with a task in %s / %s", langs, directions)
        cuts = split_supervisions(read_cuts(paths))  # a task per segment, not per recording
        return cuts.filter(partial(_has_task, languages=langs, directions=directions))

    def total_steps(self, cuts: CutSet, world_size: int) -> int:
        return self.cfg.trainer.max_steps  # fine-tuning is budgeted in updates

    def build_dataloader(self, cuts, train, seed, rank=0, world_size=1):
        frontend = WhisperFrontEnd(self.data.features, self.cfg.whisper.pad_to_window)
        return build_dataloader(
            cuts,
            self.tokenizer,
            self.data,
            train,
            seed=seed,
            world_size=world_size,
            rank=rank,
            frontend=frontend,
        )

    def build_model(self) -> nn.Module:
        model = build_model(self.model_cfg, "whisper")
        model.load_state_dict(self.pretrained.model.state_dict())
        if self.cfg.whisper.freeze_encoder:
            model.encoder.requires_grad_(False)
        logger.info(
            "fine-tuning %s: %d of %d parameters trainable, 30 s padding %s",
            self.inputs.init,
            model.num_parameters(trainable_only=True),
            model.num_parameters(),
            "on" if self.cfg.whisper.pad_to_window else "off",
        )
        return model

    def run_config(self) -> dict:
        """``load_pretrained`` reads ``model_type``, ``model`` and ``data`` (front end, trained
        tasks) from it."""
        config = {"model_type": "whisper", "model": to_dict(self.model_cfg), **to_dict(self.cfg)}
        return config | {"data": to_dict(self.data), "init": self.inputs.init}

    def run_config_sections(self) -> dict[str, type]:
        # run_config's model and data are the model's and the dataset's configs, not the
        # task config's sections of those names
        return {"model": type(self.model_cfg), "data": type(self.data)}
