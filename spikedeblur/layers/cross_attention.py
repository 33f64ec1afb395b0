"""Windowed cross-attention that injects spike features into RGB features.

Queries come from the RGB feature map and keys/values from the spike feature map of the same scale.
Attention runs inside windows of w×w pixels that span all T frames: w = 1 attends along time at each
pixel, larger windows tolerate a few pixels of misregistration between the two cameras, and
``"global"`` makes one window of the whole clip, which costs O((T·H·W)²) and suits only small maps.
"""

from __future__ import annotations

import math

from typing import Literal

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import Tensor, nn

from spikedeblur.errors import InvalidInputError

WindowSize = int | Literal["global"]
GLOBAL_WINDOW = "global"


def validate_window(window: object) -> WindowSize:
    """Return ``window`` if it is a positive int or ``"global"``; raise :class:`InvalidInputError` otherwise."""
    if window == GLOBAL_WINDOW:
        return GLOBAL_WINDOW
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise InvalidInputError(
            f"fusion window {window!r} is invalid; use a positive number of pixels or 'global'"
        )
    return window


class CrossAttentionFusion(nn.Module):
    """Fuse spike features into RGB features: x + CrossAttn(x, s), then a residual MLP.

    The attention's output projection and the MLP's last layer start at zero, so an untrained fusion
    returns its RGB input exactly.

    Attention logits get a learned locality bias, ``-(a * dt² + s * (dy² + dx²))`` per head, from the
    offsets between query and key in frames and pixels. Content alone cannot tell a query which key
    sits at its own pixel and frame. Without the bias, a window returns a blend of the spike features
    of all its pixels and frames, and fine spike detail never reaches the RGB branch. The bias
    depends only on offsets, so it holds for any T and any window size. Frames whose height or width is not a multiple of the window are
    zero-padded at the bottom and right; padded keys are masked out and padded queries are cropped,
    so the result equals attention over the true pixels of each window.

    Args:
        dim: C, channels of the RGB features (queries and output).
        context_dim: channels of the spike features (keys and values).
        num_heads: attention heads; must divide ``dim``.
        window: w, the window side in pixels, or ``"global"`` for one window over the whole map.
        mlp_ratio: hidden width of the MLP as a multiple of ``dim``.
        locality: initial strength of the locality bias per squared pixel or frame offset; with the
            default 3.0 a neighbour one pixel away gets e^-3 (5 %) of the weight of the query's own pixel.
        device: device of the parameters.
        dtype: dtype of the parameters.

    Shapes:
        ``x``: (B, C, T, H, W) RGB features; ``context``: (B, C_s, T, H, W) spike features, both float.
        Output: (B, C, T, H, W), dtype of the residual sum.
    """

    def __init__(
        self,
        dim: int,
        *,
        context_dim: int,
        num_heads: int,
        window: WindowSize,
        mlp_ratio: float = 2.0,
        locality: float = 3.0,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        if dim < 1 or context_dim < 1 or num_heads < 1 or dim % num_heads != 0:
            raise InvalidInputError(
                f"CrossAttentionFusion dim={dim}, context_dim={context_dim}, num_heads={num_heads} is "
                "invalid; use positive sizes and a number of heads that divides dim"
            )
        if mlp_ratio <= 0:
            raise InvalidInputError(f"CrossAttentionFusion mlp_ratio={mlp_ratio} is invalid; use a positive value")
        if locality <= 0:
            raise InvalidInputError(f"CrossAttentionFusion locality={locality} is invalid; use a positive value")

        factory = {"device": device, "dtype": dtype}
        hidden = max(1, round(dim * mlp_ratio))
        self.dim = dim
        self.context_dim = context_dim
        self.num_heads = num_heads
        self.window = validate_window(window)

        self.norm_query = nn.LayerNorm(dim, **factory)
        self.norm_context = nn.LayerNorm(context_dim, **factory)
        self.to_query = nn.Linear(dim, dim, **factory)
        self.to_key_value = nn.Linear(context_dim, 2 * dim, **factory)
        self.proj = nn.Linear(dim, dim, **factory)

        # softplus keeps both strengths positive; the raw value is its inverse at ``locality``
        raw_locality = math.log(math.expm1(locality))
        self.time_locality = nn.Parameter(torch.full((num_heads,), raw_locality, **factory))
        self.space_locality = nn.Parameter(torch.full((num_heads,), raw_locality, **factory))
        self.norm_mlp = nn.LayerNorm(dim, **factory)
        self.mlp = nn.Sequential(
            nn.Linear(dim, hidden, **factory),
            nn.GELU(),
            nn.Linear(hidden, dim, **factory),
        )
        self.reset_to_identity()

    def reset_to_identity(self) -> None:
        """Zero the output projection and the MLP's last layer, which makes the fusion the identity."""
        with torch.no_grad():
            for layer in (self.proj, self.mlp[-1]):
                layer.weight.zero_()
                layer.bias.zero_()

    def _window_shape(self, height: int, width: int) -> tuple[int, int]:
        if self.window == GLOBAL_WINDOW:
            return height, width
        return self.window, self.window

    def forward(self, x: Tensor, context: Tensor) -> Tensor:
        b, c, t, h, w = x.shape
        if c != self.dim or context.ndim != 5 or context.shape[1] != self.context_dim:
            raise InvalidInputError(
                f"CrossAttentionFusion got RGB features {tuple(x.shape)} and spike features "
                f"{tuple(context.shape)}; expected (B, {self.dim}, T, H, W) and (B, {self.context_dim}, T, H, W)"
            )
        if (context.shape[0], *context.shape[2:]) != (b, t, h, w):
            raise InvalidInputError(
                f"spike features {tuple(context.shape)} are not on the grid of the RGB features "
                f"{tuple(x.shape)}; B, T, H and W must match"
            )

        rgb = rearrange(x, "b c t h w -> b t h w c")
        queries = self.norm_query(rgb)
        keys_values = self.norm_context(rearrange(context, "b c t h w -> b t h w c"))

        # pad to whole windows; padded keys are masked below and padded queries cropped afterwards
        window_h, window_w = self._window_shape(h, w)
        pad_h, pad_w = -h % window_h, -w % window_w
        if pad_h or pad_w:
            queries = F.pad(queries, (0, 0, 0, pad_w, 0, pad_h))
            keys_values = F.pad(keys_values, (0, 0, 0, pad_w, 0, pad_h))

        # windows of window_h × window_w pixels × all T frames
        partition = "b t (nh wh) (nw ww) c -> (b nh nw) (t wh ww) c"
        queries = rearrange(queries, partition, wh=window_h, ww=window_w)
        keys_values = rearrange(keys_values, partition, wh=window_h, ww=window_w)

        # multi-head attention inside each window
        q = rearrange(self.to_query(queries), "n l (heads d) -> n heads l d", heads=self.num_heads)
        k, v = rearrange(
            self.to_key_value(keys_values), "n l (two heads d) -> two n heads l d", two=2, heads=self.num_heads
        )
        bias = self._locality_bias(t, window_h, window_w, dtype=q.dtype, device=x.device)
        if pad_h or pad_w:
            valid = self._padding_mask(b, t, h, w, window_h, window_w, device=x.device)
            bias = bias.masked_fill(~valid, float("-inf"))
        attended = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        attended = self.proj(rearrange(attended, "n heads l d -> n l (heads d)"))

        # undo the windows and the padding, then add to the RGB features
        attended = rearrange(
            attended,
            "(b nh nw) (t wh ww) c -> b t (nh wh) (nw ww) c",
            b=b,
            t=t,
            wh=window_h,
            ww=window_w,
            nh=(h + pad_h) // window_h,
        )
        fused = rgb + attended[:, :, :h, :w]

        # per-token MLP
        fused = fused + self.mlp(self.norm_mlp(fused))

        return rearrange(fused, "b t h w c -> b c t h w")

    def _locality_bias(self, frames: int, window_h: int, window_w: int, *, dtype, device) -> Tensor:
        """Return the additive bias (1, heads, L, L) with L = T·window_h·window_w, in window token order."""
        t = torch.arange(frames, device=device)
        y = torch.arange(window_h, device=device)
        x = torch.arange(window_w, device=device)
        grid_t, grid_y, grid_x = torch.meshgrid(t, y, x, indexing="ij")
        coords = torch.stack([grid_t.flatten(), grid_y.flatten(), grid_x.flatten()]).float()

        offsets = (coords[:, :, None] - coords[:, None, :]) ** 2
        time_strength = F.softplus(self.time_locality).float()
        space_strength = F.softplus(self.space_locality).float()
        bias = -(
            time_strength[:, None, None] * offsets[0]
            + space_strength[:, None, None] * (offsets[1] + offsets[2])
        )
        return bias.unsqueeze(0).to(dtype)

    @staticmethod
    def _padding_mask(
        batch: int, frames: int, height: int, width: int, window_h: int, window_w: int, *, device
    ) -> Tensor:
        """Return a boolean mask (B·windows, 1, 1, T·window_h·window_w) that is False at padded keys."""
        padded_h, padded_w = height + (-height % window_h), width + (-width % window_w)
        valid = torch.zeros(padded_h, padded_w, dtype=torch.bool, device=device)
        valid[:height, :width] = True
        valid = rearrange(valid, "(nh wh) (nw ww) -> (nh nw) (wh ww)", wh=window_h, ww=window_w)
        return repeat(valid, "n l -> (b n) 1 1 (t l)", b=batch, t=frames)


__all__ = ["GLOBAL_WINDOW", "CrossAttentionFusion", "WindowSize", "validate_window"]
