"""FastSpeech 2 with a jointly learned aligner: phonemes -> log-mel frames, multi-speaker and
multilingual.

The parts, in the order data flows through them::

    phonemes (B, N) ─ embedding ─ encoder (FFT blocks) ─ + speaker + language ─ h (B, N, D)
    h ─ variance adaptor: duration, pitch, energy predictors (B, N) each;
        pitch and energy (targets in training, predictions at inference) embedded and added
    h ─ length regulator (repeat phoneme n for d_n frames) ─ (B, T, D)
    ─ decoder (FFT blocks) ─ linear ─ log-mel (B, n_mels, T)   (speechkit.tts.mel format)
                           └ linear ─ codec latent (B, codec_dim, T)   (when codec_dim > 0)

**Codec targets** (``codec_dim > 0``): a second head predicts, per frame, the latent of a
speechkit codec (``speechkit.models.codec``), so that the codec's own decoder is the vocoder and
the codes are the targets (NaturalSpeech 2's use of a codec, without its diffusion): the
``tts`` task trains it against the sum of the codebook vectors of each frame's codes and with
a cross-entropy over each codebook's codes, and at inference the residual quantiser turns the
prediction back into codes. The mel head stays: the aligner reads the mel, energy is the
mel's, and its loss keeps the decoder's states tied to the spectrum. The mel's hop must then
be the codec's (one frame per code frame).

**Durations without a teacher** (the aligner of RAD-TTS / JETS): phoneme embeddings and mel
frames are projected by two small conv stacks; the soft alignment is a softmax over phonemes of
minus their squared distance, times a beta-binomial prior that favours the diagonal early on.
It is trained by the forward-sum loss (CTC over the phoneme sequence: every monotonic path that
visits each phoneme in order) and a binarisation loss. Monotonic alignment search (Viterbi
over the soft alignment, as in Glow-TTS) turns it into hard durations, which sum to the frame
count, drive the length regulator in training and are the duration predictor's targets. Pitch
and energy targets are frame values averaged over each phoneme's frames (FastSpeech 2).

Units: frames are ``hop_length`` samples of the mel (16 ms at 16 kHz, hop 256). Pitch is log2
of F0 relative to 120 Hz (octaves; unvoiced frames are excluded from the averages). Energy is
the mean of the log-mel over its bins. Durations are in frames. Masks: True = valid.

Shapes: B batch, N phonemes, T mel frames, D model width, M mel bins.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from speechkit.nn.attention import MultiHeadAttention
from speechkit.nn.embedding import SinusoidalPositionalEncoding
from speechkit.nn.masks import lengths_to_mask

__all__ = [
    "FastSpeech2",
    "FastSpeech2Config",
    "TTSOutput",
    "average_per_phoneme",
    "beta_binomial_prior",
    "length_regulate",
    "monotonic_alignment",
    "phoneme_index",
]


@dataclass
class FastSpeech2Config:
    """Sizes of the model. ``phonemes``, ``speakers`` and ``languages`` are its vocabularies
    (filled by the ``tts`` task from the training data; index 0 of ``phonemes`` is padding), so
    a checkpoint carries everything it needs to speak. ``n_mels`` must match the mel format."""

    phonemes: list[str] = field(default_factory=list)
    speakers: list[str] = field(default_factory=list)
    languages: list[str] = field(default_factory=list)
    n_mels: int = 80
    d_model: int = 192
    n_heads: int = 2
    encoder_layers: int = 3
    decoder_layers: int = 3
    ffn_channels: int = 768
    ffn_kernel: int = 3
    dropout: float = 0.1
    predictor_channels: int = 192
    predictor_kernel: int = 3
    aligner_channels: int = 80
    aligner_temperature: float = 0.05
    codec_dim: int = 0  # latent width of the codec whose codes are targets; 0 = mel only

    def __post_init__(self) -> None:
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model {self.d_model} must be divisible by n_heads {self.n_heads}")
        if self.codec_dim < 0:
            raise ValueError(f"codec_dim must be >= 0, got {self.codec_dim}")
        if self.ffn_kernel % 2 == 0 or self.predictor_kernel % 2 == 0:
            raise ValueError("ffn_kernel and predictor_kernel must be odd (same-length convs)")


@dataclass
class TTSOutput:
    """What :meth:`FastSpeech2.forward` and :meth:`FastSpeech2.synthesize` return.

    mel (B, M, T) log-mel; mel_lens (B,) frames; durations (B, N) frames per phoneme (from the
    alignment in training, predicted at inference); log_duration_pred, pitch_pred,
    energy_pred (B, N); pitch_target, energy_target (B, N) (training only); frame_pitch (B, T)
    the pitch contour used, expanded to frames; align_logprob (B, T, N) soft alignment
    (training only), forward_sum_loss and bin_loss scalars (training only); latent
    (B, codec_dim, T) the predicted codec latent (models with ``codec_dim > 0``, else None)."""

    mel: Tensor
    mel_lens: Tensor
    durations: Tensor
    log_duration_pred: Tensor
    pitch_pred: Tensor
    energy_pred: Tensor
    frame_pitch: Tensor
    pitch_target: Tensor | None = None
    energy_target: Tensor | None = None
    align_logprob: Tensor | None = None
    forward_sum_loss: Tensor | None = None
    bin_loss: Tensor | None = None
    latent: Tensor | None = None


# ---- alignment and length regulation (plain functions, tested alone) -------------------------


def beta_binomial_prior(n_phonemes: int, n_frames: int, scale: float = 1.0) -> Tensor:
    """Log prior (T, N) of frame t sitting on phoneme n: a beta-binomial over n with
    alpha = scale * (t + 1), beta = scale * (T - t), which peaks near the diagonal."""
    n = torch.arange(n_phonemes, dtype=torch.float64)[None, :]
    t = torch.arange(n_frames, dtype=torch.float64)[:, None]
    a, b, k = scale * (t + 1), scale * (n_frames - t), n_phonemes - 1
    log_choose = torch.lgamma(torch.tensor(k + 1.0)) - torch.lgamma(n + 1) - torch.lgamma(k - n + 1)
    log_beta = torch.lgamma(n + a) + torch.lgamma(k - n + b) - torch.lgamma(k + a + b)
    log_norm = torch.lgamma(a) + torch.lgamma(b) - torch.lgamma(a + b)
    return (log_choose + log_beta - log_norm).float()


@torch.no_grad()
def monotonic_alignment(logp: Tensor, phoneme_lens: Tensor, mel_lens: Tensor) -> Tensor:
    """Monotonic alignment search: the best path through ``logp`` (B, T, N) that starts on the
    first phoneme, ends on the last, and at each frame stays or moves one phoneme on.

    Returns durations (B, N) int64: frames per phoneme, each >= 1 for valid phonemes, 0 for
    padding, summing to ``mel_lens``. Needs ``mel_lens >= phoneme_lens`` (ValueError else)."""
    if bool((mel_lens < phoneme_lens).any()):
        raise ValueError(
            "monotonic_alignment: every utterance needs at least one frame per phoneme"
        )
    b, t_max, n_max = logp.shape
    neg = torch.finfo(torch.float32).min / 2
    lp = logp.float().cpu()
    valid_n = lengths_to_mask(phoneme_lens.cpu(), n_max)  # (B, N)
    score = torch.full((b, n_max), neg)
    score[:, 0] = lp[:, 0, 0]
    moved = torch.zeros(b, t_max, n_max, dtype=torch.bool)  # came from phoneme n - 1
    for t in range(1, t_max):
        from_prev = F.pad(score[:, :-1], (1, 0), value=neg)
        moved[:, t] = from_prev > score
        score = torch.maximum(score, from_prev) + lp[:, t]
        score = torch.where(valid_n, score, neg)
    moved_np, durations = moved.numpy(), np.zeros((b, n_max), dtype=np.int64)
    for i in range(b):  # backtrack from the last frame on the last phoneme
        n = int(phoneme_lens[i]) - 1
        for t in range(int(mel_lens[i]) - 1, -1, -1):
            durations[i, n] += 1
            if n > 0 and (moved_np[i, t, n] or n == t):
                n -= 1
    return torch.from_numpy(durations).to(logp.device)


def phoneme_index(durations: Tensor, n_frames: int) -> Tensor:
    """For each frame, the phoneme it belongs to under ``durations`` (B, N): (B, n_frames)
    int64; frames past a row's total get N."""
    ends = durations.cumsum(1)  # (B, N): first frame after phoneme n
    frames = torch.arange(n_frames, device=durations.device)
    return torch.searchsorted(
        ends, frames.expand(durations.size(0), n_frames).contiguous(), right=True
    )


