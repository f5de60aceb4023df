"""TTS training batches: cuts -> phonemes, speaker and language ids, log-mel, frame pitch.

Batch layout (``TTSDataset``)::

    phonemes      int64   (B, N)     phoneme ids, 0 = padding
    phoneme_lens  int64   (B,)
    speakers      int64   (B,)       index into the model's speaker list
    languages     int64   (B,)       index into the model's language list
    mel           float32 (B, M, T)  log-mel (speechkit.tts.mel), padded with log(clamp)
    mel_lens      int64   (B,)       valid frames, num_frames(samples)
    pitch         float32 (B, T)     log2(F0 / 120 Hz) per frame (YIN), 0 where unvoiced
    voiced        bool    (B, T)     frames whose pitch counts
    codes         int64   (B, Q, T)  codec codes of each frame (only with ``codes: true``;
                                     0 past a row's length)
    cut_ids       list[str] (B)

With ``codes: true`` (a TTS model whose targets are codec codes, ``speechkit.tasks.tts``) every
cut must carry codes from ``speechkit codec encode --cuts`` (``cut.custom["codec_codes"]``,
(Q, frames), the codec's hop): the mel must have the same hop (both frame ``t`` centred on
sample ``t * hop``), and every row is cut to the shorter of the two, which differ by at most
the one frame that the mel centres past the last sample.

A cut's phonemes are its supervision's ``custom["phonemes"]`` (a list of phoneme strings,
written by ``speechkit.bin.prepare_tts``), else they are computed from its text with espeak-ng.
A cut is dropped, counted in ``skipped`` and logged, when its audio cannot be read, its text
cannot be phonemised, its speaker or language is not the model's, or it has fewer frames than
phonemes (the alignment gives every phoneme at least one frame).

Voicing: YIN has no voicing decision, so a frame counts as voiced when its RMS is within
``voiced_db`` of the utterance's loudest frame, its F0 is inside (f0_min, f0_max) by 5 %, and
the frame repeats itself at that period: normalised autocorrelation at the YIN period at least
``min_periodicity``. Without the last test, fricatives and noise (loud, aperiodic) came out
voiced with YIN's arbitrary F0 near ``f0_max`` (egs/phrasebook/tts1/RESULTS.md, F0 error).
pYIN (``librosa.pyin``) decides voicing too, but costs about a hundred times YIN per frame, and
pitch is computed for every training batch.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass

import librosa
import numpy as np
import torch
from lhotse import CutSet
from lhotse.dataset import DynamicCutSampler
from torch.utils.data import DataLoader, Dataset

from speechkit.config import ConfigError
from speechkit.data.audio import AudioError, load_audio
from speechkit.data.sampler import fixed_count_loader
from speechkit.tts.mel import TTSMelConfig, mel_spectrogram, num_frames
from speechkit.tts.text import PhonemeVocab, TextError, phonemize

__all__ = [
    "PITCH_REFERENCE_HZ",
    "TTSDataConfig",
    "TTSDataset",
    "build_tts_dataloader",
    "frame_pitch",
]

logger = logging.getLogger(__name__)

CODES_KEY = "codec_codes"  # where ``speechkit codec encode --cuts`` stores a cut's codes
PITCH_REFERENCE_HZ = 120.0  # pitch unit: octaves above this


@dataclass
class TTSDataConfig:
    """batch_size: cuts per batch. f0_min/f0_max: YIN search range (Hz). voiced_db: voicing
    threshold below the loudest frame; min_periodicity: least normalised autocorrelation at
    the F0 period of a voiced frame, 0 = no periodicity test (module docstring). num_workers:
    DataLoader workers. codes: add each cut's codec codes (module docstring)."""

    batch_size: int = 16
    f0_min: float = 65.0
    f0_max: float = 600.0
    voiced_db: float = 30.0
    min_periodicity: float = 0.5
    num_workers: int = 0
    codes: bool = False

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.num_workers < 0:
            raise ConfigError("data: batch_size >= 1 and num_workers >= 0 needed")
        if not 0 < self.f0_min < self.f0_max:
            raise ConfigError(f"data: need 0 < f0_min < f0_max, got {self.f0_min}, {self.f0_max}")


