"""Temporal clip plans, spatial tile plans, blending weights and reflect-padding index maps.

Everything here is pure arithmetic on sizes and small 1-D tensors, so the engine can be tested
without a model. Conventions:

* A *window* is a clip along time or a tile along one spatial axis. Windows of one plan all have
  the same length. The last one is aligned to the end, as in VRT's own test script, so it may
  overlap its predecessor by more than the nominal overlap.
* Blending weights are positive everywhere. Overlapping windows are summed with their weights and
  divided by the summed weights, so any overlap, including 0, gives a finite result.
* Padding happens at the end of an axis (bottom, right, last frames) by reflection, through an index
  map from padded coordinates to source coordinates. Only the windows that reach into the padding
  ever gather padded values, and the output is cropped back to the source size.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from spikedeblur.errors import InvalidInputError


def window_starts(length: int, window: int, overlap: int) -> list[int]:
    """Return the start offsets of windows of size ``window`` covering ``range(length)``.

    Consecutive starts are ``window - overlap`` apart; a final window is aligned to ``length`` so
    that nothing is left uncovered. When ``window >= length`` a single window starts at 0.
    """
    if length < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    if not 0 <= overlap < window:
        raise ValueError(f"overlap must be in [0, {window}), got {overlap}")

    if window >= length:
        return [0]

    stride = window - overlap
    starts = list(range(0, length - window, stride))
    starts.append(length - window)
    return starts


# Weight of the outer part of an overlap, where a window's own output is least reliable.
EDGE_WEIGHT = 1e-3


def fade_length(overlap: int) -> int:
    """Return the cross-fade length inside an overlap: a quarter of it, at least 4 samples, at most all of it."""
    return min(overlap, max(4, overlap // 4))


def blend_ramp(window: int, *, overlap: int, ramp_start: bool, ramp_end: bool) -> torch.Tensor:
    """Return float32 blending weights of shape ``(window,)`` in (0, 1].

    An edge shared with a neighbouring window gets a ramp over its first (or last) ``overlap``
    samples: :data:`EDGE_WEIGHT` on the outer part, a raised cosine over the middle
    :func:`fade_length` samples, then 1. Pixels near a tile edge lack context, and on the tiny
    VRT+Spike model their error is several times the interior error, so the outer part gets almost
    no weight. The cross-fade in the middle removes the step that a hard switch between tiles leaves.
    Samples sit at half-integer positions, so no weight reaches 0, and a rising and a falling ramp
    that overlap by exactly ``overlap`` samples sum to 1 within the fade. Edges of the frame or of the
    video get no ramp because no other window covers them.
    """
    weights = torch.ones(window, dtype=torch.float32)
    if overlap <= 0:
        return weights

    fade = fade_length(overlap)
    margin = (overlap - fade) // 2
    fade = overlap - 2 * margin
    positions = (torch.arange(fade, dtype=torch.float64) + 0.5) / fade
    rising = torch.full((overlap,), EDGE_WEIGHT, dtype=torch.float32)
    rising[margin : margin + fade] = (0.5 - 0.5 * torch.cos(math.pi * positions)).to(torch.float32)
    rising[margin + fade :] = 1.0

    # A window shorter than two ramps gets the smaller of the two ramps at each sample.
    ramp_length = min(overlap, window)
    if ramp_start:
        weights[:ramp_length] = torch.minimum(weights[:ramp_length], rising[:ramp_length])
    if ramp_end:
        falling = rising.flip(0)
        weights[window - ramp_length :] = torch.minimum(weights[window - ramp_length :], falling[overlap - ramp_length :])
    return weights


def padded_size(size: int, *, multiple: int, minimum: int) -> int:
    """Return the smallest length >= ``size`` and >= ``minimum`` that is a multiple of ``multiple``."""
    target = max(size, minimum)
    return int(math.ceil(target / multiple) * multiple)


def reflect_indices(length: int, padded_length: int) -> torch.Tensor:
    """Map each padded coordinate in ``range(padded_length)`` to a source coordinate in ``range(length)``.

    Returns an int64 tensor of shape ``(padded_length,)``. Coordinates past the end reflect about the
    last sample without repeating it (``a b c d`` pads to ``a b c d c b a b ...``); a length-1 axis
    repeats its only sample.
    """
    if length < 1:
        raise ValueError(f"length must be >= 1, got {length}")

    positions = torch.arange(padded_length, dtype=torch.int64)
    if length == 1:
        return torch.zeros_like(positions)

    period = 2 * (length - 1)
    folded = positions % period
    return torch.where(folded < length, folded, period - folded)


@dataclass(frozen=True)
class Tile:
    """One spatial tile on the padded canvas: ``[top, top + height) x [left, left + width)``."""

    top: int
    left: int
    height: int
    width: int


@dataclass(frozen=True)
class TilePlan:
    """Spatial tiling of one frame size for a model with a size multiple and a minimum size.

    The frame of ``height x width`` pixels is reflect-padded at the bottom and right onto a canvas of
    ``canvas_height x canvas_width`` (multiples of the model's size multiple, at least its minimum
    size). Tiles of ``tile_height x tile_width`` cover the canvas with ``overlap`` pixels of nominal
    overlap. A tile side equals the canvas side when the requested tile is 0 or larger than the canvas.
    """

    height: int
    width: int
    canvas_height: int
    canvas_width: int
    tile_height: int
    tile_width: int
    overlap: int
    row_starts: tuple[int, ...]
    column_starts: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.row_starts) * len(self.column_starts)

    def tiles(self) -> Iterator[Tile]:
        """Yield the tiles row by row, in raster order."""
        for top in self.row_starts:
            for left in self.column_starts:
                yield Tile(top, left, self.tile_height, self.tile_width)

    def weights(self, tile: Tile) -> torch.Tensor:
        """Return the float32 blending weights of ``tile``, shape ``(tile_height, tile_width)``, in (0, 1].

        Only edges shared with a neighbouring tile are ramped; canvas edges keep weight 1.
        """
        row_weights = blend_ramp(
            tile.height,
            overlap=self.overlap,
            ramp_start=tile.top > 0,
            ramp_end=tile.top + tile.height < self.canvas_height,
        )
        column_weights = blend_ramp(
            tile.width,
            overlap=self.overlap,
            ramp_start=tile.left > 0,
            ramp_end=tile.left + tile.width < self.canvas_width,
        )
        return row_weights[:, None] * column_weights[None, :]

    @property
    def largest_side(self) -> int:
        """The larger tile side in pixels."""
        return max(self.tile_height, self.tile_width)


def plan_tiles(height: int, width: int, *, tile: int, overlap: int, multiple: int, minimum: int) -> TilePlan:
    """Plan the tiles that cover a ``height x width`` frame.

    ``tile`` is the tile side in pixels, 0 for the whole padded frame. It must be a multiple of
    ``multiple`` and at least ``minimum`` because the model only accepts such sizes. ``overlap`` is
    the nominal overlap between neighbouring tiles in pixels and must be smaller than ``tile``.
    Raises :class:`InvalidInputError` for a tile size the model cannot run.
    """
    if height < 1 or width < 1:
        raise InvalidInputError(f"frame size {width}x{height} is empty; the input has no pixels")
    if tile < 0:
        raise InvalidInputError(f"tile size {tile} is negative; use 0 for whole frames or a positive size")
    if tile > 0 and (tile % multiple != 0 or tile < minimum):
        nearest = max(minimum, int(round(tile / multiple)) * multiple)
        raise InvalidInputError(
            f"tile size {tile} must be a multiple of {multiple} and at least {minimum} for this model; use {nearest}"
        )
    if overlap < 0:
        raise InvalidInputError(f"tile overlap {overlap} is negative; use 0 or more pixels")

    canvas_height = padded_size(height, multiple=multiple, minimum=minimum)
    canvas_width = padded_size(width, multiple=multiple, minimum=minimum)
    tile_height = canvas_height if tile == 0 else min(tile, canvas_height)
    tile_width = canvas_width if tile == 0 else min(tile, canvas_width)

    if tile > 0 and overlap >= tile:
        raise InvalidInputError(f"tile overlap {overlap} must be smaller than the tile size {tile}; lower --tile-overlap")
    # A tile spanning the whole canvas side has no neighbour, so the overlap does not apply there.
    row_overlap = min(overlap, tile_height - 1)
    column_overlap = min(overlap, tile_width - 1)

    return TilePlan(
        height=height,
        width=width,
        canvas_height=canvas_height,
        canvas_width=canvas_width,
        tile_height=tile_height,
        tile_width=tile_width,
        overlap=overlap,
        row_starts=tuple(window_starts(canvas_height, tile_height, row_overlap)),
        column_starts=tuple(window_starts(canvas_width, tile_width, column_overlap)),
    )


def clip_weights(start: int, length: int, *, overlap: int, total_frames: int | None) -> torch.Tensor:
    """Return the float32 temporal blending weights ``(length,)`` of a clip starting at frame ``start``.

    The first frames ramp up when an earlier clip exists (``start > 0``). The last frames ramp down
    unless the clip ends the video, that is, unless ``total_frames`` is known and reached.
    """
    ends_video = total_frames is not None and start + length >= total_frames
    return blend_ramp(length, overlap=overlap, ramp_start=start > 0, ramp_end=not ends_video)
