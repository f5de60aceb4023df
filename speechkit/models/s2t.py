"""The OWSM v3.1 / Whisper-style speech-to-text model: an attention encoder-decoder with CTC.

Read top to bottom: config, presets, encoder, decoder cache, decoder, model.

* Encoder: 4x Conv2d subsampling (10 ms frames -> 40 ms), absolute sinusoidal positions (what
  the OWSM v3.1 configs use: ``abs_pos``; relative positions are not implemented), then
  E-Branchformer or pre-LN Transformer layers and a final LayerNorm.
* Decoder: pre-LN Transformer with learned positions (like Whisper) and an output layer tied to
  the token embedding. Cross-attention K/V are computed once per utterance (:meth:`new_cache`);
  self-attention K/V grow in the cache at each :meth:`decode_step`.
* CTC head: a linear map of encoder frames to the vocabulary (blank = id 0).

Shapes: B batch, T input frames (10 ms), T' = encoder frames (40 ms), L decoder tokens, V vocab,
D model width. Token ids follow ``speechkit.text.sentencepiece``: ``ys_out`` uses -100 for ignored
positions, ``ys_in`` is padded with <eos>, ``ctc_targets`` are padded with -1.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from speechkit.config import ConfigError
from speechkit.nn.decoder import DecoderCache, EncoderDecoder, token_loss
from speechkit.nn.ebranchformer import EBranchformerLayer
from speechkit.nn.embedding import SinusoidalPositionalEncoding, sinusoidal_positions
from speechkit.nn.masks import causal_mask, lengths_to_mask
from speechkit.nn.mvn import GlobalMVN
from speechkit.nn.subsampling import CodeEmbedding2, Conv2dSubsampling4
from speechkit.nn.transformer import TransformerDecoderLayer, TransformerEncoderLayer

logger = logging.getLogger(__name__)

__all__ = [
    "BLANK_ID",
    "OWSM_V31_PRESETS",
    "S2TConfig",
    "S2TModel",
]

BLANK_ID = 0  # CTC blank, the tokenizer's id 0


@dataclass
class S2TConfig:
    """Shape and loss settings of :class:`S2TModel`.

    ``vocab_size`` may stay 0 in YAML (the train entry point fills it from the tokenizer) but must
    be > 0 when the model is built. The loss is ``(1 - ctc_weight) * loss_att + ctc_weight *
    loss_ctc``; ``ctc_weight`` 0 turns the CTC loss off (the head then stays untrained).
    ``label_smoothing`` is spread over the whole vocabulary. Encoder and decoder share
    ``d_model`` and ``n_heads``. ``tie_embeddings`` shares the decoder's token embedding with
    its output layer (Whisper); OWSM/ESPnet keeps a separate output layer (set it false to
    match OWSM parameter counts). ``subsampling_channels`` sets the width of the conv front end
    (0 = ``d_model``, as in OWSM); small CPU models run several times faster with fewer.
    Front-end options (defaults match OWSM/ESPnet, so imported weights compute the same):
    ``subsampling_norm`` puts a LayerNorm between the front end and the positional encoding;
    ``subsampling_activation`` is ReLU (OWSM) or GELU (Whisper); ``scale_input`` multiplies the
    front end's output by sqrt(d_model) before adding positions (ESPnet). They were added while
    chasing an encoder collapse on the phrasebook recipe (see its RESULTS.md); none fixed it.

    ESPnet options (the defaults keep speechkit's own behaviour; ``speechkit.convert.espnet`` sets
    them to represent an imported OWSM/ESPnet model exactly): ``global_mvn`` normalises input
    frames with corpus statistics held as model buffers (``encoder.mvn``; ESPnet's
    ``feats_stats.npz``); ``ffn_activation`` of the Transformer encoder/decoder layers (ESPnet:
    ReLU; E-Branchformer FFNs are always Swish); ``decoder_positions`` ``sinusoidal`` scales the
    token embedding by sqrt(d_model) and adds fixed sinusoidal positions (ESPnet) instead of
    learned ones (Whisper); ``layer_norm_eps`` of every LayerNorm (ESPnet: 1e-12).

    ``pruned_modules``: gated modules built away (``speechkit prune-export``), each
    ``encoder.<layer>.<module>`` or ``decoder.<layer>.<module>`` with a module of that layer's
    ``GATED`` list (e.g. ``decoder.2.cross_attn``); the model runs as if their gates were off.
    ``ffn_widths``: FFN modules built narrower than ``encoder_ffn`` / ``decoder_ffn``, by the same
    names (e.g. ``encoder.1.ffn2: 192``): the channel groups a model with FFN group gates kept
    (``speechkit prune-export``).

    Speech codec input (``codec_codebooks > 0``): the encoder reads codec codes (B, T, Q) at
    20 ms frames (``speechkit.codec.CodecFrontEnd``) through ``CodeEmbedding2`` instead of
    log-mel frames; ``n_mels`` is then unused.
    """

    n_mels: int = 80
    vocab_size: int = 0
    d_model: int = 256
    n_heads: int = 4
    encoder_type: Literal["transformer", "ebranchformer"] = "ebranchformer"
    encoder_layers: int = 12
    encoder_ffn: int = 1024
    cgmlp_units: int = 1024
    cgmlp_kernel: int = 31
    merge_conv_kernel: int = 31
    decoder_layers: int = 6
    decoder_ffn: int = 1024
    dropout: float = 0.1
    attention_dropout: float = 0.1
    max_target_positions: int = 448
    ctc_weight: float = 0.3
    label_smoothing: float = 0.1
    attention_backend: Literal["sdpa", "eager", "triton"] = "sdpa"
    tie_embeddings: bool = True
    subsampling_channels: int = 0
    subsampling_norm: bool = False
    subsampling_activation: Literal["relu", "gelu"] = "relu"
    scale_input: bool = True
    global_mvn: bool = False
    ffn_activation: Literal["gelu", "relu", "swish"] = "gelu"
    decoder_positions: Literal["learned", "sinusoidal"] = "learned"
    layer_norm_eps: float = 1e-5
    codec_codebooks: int = 0
    codec_codebook_size: int = 1024
    pruned_modules: list[str] = field(default_factory=list)
    ffn_widths: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._check_sizes()
        self.dropped("encoder", 0)  # checks every name
        self.narrowed("encoder", 0)
        if self.codec_codebooks < 0 or (self.codec_codebooks and self.global_mvn):
            raise ConfigError(
                "model.codec_codebooks must be >= 0, and codec input has no global_mvn"
            )
        for name in ("dropout", "attention_dropout", "label_smoothing"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ConfigError(f"model.{name} must lie in [0, 1), got {value}")
        if not 0.0 < self.layer_norm_eps < 1.0:
            raise ConfigError(f"model.layer_norm_eps must lie in (0, 1), got {self.layer_norm_eps}")
        if not 0.0 <= self.ctc_weight < 1.0:
            raise ConfigError(
                f"model.ctc_weight must lie in [0, 1), got {self.ctc_weight}: 0 disables the CTC "
                "loss; 1 (pure CTC) is not supported because the decoder needs training"
            )

    def dropped(self, part: str, layer: int) -> set[str]:
        """The ``pruned_modules`` of layer ``layer`` of ``part`` (encoder or decoder)."""
        return {
            m.split(".")[2]
            for m in self.pruned_modules
            if self._of_layer("pruned_modules", m, part, layer)
        }

    def narrowed(self, part: str, layer: int) -> dict[str, int]:
        """The ``ffn_widths`` of layer ``layer`` of ``part``, by module name."""
        out = {}
        for name, width in self.ffn_widths.items():
            full = self.encoder_ffn if name.startswith("encoder") else self.decoder_ffn
            if not 0 < width <= full or not name.split(".")[-1].startswith("ffn"):
                raise ConfigError(
                    f"model.ffn_widths: {name}: {width} is not an FFN width in [1, {full}]"
                )
            if self._of_layer("ffn_widths", name, part, layer):
                out[name.split(".")[2]] = width
        return out

    def _of_layer(self, key: str, name: str, part: str, layer: int) -> bool:
        """Whether module ``name`` (``<encoder|decoder>.N.module``) is in that layer; checks it."""
        layers = {"encoder": self.encoder_layers, "decoder": self.decoder_layers}
        bits = name.split(".")
        if len(bits) != 3 or bits[0] not in layers or not bits[1].isdigit():
            raise ConfigError(f"model.{key}: {name!r} is not <encoder|decoder>.N.module")
        if int(bits[1]) >= layers[bits[0]]:
            raise ConfigError(f"model.{key}: {name!r}: no such layer")
        return bits[0] == part and int(bits[1]) == layer

    def _check_sizes(self) -> None:
        if self.vocab_size < 0:
            raise ConfigError(
                f"model.vocab_size must be >= 0 (0 = from tokenizer), got {self.vocab_size}"
            )
        if self.n_mels < 7 and not self.codec_codebooks:
            raise ConfigError(
                f"model.n_mels must be >= 7 for 4x conv subsampling, got {self.n_mels}"
            )
        positive = (
            "d_model",
            "n_heads",
            "encoder_layers",
            "encoder_ffn",
            "decoder_layers",
        )
        positive += ("decoder_ffn", "max_target_positions", "cgmlp_units")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigError(f"model.{name} must be > 0, got {getattr(self, name)}")
        if self.d_model % self.n_heads != 0:
            raise ConfigError(
                f"model.d_model ({self.d_model}) must be divisible by model.n_heads "
                f"({self.n_heads}); e.g. d_model={self.n_heads * 64} or n_heads that divides it"
            )
        if self.d_model % 2 != 0:
            raise ConfigError(
                f"model.d_model must be even (sinusoidal positions), got {self.d_model}"
            )
        if self.cgmlp_units % 2 != 0:
            raise ConfigError(
                f"model.cgmlp_units must be even (split in halves), got {self.cgmlp_units}"
            )
        for name in ("cgmlp_kernel", "merge_conv_kernel"):
            k = getattr(self, name)
            if k <= 0 or k % 2 == 0:
                raise ConfigError(
                    f"model.{name} must be a positive odd number ('same' conv), got {k}"
                )


# OWSM v3.1 shapes (ESPnet egs2/owsm_v3.1/s2t1 configs "ebf_conv2d_size{d}_e{n}_d{n}"):
# E-Branchformer encoder with macaron FFNs, abs_pos, conv2d subsampling, merge kernel 31,
# cgMLP kernel 31; Transformer decoder; 128 mels; 50k vocabulary; ctc_weight 0.3; lsm 0.1.
# OWSM's decoder output layer is not tied to its embedding. Fill vocab_size from the tokenizer
# (OWSM itself uses 50000). Counts here at vocab 50000: 103.1M, 374.1M, 1029.9M.
OWSM_V31_PRESETS: dict[str, dict] = {
    "base": {  # ~101M in OWSM (384 wide, 6 + 6 layers)
        "n_mels": 128, "d_model": 384, "n_heads": 6, "encoder_layers": 6, "encoder_ffn": 1536,
        "cgmlp_units": 1536, "decoder_layers": 6, "decoder_ffn": 1536, "tie_embeddings": False,
    },
    "small": {  # ~367M in OWSM (768 wide, 9 + 9 layers)
        "n_mels": 128, "d_model": 768, "n_heads": 12, "encoder_layers": 9, "encoder_ffn": 3072,
        "cgmlp_units": 3072, "decoder_layers": 9, "decoder_ffn": 3072, "tie_embeddings": False,
    },
    "medium": {  # ~1.02B in OWSM (1024 wide, 18 + 18 layers)
        "n_mels": 128, "d_model": 1024, "n_heads": 16, "encoder_layers": 18, "encoder_ffn": 4096,
        "cgmlp_units": 4096, "decoder_layers": 18, "decoder_ffn": 4096,
        "tie_embeddings": False,
    },
}  # fmt: skip


class Encoder(nn.Module):
    """(B, T, n_mels) log-mel frames + lengths -> (B, T', D) + lengths (T' ~ T / 4); or codec
    codes (B, T, Q) at 20 ms -> T' ~ T / 2 (``codec_codebooks``)."""

    def __init__(self, cfg: S2TConfig):
        super().__init__()
        self.mvn = GlobalMVN(cfg.n_mels) if cfg.global_mvn else None
        if cfg.codec_codebooks:
            self.subsample = CodeEmbedding2(
                cfg.codec_codebooks, cfg.codec_codebook_size, cfg.d_model
            )
        else:
            self.subsample = Conv2dSubsampling4(
                cfg.n_mels, cfg.d_model, cfg.subsampling_channels, cfg.subsampling_activation
            )
        self.subsample_norm = nn.LayerNorm(cfg.d_model) if cfg.subsampling_norm else nn.Identity()
        self.positions = SinusoidalPositionalEncoding(
            cfg.d_model, cfg.dropout, scale=cfg.scale_input
        )
        args = (cfg.d_model, cfg.n_heads, cfg.encoder_ffn)
        pruned = lambda i: {"drop": cfg.dropped("encoder", i),
                            "ffn_widths": cfg.narrowed("encoder", i)}  # fmt: skip
        if cfg.encoder_type == "ebranchformer":
            extra = (cfg.cgmlp_units, cfg.cgmlp_kernel, cfg.merge_conv_kernel)
            make = lambda i: EBranchformerLayer(*args, *extra, cfg.dropout, cfg.attention_dropout,
                                                **pruned(i))  # fmt: skip
        else:
            drops = (cfg.dropout, cfg.attention_dropout)
            make = lambda i: TransformerEncoderLayer(*args, *drops, cfg.ffn_activation,
                                                     **pruned(i))  # fmt: skip
        self.layers = nn.ModuleList(make(i) for i in range(cfg.encoder_layers))
        self.norm = nn.LayerNorm(cfg.d_model)

    def forward(self, feats: Tensor, feat_lens: Tensor) -> tuple[Tensor, Tensor]:
        x, lens = self.front_end(feats, feat_lens)
        return self.run_layers(x, lens)

    def front_end(self, feats: Tensor, feat_lens: Tensor) -> tuple[Tensor, Tensor]:
        """Normalisation, subsampling and positions: (B, T', D) before the first layer, and
        the lengths T' (B,)."""
        if self.mvn is not None:
            feats = self.mvn(feats, feat_lens)
        x = self.positions(self.subsample_norm(self.subsample(feats)))
        return x, self.subsample.output_lengths(feat_lens)

    def run_layers(
        self, x: Tensor, lens: Tensor, gates: list | None = None
    ) -> tuple[Tensor, Tensor]:
        """The layers and the final norm on the front end's output; ``gates`` per layer
        (``nn/gates.py``) or None (all on)."""
        pad_mask = lengths_to_mask(lens, x.size(1))  # (B, T') True = valid
        for i, layer in enumerate(self.layers):
            x = layer(x, pad_mask, lens) if gates is None else layer(x, pad_mask, lens, gates[i])
        return self.norm(x), lens