def frame_pitch(
    wave: np.ndarray, mel: TTSMelConfig, cfg: TTSDataConfig
) -> tuple[np.ndarray, np.ndarray]:
    """(pitch, voiced) per mel frame of ``wave`` (S,): float32 octaves re 120 Hz (0 where
    unvoiced) and bool, both (num_frames(S),) aligned with ``mel_spectrogram``'s frames."""
    f0 = librosa.yin(
        wave,
        fmin=cfg.f0_min,
        fmax=cfg.f0_max,
        sr=mel.sample_rate,
        frame_length=mel.n_fft,
        hop_length=mel.hop_length,
        center=True,
    )
    rms = librosa.feature.rms(y=wave, frame_length=mel.n_fft, hop_length=mel.hop_length)[0]
    loud = 20 * np.log10(np.maximum(rms, 1e-8) / max(float(rms.max()), 1e-8)) > -cfg.voiced_db
    voiced = loud & (f0 > cfg.f0_min * 1.05) & (f0 < cfg.f0_max * 0.95)
    if cfg.min_periodicity > 0:
        voiced &= periodicity(wave, f0, mel.sample_rate, mel.n_fft, mel.hop_length) >= (
            cfg.min_periodicity
        )
    pitch = np.where(voiced, np.log2(f0 / PITCH_REFERENCE_HZ), 0.0).astype(np.float32)
    return pitch, voiced


