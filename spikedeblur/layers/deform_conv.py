"""Modulated deformable convolution (DCNv2; Zhu et al., "Deformable ConvNets v2", CVPR 2019,
arXiv:1811.11168) with ``torchvision.ops.deform_conv2d`` semantics.

:func:`modulated_deform_conv2d` calls torchvision's kernel when torchvision imports (install the
``torchvision`` extra) and otherwise runs a pure-PyTorch version built on ``grid_sample``. Both
read the same argument layout, so checkpoints and results do not depend on which one runs.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor

logger = logging.getLogger(__name__)

COLUMN_CHUNK_ELEMENTS = 1 << 25
"""Sampled values (images x channels x taps x pixels) per chunk of the pure-PyTorch version. A
chunk's float32 columns then take at most 128 MiB, and a few temporaries of that size coexist."""


@functools.cache
def _torchvision_deform_conv2d() -> Callable[..., Tensor] | None:
    """Return ``torchvision.ops.deform_conv2d``, or None when torchvision is missing or broken."""
    try:
        from torchvision.ops import deform_conv2d
    except Exception as error:  # noqa: BLE001 - a torchvision built for another torch fails in many ways
        logger.debug("torchvision.ops.deform_conv2d is unavailable (%s); using the PyTorch version", error)
        return None
    return deform_conv2d


def torchvision_deform_conv_available() -> bool:
    """Return whether ``torchvision.ops.deform_conv2d`` imports beside this torch build."""
    return _torchvision_deform_conv2d() is not None


def modulated_deform_conv2d(
    x: Tensor,
    offset: Tensor,
    mask: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    *,
    padding: int = 1,
    use_torchvision: bool | None = None,
) -> Tensor:
    """Apply a stride-1, dilation-1 modulated deformable convolution.

    Args:
        x: input ``(N, C_in, H, W)``.
        offset: ``(N, 2 * G * kh * kw, H_out, W_out)``, ordered (group, kernel position row-major,
            (dy, dx)) as in torchvision; G (offset groups) must divide ``C_in``.
        mask: modulation ``(N, G * kh * kw, H_out, W_out)``, ordered (group, kernel position).
        weight: ``(C_out, C_in / groups, kh, kw)``; ``groups`` is inferred from ``C_in``.
        bias: ``(C_out,)`` or None.
        padding: zero padding on each side.
        use_torchvision: force (True) or avoid (False) torchvision's kernel; None picks it when
            it imports.

    Returns:
        ``(N, C_out, H_out, W_out)`` with ``H_out = H + 2 * padding - kh + 1``.
    """
    kernel = _torchvision_deform_conv2d() if use_torchvision in (None, True) else None
    if use_torchvision and kernel is None:
        raise RuntimeError("torchvision.ops.deform_conv2d is not importable; install torchvision matching torch")
    if kernel is not None:
        return kernel(x, offset, weight, bias, padding=(padding, padding), mask=mask)
    return _deform_conv2d_torch(x, offset, mask, weight, bias, padding=padding)


def _deform_conv2d_torch(
    x: Tensor, offset: Tensor, mask: Tensor, weight: Tensor, bias: Tensor | None, *, padding: int
) -> Tensor:
    """Pure-PyTorch modulated deformable convolution (see :func:`modulated_deform_conv2d`).

    Images run in chunks whose sampled columns stay under :data:`COLUMN_CHUNK_ELEMENTS`.
    """
    n, c_in = x.shape[:2]
    columns_per_image = c_in * weight.shape[2] * weight.shape[3] * offset.shape[2] * offset.shape[3]
    chunk = max(1, COLUMN_CHUNK_ELEMENTS // columns_per_image)
    if chunk >= n:
        return _deform_conv2d_columns(x, offset, mask, weight, bias, padding=padding)
    return torch.cat(
        [
            _deform_conv2d_columns(x[i : i + chunk], offset[i : i + chunk], mask[i : i + chunk], weight, bias, padding=padding)
            for i in range(0, n, chunk)
        ]
    )


def _deform_conv2d_columns(
    x: Tensor, offset: Tensor, mask: Tensor, weight: Tensor, bias: Tensor | None, *, padding: int
) -> Tensor:
    """Sample every tap of every output pixel, then convolve as one matrix product per group."""
    n, c_in, h, w = x.shape
    c_out, c_in_per_group, kh, kw = weight.shape
    taps = kh * kw
    offset_groups = offset.shape[1] // (2 * taps)
    conv_groups = c_in // c_in_per_group
    h_out, w_out = offset.shape[-2:]

    # sampling positions of every kernel tap, in input pixels: base grid + tap + learned offset
    offset = rearrange(offset, "n (g tap yx) h w -> n g tap yx h w", g=offset_groups, tap=taps, yx=2)
    tap_y = torch.arange(kh, device=x.device, dtype=torch.float32).repeat_interleave(kw)
    tap_x = torch.arange(kw, device=x.device, dtype=torch.float32).repeat(kh)
    rows = torch.arange(h_out, device=x.device, dtype=torch.float32) - padding
    cols = torch.arange(w_out, device=x.device, dtype=torch.float32) - padding
    pos_y = rows.view(1, 1, 1, h_out, 1) + tap_y.view(1, 1, taps, 1, 1) + offset[:, :, :, 0].float()
    pos_x = cols.view(1, 1, 1, 1, w_out) + tap_x.view(1, 1, taps, 1, 1) + offset[:, :, :, 1].float()

    # bilinear sampling with zeros outside the input, which is what torchvision's kernel does.
    # The taps are stacked along the grid height, so each group needs one grid_sample call.
    grid = torch.stack((2.0 * pos_x / max(w - 1, 1) - 1.0, 2.0 * pos_y / max(h - 1, 1) - 1.0), dim=-1)
    grid = rearrange(grid, "n g tap h w xy -> (n g) (tap h) w xy")
    x_grouped = rearrange(x.float(), "n (g c) h w -> (n g) c h w", g=offset_groups)
    sampled = F.grid_sample(x_grouped, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    sampled = rearrange(sampled, "(n g) c (tap h) w -> n g c tap h w", n=n, tap=taps)
    sampled = sampled * rearrange(mask.float(), "n (g tap) h w -> n g 1 tap h w", g=offset_groups)

    # the convolution itself is one matrix product per weight group over (channel, tap) columns
    columns = rearrange(sampled, "n g c tap h w -> n (g c tap) (h w)")
    columns = rearrange(columns, "n (groups ctap) hw -> n groups ctap hw", groups=conv_groups)
    kernels = rearrange(weight.float(), "(groups o) c kh kw -> groups o (c kh kw)", groups=conv_groups)
    out = torch.einsum("gok,ngkp->ngop", kernels, columns)
    out = rearrange(out, "n groups o (h w) -> n (groups o) h w", h=h_out)
    if bias is not None:
        out = out + bias.float().view(1, -1, 1, 1)
    return out.to(x.dtype)
