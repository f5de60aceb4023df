"""CTranslate2 Whisper models (``model.bin`` + ``tokenizer.json``) -> packed speechkit model.

``model.bin`` layout (little-endian), as CTranslate2 binary version 6 writes it::

    uint32 version | string spec name ("WhisperSpec") | uint32 spec revision | uint32 n_vars
    n_vars x [string name | uint8 rank | uint32 dims[rank] | uint8 dtype | uint32 n_bytes | data]
    uint32 n_aliases | n_aliases x [string alias | string target]

A string is a uint16 byte count followed by that many bytes (NUL included). dtype codes:
0 float32, 1 int8, 2 int16, 3 int32, 4 float16, 5 bfloat16. Quantized weights (int8 per output
row, int16 per tensor) come with a ``<name>_scale`` variable; the float value is
``quantized / scale``.

Variable names map onto Whisper as follows (``L`` a layer index)::

    encoder/conv{1,2}/{weight,bias}            encoder/position_encodings/encodings
    encoder/layer_L/self_attention/{layer_norm/{gamma,beta}, linear_0 (fused q|k|v), linear_1}
    encoder/layer_L/ffn/{layer_norm, linear_0, linear_1}       encoder/layer_norm
    decoder/embeddings/weight                  decoder/position_encodings/encodings
    decoder/layer_L/self_attention/...         as in the encoder
    decoder/layer_L/attention/{layer_norm, linear_0 (q), linear_1 (fused k|v), linear_2 (out)}
    decoder/layer_L/ffn/...                    decoder/layer_norm

CTranslate2 stores a zero key bias inside the fused projections; Whisper has none, and a key
bias cannot change attention (it adds the same amount to every key's score), so it is dropped.
"""

from __future__ import annotations

import logging
import math
import struct
from pathlib import Path

import torch
from torch import Tensor

from speechkit.convert.common import ConversionError, TensorSource, write_whisper_dir
from speechkit.models.whisper import WhisperConfig

logger = logging.getLogger(__name__)

__all__ = ["convert_ct2", "join_parts", "read_ct2_model"]

SUPPORTED_VERSIONS = (6,)
_DTYPES = {
    0: torch.float32,
    1: torch.int8,
    2: torch.int16,
    3: torch.int32,
    4: torch.float16,
    5: torch.bfloat16,
}


class _Reader:
    """Sequential little-endian reads from ``data`` that fail naming the file when short."""

    def __init__(self, data: bytes, path: Path):
        self.data, self.path, self.pos = data, path, 0

    def bytes(self, n: int, what: str) -> bytes:
        if self.pos + n > len(self.data):
            raise ConversionError(
                f"{self.path}: truncated at byte {self.pos} while reading {what} "
                f"(needs {n} bytes, {len(self.data) - self.pos} left); the file is incomplete"
            )
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: str, what: str) -> int:
        return struct.unpack("<" + fmt, self.bytes(struct.calcsize(fmt), what))[0]

    def string(self, what: str) -> str:
        n = self.unpack("H", what)
        return self.bytes(n, what).rstrip(b"\0").decode("utf-8")


def _read_variable(r: _Reader) -> tuple[str, Tensor]:
    name = r.string("a variable name")
    rank = r.unpack("B", f"the rank of {name}")
    dims = [r.unpack("I", f"the shape of {name}") for _ in range(rank)]
    code = r.unpack("B", f"the dtype of {name}")
    if code not in _DTYPES:
        raise ConversionError(f"{r.path}: variable {name} has unknown dtype code {code}")
    n_bytes = r.unpack("I", f"the size of {name}")
    dtype = _DTYPES[code]
    expected = math.prod(dims) * torch.empty((), dtype=dtype).element_size()
    if n_bytes != expected:
        raise ConversionError(
            f"{r.path}: variable {name} of shape {dims} and {dtype} should have {expected} "
            f"bytes, the file says {n_bytes}"
        )
    raw = bytearray(r.bytes(n_bytes, f"the data of {name}"))
    tensor = torch.frombuffer(raw, dtype=dtype) if n_bytes else torch.empty(0, dtype=dtype)
    return name, tensor.reshape(dims)


