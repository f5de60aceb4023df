"""Batched greedy search: the most likely next token for every row, one decoder step at a time.

Uses the model's KV cache, so each step feeds only the newest token. A row that has emitted
``<eos>`` keeps being fed ``<eos>`` (its output is frozen) until every row is done.
"""

from __future__ import annotations

import torch

from speechkit.decode.options import (
    DecodeOptions,
    Hypothesis,
    LogitFilter,
    SpecialIds,
    constrain_next_token,
)

__all__ = ["greedy_search"]


@torch.inference_mode()
def greedy_search(
    model: torch.nn.Module,
    enc: torch.Tensor,
    enc_lens: torch.Tensor,
    prefix: torch.Tensor,
    options: DecodeOptions,
    ids: SpecialIds,
    logit_filter: LogitFilter | None = None,
) -> list[list[Hypothesis]]:
    """Greedy decoding of a batch; ``logit_filter`` edits logits before the log-softmax.

    enc: (B, T', D) encoder output; enc_lens: (B,) valid encoder frames.
    prefix: (B, P) int64 start tokens (``[<sop> prompt] <sos> <lang> <task> <notimestamps>``).
    Returns one single-element n-best list per utterance; tokens exclude the prefix and ``<eos>``.
    """
    B = enc.shape[0]
    device = enc.device
    max_tokens = torch.tensor([options.max_tokens(int(n)) for n in enc_lens], device=device)
    cache = model.new_cache(enc, enc_lens)
    logits = model.decode_step(prefix.to(device), cache, last_only=True)[:, -1]  # (B, V)

    done = torch.zeros(B, dtype=torch.bool, device=device)
    att_logp = torch.zeros(B, device=device)
    n_out = torch.zeros(B, dtype=torch.long, device=device)  # output tokens incl. eos
    steps: list[torch.Tensor] = []
    for step in range(int(max_tokens.max()) + 1):
        logits = logits.float()
        if logit_filter is not None:
            so_far = torch.stack(steps, 1) if steps else prefix.new_zeros(B, 0).to(device)
            logits = logit_filter(logits, so_far, step)
        logp = constrain_next_token(logits.log_softmax(-1), step, max_tokens, options, ids)
        best = logp.argmax(-1)  # (B,)
        best = best.masked_fill(done, ids.eos)
        att_logp += logp.gather(1, best[:, None])[:, 0].masked_fill(done, 0.0)
        n_out += (~done).long()
        steps.append(best)
        done |= best == ids.eos
        if bool(done.all()):
            break
        logits = model.decode_step(best[:, None], cache)[:, -1]

    out = torch.stack(steps, dim=1).tolist()  # (B, S)
    results = []
    for b in range(B):
        n = int(n_out[b])
        tokens = [t for t in out[b][:n] if t != ids.eos]
        score = options.final_score(float(att_logp[b]), n)
        results.append([Hypothesis(tokens, score, att_logp=float(att_logp[b]))])
    return results
