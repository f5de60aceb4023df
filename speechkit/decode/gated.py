"""Decoding a gated s2t model (``models/gated_s2t.py``) at a compute budget.

``speechkit decode --budget 0.5`` builds a :class:`GatedDecoding` for a ``gated_s2t`` model. Per
batch it computes the gates (from the front end, the stored contexts of ``--contexts`` and the
budget), encodes with the encoder gates (rows grouped by gate pattern inside each layer), and
then decodes the rows of each decoder gate pattern together (:meth:`groups`), so an off module
is never computed. Language context: the oracle (the cut's language) or ``lid``, the model's
own posterior from one full decoder step (its FLOPs are counted in the decoder's).

Per decoded item it records GFLOPs (analytic, ``models/s2t_flops.py``: encoder with the front
end; decoder with the output layer, over the prefix, the hypothesis and ``<eos>``) and the
achieved sparsity (1 - FLOP-weighted fraction of the gated modules run); ``rows()`` gives them
for ``gates.jsonl`` beside the hypotheses, ``summary()`` for ``decode_stats.json``. The decoder
counts once there (one pass over the item's tokens); ``gflops_search`` / ``gflops_full_search``
count the whole model as a beam search of ``beam`` hypotheses runs it (every per-token decoder
term and the output layer ``beam`` times, over the best hypothesis's length), the compute that
decoding at batch 1 mostly spends.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Literal

import torch
from torch import Tensor

from speechkit.data.contexts import ContextStore
from speechkit.models.gated_s2t import GatedS2TConfig, GatedS2TModel
from speechkit.models.s2t_flops import (
    decoder_module_flops,
    encoder_module_flops,
    fixed_flops,
)
from speechkit.nn.gates import check_budget

__all__ = ["GatedDecoding", "gate_inputs"]

logger = logging.getLogger(__name__)


def gate_inputs(
    cfg: GatedS2TConfig,
    stores: dict[str, ContextStore],
    cut_ids: list[str],
    languages: list[str] | None,
    budget: float,
    device: torch.device | str = "cpu",
) -> dict:
    """The predictor's inputs for a batch: budget (B,), stored contexts and which are known,
    and the oracle language one-hot (B, n_languages) where ``languages`` (B codes) are given."""
    b = len(cut_ids)
    out: dict = {"budget": torch.full((b,), float(budget), device=device), "contexts": {},
                 "known": {}}  # fmt: skip
    for kind in cfg.stored_contexts:
        vecs, known = stores[kind].batch(cut_ids)
        out["contexts"][kind], out["known"][kind] = vecs.to(device), known.to(device)
    if "language" in cfg.gate_contexts and languages is not None:
        index = {lang: i for i, lang in enumerate(cfg.languages)}
        rows = torch.tensor([index.get(lang, -1) for lang in languages])
        one_hot = torch.zeros(b, len(cfg.languages))
        one_hot[rows >= 0, rows[rows >= 0]] = 1.0  # an unknown language: all zeros
        out["language"] = one_hot.to(device)
    return out


class GatedDecoding:
    """Gates, grouping and compute accounting of one decode run (see the module docstring)."""

    def __init__(
        self,
        model: GatedS2TModel,
        tokenizer,
        budget: float,
        contexts_dir: str | None = None,
        language: Literal["oracle", "lid"] = "lid",
        beam: int = 1,
    ):
        budget = check_budget(budget)
        self.model, self.tok, self.budget, self.language = model, tokenizer, budget, language
        self.beam = beam
        cfg = model.cfg
        self.stores = {}
        if cfg.stored_contexts and model.predictor is not None:
            if not contexts_dir:
                raise ValueError(
                    f"this model's gates read {cfg.stored_contexts} contexts: give --contexts DIR"
                )
            self.stores = {k: ContextStore.load(contexts_dir, k) for k in cfg.stored_contexts}
        self.uses_language = model.predictor is not None and "language" in cfg.gate_contexts
        self.lang_ids = (
            [tokenizer.lang_id(lang) for lang in cfg.languages] if self.uses_language else []
        )
        self._rows: dict[int, dict] = {}  # batch row -> its gates and lengths
        self.records: list[dict] = []
        self.lid_correct = self.lid_total = 0

    # ---- per batch -------------------------------------------------------------------------

    def encode(self, feats: Tensor, feat_lens: Tensor, cut_ids: list[str], languages: list[str]):
        """Gated encoding of a batch (B rows, cut ids and spoken languages per row) ->
        enc (B, T', D), enc_lens (B,); remembers each row's decoder gates."""
        model, device = self.model, feats.device
        inputs = gate_inputs(model.cfg, self.stores, cut_ids, None, self.budget, device)
        enc, enc_lens, enc_g, shared = model.encode_gated(feats, feat_lens, inputs)
        B = feats.shape[0]
        if enc_g is None:  # gate_mode none: every module on
            enc_g = torch.ones(B, model.n_enc, dtype=torch.bool, device=device)
            dec_g = torch.ones(B, model.n_dec, dtype=torch.bool, device=device)
        else:
            language = None
            if self.uses_language:
                language = self._language(enc, enc_lens, languages)
            dec_g = model.decoder_gates(shared, language)
        self._rows = {
            b: {"enc": enc_g[b].cpu(), "dec": dec_g[b].cpu(), "frames": int(feat_lens[b]),
                "T": int(enc_lens[b]), "lid": self.uses_language and self.language == "lid"}
            for b in range(B)
        }  # fmt: skip
        return enc, enc_lens

    def _language(self, enc: Tensor, enc_lens: Tensor, languages: list[str]) -> Tensor:
        langs = self.model.cfg.languages
        if self.language == "oracle":
            rows = torch.tensor([langs.index(lang) if lang in langs else -1 for lang in languages])
            one_hot = torch.zeros(len(languages), len(langs), device=enc.device)
            ok = rows >= 0
            one_hot[ok.nonzero().squeeze(1), rows[ok]] = 1.0
            return one_hot
        post = self.model.language_posterior(enc, enc_lens, self.tok.sos_id, self.lang_ids)
        guess = post.argmax(-1).tolist()
        self.lid_correct += sum(langs[g] == lang for g, lang in zip(guess, languages))
        self.lid_total += len(languages)
        return post

    def groups(self, rows: list[int]) -> list[tuple[tuple[bool, ...], list[int]]]:
        """Positions in ``rows`` (batch rows) grouped by decoder gate pattern."""
        out: dict[tuple[bool, ...], list[int]] = defaultdict(list)
        for pos, row in enumerate(rows):
            out[tuple(self._rows[row]["dec"].tolist())].append(pos)
        return list(out.items())

    def decoder(self, pattern: tuple[bool, ...]):
        return self.model.gated_decoder(pattern)

    def record(self, cut_id: str, subdir: str, row: int, tokens_in: int) -> None:
        """Accounts one decoded item: batch row ``row``, ``tokens_in`` decoder positions run."""
        info = self._rows[row]
        cfg = self.model.cfg
        T, L = torch.tensor([info["T"]]), torch.tensor([tokens_in])
        g = cfg.gate_ffn_groups
        fe = encoder_module_flops(cfg, T, ffn_groups=g)[0]
        fd = decoder_module_flops(cfg, L, T, ffn_groups=g)[0]
        fd_beam = decoder_module_flops(cfg, L, T, ffn_groups=g, rows=self.beam)[0]
        front, out = fixed_flops(cfg, torch.tensor([info["frames"]]), L)
        enc_kept, dec_kept = float((fe * info["enc"]).sum()), float((fd * info["dec"]).sum())
        dec_kept_beam = float((fd_beam * info["dec"]).sum())
        lid = 0.0
        if info["lid"]:  # one full decoder step (the cross K/V of every layer included)
            lid = float(decoder_module_flops(cfg, torch.tensor([1]), T).sum())
            lid += 2 * cfg.d_model * len(self.lang_ids)
        self.records.append({
            "id": cut_id, "output": subdir,
            "gflops_enc": (enc_kept + float(front[0])) / 1e9,
            "gflops_dec": (dec_kept + float(out[0]) + lid) / 1e9,
            "gflops_full": float(fe.sum() + fd.sum() + front[0] + out[0]) / 1e9,
            "gflops_search": (enc_kept + float(front[0]) + dec_kept_beam
                              + self.beam * float(out[0]) + lid) / 1e9,
            "gflops_full_search": float(fe.sum() + fd_beam.sum() + front[0]
                                        + self.beam * out[0]) / 1e9,
            "sparsity": 1.0 - (enc_kept + dec_kept) / float(fe.sum() + fd.sum()),
            "enc_gates": "".join("1" if g else "0" for g in info["enc"].tolist()),
            "dec_gates": "".join("1" if g else "0" for g in info["dec"].tolist()),
        })  # fmt: skip

    # ---- per run ---------------------------------------------------------------------------

    def rows(self, subdir: str) -> list[dict]:
        return sorted((r for r in self.records if r["output"] == subdir), key=lambda r: r["id"])

    def summary(self) -> dict:
        n = max(1, len(self.records))
        mean = lambda key: sum(r[key] for r in self.records) / n  # noqa: E731
        unknown = {k: s.missing for k, s in self.stores.items()}
        if any(unknown.values()):
            logger.warning("contexts not found (the learned unknown vector was used): %s", unknown)
        out = {
            "budget": self.budget,
            "items": len(self.records),
            "gflops_enc": mean("gflops_enc"),
            "gflops_dec": mean("gflops_dec"),
            "gflops_full": mean("gflops_full"),
            "gflops_search": mean("gflops_search"),
            "gflops_full_search": mean("gflops_full_search"),
            "beam": self.beam,
            "sparsity": mean("sparsity"),
            "gate_patterns": len({(r["enc_gates"], r["dec_gates"]) for r in self.records}),
            "language_context": self.language if self.uses_language else None,
            "unknown_contexts": unknown,
        }
        if self.lid_total:
            out["lid_accuracy"] = self.lid_correct / self.lid_total
        return out
