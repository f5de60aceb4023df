"""An ``S2TModel`` with context-driven dynamic module gates (arXiv 2409.09506, 2505.18860).

Read top to bottom: config, gate decisions, model. The weights are those of ``S2TModel`` (same
names: a trained s2t model initialises it) plus ``predictor.*``.

Each encoder layer's gated modules (``GATED`` of its class: E-Branchformer FFN1, MHSA, cgMLP,
FFN2; Transformer MHSA, FFN) and each decoder layer's (self-attention, cross-attention, FFN) get
one gate per utterance from :class:`~speechkit.nn.gates.GatePredictor`. Its inputs:

* the front end's output (conv subsampling + positions) averaged over valid frames, so the
  encoder gates are known before any encoder layer runs (left out in ``static`` mode);
* context vectors by kind (``gate_contexts``): ``speaker`` and ``event`` from a
  ``speechkit.data.contexts.ContextStore`` (an unknown context becomes a learned vector); and for
  the decoder gates only, ``language``: a one-hot of the spoken language in training (oracle),
  and at test time either the oracle or the model's own language-ID posterior
  (:meth:`language_posterior`: one full decoder step from ``<sos>``, softmax over the language
  tokens; the encoder gates cannot use it, since it needs the encoder output);
* the budget: the fraction of the gated modules' FLOPs to keep, a scalar in [0, 1], so one
  model serves several budgets chosen at decode time.

Training (:meth:`forward`): straight-through Gumbel-softmax gates, hard 0/1 in the forward
pass (in eval mode, the argmax; with ``hard_gates`` set, the argmax in training too, so the
weights train under exactly the gates decoding will use); every module runs and is scaled by its gate. The returned ``kept`` (N,) is the
FLOP-weighted fraction of the gated modules' compute that ran, per decoder row, each module
weighted by its analytic FLOPs at that utterance's lengths (``models/s2t_flops.py``); the task
adds ``alpha * (|kept - budget| + (kept - budget)^2)`` to the loss.

Inference: gates are the argmax (bool); encoder layers group rows by gate pattern; decoding
takes one decoder gate pattern per call (:meth:`gated_decoder`), so callers group utterances
by pattern. ``gate_mode: none`` is the plain model (the full fine-tuning baseline).

FFN channel groups (``gate_ffn_groups`` G, default 1 = one gate per module): with G > 1 every
gated FFN (E-Branchformer FFN1 and FFN2, Transformer encoder FFN, decoder FFN) gets one gate
per group of F / G hidden channels instead of one for the whole module; its gate names expand
in place (``0.ffn1`` -> ``0.ffn1.0 .. 0.ffn1.{G-1}``, ``enc_names`` / ``dec_names``) and the
predictor gives one gate per name. Training scales each group's hidden channels by its relaxed
gate; at inference only the on groups are computed, as smaller matrix products
(``nn/feedforward.py``), and an FFN with every group off is skipped. Each group weighs
FFN FLOPs / G in ``kept`` and in decoding's GFLOPs. :meth:`export_static` keeps the on groups'
channels as a narrower FFN (``S2TConfig.ffn_widths``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor

from speechkit.config import ConfigError
from speechkit.models.s2t import S2TConfig, S2TModel
from speechkit.models.s2t_flops import decoder_module_flops, encoder_module_flops
from speechkit.nn.decoder import PatternDecoder, target_lengths, token_loss
from speechkit.nn.gates import GatePredictor, sample_gates
from speechkit.nn.masks import lengths_to_mask

__all__ = ["GateDecision", "GatedS2TConfig", "GatedS2TModel", "GATE_CONTEXTS"]

GATE_CONTEXTS = ("speaker", "event", "language")


@dataclass
class GatedS2TConfig(S2TConfig):
    """``S2TConfig`` plus the gates. ``gate_mode``: ``dynamic`` (per utterance), ``static``
    (from the budget alone: the same gates for every utterance), ``none`` (no gates: full fine-tuning; not ``off``, which YAML reads as false).
    ``gate_contexts``: any of speaker, event, language. ``context_dims``: the width of each
    stored context (filled from the context stores by the prune task). ``languages``: the
    language order of the language context (filled from the tokenizer). ``gate_hidden``:
    the predictor's hidden width. ``gate_tau``: Gumbel-softmax temperature.
    ``gate_budget_gain``: > 0 adds a learned per-gate ``gain * logit(budget)`` (initialised to
    this value) to every "on" logit, so a lower budget turns gates off from the start (0: the
    budget is only an input of the MLP). ``gate_ffn_groups``: gates per FFN module, one per
    group of FFN width / G hidden channels (1: one gate per module; G must divide
    ``encoder_ffn`` and ``decoder_ffn``). ``gate_input_norm``: layer-normalise the predictor's
    audio and context inputs (``nn.gates.GatePredictor``; off in checkpoints made before it).
    ``gate_decoder_rows``: in ``kept`` (what the budget constrains), the decoder modules'
    FLOPs are counted for this many hypotheses, as a beam search of that width runs them
    (``models/s2t_flops.py``); 1 counts one teacher-forced pass, which prices the decoder at a
    fifth of what beam 5 spends, so the budget is met mostly in the encoder.
    ``gate_always_on``: module kinds (``GATED`` names, e.g. ``cross_attn``) that get no gate:
    always run, and not gated modules, so the budget (``kept``, ``kept_dec``) is a fraction of
    the other modules' FLOPs; decoding's GFLOPs still count them."""

    gate_mode: Literal["dynamic", "static", "none"] = "dynamic"
    gate_contexts: list[str] = field(default_factory=list)
    context_dims: dict[str, int] = field(default_factory=dict)
    languages: list[str] = field(default_factory=list)
    gate_hidden: int = 128
    gate_tau: float = 1.0
    gate_budget_gain: float = 0.0
    gate_ffn_groups: int = 1
    gate_input_norm: bool = False
    gate_decoder_rows: int = 1
    gate_always_on: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__post_init__()
        bad = set(self.gate_contexts) - set(GATE_CONTEXTS)
        if bad:
            raise ConfigError(f"model.gate_contexts: unknown {sorted(bad)}; known {GATE_CONTEXTS}")
        if self.gate_mode == "static" and self.gate_contexts:
            raise ConfigError("model.gate_mode static sees no utterance input: no gate_contexts")
        if self.gate_tau <= 0 or self.gate_hidden <= 0:
            raise ConfigError("model.gate_tau and model.gate_hidden must be > 0")
        if self.gate_budget_gain < 0:
            raise ConfigError("model.gate_budget_gain must be >= 0 (0 = no budget prior)")
        if self.gate_decoder_rows < 1:
            raise ConfigError(
                f"model.gate_decoder_rows must be >= 1 (the beam size), got {self.gate_decoder_rows}"
            )
        g = self.gate_ffn_groups
        if g < 1 or self.encoder_ffn % g or self.decoder_ffn % g:
            raise ConfigError(
                f"model.gate_ffn_groups ({g}) must be >= 1 and divide model.encoder_ffn "
                f"({self.encoder_ffn}) and model.decoder_ffn ({self.decoder_ffn})"
            )

    @property
    def stored_contexts(self) -> list[str]:
        return [k for k in self.gate_contexts if k != "language"]


@dataclass
class GateDecision:
    """Hard gates of a batch: ``enc`` (B, n_enc) and ``dec`` (B, n_dec) bool, layer-major in
    the order of each layer's ``GATED``."""

    enc: Tensor
    dec: Tensor


