"""Batched beam search with optional joint CTC prefix scoring.

``B`` utterances x ``K`` beams are flattened to ``N = B * K`` decoder rows, so every output step is
one ``model.decode_step`` call on the KV cache, followed by one ``cache.reorder`` that moves each
row's cache to the beam it continues. Per step and utterance:

1. every live beam proposes candidates: all tokens, or with CTC scoring its ``ctc_top_k`` best
   attention tokens; a candidate's score is ``(1 - λ) * att + λ * ctc`` (both cumulative);
2. the ``2K`` best candidates of the utterance are ranked; ``<eos>`` candidates ranked before the
   K-th continuing one become finished hypotheses, and the first ``K`` non-``<eos>`` candidates
   become the new beams (there are always K: each beam contributes at most one ``<eos>``);
3. an utterance is finished once its best live beam, ended at the next step, would not enter the
   top ``K`` of its ended hypotheses, or once it has used its token budget (then ``<eos>`` is
   forced). Finished utterances leave the batch, shrinking ``N``.

Finished hypotheses are ranked by ``DecodeOptions.final_score`` (length penalty/normalisation).
``DecodeOptions.stop = "count"`` replaces rules 2-3 by CTranslate2's: only ``<eos>`` among the K
best candidates ends a hypothesis, and an utterance is finished once K hypotheses have ended.
``stop = "espnet"`` follows ESPnet's ``BatchBeamSearch``: the K best candidates over the live
beams are taken, the ``<eos>`` ones end and their slots stay dead (fewer live beams), and the
utterance is finished once no beam is live or the budget is used up. With ``ctc_prompt_offset``
the CTC prefix scorer counts the prompt as emitted (see ``ctc_prefix``). Both exist for parity
with ESPnet (OWSM).
An optional ``LogitFilter`` edits the logits before the log-softmax (Whisper's token rules).

Speed: a beam never moves to another utterance, so ``DecoderCache`` keeps one cross-attention
K/V per utterance, read once per step for its K rows and copied only when utterances leave the
batch; a step copies only the self-attention cache.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from speechkit.decode.ctc_prefix import CTCPrefixScorer, CTCState
from speechkit.decode.options import (
    DecodeOptions,
    Hypothesis,
    LogitFilter,
    SpecialIds,
    constrain_next_token,
)

__all__ = ["BeamSearch", "beam_search"]


@dataclass
class _Candidates:
    """Scores of every (row, candidate) pair at one step; C = V or ``ctc_top_k``.

    total / att / ctc: (N, C) cumulative scores; tokens: (N, C) ids (None when C = V, the id is
    the column); ctc_r: (N, C, 2, T) CTC forward variables (None without CTC).
    """

    total: torch.Tensor
    att: torch.Tensor
    ctc: torch.Tensor | None
    tokens: torch.Tensor | None
    ctc_r: torch.Tensor | None

    def token(self, row: torch.Tensor, col: torch.Tensor) -> torch.Tensor:
        return col if self.tokens is None else self.tokens[row, col]


class BeamSearch:
    """Beam search over a model that follows the ``S2TModel`` decoding API (see design.md)."""

    def __init__(
        self,
        model: torch.nn.Module,
        options: DecodeOptions,
        ids: SpecialIds,
        logit_filter: LogitFilter | None = None,
    ):
        self.model, self.opt, self.ids = model, options, ids
        self.logit_filter = logit_filter

    @torch.inference_mode()
    def __call__(
        self, enc: torch.Tensor, enc_lens: torch.Tensor, prefix: torch.Tensor
    ) -> list[list[Hypothesis]]:
        """enc: (B, T', D); enc_lens: (B,); prefix: (B, P) int64 start tokens.

        Returns per utterance the n-best list (best first), tokens without prefix and ``<eos>``.
        """
        B, K, device = enc.shape[0], self.opt.beam_size, enc.device
        budget = torch.tensor([self.opt.max_tokens(int(n)) for n in enc_lens], device=device)
        utts = torch.arange(B, device=device)  # original index of each active utterance
        rows_utt = utts.repeat_interleave(K)
        cache = self.model.new_cache(enc, enc_lens)
        cache.reorder(rows_utt)
        prompt = prefix.to(device).repeat_interleave(K, 0)
        logits = self.model.decode_step(prompt, cache, last_only=True)[:, -1]

        # Only beam 0 is live at the start, so the first step does not pick K copies of one token.
        att = torch.full((B, K), float("-inf"), device=device)
        att[:, 0] = 0.0
        att = att.flatten()
        scorer, ctc_state = None, None
        if self.opt.ctc_weight > 0:
            offset = prefix.shape[1] - 1 if self.opt.ctc_prompt_offset else 0
            scorer = CTCPrefixScorer(
                self.model.ctc_log_probs(enc), enc_lens, self.ids.blank, self.ids.eos, offset
            )
            ctc_state = scorer.initial_state(rows_utt)
        tokens = torch.zeros(B * K, 0, dtype=torch.long, device=device)
        ended: list[list[tuple]] = [[] for _ in range(B)]

        for step in range(int(budget.max()) + 1):
            logits = logits.float()
            if self.logit_filter is not None:
                logits = self.logit_filter(logits, tokens, step)
            logp = logits.log_softmax(-1)
            logp = constrain_next_token(logp, step, budget[rows_utt], self.opt, self.ids)
            cand = self._candidates(logp, att, scorer, ctc_state, step)
            dead = None
            if self.opt.stop == "espnet":
                src, col, done, dead = self._select_espnet(cand, step, utts, tokens, ended, budget)
                if self.opt.end_detect:
                    done = done | _end_detected(ended, utts, step, prefix.shape[1])
            else:
                src, col, done = self._select(cand, step, utts, tokens, ended, budget)
            if bool(done.all()):
                break
            # Keep the K new beams of every unfinished utterance; one reorder does both.
            src, col = src[~done].flatten(), col[~done].flatten()
            utts = utts[~done]
            rows_utt = utts.repeat_interleave(K)
            new_tok = cand.token(src, col)
            tokens = torch.cat([tokens[src], new_tok[:, None]], dim=1)
            att = cand.att[src, col]
            if dead is not None:  # ended or impossible slots never extend again
                att = att.masked_fill(dead[~done].flatten(), float("-inf"))
            if scorer is not None:
                ctc_state = scorer.advance(cand.ctc, cand.ctc_r, cand.tokens, src, col, rows_utt)
            cache.reorder(src)
            logits = self.model.decode_step(new_tok[:, None], cache)[:, -1]
        return [self._nbest(hyps) for hyps in ended]

    def _candidates(
        self,
        logp: torch.Tensor,
        att: torch.Tensor,
        scorer: CTCPrefixScorer | None,
        state: CTCState | None,
        step: int,
    ) -> _Candidates:
        """Cumulative scores of extending each row (N) by each candidate token."""
        if scorer is None:
            # A row's 2K best tokens hold every candidate of it that can rank among its
            # utterance's 2K best, so ranking N x 2K candidates instead of N x V gives the same
            # beams (1.1 ms of a 20 ms Whisper step went to a top-k over 5 x 51,864 scores).
            logp_c, tok = logp.topk(min(2 * self.opt.beam_size, logp.shape[1]), dim=-1)
            new_att = att[:, None] + logp_c  # (N, C)
            return _Candidates(new_att, new_att, None, tok, None)
        lam = self.opt.ctc_weight
        att_c, tok = logp.topk(min(self.opt.ctc_top_k, logp.shape[1]), dim=-1)  # (N, C)
        if self.opt.stop == "espnet":  # <eos> is always a candidate, once
            att_c = att_c.masked_fill(tok == self.ids.eos, float("-inf"))
            eos = torch.full_like(tok[:, :1], self.ids.eos)
            tok = torch.cat([tok, eos], dim=1)
            att_c = torch.cat([att_c, logp[:, self.ids.eos, None]], dim=1)
        # Blank is never an attention output; keep it out of the CTC recursion.
        att_c = att_c.masked_fill(tok == self.ids.blank, float("-inf"))
        psi, r = scorer.score(state, tok, step)
        new_att = att[:, None] + att_c
        total = (1 - lam) * new_att + lam * psi
        total = total.masked_fill(torch.isinf(new_att), float("-inf"))
        return _Candidates(total, new_att, psi, tok, r)

    def _select(
        self,
        cand: _Candidates,
        step: int,
        utts: torch.Tensor,
        tokens: torch.Tensor,
        ended: list[list[tuple]],
        budget: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Ranks candidates per utterance, records ended hypotheses, picks the next K beams.

        Returns src rows (A, K), candidate columns (A, K) and a done mask (A,) over the A active
        utterances.
        """
        A, K = utts.shape[0], self.opt.beam_size
        C = cand.total.shape[1]
        top_s, top_i = cand.total.view(A, K * C).topk(2 * K, dim=-1)  # (A, 2K)
        src = top_i // C + (torch.arange(A, device=top_i.device) * K)[:, None]
        col = top_i % C
        is_eos = cand.token(src, col) == self.ids.eos
        finite = torch.isfinite(top_s)
        live = ~is_eos & finite
        if self.opt.stop == "count":
            record = is_eos & finite & (torch.arange(2 * K, device=top_i.device) < K)
        else:
            record = is_eos & finite & ((live.cumsum(-1) - live.long()) < K)
        for a, j in record.nonzero().tolist():
            r, c = src[a, j], col[a, j]
            ctc = 0.0 if cand.ctc is None else float(cand.ctc[r, c])
            hyp = (
                tokens[r].tolist(),
                float(top_s[a, j]),
                float(cand.att[r, c]),
                ctc,
                step + 1,
            )
            ended[int(utts[a])].append(hyp)

        cont = ~is_eos
        keep = cont & (cont.cumsum(-1) <= K)  # the first K continuing candidates
        src, col, live_s = (
            src[keep].view(A, K),
            col[keep].view(A, K),
            top_s[keep].view(A, K),
        )
        return src, col, self._done(live_s[:, 0], step, utts, ended, budget)

    def _select_espnet(
        self,
        cand: _Candidates,
        step: int,
        utts: torch.Tensor,
        tokens: torch.Tensor,
        ended: list[list[tuple]],
        budget: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """ESPnet's rule: the K best candidates of an utterance over all its live beams; the
        ``<eos>`` ones end, and so do all K once they use up the budget (no ``<eos>`` score).

        Returns src rows (A, K), candidate columns (A, K), a done mask (A,) and a dead mask
        (A, K) of slots that must not extend (ended, or no finite candidate).
        """
        A, K = utts.shape[0], self.opt.beam_size
        C = cand.total.shape[1]
        top_s, top_i = cand.total.view(A, K * C).topk(K, dim=-1)  # (A, K)
        src = top_i // C + (torch.arange(A, device=top_i.device) * K)[:, None]
        col = top_i % C
        new_tok = cand.token(src, col)
        is_eos = new_tok == self.ids.eos
        finite = torch.isfinite(top_s)
        last = (step + 1 >= budget[utts])[:, None]  # these tokens use up the budget
        end = finite & (is_eos | last)
        for a, j in end.nonzero().tolist():
            r, c = src[a, j], col[a, j]
            eos = bool(is_eos[a, j])
            toks = tokens[r].tolist() + ([] if eos else [int(new_tok[a, j])])
            ctc = 0.0 if cand.ctc is None else float(cand.ctc[r, c])
            # ESPnet appends <eos> to a budget-ended beam: it counts as an output token.
            hyp = (toks, float(top_s[a, j]), float(cand.att[r, c]), ctc, step + (1 if eos else 2))
            ended[int(utts[a])].append(hyp)
        dead = end | ~finite
        return src, col, dead.all(-1), dead

    def _done(
        self,
        best_live: torch.Tensor,
        step: int,
        utts: torch.Tensor,
        ended: list[list[tuple]],
        budget: torch.Tensor,
    ) -> torch.Tensor:
        """(A,) True where an utterance is finished: it has used its budget, has no live beam,
        or has K ended hypotheses and its best live beam, were it to end at the next step, would
        rank below the K-th of them (a heuristic when length terms can still raise scores)."""
        K = self.opt.beam_size
        if self.opt.stop == "count":
            enough = torch.tensor([len(ended[u]) >= K for u in utts.tolist()], device=utts.device)
            return enough | (step >= budget[utts]) | ~torch.isfinite(best_live)
        kth = []
        for u in utts.tolist():
            finals = sorted((self.opt.final_score(h[1], h[4]) for h in ended[u]), reverse=True)
            kth.append(finals[K - 1] if len(finals) >= K else float("-inf"))
        kth = torch.tensor(kth, device=utts.device)
        # A live beam ending at the next step has step + 2 output tokens, <eos> included.
        live_final = torch.tensor(
            [self.opt.final_score(float(s), step + 2) for s in best_live.tolist()],
            device=best_live.device,
        )
        beaten = torch.isfinite(kth) & (live_final <= kth)
        return beaten | (step >= budget[utts]) | ~torch.isfinite(best_live)

    def _nbest(self, hyps: list[tuple]) -> list[Hypothesis]:
        scored = [
            Hypothesis(toks, self.opt.final_score(raw, n), att_logp=att, ctc_logp=ctc)
            for toks, raw, att, ctc, n in hyps
        ]
        scored.sort(key=lambda h: h.score, reverse=True)
        return scored[: self.opt.nbest]


def _end_detected(
    ended: list[list[tuple]], utts: torch.Tensor, step: int, prompt_len: int
) -> torch.Tensor:
    """(A,) ESPnet's end detection after ``step`` (see ``DecodeOptions.end_detect``): an ended
    hypothesis of n output tokens (``<eos>`` included) has sequence length ``prompt_len + n``."""
    out = []
    for u in utts.tolist():
        hyps = ended[u]
        best = max((h[1] for h in hyps), default=None)
        count = 0
        for length in (step - m for m in range(3)):
            same = [h[1] for h in hyps if prompt_len + h[4] == length]
            count += bool(same) and max(same) - best < -10.0
        out.append(best is not None and count == 3)
    return torch.tensor(out, device=utts.device)


def beam_search(
    model: torch.nn.Module,
    enc: torch.Tensor,
    enc_lens: torch.Tensor,
    prefix: torch.Tensor,
    options: DecodeOptions,
    ids: SpecialIds,
    logit_filter: LogitFilter | None = None,
) -> list[list[Hypothesis]]:
    """Functional form of :class:`BeamSearch` (same arguments and result)."""
    return BeamSearch(model, options, ids, logit_filter)(enc, enc_lens, prefix)
