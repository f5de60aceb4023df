"""Cuts -> Whisper training batches: Whisper's log-mel window and Whisper-format decoder targets.

The batch layout is ``S2TDataset``'s (docs/design.md "Batch layout"); only the front end and the
tokenizer differ:

* features: each waveform gets 160 zero samples appended, then one Whisper log-mel over it
  (``LogMel`` with ``FeatureConfig(kind="whisper")``), of which the first ``S // 160`` frames are
  content; with ``pad_to_window`` the content is zero-padded *in log-mel space* to 3000 frames
  (30 s) and ``feat_lens`` is 3000, exactly what ``speechkit.inference.Transcriber`` feeds the
  encoder at decoding time. Without it the rows are padded to the longest utterance and
  ``feat_lens`` counts content frames (about 10x cheaper for 3 s utterances, but Whisper was
  pretrained on 30 s windows: see egs/phrasebook/whisper1/RESULTS.md for what that costs);
* targets: with a ``WhisperTokenizer``, ``tok.sot_sequence(lang, task) + text + [eot]`` is
  ``<|startoftranscript|> [<|lang|> <|task|>] <|notimestamps|> text <|endoftext|>`` (English-only
  models have no language and task tokens); Whisper's tasks are ``asr`` and ``st_eng``.

A cut with several tasks (transcript and English translation) gets one target per task, all
sharing one encoder pass (``target_utt``), as in ``S2TDataset``.

Example::

    ds = WhisperDataset(tok, data_cfg, train=True, pad_to_window=True)
    batch = ds[cuts]          # feats (B, 3000, 80), feat_lens (B,) = 3000, ys_in (N, L) ...
"""

from __future__ import annotations

import dataclasses
import logging

import torch
from lhotse import CutSet
from torch import Tensor, nn
from torch.utils.data import DataLoader

from speechkit.data.dataset import DataConfig, S2TDataset
from speechkit.data.features import FeatureConfig, LogMel
from speechkit.data.sampler import build_sampler
from speechkit.text.whisper import WhisperTokenizer

__all__ = ["WINDOW_FRAMES", "WhisperDataset", "WhisperFrontEnd", "build_whisper_dataloader"]

logger = logging.getLogger(__name__)

WINDOW_FRAMES = 3000  # 30 s of 10 ms frames: Whisper's encoder window
HOP = 160  # samples per frame at 16 kHz


class WhisperFrontEnd(nn.Module):
    """``(wave (B, S), wave_lens (B,)) -> feats (B, T, n_mels), feat_lens (B,)`` the way the
    Whisper decoder of ``speechkit.inference`` computes them (see module docstring).

    ``pad_to_window``: T = ``feat_lens`` = 3000 for every row; else T = the longest content.
    """

    def __init__(self, cfg: FeatureConfig, pad_to_window: bool):
        super().__init__()
        if cfg.kind != "whisper":
            raise ValueError(f"WhisperFrontEnd needs FeatureConfig(kind='whisper'), got {cfg.kind}")
        self.logmel = LogMel(cfg)
        self.pad_to_window = pad_to_window

    def forward(self, wave: Tensor, wave_lens: Tensor) -> tuple[Tensor, Tensor]:
        # The appended 160 zeros give the last content frame a full right context, as in
        # faster-whisper; the frame they add is not content.
        # (Rows are zero-padded past wave_lens, so each row's 160 samples past its end are zeros.)
        wave = torch.nn.functional.pad(wave, (0, HOP))
        feats, _ = self.logmel(wave, wave_lens + HOP)
        content = torch.clamp(wave_lens // HOP, max=WINDOW_FRAMES)  # (B,)
        if bool((wave_lens > WINDOW_FRAMES * HOP).any()):
            logger.warning("an utterance is longer than 30 s: only its first 30 s are used")
        width = WINDOW_FRAMES if self.pad_to_window else int(content.max())
        out = feats.new_zeros(feats.size(0), width, feats.size(2))
        for i, n in enumerate(content.tolist()):
            out[i, :n] = feats[i, :n]
        lens = torch.full_like(content, WINDOW_FRAMES) if self.pad_to_window else content
        return out, lens


class WhisperDataset(S2TDataset):
    """``dataset[cuts] -> batch | None`` in the S2TDataset layout with Whisper's front end.

    ``tokenizer``: a ``WhisperTokenizer`` (its ``sot_sequence`` gives Whisper's prefixes and
    rejects languages/tasks the model lacks: such targets are skipped and counted).
    ``cfg.features`` must be the model's Whisper front end (``kind: whisper``).
    """

    def __init__(
        self, tokenizer: WhisperTokenizer, cfg: DataConfig, train: bool, pad_to_window: bool
    ):
        super().__init__(tokenizer, cfg, train)
        self.logmel = WhisperFrontEnd(cfg.features, pad_to_window)


def build_whisper_dataloader(
    cuts: CutSet,
    tokenizer: WhisperTokenizer,
    cfg: DataConfig,
    train: bool,
    pad_to_window: bool,
    seed: int = 0,
) -> tuple[DataLoader, object]:
    """``(loader, sampler)`` over (unexpanded or task-expanded) ``cuts``; the loader yields batch
    dicts or None for a batch with no usable cut (the trainer skips those). For evaluation
    (``train=False``) the sampler neither shuffles nor drops the last batch."""
    sampler_cfg = cfg.sampler
    if not train:
        sampler_cfg = dataclasses.replace(sampler_cfg, shuffle=False, drop_last=False)
    sampler = build_sampler(cuts, sampler_cfg, seed=seed, tokenizer=tokenizer)
    dataset = WhisperDataset(tokenizer, cfg, train=train, pad_to_window=pad_to_window)
    loader = DataLoader(dataset, sampler=sampler, batch_size=None, num_workers=cfg.num_workers)
    return loader, sampler
