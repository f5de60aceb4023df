"""Multi-head attention with an explicit backend switch.

One :class:`MultiHeadAttention` module serves encoder self-attention, causal decoder
self-attention (with a KV cache) and cross-attention. The inner product is done by
:func:`scaled_dot_product`, which dispatches on a backend name:

* ``"eager"``: ``softmax(q k^T / sqrt(d)) v`` written out in fp32; the reference.
* ``"sdpa"``: ``torch.nn.functional.scaled_dot_product_attention`` (fused kernels on GPU).
* ``"triton"``: the fused flash-attention kernel of :mod:`speechkit.kernels` for attention over
  right-padded keys given as per-sequence lengths (``key_lens``), so padded blocks are skipped.
  It runs on CUDA tensors (or on CPU under ``TRITON_INTERPRET=1``, for tests). Calls the kernel
  cannot serve run ``sdpa`` instead, with a warning logged once per reason: no Triton, CUDA or
  installed ``speechkit.kernels``; a mask without ``key_lens`` (causal or other masks); attention
  dropout; an unsupported dtype or a head dim over 128.

Which backend actually ran is counted per call: :func:`attention_calls` (a ``Counter`` by backend
name), so a test or a benchmark can tell a kernel run from a silent fallback.

Shape legend: B batch, H heads, L query length, S key length, D model width, Dh = D / H.

Mask convention: a boolean tensor broadcastable to (B, H, L, S) where ``True`` = attend (keep)
and ``False`` = masked out. A query row whose keys are all masked (e.g. a padded utterance of
encoder length 0) yields zeros, never NaN, on every backend. Key padding is given twice by
callers that have lengths: the (B, 1, 1, S) mask for ``sdpa``/``eager`` and ``key_lens`` (B,) for
``triton``, which never reads the mask: checking a mask on the host would stall the GPU in every
layer. With ``pad_queries=True`` (self-attention, queries padded like the keys) the ``triton``
kernel also outputs zeros for the padded query rows instead of computing them; nothing reads
those rows, and skipping them is where the kernel saves its time.
"""

from __future__ import annotations

import logging
import math
import os
from collections import Counter

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from speechkit.nn.linear import linear

logger = logging.getLogger(__name__)

__all__ = [
    "BACKENDS",
    "MultiHeadAttention",
    "attention_calls",
    "block_kv",
    "reset_attention_calls",
    "resolve_backend",
    "scaled_dot_product",
    "set_attention_backend",
]

BACKENDS = ("sdpa", "eager", "triton")

# Where the configured backend cannot run, this one runs instead: PyTorch's fused attention, not
# the fp32 reference (which would make a model that asked for speed the slowest of all).
_FALLBACK = {"triton": "sdpa"}
_warned: set[str] = set()
_calls: Counter[str] = Counter()
_kernels_found: list = []  # [speechkit.kernels, or why it does not import], see _kernels


def attention_calls() -> Counter[str]:
    """Calls of :func:`scaled_dot_product` since the last reset, by the backend that ran."""
    return Counter(_calls)


def reset_attention_calls() -> None:
    _calls.clear()


def _warn_once(reason: str) -> None:
    if reason not in _warned:
        _warned.add(reason)
        logger.warning(
            "attention backend 'triton': %s; falling back to %r", reason, _FALLBACK["triton"]
        )


def _kernels():
    """The :mod:`speechkit.kernels` module, or the reason it cannot be imported (a str).

    Kept after the first call: a failed import would otherwise search the path again in every
    attention call. (A plain list, not ``functools.cache``, which torch.compile warns about.)"""
    if not _kernels_found:
        try:
            import speechkit.kernels as kernels
        except ImportError as err:
            kernels = (
                f"speechkit.kernels is not importable ({err}); it is the repository's kernels/ "
                "directory, installed by setup.py: pip install -e <checkout>"
            )
        _kernels_found.append(kernels)
    return _kernels_found[0]


