"""Text -> log-mel with a trained acoustic model: the Python entry point of TTS synthesis.

    am = AcousticModel.load("exp/fs2_cpu/model_avg.pt")
    out = am("Where is the museum?", speaker="eng-m3-p50-s155", language="eng")
    out.mel          # (n_mels, T) log-mel in the speechkit.tts.mel format (am.mel)
    out.pitch        # (T,) predicted pitch contour, octaves re 120 Hz
    wave = griffin_lim(out.mel, am.mel)   # or a trained vocoder
    out.latent       # (codec_dim, T) codec latent, for a model trained on codec codes
                     # (speechkit.synthesize.CodecVocoder turns it into codes and a wave)

Long text is cut into sentence chunks (``speechkit.tts.text.split_sentences``), synthesised as
one batch, and joined with ``gap_seconds`` of silence. Errors, raised before any synthesis:
``TextError`` for empty or unphonemisable text and sounds the model never saw (unseen stress or
nasal variants of a known symbol fall back to it: ``PhonemeVocab.encode``), ``ValueError``
for a speaker or language the model does not know (the message lists what it knows).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from speechkit.config import from_dict
from speechkit.models.tts import FastSpeech2, FastSpeech2Config
from speechkit.tts.mel import TTSMelConfig
from speechkit.tts.text import PhonemeVocab, phonemize, split_sentences

__all__ = ["AcousticModel", "Synthesis"]


@dataclass
class Synthesis:
    """mel (M, T) log-mel; pitch (T,) octaves re 120 Hz (predicted); durations: per chunk,
    (N_i,) frames per phoneme; phonemes: per chunk, the phoneme strings spoken; latent
    (codec_dim, T): the predicted codec latent of a model with codec targets, else None (the
    pause between chunks repeats each chunk's last frame, which is the trailing silence the
    training cuts end with)."""

    mel: Tensor
    pitch: Tensor
    durations: list[Tensor]
    phonemes: list[str]
    latent: Tensor | None = None


class AcousticModel:
    """A trained FastSpeech 2 with its vocabulary and mel format (module docstring)."""

    def __init__(
        self,
        model: FastSpeech2,
        mel: TTSMelConfig,
        device: str = "cpu",
        data: dict | None = None,
        codec: dict | None = None,
    ):
        self.model = model.to(device).eval()
        self.mel = mel
        # the training run's ``codec`` section ({model, n_q, sha256}) when the targets were
        # codec codes, else None
        self.codec = dict(codec) if codec and codec.get("model") else None
        # the training run's ``data`` section (pitch extraction settings), as stored
        self.data = dict(data or {})
        self.device = torch.device(device)
        self.vocab = PhonemeVocab(model.cfg.phonemes)
        self.speaker_ids = {s: i for i, s in enumerate(model.cfg.speakers)}
        self.language_ids = {lang: i for i, lang in enumerate(model.cfg.languages)}

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> AcousticModel:
        """From a ``tts`` training checkpoint or ``model_avg.pt`` (their config holds the
        vocabulary, speakers, languages, mel format and data settings)."""
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        cfg = ckpt["config"]
        if cfg.get("task") != "tts":
            raise ValueError(f"{path}: not a tts checkpoint (task {cfg.get('task')!r})")
        model = FastSpeech2(from_dict(FastSpeech2Config, cfg["model"], str(path)))
        model.load_state_dict(ckpt["model"])
        mel = from_dict(TTSMelConfig, cfg["mel"], str(path))
        return cls(model, mel, device, cfg.get("data"), cfg.get("codec"))

    @property
    def speakers(self) -> list[str]:
        return list(self.speaker_ids)

    @property
    def languages(self) -> list[str]:
        return list(self.language_ids)

    def _check(self, speaker: str, language: str) -> tuple[int, int]:
        if speaker not in self.speaker_ids:
            known = ", ".join(self.speakers[:8])
            raise ValueError(
                f"unknown speaker {speaker!r}; this model knows {len(self.speaker_ids)}: {known}, ..."
            )
        if language not in self.language_ids:
            raise ValueError(f"unknown language {language!r}; this model knows {self.languages}")
        return self.speaker_ids[speaker], self.language_ids[language]

    def __call__(
        self,
        text: str,
        speaker: str,
        language: str,
        pace: float = 1.0,
        gap_seconds: float = 0.15,
        max_chars: int = 200,
    ) -> Synthesis:
        """Synthesises ``text`` (any length) as ``speaker`` in ``language`` (module docstring).
        ``pace`` > 1 speaks slower."""
        spk, lang = self._check(speaker, language)
        chunks = split_sentences(text, max_chars)
        if not chunks:
            phonemize(text, language)  # raises the TextError that says why
        phones = [phonemize(c, language) for c in chunks]
        ids = [self.vocab.encode(p, context=f"of {c!r} ") for p, c in zip(phones, chunks)]
        n = torch.tensor([len(i) for i in ids])
        batch = torch.zeros(len(ids), int(n.max()), dtype=torch.int64)
        for row, seq in enumerate(ids):
            batch[row, : len(seq)] = torch.tensor(seq)
        k = len(ids)
        out = self.model.synthesize(
            batch.to(self.device),
            n.to(self.device),
            torch.full((k,), spk, device=self.device),
            torch.full((k,), lang, device=self.device),
            pace=pace,
        )
        gap = round(gap_seconds / self.mel.frame_seconds)
        mels, pitches, latents = [], [], []
        for row in range(k):
            t = int(out.mel_lens[row])
            if row:
                mels.append(
                    torch.full((self.mel.n_mels, gap), self.mel.silence, device=self.device)
                )
                pitches.append(torch.zeros(gap, device=self.device))
                if out.latent is not None:
                    last = out.latent[row - 1, :, int(out.mel_lens[row - 1]) - 1]
                    latents.append(last[:, None].expand(-1, gap))
            mels.append(out.mel[row, :, :t])
            pitches.append(out.frame_pitch[row, :t])
            if out.latent is not None:
                latents.append(out.latent[row, :, :t])
        return Synthesis(
            mel=torch.cat(mels, 1).cpu(),
            pitch=torch.cat(pitches).cpu(),
            durations=[out.durations[r, : int(n[r])].cpu() for r in range(k)],
            phonemes=["".join(p) for p in phones],
            latent=torch.cat(latents, 1).cpu() if latents else None,
        )