def read_ct2_model(path: str | Path) -> tuple[str, int, dict[str, Tensor]]:
    """Parses a CTranslate2 ``model.bin`` -> (spec name, spec revision, variables).

    Variables keep their stored dtype; aliases appear as extra names for the same tensor.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"CTranslate2 model file {path} does not exist")
    r = _Reader(path.read_bytes(), path)
    version = r.unpack("I", "the format version")
    if version not in SUPPORTED_VERSIONS:
        raise ConversionError(
            f"{path}: CTranslate2 binary version {version} is not supported "
            f"(supported: {SUPPORTED_VERSIONS}); re-convert the model with ctranslate2 >= 3"
        )
    spec = r.string("the spec name")
    revision = r.unpack("I", "the spec revision")
    variables = dict(_read_variable(r) for _ in range(r.unpack("I", "the variable count")))
    for _ in range(r.unpack("I", "the alias count")):
        alias, target = r.string("an alias"), r.string("an alias target")
        if target not in variables:
            raise ConversionError(f"{path}: alias {alias} points to unknown variable {target}")
        variables[alias] = variables[target]
    if r.pos != len(r.data):
        raise ConversionError(f"{path}: {len(r.data) - r.pos} unexpected bytes after the aliases")
    return spec, revision, variables


def _dequantize(variables: dict[str, Tensor], path: Path) -> dict[str, Tensor]:
    """Float32 tensors: int8/int16 weights divided by their ``*_scale``; scales dropped."""
    out = {}
    for name, t in variables.items():
        if name.endswith("_scale") and name[: -len("_scale")] in variables:
            continue
        scale = variables.get(name + "_scale")
        if scale is not None and t.dtype in (torch.int8, torch.int16):
            s = scale.float()
            if s.numel() > 1:  # one scale per output row (dim 0), any trailing dims
                s = s.reshape(-1, *([1] * (t.dim() - 1)))
            out[name] = t.float() / s
        elif t.dtype in (torch.int8, torch.int16) and t.dim() > 0:
            raise ConversionError(f"{path}: quantized variable {name} has no {name}_scale")
        else:
            out[name] = t
    return out


def _scalar(variables: dict[str, Tensor], name: str, path: Path) -> int:
    if name not in variables or variables[name].numel() != 1:
        raise ConversionError(f"{path}: missing scalar {name!r}")
    return int(variables[name].reshape(()).item())


def _count_layers(variables: dict[str, Tensor], stack: str) -> int:
    n = 0
    while any(k.startswith(f"{stack}/layer_{n}/") for k in variables):
        n += 1
    return n


def _config(variables: dict[str, Tensor], path: Path) -> WhisperConfig:
    for name in ("encoder/conv1/weight", "encoder/position_encodings/encodings",
                 "decoder/embeddings/weight", "decoder/position_encodings/encodings"):  # fmt: skip
        if name not in variables:
            raise ConversionError(f"{path}: missing tensor {name!r}; not a Whisper model")
    conv1 = variables["encoder/conv1/weight"]
    emb = variables["decoder/embeddings/weight"]
    return WhisperConfig(
        n_mels=conv1.shape[1],
        n_audio_ctx=variables["encoder/position_encodings/encodings"].shape[0],
        n_audio_state=conv1.shape[0],
        n_audio_head=_scalar(variables, "encoder/num_heads", path),
        n_audio_layer=_count_layers(variables, "encoder"),
        n_vocab=emb.shape[0],
        n_text_ctx=variables["decoder/position_encodings/encodings"].shape[0],
        n_text_state=emb.shape[1],
        n_text_head=_scalar(variables, "decoder/num_heads", path),
        n_text_layer=_count_layers(variables, "decoder"),
    )


def _linear(src: TensorSource, ct2: str, ours: str, state: dict, bias: bool = True) -> None:
    state[f"{ours}.weight"] = src.take(f"{ct2}/weight")
    if bias:
        state[f"{ours}.bias"] = src.take(f"{ct2}/bias")


def _norm(src: TensorSource, ct2: str, ours: str, state: dict) -> None:
    state[f"{ours}.weight"] = src.take(f"{ct2}/gamma")
    state[f"{ours}.bias"] = src.take(f"{ct2}/beta")


def _split_fused(src: TensorSource, ct2: str, ours: list[str], state: dict, d: int) -> None:
    """A fused projection (n*d outputs) -> n Linear layers; key layers ('k_proj') get no bias."""
    weight, bias = src.take(f"{ct2}/weight"), src.take(f"{ct2}/bias")
    if weight.shape[0] != len(ours) * d:
        raise ConversionError(
            f"{src.file}: {ct2}/weight has {weight.shape[0]} rows, expected {len(ours) * d}"
        )
    for i, name in enumerate(ours):
        state[f"{name}.weight"] = weight[i * d : (i + 1) * d].clone()
        if not name.endswith("k_proj"):
            state[f"{name}.bias"] = bias[i * d : (i + 1) * d].clone()


def _layer(src: TensorSource, stack: str, i: int, state: dict, d: int) -> None:
    """One encoder or decoder layer ``i`` into speechkit names (see module docstring)."""
    c, o = f"{stack}/layer_{i}", f"{stack}.layers.{i}"
    norm, attn = ("attn_norm", "attn") if stack == "encoder" else ("self_norm", "self_attn")
    _norm(src, f"{c}/self_attention/layer_norm", f"{o}.{norm}", state)
    qkv = [f"{o}.{attn}.{p}" for p in ("q_proj", "k_proj", "v_proj")]
    _split_fused(src, f"{c}/self_attention/linear_0", qkv, state, d)
    _linear(src, f"{c}/self_attention/linear_1", f"{o}.{attn}.out_proj", state)
    if stack == "decoder":
        _norm(src, f"{c}/attention/layer_norm", f"{o}.cross_norm", state)
        _linear(src, f"{c}/attention/linear_0", f"{o}.cross_attn.q_proj", state)
        kv = [f"{o}.cross_attn.k_proj", f"{o}.cross_attn.v_proj"]
        _split_fused(src, f"{c}/attention/linear_1", kv, state, d)
        _linear(src, f"{c}/attention/linear_2", f"{o}.cross_attn.out_proj", state)
    _norm(src, f"{c}/ffn/layer_norm", f"{o}.ffn_norm", state)
    _linear(src, f"{c}/ffn/linear_0", f"{o}.ffn.net.0", state)
    _linear(src, f"{c}/ffn/linear_1", f"{o}.ffn.net.3", state)


# Runtime flags (rank-0 variables) whose value must be Whisper's, when present; the others
# (head counts, alignment heads, alibi scaling details) carry no weights.
_EXPECTED_FLAGS = {
    "decoder/pre_norm": 1,
    "decoder/activation": 3,  # ctranslate2 Activation.GELU (exact erf GELU)
    "decoder/alibi": 0,
    "decoder/scale_embeddings": 0,
}


def _check_flags(variables: dict[str, Tensor], path: Path) -> list[str]:
    """Validates the runtime flags; returns the names of all rank-0 variables."""
    for name, want in _EXPECTED_FLAGS.items():
        if name in variables and int(variables[name].reshape(()).item()) != want:
            got = int(variables[name].reshape(()).item())
            raise ConversionError(f"{path}: {name} = {got}, but Whisper needs {want}")
    return [name for name, t in variables.items() if t.dim() == 0]


def ct2_state_dict(model_bin: str | Path) -> tuple[WhisperConfig, dict[str, Tensor]]:
    """Reads ``model_bin`` -> (WhisperConfig, float32 state dict of ``WhisperModel``)."""
    path = Path(model_bin)
    spec, revision, variables = read_ct2_model(path)
    if spec != "WhisperSpec":
        raise ConversionError(f"{path}: spec {spec!r} is not a Whisper model ('WhisperSpec')")
    # The output projection is an alias of the embedding (tied, as in Whisper).
    projection = variables.pop("decoder/projection/weight", None)
    embedding = variables.get("decoder/embeddings/weight")
    if projection is not None and projection is not embedding:
        raise ConversionError(f"{path}: untied output projection; Whisper ties it to the embedding")
    variables = _dequantize(variables, path)
    cfg = _config(variables, path)
    src, state, d = TensorSource(variables, path), {}, cfg.n_audio_state
    _linear(src, "encoder/conv1", "encoder.conv1", state)
    _linear(src, "encoder/conv2", "encoder.conv2", state)
    state["encoder.positions"] = src.take("encoder/position_encodings/encodings")
    for i in range(cfg.n_audio_layer):
        _layer(src, "encoder", i, state, d)
    _norm(src, "encoder/layer_norm", "encoder.norm", state)
    state["decoder.embed.weight"] = src.take("decoder/embeddings/weight")
    state["decoder.positions"] = src.take("decoder/position_encodings/encodings")
    for i in range(cfg.n_text_layer):
        _layer(src, "decoder", i, state, d)
    _norm(src, "decoder/layer_norm", "decoder.norm", state)
    src.check_all_used(ignore=_check_flags(variables, path))
    logger.info("read %s (%s revision %d): %s", path, spec, revision, cfg)
    return cfg, state


def convert_ct2(model_dir: Path, out_dir: Path) -> Path:
    """CTranslate2 Whisper directory (``model.bin``, ``tokenizer.json``) -> packed ``out_dir``.

    Float16/bfloat16 weights become float32; int8/int16 weights are dequantized with their
    scales. For a model split in parts, join them first with :func:`join_parts`.
    """
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise FileNotFoundError(f"CTranslate2 model directory {model_dir} does not exist")
    cfg, state = ct2_state_dict(model_dir / "model.bin")
    return write_whisper_dir(cfg, state, model_dir / "tokenizer.json", out_dir, str(model_dir))


def join_parts(parts: list[Path], out: Path) -> Path:
    """Concatenates ``parts`` in the given order into ``out`` (written to a temporary sibling,
    then renamed, so ``out`` is never half-written). Returns ``out``."""
    out = Path(out)
    missing = [str(p) for p in parts if not Path(p).is_file()]
    if not parts or missing:
        raise FileNotFoundError(f"model parts missing: {missing or 'none given'}")
    tmp = out.with_name(f".{out.name}.tmp")
    with open(tmp, "wb") as f:
        for part in parts:
            with open(part, "rb") as p:
                while chunk := p.read(1 << 24):
                    f.write(chunk)
    tmp.replace(out)
    return out