def _triton_unavailable() -> str | None:
    """Why the triton backend cannot run on this machine at all, or ``None`` if it may."""
    try:
        import triton  # noqa: F401
    except ImportError:
        return "triton is not installed"
    kernels = _kernels()
    if isinstance(kernels, str):
        return kernels
    if os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes"):
        return None
    if not torch.cuda.is_available():
        return "no CUDA device (set TRITON_INTERPRET=1 to run the kernel on CPU in tests)"
    return None


def resolve_backend(name: str) -> str:
    """Maps a configured backend name to the one that runs, warning once per fallback.

    ``triton`` resolves to itself where Triton, ``speechkit.kernels`` and a CUDA device (or the
    interpreter) exist; each call may still fall back, see :func:`scaled_dot_product`.
    """
    if name not in BACKENDS:
        raise ValueError(f"unknown attention backend {name!r}; choose one of {list(BACKENDS)}")
    if name in _FALLBACK:
        reason = _triton_unavailable()
        if reason is not None:
            _warn_once(reason)
            return _FALLBACK[name]
    return name


def _triton(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask: Tensor | None,
    key_lens: Tensor | None,
    dropout_p: float,
    pad_queries: bool,
) -> Tensor | None:
    """The kernel's output, or ``None`` (after a warning, once per reason) if it cannot serve.

    Decides from shapes, dtypes and flags only: nothing here waits for the GPU.
    """
    kernels = _kernels()
    reason = kernels if isinstance(kernels, str) else kernels.kernel_available(q)
    if reason is None and dropout_p > 0.0:
        reason = "the kernel has no attention dropout (set attention_dropout to 0)"
    if reason is None and mask is not None and key_lens is None:
        reason = "a mask without key_lens (causal, per-query or unlabelled padding masks)"
    if reason is None and key_lens is not None and key_lens.shape != (q.size(0),):
        reason = f"key_lens of shape {tuple(key_lens.shape)} for a batch of {q.size(0)}"
    if reason is not None:
        _warn_once(reason)
        return None
    q_lens = key_lens if pad_queries and q.size(2) == k.size(2) else None
    return kernels.flash_attention(q, k, v, q_lens, key_lens)


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
    pad_queries: bool = False,
    key_lens: Tensor | None = None,
) -> Tensor:
    """Attention of ``q`` (B, H, L, Dh) over ``k``, ``v`` (B, H, S, Dh) -> (B, H, L, Dh).

    ``mask``: bool, broadcastable to (B, H, L, S), True = keep. ``dropout_p`` is applied to the
    attention weights (pass 0 at eval). ``backend`` is a name from :data:`BACKENDS`.
    ``key_lens``: (B,) int, valid keys per sequence, given together with the key-padding mask
    it was made from (``lengths_to_mask(key_lens, S)[:, None, None, :]``); the ``triton``
    backend uses the lengths, the others the mask. Lengths that disagree with the mask are the
    caller's bug, not checked (a check would synchronise with the GPU).
    ``pad_queries``: self-attention whose queries are padded like its keys (L == S); the
    ``triton`` kernel then skips padded query rows and outputs zeros there.
    """
    if key_lens is not None and mask is None:
        raise ValueError("key_lens comes with the key-padding mask it describes; mask is None")
    if k.dim() == 5:  # keys/values blocked by ``block_kv``: a CPU search step's cross-attention
        if dropout_p or (mask is not None and not bool(mask.all())):
            raise ValueError("blocked keys/values attend to every key, without dropout")
        from speechkit.kernels.half_linear import blocked_attention

        _calls["blocked"] += 1
        return blocked_attention(q, k, v)
    backend = resolve_backend(backend)
    if backend == "triton":
        out = _triton(q, k, v, mask, key_lens, dropout_p, pad_queries)
        if out is not None:
            _calls["triton"] += 1
            return out
        backend = _FALLBACK["triton"]
    _calls[backend] += 1
    if (
        mask is not None
        and mask.device.type == "cpu"
        and not (
            torch.is_grad_enabled() and (q.requires_grad or k.requires_grad or v.requires_grad)
        )
        and not torch.compiler.is_compiling()
        and bool(mask.all())
    ):
        # Every key kept (a full 30 s Whisper window): without a mask sdpa adds nothing to the
        # scores, the same result bit for bit, and skips the guard of fully masked rows below
        # (a step's cross-attention: 0.31 against 0.34 ms). Only on CPU, where the check
        # costs no wait for a device, and at inference: with autograd sdpa would pick another
        # kernel, which saves other tensors (train.batch_search measures them), and a compiled
        # graph would break on the check.
        mask = None
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


