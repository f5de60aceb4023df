"""Vectorised CTC prefix scoring for joint CTC/attention beam search.

The CTC prefix probability of a token prefix ``h`` is the probability that the CTC output, after
collapsing repeats and removing blanks, *starts with* ``h``. Beam search adds it (weighted) to the
attention score so hypotheses that the CTC branch cannot align are pushed down.

Recursion (log space; ``x_t(k)`` = CTC log-prob of token ``k`` at frame ``t``; frames 0..T-1).
For every hypothesis ``h`` we keep two forward variables over frames:

* ``r_n[t](h)``: log-prob that frames ``0..t`` collapse to ``h`` and frame ``t`` emits last(h);
* ``r_b[t](h)``: the same, but frame ``t`` emits blank.

For the empty prefix (only the SOT sequence): ``r_n[t] = -inf``, ``r_b[t] = sum_{s<=t} x_s(blank)``.
Extending ``h`` by a token ``c`` (``c`` != blank, != eos)::

    phi[t]        = r_b[t](h) (+) r_n[t](h)          if c != last(h)
                  = r_b[t](h)                        if c == last(h)   (a repeat needs a blank)
    r_n[0](h+c)   = x_0(c) if h is empty else -inf
    r_b[0](h+c)   = -inf
    r_n[t](h+c)   = (r_n[t-1](h+c) (+) phi[t-1]) + x_t(c)
    r_b[t](h+c)   = (r_b[t-1](h+c) (+) r_n[t-1](h+c)) + x_t(blank)
    psi(h+c)      = r_n[0](h+c) (+) (+)_{t>=1} (phi[t-1] + x_t(c))

where ``(+)`` is log-add-exp. ``psi`` is the prefix log-probability: the sum over every frame at
which ``c`` may first be emitted. Ending with ``<eos>`` scores the full-sequence probability
``psi(h+eos) = r_n[T-1](h) (+) r_b[T-1](h)``, which equals ``-ctc_loss(h)``.

Padding: frames past an utterance's length get ``x(blank) = 0`` and ``x(k) = -inf`` otherwise, so
the recursion runs over the padded length for the whole batch and still ends with the right total
(``r_n`` folds into ``r_b`` and stays constant).

Prompt offset (ESPnet's convention, ``offset > 0``): the prompt tokens after ``<sos>`` count as
already emitted, so extending a prefix of ``k`` text tokens may first emit ``c`` at frame
``s = k + offset``: ``phi[t] = -inf`` for ``t < s - 1`` and ``r_n[0] = -inf``. This removes
alignments a plain CTC recursion would allow; ESPnet's ``CTCPrefixScoreTH`` starts its time loop
at ``len(prefix) - 1`` in the same way.

Shapes: ``N`` hypothesis rows (utterances x beams), ``C`` candidate tokens per row, ``T`` frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["CTCPrefixScorer", "CTCState"]

NEG_INF = float("-inf")


@dataclass
class CTCState:
    """Per-row CTC state after a prefix ``h``.

    r: (N, 2, T) forward variables ``r_n``, ``r_b`` (log space).
    psi: (N,) prefix log-probability of ``h`` (0 for the empty prefix).
    last: (N,) last token of ``h`` (-1 for the empty prefix).
    utt: (N,) index of each row's utterance in the scorer's batch.
    """

    r: torch.Tensor
    psi: torch.Tensor
    last: torch.Tensor
    utt: torch.Tensor

    def select(self, rows: torch.Tensor) -> CTCState:
        """Keeps (or repeats) rows, e.g. when finished utterances leave the batch."""
        return CTCState(self.r[rows], self.psi[rows], self.last[rows], self.utt[rows])


class CTCPrefixScorer:
    """Scores candidate extensions of many hypotheses at once (see the module docstring).

    logp: (B, T, V) CTC log-probabilities, e.g. ``model.ctc_log_probs(enc)``.
    lens: (B,) valid frames per utterance.
    offset: prompt tokens counted as already emitted (see the module docstring; 0 = none).
    """

    def __init__(
        self, logp: torch.Tensor, lens: torch.Tensor, blank: int, eos: int, offset: int = 0
    ):
        T = logp.shape[1]
        self.blank, self.eos, self.T, self.offset = blank, eos, T, offset
        logp = logp.float().clone()
        pad = torch.arange(T, device=logp.device)[None, :] >= lens.to(logp.device)[:, None]
        logp[pad] = NEG_INF
        logp[..., blank] = logp[..., blank].masked_fill(pad, 0.0)
        # (B, V, T) so gathering C candidates for N rows yields (N, C, T) without copying V.
        self.x = logp.transpose(1, 2).contiguous()
        self.x_blank = logp[..., blank].contiguous()  # (B, T)

    def initial_state(self, utt: torch.Tensor) -> CTCState:
        """The state of the empty prefix for rows belonging to utterances ``utt`` (N,)."""
        N = utt.shape[0]
        r = torch.full((N, 2, self.T), NEG_INF, device=self.x.device)
        r[:, 1] = self.x_blank[utt].cumsum(-1)
        zeros = torch.zeros(N, device=self.x.device)
        return CTCState(r, zeros, torch.full_like(utt, -1), utt)

    def score(
        self, state: CTCState, cand: torch.Tensor, step: int = 0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Prefix log-probabilities of every ``h + c``.

        cand: (N, C) candidate token ids (may include eos; must not include blank).
        step: text tokens in ``h`` (only used with a prompt offset).
        Returns ``psi`` (N, C) and the candidates' forward variables ``r`` (N, C, 2, T).
        """
        N, C = cand.shape
        T = self.T
        x_c = self.x[state.utt[:, None], cand]  # (N, C, T)
        x_b = self.x_blank[state.utt][:, None, :]  # (N, 1, T)
        r_n_h, r_b_h = state.r[:, 0][:, None, :], state.r[:, 1][:, None, :]  # (N, 1, T)
        repeat = (cand == state.last[:, None])[..., None]  # (N, C, 1)
        phi = torch.logaddexp(r_b_h, r_n_h.masked_fill(repeat, NEG_INF).expand(N, C, T))

        empty = (state.last < 0)[:, None]  # (N, 1)
        if self.offset > 0:
            start = step + self.offset  # first frame at which c may be emitted
            phi[..., : max(0, start - 1)] = NEG_INF
            empty = torch.zeros_like(empty)
        xc_t = x_c.permute(2, 0, 1).contiguous()  # (T, N, C): one contiguous slab per frame
        xb_t = x_b.permute(2, 0, 1)  # (T, N, 1)
        phi_t = phi.permute(2, 0, 1).contiguous()
        r_n = [torch.where(empty, xc_t[0], NEG_INF)]
        r_b = [torch.full((N, C), NEG_INF, device=cand.device)]
        # The time recursion is sequential; everything inside a frame is vectorised.
        for t in range(1, T):
            r_n.append(torch.logaddexp(r_n[-1], phi_t[t - 1]) + xc_t[t])
            r_b.append(torch.logaddexp(r_b[-1], r_n[-2]) + xb_t[t])
        starts = torch.cat([r_n[0][None], phi_t[:-1] + xc_t[1:]], dim=0)
        psi = torch.logsumexp(starts, dim=0)  # (N, C)
        r = torch.stack([torch.stack(r_n, dim=-1), torch.stack(r_b, dim=-1)], dim=2)

        full = torch.logaddexp(state.r[:, 0, -1], state.r[:, 1, -1])  # (N,)
        psi = torch.where(cand == self.eos, full[:, None], psi)
        return psi, r

    def advance(
        self,
        psi: torch.Tensor,
        r: torch.Tensor,
        cand: torch.Tensor,
        src: torch.Tensor,
        col: torch.Tensor,
        utt: torch.Tensor,
    ) -> CTCState:
        """The state of the chosen extensions: row ``src[i]`` extended by ``cand[src[i], col[i]]``.

        psi (N, C), r (N, C, 2, T), cand (N, C) from :meth:`score`; src, col, utt (N',).
        """
        return CTCState(r[src, col], psi[src, col], cand[src, col], utt)