class Decoder(nn.Module):
    """Token ids (B, l) + cache -> logits (B, l, V); pre-LN Transformer, learned positions
    (or ESPnet's scaled embedding + sinusoidal positions, ``decoder_positions``)."""

    def __init__(self, cfg: S2TConfig):
        super().__init__()
        self.max_positions = cfg.max_target_positions
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        # Small embeddings keep tied output logits near zero at the start.
        nn.init.normal_(self.embed.weight, std=cfg.d_model**-0.5)
        if cfg.decoder_positions == "learned":
            self.positions = nn.Parameter(torch.empty(cfg.max_target_positions, cfg.d_model))
            nn.init.normal_(self.positions, std=0.02)
            self.embed_scale = 1.0
        else:
            table = sinusoidal_positions(cfg.max_target_positions, cfg.d_model)
            self.register_buffer("positions", table, persistent=False)
            self.embed_scale = math.sqrt(cfg.d_model)
        self.dropout = nn.Dropout(cfg.dropout)
        args = (cfg.d_model, cfg.n_heads, cfg.decoder_ffn, cfg.dropout, cfg.attention_dropout)
        self.layers = nn.ModuleList(
            TransformerDecoderLayer(
                *args,
                cfg.ffn_activation,
                drop=cfg.dropped("decoder", i),
                ffn_widths=cfg.narrowed("decoder", i),
            )
            for i in range(cfg.decoder_layers)
        )
        self.norm = nn.LayerNorm(cfg.d_model)
        # None = tied: logits reuse the token embedding (Whisper); else a separate layer (OWSM).
        self.output = None if cfg.tie_embeddings else nn.Linear(cfg.d_model, cfg.vocab_size)

    def new_cache(self, enc: Tensor, enc_lens: Tensor, gates: list | None = None) -> DecoderCache:
        """Cross-attention K/V of ``enc`` (B, T', D) with valid lengths ``enc_lens`` (B,);
        ``gates`` per layer (``nn/gates.py``; a layer whose cross-attention gate is a False
        needs no K/V) or None."""
        mask = lengths_to_mask(enc_lens, enc.size(1))[:, None, None, :]
        n = len(self.layers)
        off = [isinstance(g, tuple) and not g[1] for g in gates or [None] * n]  # (cross_attn)
        cross = [None if off[i] else layer.cross_kv(enc) for i, layer in enumerate(self.layers)]
        return DecoderCache(cross=cross, cross_mask=mask, self_kv=[None] * n, gates=gates)

    def forward(self, ys_new: Tensor, cache: DecoderCache, last_only: bool = False) -> Tensor:
        """Runs the l newest tokens ``ys_new`` (B, l) and appends their K/V to ``cache``.
        Returns logits (B, l, V), or with ``last_only`` those of the newest token (B, 1, V)."""
        past, n_new = cache.length, ys_new.size(1)
        if past + n_new > self.max_positions:
            raise ValueError(
                f"decoder input of {past + n_new} tokens exceeds max_target_positions "
                f"({self.max_positions})"
            )
        emb = self.embed(ys_new)
        if self.embed_scale != 1.0:
            emb = emb * self.embed_scale
        x = emb + self.positions[past : past + n_new]
        x = self.dropout(x)
        # One new token may see every cached one: no mask needed (lets sdpa pick fast kernels).
        self_mask = None if n_new == 1 else causal_mask(n_new, past, device=ys_new.device)
        gates = cache.gates or [None] * len(self.layers)
        for i, layer in enumerate(self.layers):
            x, cache.self_kv[i] = layer(
                x, self_mask, cache.cross[i], cache.cross_mask, cache.self_kv[i], gates[i]
            )
        cache.tokens = past + n_new
        x = self.norm(x[:, -1:] if last_only else x)
        return x @ self.embed.weight.t() if self.output is None else self.output(x)