def block_kv(k: Tensor, v: Tensor) -> tuple[Tensor, Tensor] | None:
    """Keys and values (U, H, S, Dh) that every query attends to in full (no padding), packed
    for ``speechkit.kernels.half_linear.blocked_attention``: 5-D tensors that
    ``scaled_dot_product`` (and ``DecoderCache.reorder``, which picks along dim 0) take in
    their place. A search step attends from a few queries over the same encoder frames at every
    step; packed once per utterance they are read as one stream per head, about 1.8x faster
    than sdpa with cold caches (whisper-base: 0.42 against 0.77 ms a layer,
    ``egs/phrasebook/whisper1/RESULTS.md``, "tenth session"). None where the kernel does not
    apply (not float32 on CPU, gradients wanted, no kernel): the caller keeps k and v."""
    if k.device.type != "cpu" or k.dtype != torch.float32 or k.dim() != 4:
        return None
    if torch.is_grad_enabled() and (k.requires_grad or v.requires_grad):
        return None
    try:
        from speechkit.kernels.half_linear import kernel_available, pack_kv
    except ImportError:  # a bare source checkout has no speechkit.kernels (kernels/README.md)
        return None
    return pack_kv(k, v) if kernel_available() else None


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
        return self._split(linear(self.k_proj, memory)), self._split(linear(self.v_proj, memory))

    def attend(
        self,
        x: Tensor,
        k: Tensor,
        v: Tensor,
        mask: Tensor | None = None,
        pad_queries: bool = False,
        key_lens: Tensor | None = None,
    ) -> Tensor:
        """Queries from ``x`` (B, L, D) attend over ``k``, ``v`` (B, H, S, Dh) -> (B, L, D).

        ``pad_queries``, ``key_lens``: see :func:`scaled_dot_product` (``pad_queries`` is True
        for self-attention only)."""
        q = self._split(linear(self.q_proj, x))
        p = self.dropout if self.training else 0.0
        out = scaled_dot_product(
            q, k, v, mask, self.backend, p, pad_queries=pad_queries, key_lens=key_lens
        )
        b, _, length, _ = out.shape
        return linear(self.out_proj, out.transpose(1, 2).reshape(b, length, -1))

    def forward(
        self, x: Tensor, mask: Tensor | None = None, key_lens: Tensor | None = None
    ) -> Tensor:
        """Self-attention of ``x`` (B, T, D) -> (B, T, D); ``mask`` as in the module docstring,
        ``key_lens`` (B,) the valid frames it was made from (see :func:`scaled_dot_product`)."""
        k, v = self.project_kv(x)
        # Queries are the keys' own frames, so a key-padding mask pads the queries as well.
        return self.attend(x, k, v, mask, pad_queries=True, key_lens=key_lens)


def set_attention_backend(model: nn.Module, name: str) -> None:
    """Switches every ``MultiHeadAttention`` in ``model`` to backend ``name`` and logs what runs."""
    runs = resolve_backend(name)
    for module in model.modules():
        if isinstance(module, MultiHeadAttention):
            module.backend = name
    logger.info("attention backend: %s (runs %s)", name, runs)