class GatedS2TModel(S2TModel):
    """See the module docstring. ``forward`` returns S2TModel's losses plus ``kept`` (N,),
    the decoder's own FLOP-weighted kept fraction ``kept_dec`` (N,; counted as ``kept`` is)
    and the mean gates ``enc_gates`` (n_enc,), ``dec_gates`` (n_dec,)."""

    def __init__(self, cfg: GatedS2TConfig):
        super().__init__(cfg)
        # True: argmax gates in training as well (the prune task's settle phase); not a config
        # field, as it changes how the model trains, not what it is.
        self.hard_gates = False
        for layer in (*self.encoder.layers, *self.decoder.layers):
            layer.group_ffn_gates(cfg.gate_ffn_groups)
        enc_layer, dec_layer = self.encoder.layers[0], self.decoder.layers[0]
        self.enc_names = [
            f"{i}.{n}" for i in range(cfg.encoder_layers) for n in enc_layer.gate_names
        ]
        self.dec_names = [
            f"{i}.{n}" for i in range(cfg.decoder_layers) for n in dec_layer.gate_names
        ]
        kinds = {*enc_layer.GATED, *dec_layer.GATED}
        unknown = set(cfg.gate_always_on) - kinds
        if unknown:
            raise ConfigError(
                f"model.gate_always_on: {sorted(unknown)} are not gated modules ({sorted(kinds)})"
            )
        fixed = lambda names: torch.tensor(  # noqa: E731
            [n.split(".")[1] in cfg.gate_always_on for n in names], dtype=torch.bool
        )
        # (n,) True where the gate is fixed on (gate_always_on); not saved: derived from config
        self.register_buffer("enc_fixed", fixed(self.enc_names), persistent=False)
        self.register_buffer("dec_fixed", fixed(self.dec_names), persistent=False)
        if bool(self.enc_fixed.all()) and bool(self.dec_fixed.all()):
            raise ConfigError("model.gate_always_on leaves no module gated: nothing to prune")
        self.predictor = None
        if cfg.gate_mode != "none":
            dims = {k: cfg.context_dims[k] for k in cfg.stored_contexts if k in cfg.context_dims}
            missing = set(cfg.stored_contexts) - set(dims)
            if missing:
                raise ConfigError(f"model.context_dims has no width for {sorted(missing)}")
            n_lang = len(cfg.languages) if "language" in cfg.gate_contexts else 0
            if "language" in cfg.gate_contexts and not n_lang:
                raise ConfigError("the language context needs model.languages")
            self.predictor = GatePredictor(
                cfg.d_model, dims, n_lang, len(self.enc_names), len(self.dec_names),
                cfg.gate_hidden, static=cfg.gate_mode == "static",
                budget_gain=cfg.gate_budget_gain, input_norm=cfg.gate_input_norm,
            )  # fmt: skip

    @property
    def n_enc(self) -> int:
        return len(self.enc_names)

    @property
    def n_dec(self) -> int:
        return len(self.dec_names)

    # ---- gate predictor inputs -------------------------------------------------------------

    def _front_end(self, feats: Tensor, feat_lens: Tensor, gate_inputs: dict):
        """Front end output (B, T', D), lengths, and the predictor's shared input (B, S)."""
        x, lens = self.encoder.front_end(feats, feat_lens)
        if self.predictor is None:
            return x, lens, None
        mask = lengths_to_mask(lens, x.size(1)).unsqueeze(-1).to(x.dtype)
        pooled = (x * mask).sum(1) / lens.clamp(min=1).unsqueeze(-1).to(x.dtype)
        shared = self.predictor.features(
            pooled, gate_inputs.get("contexts", {}), gate_inputs.get("known", {}),
            gate_inputs["budget"],
        )  # fmt: skip
        return x, lens, shared

    def _enc_logits(self, shared: Tensor) -> Tensor:
        return _fix_on(self.predictor.encoder_logits(shared), self.enc_fixed)

    def _dec_logits(self, shared: Tensor, language: Tensor | None) -> Tensor:
        return _fix_on(self.predictor.decoder_logits(shared, language), self.dec_fixed)

    def _per_layer(self, gates: Tensor | None, n_layers: int) -> list | None:
        return None if gates is None else list(gates.view(gates.shape[0], n_layers, -1).unbind(1))

    # ---- training --------------------------------------------------------------------------

    def forward(
        self,
        feats: Tensor,
        feat_lens: Tensor,
        ys_in: Tensor,
        ys_out: Tensor,
        ctc_targets: Tensor,
        ctc_target_lens: Tensor,
        target_utt: Tensor | None = None,
        gate_inputs: dict | None = None,
        keep_logits: bool = False,
    ) -> dict[str, Tensor]:
        """S2TModel's loss with relaxed gates. ``gate_inputs``: ``budget`` (B,), ``contexts``
        {kind: (B, Dk)}, ``known`` {kind: (B,) bool}, ``language`` (B, n_languages);
        ``keep_logits``: as in S2TModel."""
        if self.predictor is None:
            return super().forward(feats, feat_lens, ys_in, ys_out, ctc_targets,
                                   ctc_target_lens, target_utt, keep_logits)  # fmt: skip
        gate_inputs = gate_inputs or {}
        x, lens, shared = self._front_end(feats, feat_lens, gate_inputs)
        enc_g = self._gates(self._enc_logits(shared))  # (B, n_enc)
        dec_g = self._gates(self._dec_logits(shared, gate_inputs.get("language")))
        enc, enc_lens = self.encoder.run_layers(
            x, lens, self._per_layer(enc_g, self.cfg.encoder_layers)
        )
        utt = target_utt if target_utt is not None else torch.arange(len(ys_in), device=enc.device)
        dec_rows = dec_g[utt]
        cache = self.decoder.new_cache(
            enc[utt], enc_lens[utt], self._per_layer(dec_rows, self.cfg.decoder_layers)
        )
        logits = self.decoder(ys_in, cache)
        loss_att, acc, num_tokens = token_loss(logits, ys_out, self.cfg.label_smoothing)
        w = self.cfg.ctc_weight
        ctc_logp = self.ctc_log_probs(enc) if w > 0 else None  # (B, T', V)
        loss_ctc = (
            self._ctc_loss(ctc_logp, enc_lens, ctc_targets, ctc_target_lens)
            if ctc_logp is not None else torch.zeros((), device=enc.device)
        )  # fmt: skip
        fe, fd = self._gated_flops(enc_lens[utt], target_lengths(ys_out), dec_rows.dtype)
        enc_kept, dec_kept = (enc_g[utt] * fe).sum(-1), (dec_rows * fd).sum(-1)
        kept = (enc_kept + dec_kept) / (fe.sum(-1) + fd.sum(-1))
        den = fd.sum(-1)
        kept_dec = torch.where(den > 0, dec_kept / den.clamp(min=1.0), 1.0)
        extra = {}
        if keep_logits:
            extra["logits"] = logits
            if ctc_logp is not None:
                extra.update(ctc_log_probs=ctc_logp, enc_lens=enc_lens)
        return {
            **extra,
            "loss": (1.0 - w) * loss_att + w * loss_ctc,
            "loss_att": loss_att,
            "loss_ctc": loss_ctc,
            "acc": acc,
            "num_tokens": num_tokens,
            "kept": kept,
            "kept_dec": kept_dec,
            "enc_gates": enc_g.detach().mean(0),
            "dec_gates": dec_g.detach().mean(0),
        }

    def _gates(self, logits: Tensor) -> Tensor:
        """(B, n, 2) logits -> (B, n) float gates: straight-through Gumbel samples in training,
        the argmax in eval mode (validation sees what decoding will run) or with ``hard_gates``."""
        if self.training and not self.hard_gates:
            return sample_gates(logits, self.cfg.gate_tau)
        return logits.argmax(-1).to(logits.dtype)

    def kept_fraction(self, T: Tensor, L: Tensor, enc_g: Tensor, dec_g: Tensor) -> Tensor:
        """(N,) FLOP-weighted fraction of the gated modules' compute that runs, for rows with
        T encoder frames, L decoder tokens and gates (N, n_enc), (N, n_dec) (differentiable);
        the decoder counted for ``gate_decoder_rows`` hypotheses."""
        fe, fd = self._gated_flops(T, L, enc_g.dtype)
        return ((enc_g * fe).sum(-1) + (dec_g * fd).sum(-1)) / (fe.sum(-1) + fd.sum(-1))

    def _gated_flops(self, T: Tensor, L: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        """(N, n_enc), (N, n_dec) FLOPs of each gated module, the decoder's for
        ``gate_decoder_rows`` hypotheses; 0 for the ``gate_always_on`` ones (not gated)."""
        groups, rows = self.cfg.gate_ffn_groups, self.cfg.gate_decoder_rows
        fe = encoder_module_flops(self.cfg, T, ffn_groups=groups).to(dtype)
        fd = decoder_module_flops(self.cfg, L, T, ffn_groups=groups, rows=rows).to(dtype)
        return fe * ~self.enc_fixed, fd * ~self.dec_fixed

    # ---- inference --------------------------------------------------------------------------

    @torch.no_grad()
    def encode_gated(
        self, feats: Tensor, feat_lens: Tensor, gate_inputs: dict
    ) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
        """Encodes with hard gates: enc (B, T', D), enc_lens (B,), the encoder gates (B, n_enc)
        bool and the predictor's shared input (B, S) for :meth:`decoder_gates` (None, None
        for ``gate_mode: none``)."""
        x, lens, shared = self._front_end(feats, feat_lens, gate_inputs)
        if shared is None:
            enc, enc_lens = self.encoder.run_layers(x, lens)
            return enc, enc_lens, None, None
        enc_g = self._enc_logits(shared).argmax(-1).bool()
        enc, enc_lens = self.encoder.run_layers(
            x, lens, self._per_layer(enc_g, self.cfg.encoder_layers)
        )
        return enc, enc_lens, enc_g, shared

    @torch.no_grad()
    def decoder_gates(self, shared: Tensor, language: Tensor | None = None) -> Tensor:
        """(B, n_dec) bool hard decoder gates from the shared input and the language context."""
        return self._dec_logits(shared, language).argmax(-1).bool()

    @torch.no_grad()
    def language_posterior(self, enc: Tensor, enc_lens: Tensor, sos_id: int,
                           language_ids: list[int]) -> Tensor:  # fmt: skip
        """(B, n_languages): the model's own language-ID posterior, one full decoder step from
        ``<sos>`` (softmax over the language tokens only)."""
        cache = self.decoder.new_cache(enc, enc_lens)
        sos = torch.full((enc.shape[0], 1), sos_id, dtype=torch.long, device=enc.device)
        logits = self.decoder(sos, cache)[:, -1, language_ids]
        return logits.float().softmax(-1)

    @torch.no_grad()
    def static_gates(self, budget: float) -> tuple[Tensor, Tensor]:
        """(n_enc,), (n_dec,) bool: the gates of a ``static`` (or ``none``) model at ``budget``,
        the same for every utterance; a ``dynamic`` model's vary, so it raises."""
        if self.predictor is None:
            return (torch.ones(self.n_enc, dtype=torch.bool),
                    torch.ones(self.n_dec, dtype=torch.bool))  # fmt: skip
        if not self.predictor.static:
            raise ValueError(
                "a dynamic model's gates depend on each utterance, so no module can be removed "
                "for every input; export a model trained with model.gate_mode: static"
            )
        device = next(self.parameters()).device
        pooled = torch.zeros(1, self.cfg.d_model, device=device)  # (unused: static)
        shared = self.predictor.features(pooled, {}, {}, torch.tensor([budget], device=device))
        enc = self._enc_logits(shared).argmax(-1).bool()[0]
        return enc.cpu(), self.decoder_gates(shared)[0].cpu()

    def export_static(self, budget: float) -> S2TModel:
        """A plain ``S2TModel`` without the modules that are off at ``budget`` (static gates;
        see :meth:`static_gates`): ``pruned_modules`` records them, an FFN with some channel
        groups off keeps the on groups' channels (``ffn_widths``), the rest of the weights are
        copied. It computes what this model computes at that budget."""
        enc, dec = self.static_gates(budget)
        on = dict(zip([f"encoder.{n}" for n in self.enc_names], enc.tolist()))
        on |= dict(zip([f"decoder.{n}" for n in self.dec_names], dec.tolist()))
        modules: dict[str, list[bool]] = {}  # encoder.0.ffn1.2 -> encoder.0.ffn1: [.., on]
        for name, flag in on.items():
            modules.setdefault(".".join(name.split(".")[:3]), []).append(flag)
        pruned = [m for m, flags in modules.items() if not any(flags)]
        narrow = {m: flags for m, flags in modules.items() if any(flags) and not all(flags)}
        state = self.state_dict()
        widths = dict(self.cfg.ffn_widths)
        for module, flags in narrow.items():  # keep the rows / columns of the on groups
            prefix = module.replace(".", ".layers.", 1) + ".net"
            first, second = state[f"{prefix}.0.weight"], state[f"{prefix}.3.weight"]
            keep = torch.tensor(flags, device=first.device)
            keep = keep.repeat_interleave(first.shape[0] // len(flags))  # (F,) channels kept
            state[f"{prefix}.0.weight"], state[f"{prefix}.3.weight"] = first[keep], second[:, keep]
            state[f"{prefix}.0.bias"] = state[f"{prefix}.0.bias"][keep]
            widths[module] = int(keep.sum())
        base = {f.name: getattr(self.cfg, f.name) for f in dataclasses.fields(S2TConfig)}
        cfg = S2TConfig(
            **{**base, "pruned_modules": sorted(set(self.cfg.pruned_modules) | set(pruned)),
               "ffn_widths": dict(sorted(widths.items()))}
        )  # fmt: skip
        model = S2TModel(cfg)
        model.load_state_dict({k: state[k] for k in model.state_dict()})
        return model.eval()

    def gated_decoder(self, pattern: tuple[bool, ...] | None) -> PatternDecoder:
        """The decoding API (``new_cache``, ``decode_step``, ``ctc_log_probs``) with one
        decoder gate pattern (n_dec bools, or None = all on) for every row of a call."""
        return PatternDecoder(self, pattern)


def _fix_on(logits: Tensor, fixed: Tensor) -> Tensor:
    """(B, n, 2) gate logits with the gates where ``fixed`` (n,) is True set to "on" beyond
    doubt: the argmax is on, a Gumbel-softmax sample is on (the gap is 60 nats) with no
    gradient to the predictor."""
    if not bool(fixed.any()):
        return logits
    on = torch.tensor([-30.0, 30.0], dtype=logits.dtype, device=logits.device)
    return torch.where(fixed[:, None], on, logits)
