"""Speech codec API: waves to integer codes and back, at a chosen bitrate.

    from speechkit import codec
    c = codec.load("exp/codec/packed")          # packed directory, training checkpoint or zoo name
    codes = c.encode(wave, sample_rate=16000, kbps=6.0)   # (B, Q, T) int64, T = ceil(S / hop)
    wave_hat = c.decode(codes)                  # (B, T * hop) float32 at c.sample_rate
    codes = c.encode_file("speech.flac", kbps=1.5)         # (1, 3, T): any rate, any channels

Input rules (each refused with a ``ValueError`` that says why, or handled):

* ``wave``: (S,) one utterance, (B, S) a batch, (B, C, S) a batch of multi-channel audio
  (channels are averaged to mono); numpy or torch, float (int16 PCM is scaled to [-1, 1]);
* ``sample_rate`` other than the codec's: resampled (soxr) before encoding; ``decode`` returns
  the codec's rate (``c.sample_rate``), or ``sample_rate`` when given;
* shorter than one frame (even 1 sample): padded to one frame; empty (0 samples), NaN or
  infinite samples: refused; clipped or loud audio is coded as it is;
* long inputs are coded in chunks of ``chunk_seconds`` with enough context on both sides that
  the latent equals that of one pass up to float rounding (the encoder is convolutional:
  context = its receptive field), so memory stays bounded; decoding is chunked the same way.

Bitrate: ``kbps`` picks the number of codebooks ``n = floor(kbps / kbps_per_codebook)``
(``c.bitrates()`` lists them); ``n_q`` sets it directly. Fewer codebooks of the same codes also
decode: ``c.decode(codes[:, :3])`` is the 1.5 kbps version of a 6 kbps encoding.

Packed codec directory (``pack`` / ``save``), checked against its sha256 sums on load::

    config.yaml   {model_type: codec, model: CodecConfig}
    model.pt      the generator's state_dict (float32; no discriminator, no teacher heads)
    meta.json     {speechkit_version, source, sha256: {file: hex}}
"""

from __future__ import annotations

import copy
import json
import logging
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import yaml
from torch import Tensor
from torch.nn.utils import parametrize

import speechkit
from speechkit.checkpoint import atomic_write, atomic_write_text, load_checkpoint
from speechkit.config import from_dict, to_dict
from speechkit.integrity import sha256_file
from speechkit.models.codec import Codec, CodecConfig
from speechkit.pretrained import (
    CONFIG_FILE,
    META_FILE,
    MODEL_FILE,
    PackedModelError,
    _verify,
)

__all__ = ["CodecFrontEnd", "CodecModel", "from_checkpoint_dict", "load", "pack", "save"]

logger = logging.getLogger(__name__)

MODEL_TYPE = "codec"
CODEC_FILES = (CONFIG_FILE, MODEL_FILE)
_GENERATOR = "generator."  # prefix of the codec's weights in a codec-task checkpoint


