"""The speech-to-text dataset: a batch of cuts (chosen by the sampler) -> padded tensors.

Batch layout (``S2TDataset.__getitem__``; B utterances, N >= B decoder targets, T frames,
F mel bins, L / S tokens)::

    feats            float32 (B, T, F)  log-mel frames (10 ms hop), zero-padded
    feat_lens        int64   (B,)       valid frames
    ys_in            int64   (N, L)     [<sop> prompt] <sos> <lang> <task> <nots> text ; padded with eos
    ys_out           int64   (N, L)     ys_in shifted left, then <eos>; -100 = ignore (padding, and
                                        every position whose target is a prompt token or <sos>)
    target_utt       int64   (N,)       the utterance (row of feats) each target belongs to
    ctc_targets      int64   (B, S)     transcript pieces in the spoken language; padded with -1
    ctc_target_lens  int64   (B,)
    cut_ids          list[str]          (B)
    tasks            list[str]          (N) the task of each target: asr, st_deu, ...
    context          dict: speaker, language, event (list[str]); snr_db float32 (B,), nan = clean

The decoder text is the transcript for ``asr`` and the translation for ``st_<lang>`` (see
``tasks.py``). A task-expanded cut (``custom["task"]`` set) has one target; a plain cut has one
target per task it supports (``DataConfig.multitask = "shared"``), so a single encoder pass serves
its transcription and all its translations. A cut must carry one supervision: the dataset
reads its text from it and its audio from the whole cut (:func:`build_dataloader` splits cuts
with several into supervision-level cuts first, see ``segments.py``). Cuts that cannot be used
(several supervisions, unreadable audio, empty or over-long text, a language or task the
tokenizer lacks) are dropped with a warning naming the cut and counted in ``dataset.skipped``
(a Counter by reason). A batch with no usable cut becomes ``None``;
:func:`build_dataloader`'s loader skips those, so the training loop never sees one. With
``num_workers > 0`` the counter lives in the worker processes; the warnings still reach the log.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from typing import Literal

import torch
from lhotse import CutSet
from torch import nn
from torch.utils.data import DataLoader, Dataset

from speechkit.config import ConfigError
from speechkit.data.audio import AudioError, load_audio
from speechkit.data.features import FeatureConfig, LogMel
from speechkit.data.perturb import SpeedPerturbation
from speechkit.data.sampler import BucketingSampler, SamplerConfig, ShuffledSampler, build_sampler
from speechkit.data.segments import split_supervisions
from speechkit.data.shar import SharCuts
from speechkit.data.specaug import SpecAugConfig, SpecAugment
from speechkit.data.tasks import cut_tasks, parse_direction, target_text
from speechkit.data.weak import WEAK_TEXT, has_weak
from speechkit.data.weak import transcript as transcript_of
from speechkit.text.sentencepiece import SentencePieceTokenizer

__all__ = [
    "CTC_PAD_ID",
    "IGNORE_ID",
    "DataConfig",
    "S2TDataset",
    "build_data_sampler",
    "build_dataloader",
]

logger = logging.getLogger(__name__)

IGNORE_ID = -100  # ys_out positions without a loss
CTC_PAD_ID = -1  # ctc_targets padding


def _default_directions() -> list[str]:
    return ["eng-deu", "eng-spa", "eng-fra", "deu-eng", "spa-eng", "fra-eng"]


@dataclasses.dataclass
class DataConfig:
    """Everything between a cut manifest and a batch (paths to data are CLI arguments).

    asr_languages / st_directions: tasks built by ``expand_tasks`` ("src-tgt", ISO 639-3).
    max_target_tokens: cuts whose decoder text or CTC transcript has more pieces are skipped.
    max_prompt_tokens: a prompt keeps at most this many pieces of its text (the tail).
    prompt_prob: training-time probability of prepending ``<sop> previous text``: the text of
        the preceding segment of the same recording in the target's language (its transcript
        for ``asr``, its translation for ``st_<lang>``), as Whisper and OWSM train; it is read
        from the supervision's ``custom["text_prev"]`` / ``["translations_prev"][lang]`` (see
        ``segments.py``; Kaldi/OWSM ``text.prev`` is imported there). A cut without a
        preceding segment gets no prompt.
    st_source_prompt: training-time probability that a translation target is preceded by
        ``<sop>`` and the cut's own transcript (instead of any previous-text prompt). A model
        trained so can translate in two passes: transcribe (with CTC's help), then translate
        with its transcript as the prompt (``speechkit.bin.decode --st-prompt asr``); the
        other targets teach it to translate from the audio alone as well.
    num_workers: DataLoader worker processes (0 = load in the training process).
    multitask: ``shared``: one sample per cut with a decoder target for each of its tasks, all
        sharing one encoder pass (about 2x cheaper when every cut has 2-4 tasks); ``expand``:
        one sample per (cut, task), as ``expand_tasks`` makes them.
    speed_perturb: training-time speed factors (Kaldi/ESPnet speed perturbation, e.g.
        ``[0.9, 1.0, 1.1]``): each training cut is played at a factor drawn uniformly from the
        list, which scales tempo and pitch (formants) together, so the model hears voices it was
        not given. ``[]`` (default) or ``[1.0]``: off. Cuts are perturbed before the sampler
        (``perturb.py``), so batches keep to ``max_duration`` in perturbed seconds; a cut's
        factor depends on the seed, the epoch and its id.
    text_field: ``text`` trains on the gold transcripts. ``weak_text``: a cut whose supervision
        carries a weak transcript (``custom["weak_text"]``, see ``weak.py``) trains on it, as its
        decoder transcript and CTC target, and trains no translation (weakly transcribed speech
        has none: its gold translations would be gold supervision); a cut without one is a gold
        cut and trains as under ``text``. One manifest can so mix gold and weak cuts.
    """

    features: FeatureConfig = dataclasses.field(default_factory=FeatureConfig)
    specaug: SpecAugConfig = dataclasses.field(default_factory=SpecAugConfig)
    sampler: SamplerConfig = dataclasses.field(default_factory=SamplerConfig)
    asr_languages: list[str] = dataclasses.field(
        default_factory=lambda: ["eng", "deu", "spa", "fra"]
    )
    st_directions: list[str] = dataclasses.field(default_factory=_default_directions)
    max_target_tokens: int = 200
    max_prompt_tokens: int = 100
    prompt_prob: float = 0.0
    st_source_prompt: float = 0.0
    num_workers: int = 0
    multitask: Literal["shared", "expand"] = "shared"
    speed_perturb: list[float] = dataclasses.field(default_factory=list)
    text_field: Literal["text", "weak_text"] = "text"

    def __post_init__(self) -> None:
        if any(not 0.5 <= f <= 2.0 for f in self.speed_perturb):
            raise ConfigError(
                f"data.speed_perturb factors must lie in [0.5, 2.0], got {self.speed_perturb}"
            )
        for direction in self.st_directions:
            try:
                parse_direction(direction)
            except ValueError as e:
                raise ConfigError(f"data.st_directions: {e}") from None
        if self.max_prompt_tokens < 1:
            raise ConfigError(f"data.max_prompt_tokens must be >= 1, got {self.max_prompt_tokens}")
        if self.max_target_tokens < 1:
            raise ConfigError(f"data.max_target_tokens must be >= 1, got {self.max_target_tokens}")
        for name in ("prompt_prob", "st_source_prompt"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"data.{name} must be in [0, 1], got {getattr(self, name)}")
        if self.num_workers < 0:
            raise ConfigError(f"data.num_workers must be >= 0, got {self.num_workers}")


@dataclasses.dataclass
class _Item:
    """One usable cut, ready to pad."""

    cut_id: str
    wave: torch.Tensor  # (S,) float32
    targets: list[tuple[str, list[int]]]  # (task, <sos> <lang> <task> <nots> text <eos>)
    prompts: list[list[int]]  # per target: [] or <sop> prompt pieces
    ctc: list[int]
    speaker: str
    language: str
    event: str
    snr_db: float


class S2TDataset(Dataset):
    """Map-style dataset: ``dataset[cuts: CutSet] -> batch dict | None`` (see module docstring)."""

    def __init__(
        self,
        tokenizer: SentencePieceTokenizer,
        cfg: DataConfig,
        train: bool,
        frontend: nn.Module | None = None,
    ):
        self.tokenizer = tokenizer
        self.cfg = cfg
        self.train = train
        # ``frontend``: (wave (B, S), wave_lens (B,)) -> (feats (B, T, F), feat_lens (B,));
        # default the configured log-mel (Whisper's 30 s window: ``WhisperFrontEnd``).
        if frontend is None and cfg.features.kind == "codec":
            raise ValueError(
                "features kind 'codec' needs its front end (speechkit.codec.CodecFrontEnd), "
                "which the s2t task builds"
            )
        self.logmel = frontend if frontend is not None else LogMel(cfg.features)
        self.specaug = SpecAugment(cfg.specaug) if train and cfg.specaug.enabled else None
        self.skipped: Counter = Counter()

    def _skip(self, cut_id: str, reason: str, detail: str) -> None:
        self.skipped[reason] += 1
        logger.warning("skipping cut %s (%s): %s", cut_id, reason, detail)

    def _prepare(self, cut) -> _Item | None:
        """Tokenises and loads one cut; returns None (after counting it) when it is unusable."""
        tok, sup = self.tokenizer, cut.supervisions[0] if cut.supervisions else None
        if sup is None:
            self._skip(cut.id, "no_supervision", "cut has no supervision")
            return None
        if len(cut.supervisions) > 1:
            # Its whole audio would be trained against the first segment's text.
            self._skip(
                cut.id,
                "several_supervisions",
                f"{len(cut.supervisions)} supervisions; split the cuts into supervision-level "
                "cuts first (speechkit.data.segments.split_supervisions)",
            )
            return None
        weak = self.cfg.text_field == WEAK_TEXT and has_weak(sup)
        transcript = transcript_of(sup, self.cfg.text_field).strip()
        if not transcript:
            self._skip(cut.id, "empty_weak_text" if weak else "empty_text", "empty transcript")
            return None
        ctc = tok.encode(transcript)
        if len(ctc) > self.cfg.max_target_tokens:
            limit = self.cfg.max_target_tokens
            self._skip(cut.id, "too_long", f"{len(ctc)} pieces > max_target_tokens={limit}")
            return None
        targets = self._targets(cut, transcript, weak)
        if not targets:
            return None
        try:
            wave = load_audio(cut, self.cfg.features.sample_rate)
        except AudioError as e:
            self._skip(cut.id, "audio", e.reason)
            return None
        custom = cut.custom or {}
        snr = custom.get("snr_db")
        return _Item(
            cut_id=cut.id,
            wave=torch.from_numpy(wave),
            targets=targets,
            prompts=self._prompts(cut, targets, ctc, weak),
            ctc=ctc,
            speaker=sup.speaker or "",
            language=sup.language,
            event=custom.get("event", "clean"),
            snr_db=float("nan") if snr is None else float(snr),
        )

    def _targets(self, cut, transcript: str, weak: bool) -> list[tuple[str, list[int]]]:
        """``(task, ids)`` for the cut's task, or every task of a plain cut; bad ones skipped.
        A weakly transcribed cut (``weak``) has its transcript only."""
        tok, lang = self.tokenizer, cut.supervisions[0].language
        task = (cut.custom or {}).get("task")
        tasks = [task] if task else cut_tasks(cut, self.cfg.asr_languages, self.cfg.st_directions)
        if weak and task and task != "asr":  # a task-expanded translation of a weak cut
            self._skip(cut.id, "weak_no_translation", f"{task}: weakly transcribed speech")
            return []
        if weak:
            tasks = [t for t in tasks if t == "asr"]
        if not tasks:
            self._skip(cut.id, "unknown_lang_task", f"no configured task for language {lang!r}")
        targets = []
        for task in tasks:
            text = transcript if task == "asr" else target_text(cut, task).strip()
            if not text:
                self._skip(cut.id, "empty_text", f"empty {task} text")
                continue
            try:
                sot = tok.sot_sequence(lang, task)
            except KeyError as e:
                self._skip(cut.id, "unknown_lang_task", str(e))
                continue
            pieces = tok.encode(text)
            if len(pieces) > self.cfg.max_target_tokens:
                limit = self.cfg.max_target_tokens
                self._skip(cut.id, "too_long", f"{task}: {len(pieces)} pieces > {limit}")
                continue
            targets.append((task, sot + pieces + [tok.eos_id]))
        return targets

    def _prompts(self, cut, targets, transcript: list[int], weak: bool) -> list[list[int]]:
        """One prompt per target (training only): the transcript for translations with
        probability ``st_source_prompt``, else, with probability ``prompt_prob`` (one draw per
        cut), the preceding segment's text in the target's language. A weakly transcribed cut
        gets no previous-text prompt: the previous text recorded is gold."""
        if not self.train:
            return [[] for _ in targets]
        previous = self.cfg.prompt_prob > 0.0 and float(torch.rand(())) < self.cfg.prompt_prob
        previous = previous and not weak
        source = [self.tokenizer.sop_id] + transcript[-self.cfg.max_prompt_tokens :]
        prompts = []
        for task, _ in targets:
            p = self.cfg.st_source_prompt
            if task.startswith("st_") and p > 0.0 and float(torch.rand(())) < p:
                prompts.append(source)
            else:
                prompts.append(self._previous_text_prompt(cut, task) if previous else [])
        return prompts

    def _previous_text_prompt(self, cut, task: str) -> list[int]:
        """``[<sop>, pieces...]`` of the preceding segment's ``task`` text, or ``[]``."""
        custom = cut.supervisions[0].custom or {}
        if task == "asr":
            prev = custom.get("text_prev")
        else:
            prev = (custom.get("translations_prev") or {}).get(task[len("st_") :])
        if not isinstance(prev, str) or not prev.strip():
            return []
        # Keep the prompt's tail, as Whisper keeps the most recent context.
        pieces = self.tokenizer.encode(prev)[-self.cfg.max_prompt_tokens :]
        return [self.tokenizer.sop_id] + pieces

    def __getitem__(self, cuts: CutSet) -> dict | None:
        cuts = list(cuts)
        items = [item for cut in cuts if (item := self._prepare(cut)) is not None]
        if not items:
            logger.warning("dropping a batch of %d cuts: none is usable", len(cuts))
            return None
        return self._collate(items)

    def _collate(self, items: list[_Item]) -> dict:
        waves = torch.nn.utils.rnn.pad_sequence([it.wave for it in items], batch_first=True)
        wave_lens = torch.tensor([it.wave.numel() for it in items], dtype=torch.long)
        with torch.no_grad():
            feats, feat_lens = self.logmel(waves, wave_lens)
            if self.specaug is not None:
                feats = self.specaug(feats, feat_lens)
        ys_in, ys_out, target_utt = self._decoder_tensors(items)
        ctc_lens = torch.tensor([len(it.ctc) for it in items], dtype=torch.long)
        ctc = torch.full((len(items), max(1, int(ctc_lens.max()))), CTC_PAD_ID, dtype=torch.long)
        for i, it in enumerate(items):
            ctc[i, : len(it.ctc)] = torch.tensor(it.ctc, dtype=torch.long)
        return {
            "feats": feats.float(),
            "feat_lens": feat_lens,
            "ys_in": ys_in,
            "ys_out": ys_out,
            "target_utt": target_utt,
            "ctc_targets": ctc,
            "ctc_target_lens": ctc_lens,
            "cut_ids": [it.cut_id for it in items],
            "tasks": [task for it in items for task, _ in it.targets],
            "context": {
                "speaker": [it.speaker for it in items],
                "language": [it.language for it in items],
                "event": [it.event for it in items],
                "snr_db": torch.tensor([it.snr_db for it in items], dtype=torch.float32),
            },
        }

    def _decoder_tensors(self, items: list[_Item]) -> tuple[torch.Tensor, ...]:
        """(N, L) decoder inputs and targets, (N,) owning utterance; prompt and <sos> targets
        are ignored."""
        rows = [
            (i, prompt, prompt + ys)
            for i, it in enumerate(items)
            for (_, ys), prompt in zip(it.targets, it.prompts)
        ]
        length = max(len(seq) for _, _, seq in rows) - 1  # full sequences end with <eos>
        ys_in = torch.full((len(rows), length), self.tokenizer.eos_id, dtype=torch.long)
        ys_out = torch.full((len(rows), length), IGNORE_ID, dtype=torch.long)
        for r, (_, prompt, seq) in enumerate(rows):
            n = len(seq) - 1
            ys_in[r, :n] = torch.tensor(seq[:-1], dtype=torch.long)
            ys_out[r, :n] = torch.tensor(seq[1:], dtype=torch.long)
            # Targets seq[1 .. len(prompt)] are prompt pieces and <sos>: given, not predicted.
            ys_out[r, : len(prompt)] = IGNORE_ID
        target_utt = torch.tensor([i for i, _, _ in rows], dtype=torch.long)
        return ys_in, ys_out, target_utt


def _single_threaded(_worker_id: int) -> None:
    # Feature extraction is light; a worker with torch's default thread pool would compete for
    # the cores the training step uses.
    torch.set_num_threads(1)


class _SkipNoneLoader(DataLoader):
    """A DataLoader that drops the ``None`` batches S2TDataset returns for all-bad batches."""

    def __iter__(self):
        for batch in super().__iter__():
            if batch is not None:
                yield batch


def build_data_sampler(
    cuts: CutSet,
    tokenizer: SentencePieceTokenizer,
    cfg: DataConfig,
    train: bool,
    seed: int = 0,
    world_size: int = 1,
    rank: int = 0,
) -> BucketingSampler | ShuffledSampler:
    """The checkpointable sampler over ``cuts``, after the cut-level preparation that must
    precede batching: cuts with several supervisions become supervision-level cuts
    (``segments.py``) and, for training, cuts are speed-perturbed (``perturb.py``), so that the
    sampler budgets the durations the model will see. For evaluation (``train=False``) the
    sampler neither shuffles nor drops the last batch.

    Training cuts read from Shar shards (``CutSet(SharCuts(...))``, see ``shar.py``) become this
    rank's own stream of shards, sampled with a world size of 1, the ranks in step.
    """
    cuts = split_supervisions(cuts)
    shar, stream_group = None, 1
    if train and isinstance(cuts.data, SharCuts):
        shuffle = cfg.sampler.shuffle and cfg.sampler.shuffle_shards
        shar = cuts.data.for_ranks(rank, world_size, seed, shuffle_shards=shuffle)
        cuts, stream_group, world_size, rank = CutSet(shar), world_size, 1, 0
    perturbation = None
    if train and any(f != 1.0 for f in cfg.speed_perturb):
        perturbation = SpeedPerturbation(cfg.speed_perturb, seed=seed)
        cuts = perturbation.apply(cuts)
    sampler_cfg = cfg.sampler
    if not train:
        sampler_cfg = dataclasses.replace(sampler_cfg, shuffle=False, drop_last=False)
    sampler = build_sampler(
        cuts,
        sampler_cfg,
        seed=seed,
        world_size=world_size,
        rank=rank,
        tokenizer=tokenizer,
        stream_group=stream_group,
    )
    for follower in (perturbation, shar):
        if follower is not None:
            follower.follow(sampler)
    return sampler


def build_dataloader(
    cuts: CutSet,
    tokenizer: SentencePieceTokenizer,
    cfg: DataConfig,
    train: bool,
    seed: int = 0,
    world_size: int = 1,
    rank: int = 0,
    frontend: nn.Module | None = None,
) -> tuple[DataLoader, BucketingSampler | ShuffledSampler]:
    """``(loader, sampler)`` over ``cuts`` (unexpanded, or task-expanded by ``expand_tasks``);
    ``frontend`` replaces the configured log-mel (see ``S2TDataset``).

    The sampler (:func:`build_data_sampler`; checkpoint it with ``state_dict()``) yields
    CutSet batches; the loader turns each into a batch dict (``batch_size=None``) and skips
    batches with no usable cut.
    """
    sampler = build_data_sampler(cuts, tokenizer, cfg, train, seed, world_size, rank)
    dataset = S2TDataset(tokenizer, cfg, train=train, frontend=frontend)
    loader = _SkipNoneLoader(
        dataset,
        sampler=sampler,
        batch_size=None,
        num_workers=cfg.num_workers,
        persistent_workers=False,
        worker_init_fn=_single_threaded,
    )
    return loader, sampler
