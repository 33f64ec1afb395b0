"""Self-attention along time at every pixel of a spike feature map."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from spikedeblur.errors import InvalidInputError


def sinusoidal_position_encoding(length: int, dim: int, *, device=None, dtype=None) -> Tensor:
    """Return the sine/cosine position encoding of positions 0..length-1, shape (length, dim).

    Even channels hold sin(t / 10000^(2i / dim)) and odd channels the matching cosine. The table is
    computed for the requested length, so it is valid for any number of frames.
    """
    positions = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    half = (dim + 1) // 2
    frequencies = torch.exp(
        torch.arange(half, device=device, dtype=torch.float32) * (-2.0 * math.log(10000.0) / dim)
    )
    angles = positions * frequencies
    encoding = rearrange(torch.stack((angles.sin(), angles.cos()), dim=-1), "t f two -> t (f two)")
    return encoding[:, :dim].to(dtype or torch.get_default_dtype())


class SpikeTemporalSA(nn.Module):
    """Pre-norm multi-head self-attention along T at every pixel, then a residual MLP.

    Each pixel's T feature vectors form one sequence. A sinusoidal temporal position encoding is added
    to the normalised tokens that form the queries and keys, so the block works for any T. The values
    do not get it: added to them, the same T vectors would reach every pixel's output and drown the
    spike content that varies from pixel to pixel. The output projection and the MLP's last layer
    start at zero, so a fresh block passes the encoder's features through unchanged.

    Args:
        dim: C, the channel count of the feature map.
        num_heads: attention heads; must divide ``dim``.
        mlp_ratio: hidden width of the MLP as a multiple of ``dim``.
        device: device of the parameters.
        dtype: dtype of the parameters.

    Shapes:
        input: (B, C, T, H, W) float; output: the same shape and dtype.
    """

    def __init__(
        self,
        dim: int,
        *,
        num_heads: int,
        mlp_ratio: float = 2.0,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        if dim < 1 or num_heads < 1 or dim % num_heads != 0:
            raise InvalidInputError(
                f"SpikeTemporalSA dim={dim} with num_heads={num_heads} is invalid; "
                "use a number of heads that divides dim"
            )
        if mlp_ratio <= 0:
            raise InvalidInputError(f"SpikeTemporalSA mlp_ratio={mlp_ratio} is invalid; use a positive value")

        factory = {"device": device, "dtype": dtype}
        hidden = max(1, round(dim * mlp_ratio))
        self.dim = dim
        self.num_heads = num_heads

        self.norm1 = nn.LayerNorm(dim, **factory)
        self.qkv = nn.Linear(dim, 3 * dim, **factory)
        self.proj = nn.Linear(dim, dim, **factory)
        self.norm2 = nn.LayerNorm(dim, **factory)
        self.mlp = nn.Sequential(
            nn.Linear(dim, hidden, **factory),
            nn.GELU(),
            nn.Linear(hidden, dim, **factory),
        )
        for layer in (self.proj, self.mlp[-1]):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x: Tensor) -> Tensor:
        b, c, t, h, w = x.shape
        if c != self.dim:
            raise InvalidInputError(f"SpikeTemporalSA got {c} channels; expected {self.dim}")

        # one sequence of T tokens per pixel
        tokens = rearrange(x, "b c t h w -> (b h w) t c")

        # attend along time; the position encoding enters the queries and keys only
        y = self.norm1(tokens)
        position = sinusoidal_position_encoding(t, c, device=y.device, dtype=y.dtype)
        position = F.pad(F.linear(position, self.qkv.weight[: 2 * c]), (0, c))
        q, k, v = rearrange(
            self.qkv(y) + position, "n t (three heads d) -> three n heads t d", three=3, heads=self.num_heads
        )
        attended = F.scaled_dot_product_attention(q, k, v)
        tokens = tokens + self.proj(rearrange(attended, "n heads t d -> n t (heads d)"))

        # per-token MLP
        tokens = tokens + self.mlp(self.norm2(tokens))

        return rearrange(tokens, "(b h w) t c -> b c t h w", b=b, h=h, w=w)


__all__ = ["SpikeTemporalSA", "sinusoidal_position_encoding"]
