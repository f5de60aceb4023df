"""Analytic FLOPs of an ``S2TModel`` per utterance, split by gated module.

Why not ``torch.utils.flop_counter``: the gate predictor's sparsity loss needs the FLOPs of
every module at every utterance's length, as differentiable weights, in every training step;
a counter that runs the model cannot give them. ``tests/models/test_s2t_flops.py`` checks
these formulas against ``FlopCounterMode`` on a few shapes.

What is counted: matrix products (2 m n k: linear layers, attention scores and their weighted
sum) and convolutions (2 x output elements x taps), which is what ``FlopCounterMode`` counts;
norms, activations and softmax are left out. The CPU depthwise convolution of
``nn/depthwise.py`` is multiply-adds that ``FlopCounterMode`` does not see: pass
``depthwise=False`` to leave those terms out as it does.

Lengths: ``T`` encoder frames (after subsampling), ``L`` decoder tokens. The decoder is
counted as one teacher-forced pass over L tokens (self-attention L x L): incremental decoding
with a cache computes the same products with L (L + 1) / 2 attention pairs instead of L^2,
which the projections and FFN (L D^2 terms) dominate at these lengths. ``rows`` R > 1 counts
the decoder as a beam search of R hypotheses does: every per-token term R times, the
cross-attention's key/value projections of the encoder output (4 T D^2) once.

Per gated module, in the order of the layers' ``GATED`` lists (``nn/gates.py``):

    E-Branchformer  ffn1 4TDF | attn 8TD^2 + 4T^2D + merge/2 | cgmlp 3TDU + TUK + merge/2 | ffn2 4TDF
                    merge/2 = 2TDKm + 2TD^2 (the merge half of that branch's channels)
    Transformer     attn 8TD^2 + 4T^2D | ffn 4TDF
    decoder         self_attn R(8LD^2 + 4L^2D) | cross_attn R(4LD^2 + 4LTD) + 4TD^2 | ffn 4RLDF

With FFN channel-group gates (``ffn_groups`` G > 1, ``nn/gates.py``) each FFN entry becomes G
entries of FFN / G in its place, one per group, the order of the layers' ``gate_names``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from speechkit.models.s2t import S2TConfig

__all__ = [
    "decoder_module_flops",
    "encoder_module_flops",
    "fixed_flops",
    "transformer_decoder_flops",
    "utterance_gflops",
]


def _grouped(per_module: list[Tensor], ffns: tuple[int, ...], groups: int) -> Tensor:
    """Stacks (B,) FLOPs of a layer's modules into (B, gates): the modules at ``ffns`` split
    into ``groups`` equal shares (one per channel group)."""
    cols = []
    for i, flops in enumerate(per_module):
        cols += [flops / groups] * groups if i in ffns else [flops]
    return torch.stack(cols, dim=-1)


def _layer_encoder_flops(cfg: S2TConfig, T: Tensor, depthwise: bool) -> list[Tensor]:
    D, F, U = cfg.d_model, cfg.encoder_ffn, cfg.cgmlp_units
    attn = 8 * T * D * D + 4 * T * T * D
    ffn = 4 * T * D * F
    if cfg.encoder_type != "ebranchformer":
        return [attn, ffn]
    dw = 1.0 if depthwise else 0.0
    merge_half = 2 * T * D * cfg.merge_conv_kernel * dw + 2 * T * D * D
    cgmlp = 3 * T * D * U + T * U * cfg.cgmlp_kernel * dw
    return [ffn, attn + merge_half, cgmlp + merge_half, ffn]


def encoder_module_flops(
    cfg: S2TConfig, T: Tensor, depthwise: bool = True, ffn_groups: int = 1
) -> Tensor:
    """(B,) encoder frames -> (B, layers x gates) FLOPs of each gated encoder module (of each
    FFN channel group with ``ffn_groups`` > 1)."""
    ffns = (0, 3) if cfg.encoder_type == "ebranchformer" else (1,)
    per_layer = _grouped(_layer_encoder_flops(cfg, T.double(), depthwise), ffns, ffn_groups)
    return per_layer.repeat(1, cfg.encoder_layers)


def transformer_decoder_flops(
    D: int, F: int, layers: int, L: Tensor, T: Tensor, ffn_groups: int = 1, rows: int = 1
) -> Tensor:
    """(N,) decoder tokens and (N,) encoder frames -> (N, layers x 3) FLOPs of each gated
    module (self_attn, cross_attn, ffn) of a pre-LN Transformer decoder of width D and FFN
    width F (``nn/transformer.py``; Whisper's decoder too); (N, layers x (2 + G)) with
    ``ffn_groups`` G > 1. ``rows``: hypotheses decoded together (the beam size; see the module
    docstring)."""
    L, T = L.double(), T.double()
    self_attn = rows * (8 * L * D * D + 4 * L * L * D)
    cross = rows * (4 * L * D * D + 4 * L * T * D) + 4 * T * D * D
    ffn = rows * 4 * L * D * F
    return _grouped([self_attn, cross, ffn], (2,), ffn_groups).repeat(1, layers)


def decoder_module_flops(
    cfg: S2TConfig, L: Tensor, T: Tensor, ffn_groups: int = 1, rows: int = 1
) -> Tensor:
    """(N,) decoder tokens and (N,) encoder frames -> (N, layers x gates) FLOPs of each gated
    decoder module (self_attn, cross_attn, ffn; the FFN per channel group with ``ffn_groups``)
    for ``rows`` hypotheses decoded together."""
    D, F, n = cfg.d_model, cfg.decoder_ffn, cfg.decoder_layers
    return transformer_decoder_flops(D, F, n, L, T, ffn_groups, rows)


def fixed_flops(cfg: S2TConfig, frames: Tensor, L: Tensor) -> tuple[Tensor, Tensor]:
    """FLOPs no gate removes: the conv front end on ``frames`` (B,) input frames (log-mel;
    0 for codec input) and the decoder's output layer over ``L`` (B,) tokens. (B,), (B,)."""
    frames, L = frames.double(), L.double()
    if cfg.codec_codebooks:
        front = torch.zeros_like(frames)
    else:
        C = cfg.subsampling_channels or cfg.d_model
        t1, f1 = (frames - 1) // 2, (cfg.n_mels - 1) // 2
        t2, f2 = (t1 - 1) // 2, (f1 - 1) // 2
        front = 2 * t1 * f1 * C * 9 + 2 * t2 * f2 * C * C * 9 + 2 * t2 * C * f2 * cfg.d_model
    return front, 2 * L * cfg.d_model * cfg.vocab_size


def utterance_gflops(
    cfg: S2TConfig,
    frames: Tensor,
    T: Tensor,
    L: Tensor,
    enc_gates: Tensor | None = None,
    dec_gates: Tensor | None = None,
    depthwise: bool = True,
    ffn_groups: int = 1,
) -> tuple[Tensor, Tensor]:
    """Encoder and decoder GFLOPs (B,), (B,) of utterances with ``frames`` input frames,
    ``T`` encoder frames and ``L`` decoder tokens, with (B, n) gates (1 = run; None = all)
    in the layout of ``ffn_groups`` FFN channel groups."""
    enc = encoder_module_flops(cfg, T, depthwise, ffn_groups)
    dec = decoder_module_flops(cfg, L, T, ffn_groups)
    if enc_gates is not None:
        enc = enc * enc_gates.double()
    if dec_gates is not None:
        dec = dec * dec_gates.double()
    front, out = fixed_flops(cfg, frames, L)
    return (enc.sum(-1) + front) / 1e9, (dec.sum(-1) + out) / 1e9
