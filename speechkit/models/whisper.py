"""OpenAI Whisper as a speechkit model: the same decoding API as :class:`S2TModel`.

Read top to bottom: config, sinusoidal table, audio encoder, text decoder, model.

* Encoder: Conv1d (kernel 3) + GELU, Conv1d (kernel 3, stride 2) + GELU, so 10 ms log-mel frames
  become 20 ms encoder frames; plus a fixed sinusoidal table (sin half, then cos half); pre-LN
  Transformer layers (GELU MLP of width 4 D); a final LayerNorm.
* Decoder: token embedding + learned positions, pre-LN layers with causal self-attention and
  cross-attention, a final LayerNorm; logits are ``x @ token_embedding.T`` (tied).

The layers are speechkit's shared pre-LN Transformer layers (``nn/transformer.py``): their
attention has Q/K/V/out projections with no key bias, exactly Whisper's layout, so converted
weights compute the same function and ``attention_backend`` selects the attention kernel.

Input length: the original encoder only accepts exactly ``2 * n_audio_ctx`` frames (3000 = 30 s)
and attends over all of them, padding included. Here shorter inputs are allowed (the sinusoidal
table is sliced) and padding past ``feat_lens`` is masked, so batches of unpadded utterances are
independent of each other. For numerical parity with the original, pad the *waveform* with zeros
to 30 s, compute its 3000 log-mel frames and pass ``feat_lens = 3000``; Whisper was trained on
such windows and transcribes much worse without them.

Shapes: B batch, T log-mel frames (10 ms), T' = ceil(T / 2) encoder frames (20 ms), L decoder
tokens, V vocabulary, D width. ``ys_out`` uses -100 for ignored positions; ``ys_in`` is padded
with ``<|endoftext|>``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from speechkit.config import ConfigError
from speechkit.nn.attention import block_kv
from speechkit.nn.decoder import DecoderCache, EncoderDecoder, intra_op_threads, token_loss
from speechkit.nn.linear import HalfWeight, PackedWeight, half_linears, is_half_exact
from speechkit.nn.masks import causal_mask, lengths_to_mask
from speechkit.nn.transformer import TransformerDecoderLayer, TransformerEncoderLayer

logger = logging.getLogger(__name__)

__all__ = ["WHISPER_DIMS", "WhisperConfig", "WhisperModel", "whisper_sinusoids"]


@dataclass
class WhisperConfig:
    """Whisper's dimensions (the names of OpenAI's ``ModelDimensions``) plus speechkit settings.

    ``n_audio_ctx`` encoder frames (1500 = 30 s) and ``n_text_ctx`` decoder positions (448) are
    the longest inputs. Encoder and decoder widths must be equal (cross-attention projects the
    encoder output with a D x D map). ``label_smoothing`` is used by ``forward`` (fine-tuning).
    """

    n_mels: int = 80
    n_audio_ctx: int = 1500
    n_audio_state: int = 384
    n_audio_head: int = 6
    n_audio_layer: int = 4
    n_vocab: int = 51864
    n_text_ctx: int = 448
    n_text_state: int = 384
    n_text_head: int = 6
    n_text_layer: int = 4
    attention_backend: Literal["sdpa", "eager", "triton"] = "sdpa"
    label_smoothing: float = 0.0

    def __post_init__(self) -> None:
        for name in ("n_mels", "n_audio_ctx", "n_audio_state", "n_audio_head", "n_audio_layer",
                     "n_vocab", "n_text_ctx", "n_text_state", "n_text_head", "n_text_layer"):  # fmt: skip
            if getattr(self, name) <= 0:
                raise ConfigError(f"model.{name} must be > 0, got {getattr(self, name)}")
        if self.n_audio_state != self.n_text_state:
            raise ConfigError(
                f"model.n_audio_state ({self.n_audio_state}) must equal model.n_text_state "
                f"({self.n_text_state}): cross-attention maps encoder frames with a D x D layer"
            )
        for width, heads in (("n_audio_state", "n_audio_head"), ("n_text_state", "n_text_head")):
            if getattr(self, width) % getattr(self, heads) != 0:
                raise ConfigError(
                    f"model.{width} ({getattr(self, width)}) must be divisible by model.{heads} "
                    f"({getattr(self, heads)})"
                )
        if self.n_audio_state % 2 != 0 or self.n_audio_state < 4:
            raise ConfigError(
                f"model.n_audio_state must be even and >= 4 (sinusoids), got {self.n_audio_state}"
            )
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(
                f"model.label_smoothing must lie in [0, 1), got {self.label_smoothing}"
            )

    @property
    def multilingual(self) -> bool:
        """True for the multilingual vocabularies (51865 or more ids); False for ``*.en``."""
        return self.n_vocab >= 51865


# Published sizes (width, heads, layers per stack); English-only ``.en`` models use
# n_vocab 51864, multilingual 51865 (large-v3: 51866 and 128 mels).
WHISPER_DIMS: dict[str, dict] = {
    "tiny": {"n_audio_state": 384, "n_audio_head": 6, "n_audio_layer": 4},
    "base": {"n_audio_state": 512, "n_audio_head": 8, "n_audio_layer": 6},
    "small": {"n_audio_state": 768, "n_audio_head": 12, "n_audio_layer": 12},
    "medium": {"n_audio_state": 1024, "n_audio_head": 16, "n_audio_layer": 24},
    "large": {"n_audio_state": 1280, "n_audio_head": 20, "n_audio_layer": 32},
}


def whisper_sinusoids(length: int, dim: int, max_timescale: float = 10000.0) -> Tensor:
    """(length, dim) float32 table: channels [0, dim/2) are sin, [dim/2, dim) cos of
    ``pos * exp(-k * log(max_timescale) / (dim/2 - 1))`` for k = 0 .. dim/2 - 1 (Whisper's
    layout, which differs from the interleaved table in ``nn/embedding.py``)."""
    half = dim // 2
    step = math.log(max_timescale) / (half - 1)
    inv_timescales = torch.exp(-step * torch.arange(half, dtype=torch.float32))
    angles = torch.arange(length, dtype=torch.float32)[:, None] * inv_timescales[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class AudioEncoder(nn.Module):
    """(B, T, n_mels) log-mel frames + lengths -> (B, T', D) + lengths, T' = ceil(T / 2)."""

    def __init__(self, cfg: WhisperConfig):
        super().__init__()
        d = cfg.n_audio_state
        self.n_ctx = cfg.n_audio_ctx
        self.conv1 = nn.Conv1d(cfg.n_mels, d, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(d, d, kernel_size=3, stride=2, padding=1)
        # Persistent, so a converted checkpoint carries the exact table its source used.
        self.register_buffer("positions", whisper_sinusoids(cfg.n_audio_ctx, d))
        self.layers = nn.ModuleList(
            TransformerEncoderLayer(d, cfg.n_audio_head, 4 * d, 0.0, 0.0)
            for _ in range(cfg.n_audio_layer)
        )
        self.norm = nn.LayerNorm(d)

    @staticmethod
    def output_lengths(feat_lens: Tensor) -> Tensor:
        """Encoder frames of ``feat_lens`` input frames: ceil(T / 2) (kernel 3, stride 2, pad 1)."""
        return (feat_lens + 1) // 2

    def forward(self, feats: Tensor, feat_lens: Tensor) -> tuple[Tensor, Tensor]:
        t = feats.size(1)
        if t > 2 * self.n_ctx:
            raise ValueError(
                f"encoder input of {t} frames exceeds {2 * self.n_ctx} frames "
                f"({self.n_ctx * 0.02:g} s): split the audio into 30 s windows"
            )
        valid = lengths_to_mask(feat_lens, t)[:, None, :]  # (B, 1, T)
        # Zeroing the padding (input and first conv) makes a padded row compute exactly what
        # the same utterance computes alone: the convolutions see zeros past its end either way.
        x = feats.transpose(1, 2) * valid.to(feats.dtype)  # (B, n_mels, T)
        x = F.gelu(self.conv1(x)) * valid.to(feats.dtype)
        x = F.gelu(self.conv2(x)).transpose(1, 2)  # (B, T', D)
        x = x + self.positions[: x.size(1)].to(x.dtype)
        lens = self.output_lengths(feat_lens).clamp(max=self.n_ctx)
        pad_mask = lengths_to_mask(lens, x.size(1))  # (B, T') True = valid
        for layer in self.layers:
            x = layer(x, pad_mask, lens)
        return self.norm(x), lens


StepKernel = Literal["half", "packed", "plain"]
STEP_KERNELS: tuple[str, ...] = ("half", "packed", "plain")

# Output rows (hypotheses x positions) up to which the logits are computed as (W @ x.T).T: a
# search step's, for any beam and batch size speechkit decodes with.
STEP_ROWS = 64


class TextDecoder(nn.Module):
    """Token ids (B, l) + cache -> logits (B, l, V); learned positions, tied output."""

    def __init__(self, cfg: WhisperConfig):
        super().__init__()
        d = cfg.n_text_state
        self.n_ctx = cfg.n_text_ctx
        self.embed = nn.Embedding(cfg.n_vocab, d)
        self.positions = nn.Parameter(torch.empty(cfg.n_text_ctx, d))
        nn.init.normal_(self.embed.weight, std=d**-0.5)
        nn.init.normal_(self.positions, std=0.02)
        self.layers = nn.ModuleList(
            TransformerDecoderLayer(d, cfg.n_text_head, 4 * d, 0.0, 0.0)
            for _ in range(cfg.n_text_layer)
        )
        self.norm = nn.LayerNorm(d)
        # Replaces the tied projection when set, (..., D) -> (..., V): e.g. an int8 copy of the
        # embedding for CPU inference (``speechkit.inference.quantize_int8``).
        self.output: nn.Module | None = None
        # CPU intra-op threads for the output projection of a search step (None: as the caller
        # runs). A search may run its small per-step ops on one thread (``WhisperWindowDecoder``)
        # and still read the V x D table, most of a step's memory traffic, with several.
        self.output_threads: int | None = None
        # How a search step's (few rows) products are computed on CPU: ``set_step_kernel``.
        self.step_kernel: StepKernel = "plain"
        self._packed = PackedWeight()
        self._half = HalfWeight()

    def set_step_kernel(self, kind: StepKernel) -> None:
        """How a search step's few-row products run on CPU (``nn/linear.py``):

        * ``"half"``: the layers' projections and the tied output read float16 copies of their
          weights, multiplied in float32 (``HalfLinear`` / ``HalfWeight``): exact for weights
          that are float16 values, as Whisper's released ones are. A decoder with other weights
          (fine-tuned in float32) gets ``"plain"``, saying so in the log. Costs half the
          decoder's weights again in memory. ``new_cache`` then also packs the cross-attention
          keys and values of unpadded windows for the same kernels (in float32,
          ``nn.attention.block_kv``).
        * ``"packed"``: the tied output reuses MKL's packed copy of the table (``PackedWeight``;
          faster than plain on one host, 2x slower on an AMD EPYC; costs the table again).
        * ``"plain"``: the weights as they are.
        """
        if kind not in STEP_KERNELS:
            raise ValueError(f"step kernel must be one of {', '.join(STEP_KERNELS)}, got {kind!r}")
        if kind == "half" and not all(is_half_exact(p) for p in self.parameters() if p.dim() == 2):
            logger.info("the decoder's weights are not all float16 values (fine-tuned in "
                        "float32?): search steps use the plain float32 kernel")  # fmt: skip
            kind = "plain"
        half_linears(self.layers, on=kind == "half")
        self.step_kernel = kind

    def new_cache(self, enc: Tensor, enc_lens: Tensor, gates: list | None = None) -> DecoderCache:
        """Cross-attention K/V of ``enc`` (B, T', D) with valid lengths ``enc_lens`` (B,).
        ``gates``: per layer, the module gates of a gated decoder (``nn/gates.py``, order
        self_attn, cross_attn, ffn; ``models/gated_whisper.py``), or None (all on); a layer
        whose cross-attention gate is a False gets no cross K/V."""
        mask = lengths_to_mask(enc_lens, enc.size(1))[:, None, None, :]
        off = [isinstance(g, tuple) and not g[1] for g in gates or [None] * len(self.layers)]
        cross = [None if o else layer.cross_kv(enc) for layer, o in zip(self.layers, off)]
        if self.step_kernel == "half" and enc.device.type == "cpu" and bool(mask.all()):
            # Whisper's 30 s windows have no padding: every step attends to all 1,500 frames.
            blocked = [None if kv is None else block_kv(*kv) for kv in cross]
            cross = [kv if b is None else b for kv, b in zip(cross, blocked)]
        return DecoderCache(
            cross=cross, cross_mask=mask, self_kv=[None] * len(self.layers), gates=gates
        )

    def forward(self, ys_new: Tensor, cache: DecoderCache, last_only: bool = False) -> Tensor:
        """Runs the l newest tokens ``ys_new`` (B, l) and appends their K/V to ``cache``.
        Returns logits (B, l, V), or with ``last_only`` those of the newest token (B, 1, V)."""
        past, n_new = cache.length, ys_new.size(1)
        if past + n_new > self.n_ctx:
            raise ValueError(
                f"decoder input of {past + n_new} tokens exceeds n_text_ctx ({self.n_ctx})"
            )
        x = self.embed(ys_new) + self.positions[past : past + n_new]
        # One new token may see every cached one: no mask needed (lets sdpa pick fast kernels).
        self_mask = None if n_new == 1 else causal_mask(n_new, past, device=ys_new.device)
        gates = cache.gates or [None] * len(self.layers)
        for i, layer in enumerate(self.layers):
            x, cache.self_kv[i] = layer(
                x, self_mask, cache.cross[i], cache.cross_mask, cache.self_kv[i], gates[i]
            )
        cache.tokens = past + n_new
        x = self.norm(x[:, -1:] if last_only else x)
        with intra_op_threads(self.output_threads):
            return self._logits(x)

    def _logits(self, x: Tensor) -> Tensor:
        """(B, l, D) -> (B, l, V) through the tied embedding (or ``self.output``)."""
        if self.output is not None:
            return self.output(x)
        if self.step_kernel != "plain":
            # The parameter itself, not a cast copy: a new tensor per call would be repacked.
            cached = self._half if self.step_kernel == "half" else self._packed
            out = cached(self.embed.weight, x.reshape(-1, x.shape[-1]))  # (rows, V) | None
            if out is not None:
                return out.reshape(*x.shape[:2], -1)
        weight = self.embed.weight.to(x.dtype)  # (V, D)
        if x.shape[0] * x.shape[1] <= STEP_ROWS and not x.requires_grad:
            # Few rows (a search step): reading the 51,864 x D table row-major as the left
            # operand is about 2x faster on CPU than x @ weight.t(), which dominates the step.
            out = weight @ x.reshape(-1, x.shape[-1]).t()  # (V, rows)
            return _row_major(out).reshape(*x.shape[:2], -1)
        return x @ weight.t()


def _row_major(t: Tensor) -> Tensor:
    """(V, R) -> (R, V). On CPU a contiguous copy: the search's log-softmax and top-k over V
    run about 3x faster on it than on the transposed view, and numpy's blocked transpose makes
    that copy 3-4x faster than torch's for a few rows (80 against 330 us for 5 x 51,864)."""
    if t.device.type != "cpu" or t.dtype != torch.float32 or t.requires_grad:
        return t.t()
    return torch.from_numpy(np.ascontiguousarray(t.numpy().T))


class WhisperModel(EncoderDecoder):
    """Whisper encoder-decoder; the decoding API of ``docs/design.md`` (no CTC head)."""

    def __init__(self, cfg: WhisperConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = AudioEncoder(cfg)
        self.decoder = TextDecoder(cfg)
        self.set_attention_backend(cfg.attention_backend)

    # ---- inference API -------------------------------------------------------------------

    def encode(self, feats: Tensor, feat_lens: Tensor) -> tuple[Tensor, Tensor]:
        """``feats`` (B, T, n_mels) Whisper log-mel, ``feat_lens`` (B,) -> enc (B, T', D),
        enc_lens (B,) with ``enc_lens = ceil(feat_lens / 2)`` (at most ``n_audio_ctx``)."""
        return self.encoder(feats, feat_lens)

    def ctc_log_probs(self, enc: Tensor) -> Tensor:
        raise NotImplementedError(
            "Whisper has no CTC head: decode it with ctc_weight 0 (greedy or attention beam)"
        )

    # ---- training ------------------------------------------------------------------------

    def forward(
        self,
        feats: Tensor,
        feat_lens: Tensor,
        ys_in: Tensor,
        ys_out: Tensor,
        ctc_targets: Tensor | None = None,
        ctc_target_lens: Tensor | None = None,
        target_utt: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """Fine-tuning loss on one batch (layout in docs/design.md); CTC targets are ignored.

        Returns scalars: ``loss = loss_att``, the label-smoothed cross-entropy per non-ignored
        target token; ``loss_ctc`` 0 (kept so trainer logs line up with S2TModel's); ``acc``
        next-token accuracy; ``num_tokens``. ``target_utt`` (N,) maps each decoder target to its
        utterance, as in ``S2TModel.forward``.
        """
        enc, enc_lens = self.encode(feats, feat_lens)
        if target_utt is not None:
            enc, enc_lens = enc[target_utt], enc_lens[target_utt]
        logits = self.decode(ys_in, enc, enc_lens)  # (N, L, V)
        loss_att, acc, num_tokens = token_loss(logits, ys_out, self.cfg.label_smoothing)
        return {
            "loss": loss_att,
            "loss_att": loss_att,
            "loss_ctc": torch.zeros((), device=enc.device),
            "acc": acc,
            "num_tokens": num_tokens,
        }
