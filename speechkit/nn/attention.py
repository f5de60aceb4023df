"""Multi-head attention with an explicit backend switch.

One :class:`MultiHeadAttention` module serves encoder self-attention, causal decoder
self-attention (with a KV cache) and cross-attention. The inner product is done by
:func:`scaled_dot_product`, which dispatches on a backend name:

* ``"eager"``: ``softmax(q k^T / sqrt(d)) v`` written out in fp32; the reference.
* ``"sdpa"``: ``torch.nn.functional.scaled_dot_product_attention`` (fused kernels on GPU).
* ``"triton"``: reserved for custom kernels; until they land it logs a warning once and runs
  the ``eager`` reference.

Shape legend: B batch, H heads, L query length, S key length, D model width, Dh = D / H.

Mask convention: a boolean tensor broadcastable to (B, H, L, S) where ``True`` = attend (keep)
and ``False`` = masked out. A query row whose keys are all masked (e.g. a padded utterance of
encoder length 0) yields zeros, never NaN, on every backend.
"""

from __future__ import annotations

import logging
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

logger = logging.getLogger(__name__)

__all__ = ["BACKENDS", "MultiHeadAttention", "resolve_backend", "scaled_dot_product"]

BACKENDS = ("sdpa", "eager", "triton")

# Backends that can actually run today; "triton" maps onto the reference until kernels exist.
_FALLBACK = {"triton": "eager"}
_warned: set[str] = set()


def resolve_backend(name: str) -> str:
    """Maps a configured backend name to the one that runs, warning once per fallback."""
    if name not in BACKENDS:
        raise ValueError(f"unknown attention backend {name!r}; choose one of {list(BACKENDS)}")
    if name in _FALLBACK:
        runs = _FALLBACK[name]
        if name not in _warned:
            _warned.add(name)
            logger.warning(
                "attention backend %r is not implemented yet; falling back to %r",
                name,
                runs,
            )
        return runs
    return name


def _eager(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, dropout_p: float) -> Tensor:
    """Reference attention in fp32 (whatever the input dtype), cast back at the end."""
    scale = 1.0 / math.sqrt(q.size(-1))
    scores = torch.matmul(q.float(), k.float().transpose(-2, -1)) * scale  # (B, H, L, S)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    probs = torch.softmax(scores, dim=-1)
    if dropout_p > 0.0:
        probs = F.dropout(probs, p=dropout_p)
    return torch.matmul(probs, v.float()).to(q.dtype)


def scaled_dot_product(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask: Tensor | None = None,
    backend: str = "sdpa",
    dropout_p: float = 0.0,
) -> Tensor:
    """Attention of ``q`` (B, H, L, Dh) over ``k``, ``v`` (B, H, S, Dh) -> (B, H, L, Dh).

    ``mask``: bool, broadcastable to (B, H, L, S), True = keep. ``dropout_p`` is applied to the
    attention weights (pass 0 at eval). ``backend`` is a name from :data:`BACKENDS`.
    """
    backend = resolve_backend(backend)
    row_ok = None
    if mask is not None:
        # A fully masked row would be softmax over all -inf = NaN. Let such rows attend to
        # everything (finite) and zero their output afterwards.
        row_ok = mask.any(dim=-1, keepdim=True)  # (B|1, H|1, L|1, 1)
        mask = mask | ~row_ok
    if backend == "eager":
        out = _eager(q, k, v, mask, dropout_p)
    else:
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)
    if row_ok is not None:
        out = out * row_ok.to(out.dtype)
    return out


class MultiHeadAttention(nn.Module):
    """Multi-head attention: Q/K/V projections, backend dispatch, output projection.

    Use :meth:`forward` for self-attention without a cache. For cached decoding and
    cross-attention, split the steps: :meth:`project_kv` once per memory, then :meth:`attend`
    with the query input ``x`` and those keys/values.
    """

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0, backend: str = "sdpa"):
        super().__init__()
        if d_model % n_heads != 0:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        self.n_heads = n_heads
        self.head_dim = d_model // n_heads
        self.dropout = dropout
        self.backend = backend
        self.q_proj = nn.Linear(d_model, d_model)
        # Whisper leaves out the key bias: softmax is invariant to it, so it only wastes memory.
        self.k_proj = nn.Linear(d_model, d_model, bias=False)
        self.v_proj = nn.Linear(d_model, d_model)
        self.out_proj = nn.Linear(d_model, d_model)

    def _split(self, x: Tensor) -> Tensor:
        """(B, T, D) -> (B, H, T, Dh)."""
        b, t, _ = x.shape
        return x.view(b, t, self.n_heads, self.head_dim).transpose(1, 2)

    def project_kv(self, memory: Tensor) -> tuple[Tensor, Tensor]:
        """Keys and values of ``memory`` (B, S, D): two tensors (B, H, S, Dh)."""
        return self._split(self.k_proj(memory)), self._split(self.v_proj(memory))

    def attend(self, x: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None) -> Tensor:
        """Queries from ``x`` (B, L, D) attend over ``k``, ``v`` (B, H, S, Dh) -> (B, L, D)."""
        q = self._split(self.q_proj(x))
        p = self.dropout if self.training else 0.0
        out = scaled_dot_product(q, k, v, mask, backend=self.backend, dropout_p=p)
        b, _, length, _ = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(b, length, -1))

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """Self-attention of ``x`` (B, T, D) -> (B, T, D); ``mask`` as in the module docstring."""
        k, v = self.project_kv(x)
        return self.attend(x, k, v, mask)
