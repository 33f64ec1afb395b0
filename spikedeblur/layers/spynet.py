"""SpyNet optical flow (Ranjan and Black, "Optical Flow Estimation using a Spatial Pyramid
Network", CVPR 2017, arXiv:1611.00850), in the layout of VRT's checkpoints (``spynet.*`` keys).

A 6-level image pyramid is refined coarse to fine: each level warps the second image with the
upsampled flow and predicts a residual with five 7x7 convolutions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spikedeblur.layers.flow_warp import flow_warp

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PYRAMID_LEVELS = 6


class SpyNetLevel(nn.Module):
    """One pyramid level: ``[ref (3), warped supp (3), flow (2)]`` -> flow residual (2)."""

    def __init__(self, *, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> None:
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        widths = (8, 32, 64, 32, 16, 2)
        layers: list[nn.Module] = []
        for index, (c_in, c_out) in enumerate(zip(widths[:-1], widths[1:])):
            if index > 0:
                layers.append(nn.ReLU())
            layers.append(nn.Conv2d(c_in, c_out, 7, padding=3, **factory))
        # the attribute name gives the checkpoint keys ``basic_module.{level}.basic_module.{0,2,4,6,8}``
        self.basic_module = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.basic_module(x)


class SpyNet(nn.Module):
    """Optical flow between two RGB images, returned at several scales.

    ``forward(ref, supp)`` estimates the flow that warps ``supp`` onto ``ref`` (see
    :func:`~spikedeblur.layers.flow_warp.flow_warp`).

    Args:
        return_levels: pyramid levels to return, 5 = full resolution, 4 = 1/2, ... VRT uses
            ``(2, 3, 4, 5)``.
    """

    def __init__(
        self,
        return_levels: Sequence[int] = (2, 3, 4, 5),
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if not return_levels or any(not 0 <= level < PYRAMID_LEVELS for level in return_levels):
            raise ValueError(f"return_levels must be a non-empty subset of 0..5, got {tuple(return_levels)}")
        self.return_levels = tuple(sorted(set(return_levels)))
        self.basic_module = nn.ModuleList(SpyNetLevel(device=device, dtype=dtype) for _ in range(PYRAMID_LEVELS))

        # VRT checkpoints store these constants; the importer compares them instead of loading them
        mean = torch.tensor(IMAGENET_MEAN, device=device, dtype=dtype).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, device=device, dtype=dtype).view(1, 3, 1, 1)
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("std", std, persistent=False)

    def forward(self, ref: Tensor, supp: Tensor) -> list[Tensor]:
        """Estimate the flow that warps ``supp`` onto ``ref``.

        Args:
            ref: ``(N, 3, H, W)`` RGB in [0, 1].
            supp: same shape as ``ref``.

        Returns:
            One flow per entry of ``return_levels``, finest first: ``(N, 2, H / 2^s, W / 2^s)`` with
            ``s = 5 - level``, in pixels of that scale (channel 0 = dx, channel 1 = dy).
        """
        if ref.shape != supp.shape:
            raise ValueError(f"ref and supp must have the same shape, got {tuple(ref.shape)} and {tuple(supp.shape)}")
        h, w = ref.shape[-2:]

        # the pyramid needs sizes divisible by 32, so resize up to the next multiple
        h_padded = math.ceil(h / 32) * 32
        w_padded = math.ceil(w / 32) * 32
        if (h_padded, w_padded) != (h, w):
            ref = F.interpolate(ref, size=(h_padded, w_padded), mode="bilinear", align_corners=False)
            supp = F.interpolate(supp, size=(h_padded, w_padded), mode="bilinear", align_corners=False)

        # pyramids, coarsest (1/32) first
        ref_pyramid = [(ref - self.mean) / self.std]
        supp_pyramid = [(supp - self.mean) / self.std]
        for _ in range(PYRAMID_LEVELS - 1):
            ref_pyramid.insert(0, F.avg_pool2d(ref_pyramid[0], 2, 2, count_include_pad=False))
            supp_pyramid.insert(0, F.avg_pool2d(supp_pyramid[0], 2, 2, count_include_pad=False))

        coarsest = ref_pyramid[0]
        flow = coarsest.new_zeros(coarsest.shape[0], 2, coarsest.shape[2] // 2, coarsest.shape[3] // 2)
        flows: list[Tensor] = []
        for level in range(PYRAMID_LEVELS):
            flow = self._refine(level, flow, ref_pyramid[level], supp_pyramid[level])
            if level in self.return_levels:
                flows.insert(0, self._rescale(flow, level, (h, w), (h_padded, w_padded)))
        return flows

    def _refine(self, level: int, flow: Tensor, ref: Tensor, supp: Tensor) -> Tensor:
        """Upsample the coarser flow to this level and add the predicted residual."""
        upsampled = F.interpolate(flow, scale_factor=2, mode="bilinear", align_corners=True) * 2.0

        # odd sizes: the coarser level was floored, so extend the flow by one replicated row/column
        pad_bottom = ref.shape[2] - upsampled.shape[2]
        pad_right = ref.shape[3] - upsampled.shape[3]
        if pad_bottom or pad_right:
            upsampled = F.pad(upsampled, (0, pad_right, 0, pad_bottom), mode="replicate")

        warped = flow_warp(supp, upsampled, padding_mode="border")
        return self.basic_module[level](torch.cat((ref, warped, upsampled), dim=1)) + upsampled

    @staticmethod
    def _rescale(flow: Tensor, level: int, size: tuple[int, int], padded_size: tuple[int, int]) -> Tensor:
        """Resize a level's flow from the padded frame to the caller's frame, scaling its vectors."""
        scale = 2 ** (PYRAMID_LEVELS - 1 - level)
        h, w = size[0] // scale, size[1] // scale
        h_padded, w_padded = padded_size[0] // scale, padded_size[1] // scale
        if (h, w) == (h_padded, w_padded):
            return flow
        flow = F.interpolate(flow, size=(h, w), mode="bilinear", align_corners=False)
        factors = torch.tensor((w / w_padded, h / h_padded), device=flow.device, dtype=flow.dtype)
        return flow * factors.view(1, 2, 1, 1)
