"""Gated feed-forward block used by the VRT transformer blocks and its alignment fusion."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class GEGLUMlp(nn.Module):
    """Feed-forward block ``fc2(GELU(fc11(x)) * fc12(x))`` with the exact (erf) GELU.

    Works on channel-last input ``(..., in_features)`` of any float dtype and returns
    ``(..., out_features)``. Parameter names match VRT's checkpoints (``fc11``, ``fc12``, ``fc2``).
    """

    def __init__(
        self,
        in_features: int,
        hidden_features: int,
        out_features: int,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        self.fc11 = nn.Linear(in_features, hidden_features, **factory)
        self.fc12 = nn.Linear(in_features, hidden_features, **factory)
        self.fc2 = nn.Linear(hidden_features, out_features, **factory)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(nn.functional.gelu(self.fc11(x)) * self.fc12(x))