def periodicity(
    wave: np.ndarray, f0: np.ndarray, sr: int, frame_length: int, hop: int
) -> np.ndarray:
    """Normalised autocorrelation of each centred frame (zero-padded at the ends, as YIN's) at
    the lag of its F0: (T,) in [-1, 1], near 1 for a periodic frame, near 0 for noise."""
    x = np.pad(np.asarray(wave, np.float32), frame_length // 2)
    frames = librosa.util.frame(x, frame_length=frame_length, hop_length=hop)  # (L, T')
    lags = np.clip(np.round(sr / np.maximum(f0, 1e-3)).astype(int), 1, frame_length - 1)
    out = np.zeros(len(f0), np.float32)
    for t in range(min(len(f0), frames.shape[1])):
        a, b = frames[: -lags[t], t], frames[lags[t] :, t]
        energy = float(np.dot(a, a) * np.dot(b, b))
        out[t] = float(np.dot(a, b)) / np.sqrt(energy) if energy > 0 else 0.0
    return out


class TTSDataset(Dataset):
    """A batch of cuts -> the batch dict of the module docstring (None if no cut was usable)."""

    def __init__(
        self,
        vocab: PhonemeVocab,
        speakers: list[str],
        languages: list[str],
        mel: TTSMelConfig,
        cfg: TTSDataConfig,
    ):
        self.vocab, self.mel, self.cfg = vocab, mel, cfg
        self.speakers = {s: i for i, s in enumerate(speakers)}
        self.languages = {lang: i for i, lang in enumerate(languages)}
        self.skipped: Counter = Counter()

    def _example(self, cut) -> dict:
        sup = cut.supervisions[0]
        if sup.speaker not in self.speakers:
            raise _Skip("unknown speaker", f"speaker {sup.speaker!r} is not the model's")
        if sup.language not in self.languages:
            raise _Skip("unknown language", f"language {sup.language!r} is not the model's")
        stored = (sup.custom or {}).get("phonemes")
        try:
            phones = list(stored) if stored else list(phonemize(sup.text, sup.language))
            ids = self.vocab.encode(phones, context=f"of cut {cut.id} ")
        except TextError as e:
            raise _Skip("text not phonemised", str(e)) from e
        if self.cfg.codes and not cut.has_custom(CODES_KEY):  # (before reading the audio)
            raise _Skip(
                "no codec codes", f"cut {cut.id} has no {CODES_KEY} (speechkit codec encode)"
            )
        try:
            wave = load_audio(cut, self.mel.sample_rate)
        except AudioError as e:
            raise _Skip("unreadable audio", str(e)) from e
        frames = num_frames(len(wave), self.mel)
        codes = None
        if self.cfg.codes:
            codes = torch.from_numpy(cut.load_custom(CODES_KEY).astype("int64"))  # (Q, T)
            frames = min(frames, codes.size(1))
            codes = codes[:, :frames]
        if frames < len(ids):
            raise _Skip("fewer frames than phonemes", f"cut {cut.id}: {frames} < {len(ids)}")
        pitch, voiced = frame_pitch(wave, self.mel, self.cfg)
        return {
            "ids": torch.tensor(ids),
            "mel": mel_spectrogram(torch.from_numpy(wave), self.mel)[0][:, :frames],
            "pitch": torch.from_numpy(pitch[:frames]),
            "voiced": torch.from_numpy(voiced[:frames]),
            "codes": codes,
            "speaker": self.speakers[sup.speaker],
            "language": self.languages[sup.language],
            "id": cut.id,
        }

    def __getitem__(self, cuts: CutSet) -> dict | None:
        rows = []
        for cut in cuts:
            try:
                rows.append(self._example(cut))
            except _Skip as e:
                self.skipped[e.reason] += 1
                logger.warning("dropped %s: %s", cut.id, e.detail)
        if not rows:
            return None
        b = len(rows)
        n_max = max(r["ids"].numel() for r in rows)
        t_max = max(r["mel"].size(1) for r in rows)
        batch = {
            "phonemes": torch.zeros(b, n_max, dtype=torch.int64),
            "phoneme_lens": torch.tensor([r["ids"].numel() for r in rows]),
            "speakers": torch.tensor([r["speaker"] for r in rows]),
            "languages": torch.tensor([r["language"] for r in rows]),
            "mel": torch.full((b, self.mel.n_mels, t_max), self.mel.silence),
            "mel_lens": torch.tensor([r["mel"].size(1) for r in rows]),
            "pitch": torch.zeros(b, t_max),
            "voiced": torch.zeros(b, t_max, dtype=torch.bool),
            "cut_ids": [r["id"] for r in rows],
        }
        if self.cfg.codes:
            q = {r["codes"].size(0) for r in rows}
            if len(q) > 1:
                raise ValueError(f"cuts of one batch carry different numbers of codebooks: {q}")
            batch["codes"] = torch.zeros(b, q.pop(), t_max, dtype=torch.int64)
        for i, r in enumerate(rows):
            n, t = r["ids"].numel(), r["mel"].size(1)
            batch["phonemes"][i, :n] = r["ids"]
            batch["mel"][i, :, :t] = r["mel"]
            batch["pitch"][i, :t] = r["pitch"]
            batch["voiced"][i, :t] = r["voiced"]
            if self.cfg.codes:
                batch["codes"][i, :, :t] = r["codes"]
        return batch


class _Skip(Exception):
    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason, self.detail = reason, detail


def build_tts_dataloader(
    cuts: CutSet,
    dataset: TTSDataset,
    train: bool,
    seed: int,
    rank: int = 0,
    world_size: int = 1,
) -> tuple[DataLoader, DynamicCutSampler]:
    """``(loader, sampler)``: ``batch_size`` cuts per batch, shuffled in training
    (``speechkit.data.sampler.fixed_count_loader``)."""
    cfg = dataset.cfg
    return fixed_count_loader(cuts, dataset, cfg.batch_size, cfg.num_workers, train, seed, rank,
                              world_size)  # fmt: skip
