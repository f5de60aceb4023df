"""Position-wise feed-forward block: Linear -> activation -> dropout -> Linear."""

from __future__ import annotations

from typing import Literal

from torch import Tensor, nn

__all__ = ["FeedForward"]

_ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU, "swish": nn.SiLU}


class FeedForward(nn.Module):
    """(B, T, D) -> (B, T, D) through a hidden width ``d_ffn``."""

    def __init__(
        self,
        d_model: int,
        d_ffn: int,
        dropout: float = 0.0,
        activation: Literal["gelu", "relu", "swish"] = "gelu",
    ):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(d_model, d_ffn),
            _ACTIVATIONS[activation](),
            nn.Dropout(dropout),
            nn.Linear(d_ffn, d_model),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)
