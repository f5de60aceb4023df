"""Dynamic int8 Linear layers for CPU inference, with 8-bit activations where the CPU allows.

torch's dynamic int8 Linear (``torch.ao.nn.quantized.dynamic.Linear``) quantises each call's
activations per tensor to 7 bits (``reduce_range=True``, fixed in its ``forward``): on CPUs whose
int8 dot product sums pairs of u8 x s8 products in int16 (AVX2's ``vpmaddubsw``), 8-bit
activations could saturate. CPUs with VNNI (AVX512-VNNI, AVX-VNNI) accumulate in int32 and need
no such margin, and the eighth bit halves the quantisation error of every layer: on
whisper-tiny.en's layers, with held-out speech as input, the relative output error went from
1.0-8.1 % to 0.5-4.6 % (egs/phrasebook/whisper1/RESULTS.md). ``Int8Linear`` uses the full range
when a probe on this CPU finds the kernel exact at the worst case (``full_range_is_exact``), and
torch's 7 bits otherwise. Weights are int8 per output channel in both cases.

Activation scales per row (``act_scales="row"``, the default of ``quantize_linears``): one scale
for a whole call's activations lets the largest row set the step of every other row. Each row is
divided by its own absolute maximum before the kernel quantises the call (so every row spans
about [-1, 1] of the one per-tensor grid) and the output rows are multiplied back; the bias is
added after that, outside the kernel. On held-out speech this is what separated whisper-base's
int8 transcripts from float32's: rounding only the weights kept 98 % of the transcripts, rounding
only the activations per tensor 76 % (egs/phrasebook/whisper1/RESULTS.md). It costs two
elementwise passes per call. ``act_scales="tensor"`` is torch's kernel as it is.

Written here rather than taken from a library because torch exposes the choices only through the
operator (``torch.ops.quantized.linear_dynamic(x, packed, reduce_range)``), not its module, and
its dynamic kernel has no per-row activation scales.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Collection

import torch
from torch import Tensor, nn
from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

from speechkit.nn.linear import half_linears

__all__ = ["ACT_SCALES", "Int8Linear", "full_range_is_exact", "quantize_linears"]

ACT_SCALES = ("row", "tensor")


@functools.cache
def full_range_is_exact() -> bool:
    """True when this CPU's dynamic int8 kernel gives the exact result at 8-bit activations in
    the worst case for int16 pair sums (every activation 255, every weight 127): there a
    saturating kernel returns about half the true value."""
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    probe = nn.Linear(64, 8, bias=False)
    with torch.no_grad():
        probe.weight.fill_(1.0)
    packed = quantize_dynamic(nn.Sequential(probe), {nn.Linear: per_channel_dynamic_qconfig},
                              torch.qint8)[0]._packed_params._packed_params  # fmt: skip
    out = torch.ops.quantized.linear_dynamic(torch.ones(1, 64), packed, False)
    return bool(torch.allclose(out, torch.full_like(out, 64.0), rtol=0.02))


class Int8Linear(DynamicLinear):
    """(…, in) float -> (…, out) float through int8 weights (per output channel) and int8
    activations, with 8-bit activations where ``full_range_is_exact``. Activation scales per
    call (torch's kernel) until ``use_row_scales`` makes them per row (see the module
    docstring)."""

    per_row: bool = False

    def use_row_scales(self) -> None:
        """Per-row activation scales: the bias moves out of the packed weights into the buffer
        ``row_bias`` (None without a bias)."""
        weight, bias = self._weight_bias()
        self._packed_params.set_weight_bias(weight, None)
        self.register_buffer("row_bias", None if bias is None else bias.detach().clone())
        self.per_row = True

    def forward(self, x: Tensor) -> Tensor:
        reduce_range = not full_range_is_exact()
        packed = self._packed_params._packed_params
        if not self.per_row:
            return torch.ops.quantized.linear_dynamic(x, packed, reduce_range).to(x.dtype)
        scale = x.detach().abs().amax(-1, keepdim=True).float().clamp_(min=1e-30)  # (…, 1)
        y = torch.ops.quantized.linear_dynamic(x.float() / scale, packed, reduce_range)
        y = y.mul_(scale) if self.row_bias is None else torch.addcmul(self.row_bias, y, scale)
        return y.to(x.dtype)

    def _get_name(self) -> str:
        return "Int8Linear"


def quantize_linears(
    module: nn.Module,
    inplace: bool = False,
    keep_float: Collection[str] = (),
    act_scales: str = "row",
) -> nn.Module:
    """``module`` (a copy unless ``inplace``) with every ``nn.Linear`` an ``Int8Linear``, except
    those whose qualified name contains one of ``keep_float`` (e.g. ``ffn.net.3``: every
    Transformer layer's second FFN projection). ``act_scales``: ``row`` or ``tensor`` (see the
    module docstring)."""
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    if act_scales not in ACT_SCALES:
        raise ValueError(f"act_scales must be one of {ACT_SCALES}, got {act_scales!r}")
    if not inplace:
        module, inplace = copy.deepcopy(module), True
    half_linears(module, on=False)  # float16-read layers (nn/linear.py) are Linear layers too
    names = {name for name, m in module.named_modules() if type(m) is nn.Linear}
    spec = {n: per_channel_dynamic_qconfig for n in names if not any(k in n for k in keep_float)}
    out = quantize_dynamic(module, spec, torch.qint8, mapping={nn.Linear: Int8Linear},
                           inplace=inplace)  # fmt: skip
    if act_scales == "row":
        for m in out.modules():
            if isinstance(m, Int8Linear):
                m.use_row_scales()
    return out
