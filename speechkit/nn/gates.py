"""Module gates: which residual modules of a layer run, per utterance, and the network that decides.

A layer with gates names its gated modules in ``GATED`` (e.g. ``("ffn1", "attn", "cgmlp",
"ffn2")``) and takes ``gates`` in ``forward``, in one of four forms:

* ``None``: every module runs (the plain model);
* a tuple of K Python bools, one per module: the whole batch shares them, and a module that is
  False is not run at all (no masked compute, no zero-multiplied branch);
* a (B, K) **bool** tensor: utterance-dependent decisions at inference; the rows are grouped by
  pattern (:func:`run_by_pattern`) and each group runs with a tuple, so an off module is
  still never computed for the rows that skip it;
* a (B, K) **float** tensor: training with relaxed gates (straight-through Gumbel-softmax,
  :func:`sample_gates`): every module runs and its output is scaled by its gate per row. With
  hard forward values (0 or 1) the result equals the skipped / run computation exactly.

A module removed from the model (``None``, after ``speechkit prune-export``) is always off.

FFN channel groups (an option, :func:`gate_layout`): a layer may gate each FFN per group of
F / G hidden channels instead of as a whole. Its gate names then expand (``ffn`` ->
``ffn.0 .. ffn.{G-1}``, in place), and :func:`group_gates` gives the FFN its group gates in the
same four forms: all groups off = the module is not run; some off = only the on groups' rows
and columns of its two linear layers are computed (``nn/feedforward.py``); relaxed (B, G)
gates scale the hidden channels of each group.

The gate predictor (:class:`GatePredictor`) is utterance-level: from the time-averaged output of
the encoder's front end (before any gated layer runs), optional context vectors (speaker,
acoustic event; the language posterior for the decoder gates) and the compute budget (a scalar
in [0, 1], the FLOP fraction to keep), a small MLP gives two logits (off, on) per gate. The
"static" mode sees the budget only, so its gates are the same for every utterance.
:func:`check_budget` is the one range rule of a budget and :func:`decoding_budget` the rule of
``--budget`` for any model (``speechkit decode``, ``speechkit transcribe``, the benchmarks).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from speechkit.config import ConfigError

__all__ = [
    "GatePredictor",
    "GatedLayer",
    "Gates",
    "check_budget",
    "decoding_budget",
    "gate_layout",
    "group_gates",
    "module_gate",
    "run_by_pattern",
    "sample_gates",
    "scaled",
]

# A gate of one module as a layer sees it: True/False for the whole batch, or a float (B,)
# tensor of relaxed gates (training).
Gate = bool | Tensor
Gates = tuple[bool, ...] | Tensor | None
# The group gates of an FFN (nn/feedforward.py): None (every group on), a tuple of G bools
# (the whole batch) or a float (B, G) tensor of relaxed gates.
GroupGates = tuple[bool, ...] | Tensor | None


def gate_layout(
    modules: tuple[str, ...], grouped: tuple[str, ...], groups: int
) -> tuple[tuple[str, ...], dict[str, int | slice]]:
    """A layer's gate names and where each module's gates sit in its gate vector: an int for
    one gate, a slice of ``groups`` gates for each module of ``grouped`` when ``groups`` > 1.
    ``groups`` 1 is the plain layout (the names are ``modules``)."""
    names: list[str] = []
    where: dict[str, int | slice] = {}
    for module in modules:
        if groups > 1 and module in grouped:
            where[module] = slice(len(names), len(names) + groups)
            names += [f"{module}.{g}" for g in range(groups)]
        else:
            where[module] = len(names)
            names.append(module)
    return tuple(names), where


def group_gates(
    gates: Gates, where: int | slice, module: nn.Module | None
) -> tuple[Gate, GroupGates]:
    """The module gate and the group gates of a module at ``where`` (:func:`gate_layout`).
    An int: ``(module_gate(...), None)``. A slice: False when the module is removed or every
    group of the tuple is off (the module is not run), else True with None (all on), the
    tuple of the groups, or the relaxed (B, G) columns."""
    if isinstance(where, int):
        return module_gate(gates, where, module), None
    if module is None:
        return False, None
    if gates is None:
        return True, None
    if isinstance(gates, Tensor):
        return True, gates[:, where]
    on = tuple(bool(g) for g in gates[where])
    if not any(on):
        return False, None
    return True, None if all(on) else on


class GatedLayer(nn.Module):
    """Base of a layer with gates: ``GATED`` names its gated modules (attributes, None when
    removed), ``FFNS`` those of them that are ``FeedForward`` blocks and can be gated per
    channel group (:meth:`group_ffn_gates`). ``gate_names`` is the order of its gates."""

    GATED: tuple[str, ...] = ()
    FFNS: tuple[str, ...] = ()

    def __init__(self) -> None:
        super().__init__()
        self.ffn_groups = 1
        self.gate_names, self._where = gate_layout(self.GATED, self.FFNS, 1)

    def group_ffn_gates(self, groups: int) -> None:
        """Gates each FFN per group of d_ffn / ``groups`` hidden channels: its gate name
        ``ffn`` becomes ``ffn.0 .. ffn.{groups-1}`` (1: one gate per FFN, the default)."""
        for name in self.FFNS:
            ffn = getattr(self, name)
            if ffn is not None and ffn.net[0].out_features % groups:
                width = ffn.net[0].out_features
                raise ValueError(f"{name}: {groups} channel groups do not divide its width {width}")
        self.ffn_groups = groups
        self.gate_names, self._where = gate_layout(self.GATED, self.FFNS, groups)

    def gate(self, gates: Gates, name: str) -> tuple[Gate, GroupGates]:
        """The gate of module ``name`` and its group gates (:func:`group_gates`)."""
        return group_gates(gates, self._where[name], getattr(self, name))


def module_gate(gates: Gates, index: int, module: nn.Module | None) -> Gate:
    """The gate of module ``index`` of a layer: False for a removed module, True when ungated,
    else the tuple's bool or the float tensor's column (B,)."""
    if module is None:
        return False
    if gates is None:
        return True
    if isinstance(gates, Tensor):
        return gates[:, index]
    return bool(gates[index])


def scaled(y: Tensor, gate: Gate) -> Tensor:
    """``y`` (B, ...) times a relaxed gate (B,), or ``y`` itself for a hard True."""
    if isinstance(gate, Tensor):
        return y * gate.to(y.dtype).view(-1, *([1] * (y.dim() - 1)))
    return y


def run_by_pattern(
    layer: Callable[..., Tensor], x: Tensor, gates: Tensor, row_args: Sequence[Tensor | None]
) -> Tensor:
    """Runs ``layer(x_rows, *row_args_rows, gates=pattern)`` once per distinct row of the
    (B, K) bool ``gates`` and puts the outputs back in row order. ``row_args`` are tensors
    with a leading batch dimension (or None); ``x`` is (B, T, D)."""
    patterns, inverse = torch.unique(gates, dim=0, return_inverse=True)
    if patterns.shape[0] == 1:
        return layer(x, *row_args, gates=tuple(patterns[0].tolist()))
    out = torch.empty_like(x)
    for p, pattern in enumerate(patterns):
        rows = (inverse == p).nonzero().squeeze(1)
        sub = [a.index_select(0, rows) if a is not None else None for a in row_args]
        out.index_copy_(
            0, rows, layer(x.index_select(0, rows), *sub, gates=tuple(pattern.tolist()))
        )
    return out


def sample_gates(logits: Tensor, tau: float, hard: bool = True) -> Tensor:
    """Straight-through Gumbel-softmax over (…, K, 2) logits (index 1 = on) -> (…, K) float
    gates: exactly 0 or 1 in the forward pass (``hard``), the relaxed gradient backwards."""
    return F.gumbel_softmax(logits, tau=tau, hard=hard, dim=-1)[..., 1]


class GatePredictor(nn.Module):
    """Utterance-level gate logits for the encoder and decoder modules.

    Inputs (B rows): ``pooled`` (B, D) the time-averaged front-end output (ignored when
    ``static``); ``contexts`` {kind: (B, Dk)} with ``known`` {kind: (B,) bool} (unknown rows
    get a learned "unknown" vector per kind); ``budget`` (B,) in [0, 1]; for the decoder also
    ``language`` (B, n_languages), a one-hot or a posterior, when ``use_language``.
    Outputs (B, n_enc, 2) and (B, n_dec, 2) logits, index 1 = run the module.

    ``input_norm``: layer-normalise the pooled audio and each context vector (no affine: the
    MLP's first layer is) before they are concatenated. The stored contexts come at very
    different scales (unit d-vectors; the event tagger's raw mean embedding, whose classes differ
    by under 1 % in cosine around a large shared component), and unnormalised the predictor
    learned gates that ignored the context. Normalised, the phrasebook arms still learn 1-2
    gate patterns (egs/phrasebook/prune1/RESULTS.md): this puts the inputs on one scale, it
    does not by itself make the gates vary.
    """

    def __init__(
        self,
        d_model: int,
        context_dims: dict[str, int],
        n_languages: int,
        n_enc: int,
        n_dec: int,
        hidden: int = 128,
        static: bool = False,
        init_keep_logit: float = 3.0,
        budget_gain: float = 0.0,
        input_norm: bool = False,
    ):
        super().__init__()
        self.static = static
        self.input_norm = input_norm
        self.kinds = sorted(context_dims)
        self.n_enc, self.n_dec, self.n_languages = n_enc, n_dec, n_languages
        self.unknown = nn.ParameterDict(
            {k: nn.Parameter(torch.zeros(d)) for k, d in context_dims.items()}
        )
        shared = (0 if static else d_model) + sum(context_dims.values()) + 1  # + budget
        self.shared_dim = shared
        self.enc_mlp = self._mlp(shared, hidden, 2 * n_enc, init_keep_logit) if n_enc else None
        self.dec_mlp = self._mlp(shared + n_languages, hidden, 2 * n_dec, init_keep_logit)
        # A monotone budget prior: each gate's "on" logit gets gain_g * logit(budget), learned
        # per gate from ``budget_gain``. Without it the budget is one input among hundreds and
        # the predictor can settle on the kept fraction best on average over the sampled
        # budgets, ignoring the budget (egs/phrasebook/prune1/RESULTS.md).
        self.budget_gain = None
        if budget_gain > 0:
            self.budget_gain = nn.Parameter(torch.full((n_enc + n_dec,), float(budget_gain)))

    @staticmethod
    def _mlp(d_in: int, hidden: int, d_out: int, keep: float) -> nn.Sequential:
        mlp = nn.Sequential(nn.Linear(d_in, hidden), nn.GELU(), nn.Linear(hidden, d_out))
        # Start as the full model: every gate on with high probability, whatever the input.
        nn.init.normal_(mlp[2].weight, std=0.01)
        with torch.no_grad():
            mlp[2].bias.view(-1, 2).copy_(torch.tensor([0.0, keep]))
        return mlp

    def features(
        self,
        pooled: Tensor,
        contexts: dict[str, Tensor],
        known: dict[str, Tensor],
        budget: Tensor,
    ) -> Tensor:
        """The shared input (B, shared_dim): pooled audio, contexts (unknown -> learned), budget."""
        norm = (lambda v: F.layer_norm(v, v.shape[-1:])) if self.input_norm else (lambda v: v)
        parts = [] if self.static else [norm(pooled)]
        for kind in self.kinds:
            if kind not in contexts:
                raise ValueError(f"the gate predictor needs the {kind!r} context")
            vec, ok = contexts[kind].to(pooled), known[kind].to(pooled.device)
            parts.append(norm(torch.where(ok[:, None], vec, self.unknown[kind].expand_as(vec))))
        parts.append(budget.to(pooled).view(-1, 1))
        return torch.cat(parts, dim=-1)

    def _budget_prior(self, logits: Tensor, shared: Tensor, gains: Tensor) -> Tensor:
        budget = shared[:, -1].clamp(0.01, 0.99)  # (the last input column is the budget)
        prior = gains * torch.log(budget / (1 - budget))[:, None]  # (B, n)
        return torch.stack([logits[..., 0], logits[..., 1] + prior], dim=-1)

    def encoder_logits(self, shared: Tensor) -> Tensor:
        """(B, shared_dim) -> (B, n_enc, 2)."""
        logits = self.enc_mlp(shared).view(-1, self.n_enc, 2)
        if self.budget_gain is not None:
            logits = self._budget_prior(logits, shared, self.budget_gain[: self.n_enc])
        return logits

    def decoder_logits(self, shared: Tensor, language: Tensor | None) -> Tensor:
        """(B, shared_dim), language (B, n_languages) or None -> (B, n_dec, 2)."""
        if self.n_languages:
            if language is None:
                raise ValueError("the decoder gates need the language context")
            inputs = torch.cat([shared, language.to(shared)], dim=-1)
        else:
            inputs = shared
        logits = self.dec_mlp(inputs).view(-1, self.n_dec, 2)
        if self.budget_gain is not None:
            logits = self._budget_prior(logits, shared, self.budget_gain[self.n_enc :])
        return logits


def check_budget(budget: float, name: str = "--budget") -> float:
    """``budget`` (the fraction of the gated modules' FLOPs to keep) as a float if it lies in
    [0, 1]; else the one error of every command, benchmark and config that reads a budget
    (``name``: the option or config key, for the message)."""
    if not 0.0 <= budget <= 1.0:  # (NaN fails this too)
        raise ConfigError(
            f"{name} must lie in [0, 1] (the fraction of the gated modules' FLOPs to keep), "
            f"got {budget}"
        )
    return float(budget)


def decoding_budget(budget: float | None, name: str, gated: bool, dynamic: bool) -> float | None:
    """The budget a model decodes at, from ``--budget`` (None: not given). ``gated``: the model
    has gates (``models/gated_s2t.py``, ``models/gated_whisper.py``); ``dynamic``: it has a gate
    predictor (not trained with ``gate_mode: none``). A gated model needs a budget, checked by
    :func:`check_budget`, unless it has no predictor (1.0: nothing to decide); a model without
    gates gets None, and a budget given for it is an error. ``name``: the model, for errors."""
    if not gated:
        if budget is not None:
            raise ConfigError(
                f"--budget: {name} has no gates (train one with task: prune or prune_whisper)"
            )
        return None
    if budget is None:
        if dynamic:
            raise ConfigError(f"{name} is a gated model: give --budget (in [0, 1])")
        return 1.0
    return check_budget(budget)
