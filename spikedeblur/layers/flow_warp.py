"""Backward warping of images and feature maps with a dense optical flow.

Flows are in pixels of the map being warped, channel 0 = dx, channel 1 = dy: the output at (x, y)
samples the input at (x + dx, y + dy). Sampling uses ``align_corners=True`` coordinates, which is
the convention of SpyNet and VRT. The sampling grid and the sampled map are always float32, so the
warp stays exact under fp16/bf16 autocast; a half-precision grid would move samples by up to a
pixel on 200-pixel-wide maps.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor

PaddingMode = Literal["zeros", "border"]


def _absolute_coordinates(flow: Tensor) -> tuple[Tensor, Tensor]:
    """Return float32 sampling positions ``(x + dx, y + dy)``, each ``(N, H, W)``."""
    _, _, h, w = flow.shape
    flow = flow.float()
    ys = torch.arange(h, device=flow.device, dtype=torch.float32).view(1, h, 1)
    xs = torch.arange(w, device=flow.device, dtype=torch.float32).view(1, 1, w)
    return xs + flow[:, 0], ys + flow[:, 1]


def _sample(x: Tensor, pos_x: Tensor, pos_y: Tensor, *, mode: str, padding_mode: str) -> Tensor:
    """Sample ``x`` (N, C, H, W) at pixel positions with ``grid_sample`` in float32."""
    _, _, h, w = x.shape
    grid_x = 2.0 * pos_x / max(w - 1, 1) - 1.0
    grid_y = 2.0 * pos_y / max(h - 1, 1) - 1.0
    grid = torch.stack((grid_x, grid_y), dim=-1)
    out = F.grid_sample(x.float(), grid, mode=mode, padding_mode=padding_mode, align_corners=True)
    return out.to(x.dtype)


def flow_warp(x: Tensor, flow: Tensor, *, padding_mode: PaddingMode = "zeros") -> Tensor:
    """Warp ``x`` with bilinear sampling along ``flow``.

    Args:
        x: map to warp, ``(N, C, H, W)``, any float dtype.
        flow: ``(N, 2, H, W)`` in pixels, channel 0 = dx, channel 1 = dy.
        padding_mode: ``"zeros"`` (VRT feature alignment) or ``"border"`` (SpyNet's internal warp).

    Returns:
        ``(N, C, H, W)`` in the dtype of ``x``.
    """
    pos_x, pos_y = _absolute_coordinates(flow)
    return _sample(x, pos_x, pos_y, mode="bilinear", padding_mode=padding_mode)


def flow_warp_nearest4(x: Tensor, flow: Tensor) -> Tensor:
    """Warp ``x`` by taking the four integer neighbours of each flow target.

    The neighbours are (floor x, floor y), (floor x, ceil y), (ceil x, floor y), (ceil x, ceil y),
    concatenated on channels in that order; targets outside the map read zeros. VRT uses this for
    its image-level pre-alignment, which hands the network the raw pixels instead of a blend.

    Args:
        x: ``(N, C, H, W)``.
        flow: ``(N, 2, H, W)`` in pixels, channel 0 = dx, channel 1 = dy.

    Returns:
        ``(N, 4 * C, H, W)`` in the dtype of ``x``.
    """
    pos_x, pos_y = _absolute_coordinates(flow)
    x_floor, x_ceil = torch.floor(pos_x), torch.ceil(pos_x)
    y_floor, y_ceil = torch.floor(pos_y), torch.ceil(pos_y)

    # one grid_sample call for all four neighbours: stack them on the batch axis
    neighbours_x = torch.stack((x_floor, x_floor, x_ceil, x_ceil), dim=1)
    neighbours_y = torch.stack((y_floor, y_ceil, y_floor, y_ceil), dim=1)
    repeated = x.unsqueeze(1).expand(-1, 4, -1, -1, -1)
    sampled = _sample(
        rearrange(repeated, "n corner c h w -> (n corner) c h w"),
        rearrange(neighbours_x, "n corner h w -> (n corner) h w"),
        rearrange(neighbours_y, "n corner h w -> (n corner) h w"),
        mode="nearest",
        padding_mode="zeros",
    )
    return rearrange(sampled, "(n corner) c h w -> n (corner c) h w", corner=4)
