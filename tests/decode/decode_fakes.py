"""Deterministic stand-ins for S2TModel's decoding API (encode/new_cache/decode_step/reorder).

``ScriptedModel`` returns a fixed next-token distribution per generated history (after the
prefix). ``RandomTreeModel`` returns pseudo-random distributions seeded by (utterance, history),
so different batchings of the same utterances must give identical results.
"""

from __future__ import annotations

import math

import torch

BLANK, SOS, EOS = 0, 1, 2


class FakeCache:
    """Per-row token histories; ``reorder`` selects/expands rows like the real KV cache."""

    def __init__(self, utt: torch.Tensor):
        self.utt = utt.tolist()
        self.hist: list[list[int]] = [[] for _ in self.utt]

    def reorder(self, index: torch.Tensor) -> None:
        idx = index.tolist()
        self.utt = [self.utt[i] for i in idx]
        self.hist = [list(self.hist[i]) for i in idx]


class _FakeBase(torch.nn.Module):
    prefix_len = 1  # histories exclude the first ``prefix_len`` tokens fed

    def __init__(self, vocab: int):
        super().__init__()
        self.vocab = vocab
        self.steps = 0

    def new_cache(self, enc: torch.Tensor, enc_lens: torch.Tensor) -> FakeCache:
        # The utterance identity is stored in enc[:, 0, 0] by the tests.
        return FakeCache(enc[:, 0, 0].round().long())

    def decode_step(
        self, ys_new: torch.Tensor, cache: FakeCache, last_only: bool = False
    ) -> torch.Tensor:
        self.steps += 1
        B, L = ys_new.shape
        out = torch.zeros(B, L, self.vocab)
        for b in range(B):
            cache.hist[b].extend(ys_new[b].tolist())
            gen = tuple(cache.hist[b][self.prefix_len :])
            out[b, -1] = self.next_logp(cache.utt[b], gen)
        return out


class ScriptedModel(_FakeBase):
    """``table[history] = {token: prob}``; unlisted histories end with probability ~1."""

    def __init__(self, vocab: int, table: dict, ctc_logp: torch.Tensor | None = None):
        super().__init__(vocab)
        self.table = table
        self.ctc = ctc_logp

    def next_logp(self, utt: int, gen: tuple) -> torch.Tensor:
        # Unlisted tokens get 1e-4 each; listed ones share the rest in the scripted ratios.
        listed = self.table.get(gen, {EOS: 1.0})
        probs = torch.full((self.vocab,), 1e-4, dtype=torch.float64)
        rest = 1.0 - 1e-4 * (self.vocab - len(listed))
        total = sum(listed.values())
        for tok, p in listed.items():
            probs[tok] = p / total * rest
        return probs.log().float()

    def ctc_log_probs(self, enc: torch.Tensor) -> torch.Tensor:
        return self.ctc[: enc.shape[0]]


class RandomTreeModel(_FakeBase):
    """Pseudo-random next-token logits; eos gets likelier with length so outputs end."""

    def next_logp(self, utt: int, gen: tuple) -> torch.Tensor:
        seed = hash((utt, gen)) % (2**31)
        logits = torch.randn(self.vocab, generator=torch.Generator().manual_seed(seed)) * 2
        logits[EOS] += len(gen) * 0.6 - 1.0
        return logits.log_softmax(-1)

    def ctc_log_probs(self, enc: torch.Tensor) -> torch.Tensor:
        g = torch.Generator().manual_seed(7)
        table = torch.randn(16, enc.shape[1], self.vocab, generator=g)
        return table[enc[:, 0, 0].round().long()].log_softmax(-1)


def fake_encoder(utt_ids: list[int], T: int = 8, lens: list[int] | None = None):
    """enc (B, T, 2) carrying the utterance id in enc[:, 0, 0], and enc_lens (B,)."""
    enc = torch.zeros(len(utt_ids), T, 2)
    enc[:, 0, 0] = torch.tensor(utt_ids, dtype=torch.float)
    enc_lens = torch.tensor(lens or [T] * len(utt_ids))
    return enc, enc_lens


def logp_of(probs: float) -> float:
    return math.log(probs)