def length_regulate(h: Tensor, durations: Tensor, max_frames: int | None = None):
    """Repeats phoneme vector ``h[:, n]`` (B, N, D) ``durations[:, n]`` (B, N) times.

    Returns (B, T, D) with T = ``max_frames`` or the longest total, zero past each row's
    total, and the totals (B,)."""
    totals = durations.sum(1)
    t_max = int(totals.max()) if max_frames is None else max_frames
    index = phoneme_index(durations, t_max).clamp(max=h.size(1) - 1)  # (B, T)
    out = h.gather(1, index.unsqueeze(-1).expand(-1, -1, h.size(-1)))
    return out * lengths_to_mask(totals, t_max).unsqueeze(-1), totals


def average_per_phoneme(values: Tensor, durations: Tensor, valid: Tensor | None = None) -> Tensor:
    """Mean of frame ``values`` (B, T) over each phoneme's frames (``durations`` (B, N)), only
    over frames where ``valid`` (B, T) is True; 0 where a phoneme has no valid frame."""
    b, t_max = values.shape
    n = durations.size(1)
    index = phoneme_index(durations, t_max)  # (B, T)
    keep = index < n
    if valid is not None:
        keep = keep & valid
    index = torch.where(keep, index, torch.full_like(index, n))  # dropped frames -> bin N
    sums = values.new_zeros(b, n + 1).scatter_add_(1, index, values * keep)
    counts = values.new_zeros(b, n + 1).scatter_add_(1, index, keep.to(values.dtype))
    return (sums / counts.clamp(min=1))[:, :n]


