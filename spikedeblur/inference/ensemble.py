"""Self-ensemble: average a model over flipped, transposed and time-reversed copies of its input.

Every variant is a symmetry of the blur itself. A mirrored or transposed scene blurs into the
mirrored or transposed blurry frame, and its spikes mirror the same way. Played backwards, a clip
has its frames and the voxel bins inside each exposure in reverse order while the sharp frame at
the exposure centre stays where it was. So each variant is a valid input, and its output mapped
back should match the plain output. Averaging the mapped outputs cancels part of the errors that
depend on orientation. The cost is one model call per variant.

The sizes follow the usual "x8" ensemble of image restoration: 2 adds a horizontal flip, 4 adds the
vertical flips, 8 adds the transposes (all eight symmetries of the square) and 16 plays each of
those backwards too.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import torch

SELF_ENSEMBLE_SIZES = (1, 2, 4, 8, 16)


@dataclass(frozen=True)
class Variant:
    """One symmetry of a clip: optional flips of W and H, a swap of H and W, and time reversal."""

    flip_width: bool = False
    flip_height: bool = False
    transpose: bool = False
    reverse_time: bool = False

    def apply(self, frames: torch.Tensor, voxels: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Transform ``frames (B, T, 3, H, W)`` and ``voxels (B, T, K, H, W)`` the same way."""
        frames = self._spatial(frames)
        voxels = None if voxels is None else self._spatial(voxels)

        if self.reverse_time:
            frames = frames.flip(1)
            # Backwards, each exposure's bins also run from its end to its start.
            voxels = None if voxels is None else voxels.flip(1, 2)
        return frames, voxels

    def invert(self, restored: torch.Tensor) -> torch.Tensor:
        """Map a ``(B, T, 3, H, W)`` output of the transformed clip back to the original clip."""
        if self.reverse_time:
            restored = restored.flip(1)

        # Undo the spatial steps in reverse order: transpose first, then the flips.
        if self.transpose:
            restored = restored.transpose(-1, -2)
        return restored.flip(self._flip_dims) if self._flip_dims else restored

    @property
    def _flip_dims(self) -> list[int]:
        return [dim for dim, flipped in ((-1, self.flip_width), (-2, self.flip_height)) if flipped]

    def _spatial(self, tensor: torch.Tensor) -> torch.Tensor:
        if self._flip_dims:
            tensor = tensor.flip(self._flip_dims)
        return tensor.transpose(-1, -2) if self.transpose else tensor


def ensemble_variants(size: int) -> list[Variant]:
    """Return the first ``size`` variants (identity first); ``size`` is one of :data:`SELF_ENSEMBLE_SIZES`."""
    if size not in SELF_ENSEMBLE_SIZES:
        sizes = ", ".join(str(value) for value in SELF_ENSEMBLE_SIZES)
        raise ValueError(f"self-ensemble size {size} is not supported; use one of {sizes}")

    # Ordered so that every prefix of a power-of-two length is closed under its own operations.
    variants = [
        Variant(flip_width=flip_width, flip_height=flip_height, transpose=transpose, reverse_time=reverse_time)
        for reverse_time, transpose, flip_height, flip_width in itertools.product((False, True), repeat=4)
    ]
    return variants[:size]


def run_self_ensemble(
    model: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor],
    frames: torch.Tensor,
    voxels: torch.Tensor | None,
    *,
    size: int,
) -> torch.Tensor:
    """Return the mean of ``model`` over ``size`` variants of the clip, ``(B, T, 3, H, W)`` in float32.

    ``frames`` is ``(B, T, 3, H, W)`` and ``voxels`` ``(B, T, K, H, W)`` or None. With ``size`` 1
    this is one plain model call (its output keeps the model's dtype).
    """
    if size == 1:
        return model(frames, voxels)

    total: torch.Tensor | None = None
    for variant in ensemble_variants(size):
        restored = variant.invert(model(*variant.apply(frames, voxels))).float()
        total = restored if total is None else total + restored
    return total / size
