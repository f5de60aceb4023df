"""asteroid's Conv-TasNet as the separation baseline, behind the separator's call signature.

The baseline the separation issue compares against: Conv-TasNet (learned filterbank, TCN mask
network, ``asteroid.models.ConvTasNet``) with two outputs, slot 0 the speech and slot 1 the rest
of the mixture (background or the other talker). It takes no query: the wrapper answers a class
query by picking a slot (``speech`` -> 0, any other class -> 1), so the separation task's data,
loss and trainer and the SI-SDRi bench (``speechkit.bench.separation``) run it unchanged. Text
and enrolled-speaker queries are refused (``query_kinds``): Conv-TasNet cannot follow them.
On a two-talker mixture a class query ``speech`` is answered by slot 0 and the task's loss is
permutation-invariant over the two talkers, as for the query-conditioned separator.

asteroid is optional (``pip install --no-deps asteroid asteroid-filterbanks``: asteroid 0.7.0
pins an old torchmetrics, and the model needs none of its pinned dependencies); it is imported
when the model is built.

Legend: B batch, S samples at ``sample_rate``.

    model = ConvTasNetBaseline(ConvTasNetBaselineConfig())
    est = model(mix, kind, class_id, text, speaker)     # (B, S) -> (B, S); kind must be class
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from speechkit.config import ConfigError

__all__ = ["ConvTasNetBaseline", "ConvTasNetBaselineConfig"]


@dataclass
class ConvTasNetBaselineConfig:
    """asteroid ``ConvTasNet`` arguments (same names) plus the class list of the queries.

    kernel_size / stride: filterbank window and hop in samples (32 / 16 at 16 kHz is 2 ms /
    1 ms, 1,000 frames a second); n_filters: filterbank size; bn_chan / hid_chan / skip_chan:
    TCN widths; n_blocks x n_repeats: dilated blocks. The defaults are a CPU-sized model
    (0.4 M parameters); asteroid's own defaults (the paper's) are 5 M at 2,000 frames a second.
    """

    class_names: list[str] = field(
        default_factory=lambda: ["speech", "noise", "babble", "beeps", "music"]
    )
    sample_rate: int = 16000
    n_filters: int = 128
    kernel_size: int = 32
    stride: int = 16
    bn_chan: int = 64
    hid_chan: int = 128
    skip_chan: int = 64
    n_blocks: int = 6
    n_repeats: int = 2
    norm_type: str = "gLN"

    def __post_init__(self) -> None:
        if self.class_names[:1] != ["speech"] or len(set(self.class_names)) != len(
            self.class_names
        ):
            raise ConfigError(
                f"model.class_names must be distinct and start with 'speech', got {self.class_names}"
            )
        if self.stride <= 0 or self.kernel_size < self.stride:
            raise ConfigError(
                f"model: need kernel_size >= stride > 0, got {self.kernel_size}/{self.stride}"
            )


class ConvTasNetBaseline(nn.Module):
    """See the module docstring. ``forward`` maps mixtures (B, S) to estimates (B, S)."""

    query_kinds = ("class",)

    def __init__(self, cfg: ConvTasNetBaselineConfig) -> None:
        super().__init__()
        try:
            from asteroid.models import ConvTasNet
        except ImportError as e:
            raise ImportError(
                "the Conv-TasNet baseline needs asteroid: "
                "pip install --no-deps asteroid asteroid-filterbanks"
            ) from e
        self.cfg = cfg
        self.net = ConvTasNet(
            n_src=2, sample_rate=cfg.sample_rate, n_filters=cfg.n_filters,
            kernel_size=cfg.kernel_size, stride=cfg.stride, bn_chan=cfg.bn_chan,
            hid_chan=cfg.hid_chan, skip_chan=cfg.skip_chan, n_blocks=cfg.n_blocks,
            n_repeats=cfg.n_repeats, norm_type=cfg.norm_type,
        )  # fmt: skip

    def class_index(self, name: str) -> int:
        """Row of a class query; ValueError naming the known classes for any other name."""
        if name not in self.cfg.class_names:
            raise ValueError(
                f"unknown query class {name!r}; this model knows {list(self.cfg.class_names)}"
            )
        return self.cfg.class_names.index(name)

    def separate(self, mix: Tensor) -> Tensor:
        """(B, S) -> (B, 2, S): slot 0 speech, slot 1 the rest."""
        return self.net(mix.unsqueeze(1))

    def forward(
        self, mix: Tensor, kind: Tensor, class_id: Tensor, text: Tensor, speaker: Tensor
    ) -> Tensor:
        """mix float (B, S); kind (B,) must all be 0 (class); class_id (B,) picks the slot
        (``speech`` -> 0, else 1); text and speaker are ignored. Returns float (B, S)."""
        if bool((kind != 0).any()):
            raise ValueError("the Conv-TasNet baseline takes class queries only (no text/speaker)")
        both = self.separate(mix)  # (B, 2, S)
        slot = (class_id != 0).long()
        return both[torch.arange(len(slot), device=mix.device), slot]

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
