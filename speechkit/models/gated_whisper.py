"""A ``WhisperModel`` with dynamic decoder module gates (arXiv 2409.09506, 2505.18860).

Read top to bottom: config, model, the decoding view of one gate pattern. The weights are those
of ``WhisperModel`` (same names: a zoo or fine-tuned Whisper initialises it) plus
``predictor.*``.

Each decoder layer's self-attention, cross-attention and FFN (``TransformerDecoderLayer.GATED``)
gets one gate per utterance from :class:`~speechkit.nn.gates.GatePredictor` (no encoder gates:
the decoder is where autoregressive decoding spends its steps, and the anchors' wall-clock gain
came from there). Its inputs: the encoder output averaged over the valid frames (so the gates
are known before the first decoder step), and the budget: the fraction of the decoder modules'
FLOPs to keep, a scalar in [0, 1], so one model serves several budgets chosen at decode time.
``static`` mode sees the budget alone (the same gates for every utterance). No stored contexts
(speaker, event) or language context yet: that is the s2t model's (``models/gated_s2t.py``).

Training (:meth:`forward`): straight-through Gumbel-softmax gates, hard 0/1 forward (the argmax
in eval mode); every module runs and is scaled by its gate. ``kept`` (N,) is the FLOP-weighted
fraction of the gated decoder modules that ran, per target row, each module weighted by its
analytic FLOPs at that row's encoder frames and target length
(``models/s2t_flops.transformer_decoder_flops``); the task (``tasks/prune_whisper.py``) adds
the sparsity penalty toward the budget.

Inference: :meth:`decoder_gates` gives each row's hard gates at ``self.budget`` (set by the
caller: ``speechkit decode --budget``); callers group rows by pattern and decode each group
with :meth:`gated_decoder`, so an off module is never computed (``decode/whisper.py`` does).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from speechkit.config import ConfigError
from speechkit.models.s2t_flops import transformer_decoder_flops
from speechkit.models.whisper import WhisperConfig, WhisperModel
from speechkit.nn.decoder import PatternDecoder, target_lengths, token_loss
from speechkit.nn.gates import GatePredictor, sample_gates
from speechkit.nn.masks import lengths_to_mask
from speechkit.nn.transformer import TransformerDecoderLayer

__all__ = ["GatedWhisperConfig", "GatedWhisperModel"]


@dataclass
class GatedWhisperConfig(WhisperConfig):
    """``WhisperConfig`` plus the decoder gates. ``gate_mode``: ``dynamic`` (per utterance),
    ``static`` (from the budget alone), ``none`` (no gates: full fine-tuning). ``gate_hidden``:
    the predictor's hidden width; ``gate_tau``: Gumbel-softmax temperature;
    ``gate_budget_gain``: > 0 adds a learned per-gate ``gain * logit(budget)`` to every "on"
    logit (``nn/gates.py``)."""

    gate_mode: Literal["dynamic", "static", "none"] = "dynamic"
    gate_hidden: int = 128
    gate_tau: float = 1.0
    gate_budget_gain: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.gate_tau <= 0 or self.gate_hidden <= 0:
            raise ConfigError("model.gate_tau and model.gate_hidden must be > 0")
        if self.gate_budget_gain < 0:
            raise ConfigError("model.gate_budget_gain must be >= 0 (0 = no budget prior)")


class GatedWhisperModel(WhisperModel):
    """See the module docstring. ``forward`` returns WhisperModel's losses plus ``kept`` (N,)
    and the mean gates ``dec_gates`` (n_dec,)."""

    def __init__(self, cfg: GatedWhisperConfig):
        super().__init__(cfg)
        gated = TransformerDecoderLayer.GATED
        self.dec_names = [f"{i}.{n}" for i in range(cfg.n_text_layer) for n in gated]
        self.enc_names: list[str] = []
        self.predictor = None
        if cfg.gate_mode != "none":
            self.predictor = GatePredictor(
                cfg.n_audio_state, {}, 0, 0, len(self.dec_names), cfg.gate_hidden,
                static=cfg.gate_mode == "static", budget_gain=cfg.gate_budget_gain,
            )  # fmt: skip
        self.budget = 1.0  # the decoding budget (speechkit decode --budget)

    @property
    def n_dec(self) -> int:
        return len(self.dec_names)

    def _shared(self, enc: Tensor, enc_lens: Tensor, budget: Tensor) -> Tensor:
        """The predictor's input (B, S): encoder output averaged over valid frames, budget."""
        mask = lengths_to_mask(enc_lens, enc.size(1)).unsqueeze(-1).to(enc.dtype)
        pooled = (enc * mask).sum(1) / enc_lens.clamp(min=1).unsqueeze(-1).to(enc.dtype)
        return self.predictor.features(pooled, {}, {}, budget.to(enc))

    def _per_layer(self, gates: Tensor) -> list[Tensor]:
        return list(gates.view(gates.shape[0], self.cfg.n_text_layer, -1).unbind(1))

    def forward(
        self,
        feats: Tensor,
        feat_lens: Tensor,
        ys_in: Tensor,
        ys_out: Tensor,
        ctc_targets: Tensor | None = None,
        ctc_target_lens: Tensor | None = None,
        target_utt: Tensor | None = None,
        gate_inputs: dict | None = None,
    ) -> dict[str, Tensor]:
        """WhisperModel's loss with relaxed decoder gates. ``gate_inputs``: ``budget`` (B,)."""
        if self.predictor is None:
            return super().forward(feats, feat_lens, ys_in, ys_out, target_utt=target_utt)
        if not gate_inputs or "budget" not in gate_inputs:
            raise ValueError("a gated Whisper model needs gate_inputs['budget'] (B,)")
        enc, enc_lens = self.encode(feats, feat_lens)
        logits = self.predictor.decoder_logits(
            self._shared(enc, enc_lens, gate_inputs["budget"]), None
        )
        gates = sample_gates(logits, self.cfg.gate_tau) if self.training else (
            logits.argmax(-1).to(logits.dtype))  # fmt: skip
        if target_utt is not None:
            enc, enc_lens, rows = enc[target_utt], enc_lens[target_utt], gates[target_utt]
        else:
            rows = gates
        cache = self.decoder.new_cache(enc, enc_lens, self._per_layer(rows))
        out_logits = self.decoder(ys_in, cache)
        loss, acc, num_tokens = token_loss(out_logits, ys_out, self.cfg.label_smoothing)
        return {
            "loss": loss,
            "loss_att": loss,
            "loss_ctc": torch.zeros((), device=enc.device),
            "acc": acc,
            "num_tokens": num_tokens,
            "kept": self.kept_fraction(enc_lens, target_lengths(ys_out), rows),
            "dec_gates": gates.detach().mean(0),
        }

    def module_flops(self, T: Tensor, L: Tensor) -> Tensor:
        """(N,) encoder frames and (N,) decoder tokens -> (N, n_dec) FLOPs of each gated module."""
        c = self.cfg
        return transformer_decoder_flops(c.n_text_state, 4 * c.n_text_state, c.n_text_layer, L, T)

    def kept_fraction(self, T: Tensor, L: Tensor, gates: Tensor) -> Tensor:
        """(N,) FLOP-weighted fraction of the gated decoder compute that runs (differentiable)."""
        flops = self.module_flops(T, L).to(gates.dtype)
        return (gates * flops).sum(-1) / flops.sum(-1)

    # ---- inference --------------------------------------------------------------------------

    @torch.no_grad()
    def decoder_gates(self, enc: Tensor, enc_lens: Tensor) -> Tensor:
        """(B, n_dec) bool hard gates of the encoded rows at ``self.budget`` (all True for
        ``gate_mode: none``)."""
        if self.predictor is None:
            return torch.ones(enc.shape[0], self.n_dec, dtype=torch.bool, device=enc.device)
        budget = torch.full((enc.shape[0],), float(self.budget), device=enc.device)
        return (
            self.predictor.decoder_logits(self._shared(enc, enc_lens, budget), None)
            .argmax(-1)
            .bool()
        )

    def gated_decoder(self, pattern: tuple[bool, ...]) -> PatternDecoder:
        """The decoding API (``new_cache``, ``decode_step``) with one gate pattern (n_dec bools)
        for every row of a call."""
        return PatternDecoder(self, pattern)
