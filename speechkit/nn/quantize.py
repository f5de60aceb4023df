"""Residual vector quantisation (RVQ) for neural audio codecs.

A latent sequence ``z`` (B, D, T) is quantised by ``num_quantizers`` codebooks in turn: each one
quantises what the previous ones left (the residual), so the first codebook carries the coarsest
content and each further one refines it. The codes are integers (B, Q, T); the bitrate is
``Q * log2(codebook_size) * frame_rate`` bits per second, so one model serves several bitrates
by keeping only the first ``n`` codebooks.

Training rules (as in SoundStream / EnCodec):

* **k-means initialisation**: a codebook is set on its first training batch by a few rounds of
  k-means over that batch's vectors, so no code starts far from the data;
* **EMA updates**: codebooks are not trained by gradients; each code moves to the exponential
  moving average (``decay``) of the vectors assigned to it (Laplace-smoothed counts);
* **dead-code restarts**: a code whose EMA count falls below ``dead_code_threshold`` is replaced
  by a random vector of the current batch;
* **quantiser dropout**: with probability ``quantizer_dropout`` a training batch uses only the
  first ``n`` codebooks, ``n`` drawn uniformly from ``1..Q``, so the decoder learns every bitrate;
* gradients reach the encoder through the straight-through estimator, and the commitment loss
  (mean squared distance between each stage's input and its quantised value) pulls the encoder
  towards the codebooks.

**Masked-channel RVQ** (``masked_quantizers = k > 0``, after Language-Codec): the first ``k``
quantisers each see only their own ``1/k`` of the channels (the others are masked), so the
coarse codes split the latent into parts instead of all competing for its largest component;
the remaining quantisers see every channel of the residual. Their codebooks have ``D / k``
dimensions.

Why this module and not ``vector-quantize-pytorch``: that library's ``ResidualVQ`` has k-means
init, EMA, dead-code expiry and quantiser dropout, but not the masked-channel stages, and its
state (several buffers per codebook whose names change between releases) would be part of every
packed codec. Here the state is three buffers per codebook, stable and documented, and the EMA
and restart statistics are all-reduced over data-parallel ranks so replicas keep one codebook.

Shapes: B batch, D latent channels, T frames, Q quantisers, K codebook size, N = B * T vectors.
Masks: ``mask`` (B, T) bool, ``True`` = a valid frame (padding frames neither update nor
restart codes).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from speechkit.config import ConfigError

__all__ = ["RVQConfig", "RVQOutput", "ResidualVQ", "VectorQuantizer"]


@dataclass
class RVQConfig:
    """Residual VQ settings.

    dim: latent channels D. num_quantizers: Q, the most codebooks (the highest bitrate).
    codebook_size: K codes per codebook (10 bits for 1024). decay: EMA decay of code means.
    kmeans_iters: k-means rounds of the first-batch initialisation (0 = random batch vectors).
    dead_code_threshold: EMA count (vectors per batch) below which a code is restarted
        (0 = never). quantizer_dropout: probability that a training batch uses a random number
        of codebooks. masked_quantizers: leading quantisers that each see 1/k of the channels
        (0 = plain RVQ; see the module docstring).
    """

    dim: int = 128
    num_quantizers: int = 12
    codebook_size: int = 1024
    decay: float = 0.99
    kmeans_iters: int = 10
    dead_code_threshold: float = 1.0
    quantizer_dropout: float = 1.0
    masked_quantizers: int = 0

    def __post_init__(self) -> None:
        if self.dim < 1 or self.num_quantizers < 1 or self.codebook_size < 2:
            raise ConfigError("rvq: dim >= 1, num_quantizers >= 1 and codebook_size >= 2 needed")
        if not 0.0 < self.decay < 1.0:
            raise ConfigError(f"rvq.decay must lie in (0, 1), got {self.decay}")
        if not 0.0 <= self.quantizer_dropout <= 1.0:
            raise ConfigError(
                f"rvq.quantizer_dropout must lie in [0, 1], got {self.quantizer_dropout}"
            )
        k = self.masked_quantizers
        if k < 0 or k > self.num_quantizers or (k and self.dim % k):
            raise ConfigError(
                f"rvq.masked_quantizers ({k}) must lie in [0, num_quantizers] and divide "
                f"rvq.dim ({self.dim})"
            )


@dataclass
class RVQOutput:
    """``quantized`` (B, D, T): the sum of the used stages, with straight-through gradients to
    the input; ``codes`` (B, n, T) int64; ``commit_loss``: scalar, summed over stages;
    ``first`` (B, D, T): the first stage's quantised value (what semantic distillation shapes),
    with straight-through gradients."""

    quantized: Tensor
    codes: Tensor
    commit_loss: Tensor
    first: Tensor


def _all_reduce(t: Tensor) -> Tensor:
    """Sums ``t`` over data-parallel ranks (in place), so every replica sees the same counts."""
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(t)
    return t


def _broadcast(t: Tensor) -> Tensor:
    if dist.is_available() and dist.is_initialized():
        dist.broadcast(t, src=0)
    return t


def kmeans(x: Tensor, k: int, iters: int, generator: torch.Generator | None = None) -> Tensor:
    """(N, D) vectors -> (k, D) centroids by Lloyd's algorithm from ``k`` random vectors (drawn
    with replacement when N < k); an empty cluster keeps its previous centroid."""
    n = x.size(0)
    idx = torch.randint(n, (k,), generator=generator, device="cpu").to(x.device)
    if n >= k:
        idx = torch.randperm(n, generator=generator, device="cpu")[:k].to(x.device)
    centroids = x[idx].clone()
    for _ in range(iters):
        assign = torch.cdist(x, centroids).argmin(dim=1)  # (N,)
        counts = torch.bincount(assign, minlength=k).to(x.dtype)  # (k,)
        sums = torch.zeros_like(centroids).index_add_(0, assign, x)
        filled = counts > 0
        centroids[filled] = sums[filled] / counts[filled, None]
    return centroids


class VectorQuantizer(nn.Module):
    """One codebook of ``size`` codes of ``dim`` channels, trained by EMA.

    Buffers (the whole state): ``codebook`` (K, dim), ``cluster_size`` (K,) EMA count of vectors
    per code, ``code_sum`` (K, dim) EMA sum of those vectors, ``initted`` (scalar bool).
    """

    def __init__(self, dim: int, size: int, decay: float, kmeans_iters: int, dead_threshold: float):
        super().__init__()
        self.dim, self.size, self.decay = dim, size, decay
        self.kmeans_iters, self.dead_threshold = kmeans_iters, dead_threshold
        self.register_buffer("codebook", torch.randn(size, dim) * 0.1)
        self.register_buffer("cluster_size", torch.zeros(size))
        self.register_buffer("code_sum", torch.zeros(size, dim))
        self.register_buffer("initted", torch.tensor(False))

    def nearest(self, x: Tensor) -> Tensor:
        """(N, dim) -> (N,) int64 index of the closest code (squared Euclidean distance)."""
        cb = self.codebook.to(x.dtype)
        dist2 = x.pow(2).sum(1, keepdim=True) - 2 * x @ cb.t() + cb.pow(2).sum(1)[None]
        return dist2.argmin(dim=1)

    def lookup(self, codes: Tensor) -> Tensor:
        """Codes of any shape -> their vectors, shape ``codes.shape + (dim,)``."""
        return F.embedding(codes, self.codebook)

    @torch.no_grad()
    def _init(self, x: Tensor) -> None:
        centroids = kmeans(x.float(), self.size, self.kmeans_iters)
        self.codebook.copy_(_broadcast(centroids))
        self.code_sum.copy_(self.codebook)
        self.cluster_size.fill_(1.0)
        self.initted.fill_(True)

    @torch.no_grad()
    def _ema_update(self, x: Tensor, codes: Tensor) -> None:
        """Moves each code to the EMA mean of its vectors, then restarts dead codes."""
        x = x.float()
        counts = _all_reduce(torch.bincount(codes, minlength=self.size).float())
        sums = _all_reduce(torch.zeros_like(self.code_sum).index_add_(0, codes, x))
        self.cluster_size.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.code_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        # Laplace smoothing keeps rarely used codes from dividing by ~0.
        total = self.cluster_size.sum()
        smoothed = (self.cluster_size + 1e-5) / (total + self.size * 1e-5) * total
        self.codebook.copy_(self.code_sum / smoothed[:, None])
        self._restart_dead(x)

    @torch.no_grad()
    def _restart_dead(self, x: Tensor) -> None:
        dead = self.cluster_size < self.dead_threshold  # (K,)
        n_dead = int(dead.sum())
        if n_dead == 0 or x.size(0) == 0:
            return
        pick = torch.randint(x.size(0), (n_dead,), device=x.device)
        new = _broadcast(x[pick].contiguous())  # every replica restarts to rank 0's vectors
        self.codebook[dead] = new
        # A restarted code counts as one batch's worth of its new vector, so it is not restarted
        # again at once and its EMA mean starts at the vector itself.
        self.cluster_size[dead] = self.dead_threshold
        self.code_sum[dead] = new * self.dead_threshold

    def forward(self, x: Tensor, valid: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(N, dim) -> (quantised (N, dim) without gradient, codes (N,)). In training mode the
        ``valid`` (N,) bool vectors initialise (first call) and update the codebook."""
        if self.training:
            used = x.detach() if valid is None else x.detach()[valid]
            if not bool(self.initted) and used.size(0) > 0:
                self._init(used)
        codes = self.nearest(x.detach())
        if self.training:
            used_codes = codes if valid is None else codes[valid]
            self._ema_update(used, used_codes)
        return self.lookup(codes).to(x.dtype), codes