class CodecModel:
    """A loaded codec with the input handling of the module docstring; ``model`` is an
    inference copy (eval mode, weight normalisation folded into plain weights)."""

    def __init__(self, model: Codec, chunk_seconds: float = 30.0, device: str = "cpu"):
        # (a copy: the model passed in keeps the packed format's weight-norm parameters)
        self.model = _fold_weight_norm(copy.deepcopy(model)).to(device).eval()
        self.cfg: CodecConfig = model.cfg
        self.device = torch.device(device)
        self.chunk_frames = max(1, round(chunk_seconds * self.cfg.frame_rate))
        # Frames of context each side of a chunk: the receptive field, rounded up.
        self.context_frames = math.ceil(model.receptive_field() / self.cfg.hop) + 1

    @property
    def sample_rate(self) -> int:
        return self.cfg.sample_rate

    @property
    def num_quantizers(self) -> int:
        return self.cfg.rvq.num_quantizers

    def bitrates(self) -> dict[int, float]:
        """{codebooks: kbps} for every usable number of codebooks."""
        return {n: self.cfg.bitrate(n) / 1000 for n in range(1, self.num_quantizers + 1)}

    def n_quantizers(self, kbps: float | None = None, n_q: int | None = None) -> int:
        """The codebooks for ``kbps`` or ``n_q`` (all when neither is given)."""
        if kbps is not None and n_q is not None:
            raise ValueError("give kbps or n_q, not both")
        if kbps is not None:
            return self.cfg.quantizers_for(kbps)
        n = n_q or self.num_quantizers
        if not 1 <= n <= self.num_quantizers:
            raise ValueError(f"n_q must lie in [1, {self.num_quantizers}], got {n}")
        return n

    # ---- waves -> codes -------------------------------------------------------------

    def prepare(self, wave, sample_rate: int | None = None) -> Tensor:
        """Any accepted input -> (B, S) float32 mono at the codec's rate (module docstring)."""
        x = torch.as_tensor(np.asarray(wave) if not isinstance(wave, Tensor) else wave)
        if not (x.is_floating_point() or x.dtype in (torch.int16, torch.int32)):
            raise ValueError(f"audio must be float or int16/int32 PCM, got {x.dtype}")
        if x.dtype == torch.int16:
            x = x.float() / 32768.0
        elif x.dtype == torch.int32:
            x = x.float() / 2147483648.0
        x = x.float()
        if x.dim() == 1:
            x = x[None]
        elif x.dim() == 3:
            x = x.mean(dim=1)  # (B, C, S): channels to mono
        elif x.dim() != 2:
            raise ValueError(f"audio must be (S,), (B, S) or (B, C, S); got shape {tuple(x.shape)}")
        if x.size(-1) == 0:
            raise ValueError("audio is empty (0 samples)")
        if not torch.isfinite(x).all():
            raise ValueError("audio has NaN or infinite samples")
        sr = sample_rate or self.sample_rate
        if sr <= 0:
            raise ValueError(f"sample_rate must be positive, got {sr}")
        if sr != self.sample_rate:
            x = _resample(x, sr, self.sample_rate)
        return x

    def encode(
        self,
        wave,
        sample_rate: int | None = None,
        kbps: float | None = None,
        n_q: int | None = None,
    ) -> Tensor:
        """Waves -> codes (B, n, ceil(S / hop)) int64 on the CPU (see the module docstring)."""
        n = self.n_quantizers(kbps, n_q)
        x = self.prepare(wave, sample_rate).to(self.device)
        hop = self.cfg.hop
        frames = max(1, -(-x.size(-1) // hop))
        x = torch.nn.functional.pad(x, (0, frames * hop - x.size(-1)))
        codes = _chunked(
            lambda c: self.model.encode(c, n), x, hop, 1, self.chunk_frames, self.context_frames
        )
        return codes.cpu()

    def encode_file(
        self, path: str | Path, kbps: float | None = None, n_q: int | None = None
    ) -> Tensor:
        """An audio file (any format soundfile reads, any rate and channels) -> (1, n, T)."""
        import soundfile as sf

        data, sr = sf.read(str(path), dtype="float32", always_2d=True)  # (S, C)
        return self.encode(torch.from_numpy(data.T.copy())[None], sr, kbps, n_q)

    # ---- codes -> waves -------------------------------------------------------------

    def decode(self, codes, sample_rate: int | None = None) -> Tensor:
        """Codes (B, n, T) or (n, T), n <= Q -> (B, T * hop) float32 waves on the CPU, at
        ``sample_rate`` (default: the codec's)."""
        c = torch.as_tensor(np.asarray(codes) if not isinstance(codes, Tensor) else codes)
        if c.dim() == 2:
            c = c[None]
        if c.dim() != 3 or c.size(-1) == 0:
            raise ValueError(f"codes must be (B, n, T) with T >= 1; got shape {tuple(c.shape)}")
        if c.is_floating_point():
            raise ValueError(f"codes must be integers, got {c.dtype}")
        c = c.long().to(self.device)
        wave = _chunked(
            self.model.decode, c, 1, self.cfg.hop, self.chunk_frames, self.context_frames
        )
        wave = wave.cpu()
        if sample_rate and sample_rate != self.sample_rate:
            wave = _resample(wave, self.sample_rate, sample_rate)
        return wave


class CodecFrontEnd(torch.nn.Module):
    """The S2T front end of ``features.kind: codec``: ``forward(wave (B, S), wave_lens (B,))
    -> (codes (B, T, n_q) float32, frames (B,))`` with a frozen codec, T = ceil(S / hop).

    Codes are float32 so they travel in the dataset's ``feats`` slot; the model's
    ``CodeEmbedding2`` turns them back into ids. Frames past a row's length hold the codes of
    padding and are masked by ``frames``.
    """

    def __init__(self, codec: CodecModel, n_q: int):
        super().__init__()
        self.codec, self.n_q = codec, codec.n_quantizers(n_q=n_q)

    @torch.no_grad()
    def forward(self, wave: Tensor, wave_lens: Tensor) -> tuple[Tensor, Tensor]:
        codes = self.codec.encode(wave, n_q=self.n_q)  # (B, n_q, T)
        frames = (wave_lens + self.codec.cfg.hop - 1) // self.codec.cfg.hop
        return codes.transpose(1, 2).float(), frames.clamp(min=1)


def _fold_weight_norm(model: Codec) -> Codec:
    """Replaces each weight-normalised convolution's (g, v) by the weight they make: the same
    function, without recomputing the weight in every call (inference only)."""
    for module in model.modules():
        if parametrize.is_parametrized(module, "weight"):
            parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
    return model


def _chunked(
    fn: Callable[[Tensor], Tensor],
    x: Tensor,
    in_per_frame: int,
    out_per_frame: int,
    chunk: int,
    context: int,
) -> Tensor:
    """Applies a convolutional ``fn`` along the last axis of ``x`` in chunks of ``chunk``
    frames with ``context`` frames of overlap each side, keeping only each chunk's own output.
    ``x`` holds ``in_per_frame`` values per frame and ``fn`` gives ``out_per_frame``."""
    frames = x.size(-1) // in_per_frame
    if frames <= chunk + 2 * context:
        return fn(x)
    outs = []
    for start in range(0, frames, chunk):
        lo, hi = max(0, start - context), min(frames, start + chunk + context)
        y = fn(x[..., lo * in_per_frame : hi * in_per_frame])
        keep = y[
            ..., (start - lo) * out_per_frame : (min(frames, start + chunk) - lo) * out_per_frame
        ]
        outs.append(keep)
    return torch.cat(outs, dim=-1)


def _resample(x: Tensor, sr_in: int, sr_out: int) -> Tensor:
    import soxr  # (a core requirement; imported where used)

    rows = [soxr.resample(r.numpy(), sr_in, sr_out) for r in x.cpu()]
    return torch.from_numpy(np.stack(rows).astype(np.float32))


# ---- packed directories ----------------------------------------------------------------


def save(model: Codec, out_dir: str | Path, source: str = "") -> Path:
    """Writes a packed codec directory (module docstring); ``meta.json`` last."""
    if model.cfg.backbone == "conv" and not any(
        parametrize.is_parametrized(m) for m in model.modules()
    ):  # (the spectral backbone has no weight norm to fold)
        raise ValueError("save the Codec as built (weight norm not folded), not CodecModel.model")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / META_FILE).unlink(missing_ok=True)
    config = {"model_type": MODEL_TYPE, "model": to_dict(model.cfg)}
    atomic_write_text(out / CONFIG_FILE, yaml.safe_dump(config, sort_keys=False))
    state = {
        k: v.detach().cpu().float() if v.is_floating_point() else v.detach().cpu()
        for k, v in model.state_dict().items()
    }
    atomic_write(out / MODEL_FILE, lambda f: torch.save(state, f))
    meta = {
        "speechkit_version": speechkit.__version__,
        "model_type": MODEL_TYPE,  # tells the zoo cache that no tokenizer belongs here
        "source": source,
        "sha256": {name: sha256_file(out / name) for name in CODEC_FILES},
    }
    atomic_write_text(out / META_FILE, json.dumps(meta, indent=2) + "\n")
    logger.info("packed codec written to %s", out)
    return out


def _from_checkpoint(path: Path) -> Codec:
    return from_checkpoint_dict(load_checkpoint(path), path)


def from_checkpoint_dict(ckpt: dict, path: str | Path) -> Codec:
    """The codec of a codec-task checkpoint already in memory (``path``: where it came from,
    for messages)."""
    config = ckpt.get("config") or {}
    if config.get("task") != MODEL_TYPE:
        raise PackedModelError(
            f"{path}: not a codec training checkpoint (task {config.get('task')!r})"
        )
    cfg = from_dict(CodecConfig, config["model"], source=f"{path}:config.model")
    state = {k[len(_GENERATOR) :]: v for k, v in ckpt["model"].items() if k.startswith(_GENERATOR)}
    model = Codec(cfg)
    model.load_state_dict(state)
    return model


def _from_packed(directory: Path) -> Codec:
    _verify(directory, CODEC_FILES)
    config = yaml.safe_load((directory / CONFIG_FILE).read_text()) or {}
    if config.get("model_type") != MODEL_TYPE:
        raise PackedModelError(
            f"{directory}: a {config.get('model_type', 's2t')} model, not a codec; load it with "
            "speechkit.pretrained.load_pretrained"
        )
    cfg = from_dict(CodecConfig, config.get("model"), source=f"{directory / CONFIG_FILE}:model")
    model = Codec(cfg)
    model.load_state_dict(torch.load(directory / MODEL_FILE, map_location="cpu", weights_only=True))
    return model


def pack(checkpoint: str | Path, out_dir: str | Path) -> Path:
    """Packs a codec training checkpoint (e.g. ``exp/codec/model_avg.pt``) into ``out_dir``."""
    return save(_from_checkpoint(Path(checkpoint)), out_dir, str(checkpoint))


def load(name_or_dir: str | Path, device: str = "cpu", chunk_seconds: float = 30.0) -> CodecModel:
    """A packed codec directory, a codec training checkpoint ``.pt``, or a zoo name."""
    path = Path(name_or_dir)
    if path.is_dir():
        model = _from_packed(path)
    elif path.is_file():
        model = _from_checkpoint(path)
    else:
        from speechkit import zoo  # only for names

        try:
            directory = zoo.download(str(name_or_dir))
        except zoo.UnknownModelError as e:
            raise FileNotFoundError(
                f"no codec directory or checkpoint at {path}, and no zoo model of that name ({e})"
            ) from None
        model = _from_packed(Path(directory))
    return CodecModel(model, chunk_seconds, device)