class S2TModel(EncoderDecoder):
    """Encoder-decoder with a CTC head; the method contract is in ``docs/design.md``."""

    def __init__(self, cfg: S2TConfig):
        super().__init__()
        if cfg.vocab_size <= 0:
            raise ConfigError(
                f"model.vocab_size must be > 0 to build the model, got {cfg.vocab_size}; "
                "fill it from the tokenizer (tokenizer.vocab_size)"
            )
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        self.ctc_head = nn.Linear(cfg.d_model, cfg.vocab_size)
        if cfg.layer_norm_eps != 1e-5:  # 1e-5 is nn.LayerNorm's own default
            for module in self.modules():
                if isinstance(module, nn.LayerNorm):
                    module.eps = cfg.layer_norm_eps
        self.set_attention_backend(cfg.attention_backend)

    # ---- inference API -------------------------------------------------------------------

    def encode(self, feats: Tensor, feat_lens: Tensor) -> tuple[Tensor, Tensor]:
        """``feats`` (B, T, n_mels), ``feat_lens`` (B,) -> enc (B, T', D), enc_lens (B,).

        ``enc_lens = ((feat_lens - 1) // 2 - 1) // 2`` exactly (0 for under 7 frames).
        """
        return self.encoder(feats, feat_lens)

    def ctc_log_probs(self, enc: Tensor) -> Tensor:
        """(B, T', D) -> (B, T', V) log-probabilities in fp32."""
        return F.log_softmax(self.ctc_head(enc).float(), dim=-1)

    # ---- training ------------------------------------------------------------------------

    def forward(
        self,
        feats: Tensor,
        feat_lens: Tensor,
        ys_in: Tensor,
        ys_out: Tensor,
        ctc_targets: Tensor,
        ctc_target_lens: Tensor,
        target_utt: Tensor | None = None,
        keep_logits: bool = False,
    ) -> dict[str, Tensor]:
        """Loss on one batch (layout in docs/design.md). ``ys_in``/``ys_out`` are (N, L) with
        ``target_utt`` (N,) naming the utterance each decoder target belongs to, so several
        tasks (transcript, translations) share one encoder pass; None means N == B, row i of
        the targets belongs to utterance i. Returns scalar tensors:

        ``loss_att``: label-smoothed cross-entropy, mean over non-ignored target tokens;
        ``loss_ctc``: CTC loss summed over the batch, divided by the total number of CTC target
        tokens (per token, like ``loss_att``; 0 when ``ctc_weight`` is 0);
        ``loss = (1 - ctc_weight) * loss_att + ctc_weight * loss_ctc``;
        ``acc``: next-token accuracy over non-ignored tokens; ``num_tokens``: their count;
        with ``keep_logits`` also the decoder's ``logits`` (N, L, V) and, when ``ctc_weight`` > 0,
        ``ctc_log_probs`` (B, T', V) with ``enc_lens`` (B,) (for distillation).
        """
        enc, enc_lens = self.encode(feats, feat_lens)
        if target_utt is None:
            logits = self.decode(ys_in, enc, enc_lens)
        else:
            logits = self.decode(ys_in, enc[target_utt], enc_lens[target_utt])
        loss_att, acc, num_tokens = token_loss(logits, ys_out, self.cfg.label_smoothing)
        w = self.cfg.ctc_weight
        ctc_logp = self.ctc_log_probs(enc) if w > 0 else None  # (B, T', V)
        if ctc_logp is not None:
            loss_ctc = self._ctc_loss(ctc_logp, enc_lens, ctc_targets, ctc_target_lens)
        else:
            loss_ctc = torch.zeros((), device=enc.device)
        loss = (1.0 - w) * loss_att + w * loss_ctc
        out = {
            "loss": loss,
            "loss_att": loss_att,
            "loss_ctc": loss_ctc,
            "acc": acc,
            "num_tokens": num_tokens,
        }
        if keep_logits:
            out["logits"] = logits
            if ctc_logp is not None:
                out.update(ctc_log_probs=ctc_logp, enc_lens=enc_lens)
        return out

    def _ctc_loss(
        self, log_probs: Tensor, enc_lens: Tensor, targets: Tensor, target_lens: Tensor
    ) -> Tensor:
        """CTC (blank 0, zero_infinity) of ``log_probs`` (B, T', V) summed over the batch /
        total target tokens."""
        logp = log_probs.transpose(0, 1)  # (T', B, V)
        # Concatenated 1-D targets avoid depending on the -1 padding value anywhere.
        keep = lengths_to_mask(target_lens, targets.size(1))
        total = F.ctc_loss(
            logp,
            targets[keep],
            enc_lens,
            target_lens,
            blank=BLANK_ID,
            reduction="sum",
            zero_infinity=True,
        )
        return total / target_lens.sum().clamp(min=1)