class ResidualVQ(nn.Module):
    """``Q`` codebooks applied to successive residuals (see the module docstring)."""

    def __init__(self, cfg: RVQConfig):
        super().__init__()
        self.cfg = cfg
        k = cfg.masked_quantizers
        dims = [cfg.dim // max(k, 1)] * k + [cfg.dim] * (cfg.num_quantizers - k)
        self.quantizers = nn.ModuleList(
            VectorQuantizer(
                d, cfg.codebook_size, cfg.decay, cfg.kmeans_iters, cfg.dead_code_threshold
            )
            for d in dims
        )

    @property
    def num_quantizers(self) -> int:
        return self.cfg.num_quantizers

    def bits_per_frame(self, n_q: int | None = None) -> float:
        """Bits of one frame's codes with ``n_q`` codebooks (all by default)."""
        return (n_q or self.cfg.num_quantizers) * math.log2(self.cfg.codebook_size)

    def channels(self, i: int) -> slice:
        """The latent channels that quantiser ``i`` sees."""
        k = self.cfg.masked_quantizers
        if i >= k:
            return slice(None)
        width = self.cfg.dim // k
        return slice(i * width, (i + 1) * width)

    def _draw_n(self) -> int:
        n = self.cfg.num_quantizers
        if random.random() < self.cfg.quantizer_dropout:
            n = random.randint(1, self.cfg.num_quantizers)
        # Every data-parallel replica must run the same stages (each all-reduces its counts).
        device = self.quantizers[0].codebook.device
        return int(_broadcast(torch.tensor([n], device=device))[0])

    def forward(self, z: Tensor, n_q: int | None = None, mask: Tensor | None = None) -> RVQOutput:
        """``z`` (B, D, T) -> :class:`RVQOutput`. ``n_q``: codebooks to use (default: all in
        eval mode; in training mode a quantiser-dropout draw). ``mask`` (B, T): valid frames."""
        if n_q is None:
            n_q = self._draw_n() if self.training else self.cfg.num_quantizers
        if not 1 <= n_q <= self.cfg.num_quantizers:
            raise ValueError(f"n_q must lie in [1, {self.cfg.num_quantizers}], got {n_q}")
        b, d, t = z.shape
        flat = z.permute(0, 2, 1).reshape(b * t, d)  # (N, D)
        valid = None if mask is None else mask.reshape(b * t)
        residual = flat
        quantized = torch.zeros_like(flat)
        codes, commit, first = [], flat.new_zeros(()), None
        for i in range(n_q):
            ch = self.channels(i)
            part = residual[:, ch]
            q, c = self.quantizers[i](part, valid)
            stage = torch.zeros_like(flat)
            stage[:, ch] = q
            err = (part - q).pow(2).mean(dim=1)  # (N,)
            commit = commit + (err.mean() if valid is None else _masked_mean(err, valid))
            quantized = quantized + stage
            residual = residual - stage
            codes.append(c)
            if i == 0:
                first = stage
        # Straight-through: the forward value is the quantised sum, the gradient that of flat.
        out = flat + (quantized - flat).detach()
        first_st = _straight_through(flat, first, self.channels(0))
        return RVQOutput(
            quantized=out.reshape(b, t, d).permute(0, 2, 1),
            codes=torch.stack(codes, dim=1).reshape(b, t, n_q).permute(0, 2, 1),
            commit_loss=commit,
            first=first_st.reshape(b, t, d).permute(0, 2, 1),
        )

    @torch.no_grad()
    def encode(self, z: Tensor, n_q: int | None = None) -> Tensor:
        """(B, D, T) -> codes (B, n_q, T) int64, without touching the codebooks."""
        was = self.training
        self.eval()
        try:
            return self.forward(z, n_q or self.cfg.num_quantizers).codes
        finally:
            self.train(was)

    def decode(self, codes: Tensor) -> Tensor:
        """Codes (B, n, T), n <= Q -> the quantised latent (B, D, T)."""
        b, n, t = codes.shape
        if n > self.cfg.num_quantizers:
            raise ValueError(f"{n} codebooks given, the model has {self.cfg.num_quantizers}")
        if codes.numel() and (codes.min() < 0 or codes.max() >= self.cfg.codebook_size):
            raise ValueError(f"codes must lie in [0, {self.cfg.codebook_size}); got values outside")
        out = self.quantizers[0].codebook.new_zeros(b, t, self.cfg.dim)
        for i in range(n):
            out[..., self.channels(i)] += self.quantizers[i].lookup(codes[:, i])
        return out.permute(0, 2, 1)


def _masked_mean(x: Tensor, valid: Tensor) -> Tensor:
    return (x * valid).sum() / valid.sum().clamp(min=1)


def _straight_through(flat: Tensor, stage: Tensor, ch: slice) -> Tensor:
    """The first stage's value with gradients to the channels it quantised."""
    grad_path = torch.zeros_like(flat)
    grad_path[:, ch] = flat[:, ch]
    return grad_path + (stage - grad_path).detach()