# ---- layers ------------------------------------------------------------------------------


class ConvFeedForward(nn.Module):
    """FastSpeech's position-wise FFN: conv(k) -> ReLU -> conv(1). (B, T, D) -> (B, T, D)."""

    def __init__(self, d_model: int, channels: int, kernel: int, dropout: float):
        super().__init__()
        self.conv1 = nn.Conv1d(d_model, channels, kernel, padding=kernel // 2)
        self.conv2 = nn.Conv1d(channels, d_model, 1)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        y = self.dropout(F.relu(self.conv1(x.transpose(1, 2))))
        return self.conv2(y).transpose(1, 2)


class FFTBlock(nn.Module):
    """Feed-forward Transformer block, pre-LN: x + MHSA(LN x), then x + ConvFFN(LN x); padded
    positions are zeroed after each half so convolutions never read them."""

    def __init__(self, cfg: FastSpeech2Config):
        super().__init__()
        self.attn_norm = nn.LayerNorm(cfg.d_model)
        self.attn = MultiHeadAttention(cfg.d_model, cfg.n_heads, cfg.dropout)
        self.ffn_norm = nn.LayerNorm(cfg.d_model)
        self.ffn = ConvFeedForward(cfg.d_model, cfg.ffn_channels, cfg.ffn_kernel, cfg.dropout)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        """x (B, T, D), mask (B, T) bool -> (B, T, D)."""
        keep = mask.unsqueeze(-1)
        x = x + self.dropout(self.attn(self.attn_norm(x), mask[:, None, None, :]))
        x = x * keep
        return (x + self.dropout(self.ffn(self.ffn_norm(x)))) * keep


class VariancePredictor(nn.Module):
    """Two conv -> ReLU -> LayerNorm -> dropout layers and a linear head: (B, N, D) -> (B, N)."""

    def __init__(self, cfg: FastSpeech2Config):
        super().__init__()
        c, k = cfg.predictor_channels, cfg.predictor_kernel
        self.convs = nn.ModuleList(
            [nn.Conv1d(cfg.d_model, c, k, padding=k // 2), nn.Conv1d(c, c, k, padding=k // 2)]
        )
        self.norms = nn.ModuleList([nn.LayerNorm(c), nn.LayerNorm(c)])
        self.dropout = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(c, 1)

    def forward(self, h: Tensor, mask: Tensor) -> Tensor:
        x = h * mask.unsqueeze(-1)
        for conv, norm in zip(self.convs, self.norms):
            x = self.dropout(norm(F.relu(conv(x.transpose(1, 2)).transpose(1, 2))))
        return self.head(x).squeeze(-1) * mask


class Aligner(nn.Module):
    """Soft alignment of mel frames to phonemes (module docstring).

    ``forward(text_emb (B, N, D), mel (B, M, T), phoneme mask (B, N), log prior (B, T, N))``
    -> (log-probabilities over phonemes (B, T, N) with the prior, raw scores (B, T, N))."""

    def __init__(self, cfg: FastSpeech2Config):
        super().__init__()
        c = cfg.aligner_channels
        self.key = nn.Sequential(
            nn.Conv1d(cfg.d_model, 2 * c, 3, padding=1), nn.ReLU(), nn.Conv1d(2 * c, c, 1)
        )
        self.query = nn.Sequential(
            nn.Conv1d(cfg.n_mels, 2 * c, 3, padding=1),
            nn.ReLU(),
            nn.Conv1d(2 * c, c, 1),
            nn.ReLU(),
            nn.Conv1d(c, c, 1),
        )
        self.temperature = cfg.aligner_temperature

    def forward(self, text_emb: Tensor, mel: Tensor, text_mask: Tensor, log_prior: Tensor):
        keys = self.key(text_emb.transpose(1, 2))  # (B, C, N)
        queries = self.query(mel)  # (B, C, T)
        # Squared distances |q|^2 + |k|^2 - 2 q.k, without a (B, C, T, N) tensor.
        cross = torch.bmm(queries.transpose(1, 2), keys)  # (B, T, N)
        dist = queries.pow(2).sum(1).unsqueeze(-1) + keys.pow(2).sum(1).unsqueeze(1) - 2 * cross
        scores = (-self.temperature * dist).masked_fill(~text_mask[:, None, :], -1e4)
        logp = (scores.log_softmax(-1) + log_prior).masked_fill(~text_mask[:, None, :], -1e4)
        return logp.log_softmax(-1), scores


def forward_sum_loss(logp: Tensor, phoneme_lens: Tensor, mel_lens: Tensor) -> Tensor:
    """CTC loss of the phoneme sequence 1..N under the soft alignment's log-probabilities
    ``logp`` (B, T, N), with a blank of constant log-score -1 that no path needs (it only keeps
    CTC's form): the mean over the batch of -log of the summed probability of all monotonic
    alignments, per phoneme. ``logp`` must be log-probabilities (<= 0): against raw distances
    the blank would outscore every phoneme and the aligner would barely learn."""
    b, _, n_max = logp.shape
    logits = F.pad(logp, (1, 0), value=-1.0).log_softmax(-1)  # (B, T, 1 + N)
    targets = torch.arange(1, n_max + 1, device=logp.device).expand(b, n_max)
    return F.ctc_loss(
        logits.transpose(0, 1).float(),
        targets,
        mel_lens,
        phoneme_lens,
        blank=0,
        reduction="mean",
        zero_infinity=True,
    )


# ---- the model ---------------------------------------------------------------------------


class FastSpeech2(nn.Module):
    """Phonemes -> log-mel (module docstring). ``forward`` trains (needs the target mel and
    frame pitch); ``synthesize`` predicts everything."""

    def __init__(self, cfg: FastSpeech2Config):
        super().__init__()
        if len(cfg.phonemes) < 2 or not cfg.speakers or not cfg.languages:
            raise ValueError("FastSpeech2Config needs its phonemes, speakers and languages filled")
        self.cfg = cfg
        d = cfg.d_model
        self.embed = nn.Embedding(len(cfg.phonemes), d, padding_idx=0)
        self.positions = SinusoidalPositionalEncoding(d, cfg.dropout)
        self.encoder = nn.ModuleList(FFTBlock(cfg) for _ in range(cfg.encoder_layers))
        self.speaker = nn.Embedding(len(cfg.speakers), d)
        self.language = nn.Embedding(len(cfg.languages), d)
        self.aligner = Aligner(cfg)
        self.duration = VariancePredictor(cfg)
        self.pitch = VariancePredictor(cfg)
        self.energy = VariancePredictor(cfg)
        self.pitch_embed = nn.Conv1d(1, d, 3, padding=1)
        self.energy_embed = nn.Conv1d(1, d, 3, padding=1)
        self.decoder = nn.ModuleList(FFTBlock(cfg) for _ in range(cfg.decoder_layers))
        self.out_norm = nn.LayerNorm(d)
        self.mel_out = nn.Linear(d, cfg.n_mels)
        self.latent_out = nn.Linear(d, cfg.codec_dim) if cfg.codec_dim else None
        nn.init.normal_(self.speaker.weight, std=0.1)
        nn.init.normal_(self.language.weight, std=0.1)

    def encode(self, phonemes: Tensor, phoneme_lens: Tensor, speakers: Tensor, languages: Tensor):
        """phonemes (B, N), lens (B,), speaker and language ids (B,) -> (text embedding (B, N, D),
        conditioned encoder output (B, N, D), mask (B, N))."""
        mask = lengths_to_mask(phoneme_lens, phonemes.size(1))
        emb = self.embed(phonemes)
        h = self.positions(emb) * mask.unsqueeze(-1)
        for block in self.encoder:
            h = block(h, mask)
        cond = self.speaker(speakers) + self.language(languages)  # (B, D)
        return emb, (h + cond.unsqueeze(1)) * mask.unsqueeze(-1), mask

    def _embed_variances(self, h: Tensor, pitch: Tensor, energy: Tensor, mask: Tensor) -> Tensor:
        """h (B, N, D) + conv embeddings of phoneme pitch and energy (B, N)."""
        p = self.pitch_embed(pitch.unsqueeze(1)).transpose(1, 2)
        e = self.energy_embed(energy.unsqueeze(1)).transpose(1, 2)
        return (h + p + e) * mask.unsqueeze(-1)

    def decode(self, h: Tensor, durations: Tensor, max_frames: int | None = None):
        """Length regulation and the decoder: (B, N, D), durations (B, N) -> mel (B, M, T),
        frame counts (B,)."""
        mel, mel_lens, _ = self._decode(h, durations, max_frames)
        return mel, mel_lens

    def _decode(self, h: Tensor, durations: Tensor, max_frames: int | None = None):
        """:meth:`decode` and the codec latent (B, codec_dim, T) (None without that head)."""
        x, mel_lens = length_regulate(h, durations, max_frames)
        mask = lengths_to_mask(mel_lens, x.size(1))
        x = self.positions(x) * mask.unsqueeze(-1)
        for block in self.decoder:
            x = block(x, mask)
        x = self.out_norm(x)
        keep = mask.unsqueeze(1)
        mel = self.mel_out(x).transpose(1, 2)  # (B, M, T)
        latent = None
        if self.latent_out is not None:
            latent = self.latent_out(x).transpose(1, 2) * keep  # (B, codec_dim, T)
        return mel * keep, mel_lens, latent

    def forward(
        self,
        phonemes: Tensor,
        phoneme_lens: Tensor,
        speakers: Tensor,
        languages: Tensor,
        mel: Tensor,
        mel_lens: Tensor,
        frame_pitch: Tensor,
        voiced: Tensor,
    ) -> TTSOutput:
        """Training pass. mel (B, M, T) target log-mel, mel_lens (B,), frame_pitch (B, T)
        octaves re 120 Hz, voiced (B, T) bool. Durations come from the aligner."""
        emb, h, mask = self.encode(phonemes, phoneme_lens, speakers, languages)
        prior = torch.full((mel.size(0), mel.size(2), phonemes.size(1)), -1e4, device=mel.device)
        for i, (n, t) in enumerate(zip(phoneme_lens.tolist(), mel_lens.tolist())):
            prior[i, :t, :n] = beta_binomial_prior(n, t).to(mel.device)
        logp, scores = self.aligner(emb, mel, mask, prior)
        durations = monotonic_alignment(logp.detach(), phoneme_lens, mel_lens)
        frame_mask = lengths_to_mask(mel_lens, mel.size(2))
        index = phoneme_index(durations, mel.size(2)).clamp(max=phonemes.size(1) - 1)
        # Binarisation: the soft alignment's log-probability of the hard path, per frame.
        on_path = logp.gather(2, index.unsqueeze(-1)).squeeze(-1)  # (B, T)
        bin_loss = -(on_path * frame_mask).sum() / frame_mask.sum()
        fs_loss = forward_sum_loss(logp, phoneme_lens, mel_lens)

        energy_frames = mel.mean(1)  # (B, T)
        pitch_target = average_per_phoneme(frame_pitch, durations, voiced & frame_mask)
        energy_target = average_per_phoneme(energy_frames, durations, frame_mask)
        log_dur = self.duration(h, mask)
        pitch_pred = self.pitch(h, mask)
        energy_pred = self.energy(h, mask)
        h = self._embed_variances(h, pitch_target, energy_target, mask)
        out_mel, out_lens, latent = self._decode(h, durations, mel.size(2))
        return TTSOutput(
            mel=out_mel,
            mel_lens=out_lens,
            durations=durations,
            log_duration_pred=log_dur,
            pitch_pred=pitch_pred,
            energy_pred=energy_pred,
            frame_pitch=frame_pitch,
            pitch_target=pitch_target,
            energy_target=energy_target,
            align_logprob=logp,
            forward_sum_loss=fs_loss,
            bin_loss=bin_loss,
            latent=latent,
        )

    @torch.no_grad()
    def synthesize(
        self,
        phonemes: Tensor,
        phoneme_lens: Tensor,
        speakers: Tensor,
        languages: Tensor,
        pace: float = 1.0,
        pitch_shift: float = 0.0,
    ) -> TTSOutput:
        """Inference: everything predicted. ``pace`` > 1 speaks slower (durations scaled);
        ``pitch_shift`` in octaves is added to the predicted pitch."""
        _, h, mask = self.encode(phonemes, phoneme_lens, speakers, languages)
        log_dur = self.duration(h, mask)
        durations = (torch.round((log_dur.exp() - 1) * pace).clamp(min=1).long()) * mask
        pitch = (self.pitch(h, mask) + pitch_shift) * mask
        energy = self.energy(h, mask)
        h = self._embed_variances(h, pitch, energy, mask)
        mel, mel_lens, latent = self._decode(h, durations)
        frame_pitch, _ = length_regulate(pitch.unsqueeze(-1), durations, mel.size(2))
        return TTSOutput(
            mel=mel,
            mel_lens=mel_lens,
            durations=durations,
            log_duration_pred=log_dur,
            pitch_pred=pitch,
            energy_pred=energy,
            frame_pitch=frame_pitch.squeeze(-1),
            latent=latent,
        )


def count_parameters(model: nn.Module) -> float:
    """Millions of parameters."""
    return sum(p.numel() for p in model.parameters()) / 1e6
