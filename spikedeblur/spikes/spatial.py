"""Map spike-sensor pixels onto video pixels.

Three mappings are supported:

- ``stretch`` (default): resize the spike image to the video size. Accepted only when the two
  aspect ratios agree within 2 %, because a larger difference means the sensors see different
  fields of view and a plain resize would misalign them.
- ``scale_offset``: ``video = scale * spike + offset`` per axis, in pixel-corner coordinates
  (``(0, 0)`` is the top-left corner of the top-left pixel), so ``scale=2, offset=0`` is an exact
  2x resize. Offsets are in video pixels; negative offsets crop, positive ones pad with zeros.
- ``homography``: a 3x3 matrix from spike to video pixel coordinates in OpenCV's pixel-centre
  convention, as returned by ``cv2.findHomography`` on matched points.

Video pixels that no spike pixel maps to are zero (no spikes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from einops import rearrange

from spikedeblur.errors import InvalidInputError

# Largest relative difference between the spike and video aspect ratios that a stretch accepts.
STRETCH_ASPECT_TOLERANCE = 0.02

MappingKind = Literal["stretch", "scale_offset", "homography"]


@dataclass(frozen=True, kw_only=True)
class SpatialMapping:
    """Spatial relation between spike pixels and video pixels; see the module docstring."""

    kind: MappingKind = "stretch"
    scale: tuple[float, float] = (1.0, 1.0)  # (x, y)
    offset: tuple[float, float] = (0.0, 0.0)  # (x, y), in video pixels
    matrix: tuple[tuple[float, float, float], ...] | None = field(default=None)

    def __post_init__(self) -> None:
        if self.kind not in ("stretch", "scale_offset", "homography"):
            raise InvalidInputError(
                f"spatial mapping kind {self.kind!r} is unknown; use stretch, scale_offset or homography"
            )
        object.__setattr__(self, "scale", tuple(float(v) for v in self.scale))
        object.__setattr__(self, "offset", tuple(float(v) for v in self.offset))
        if len(self.scale) != 2 or not all(math.isfinite(v) and v > 0 for v in self.scale):
            raise InvalidInputError(f"spatial scale {self.scale} is invalid; give two positive numbers (x, y)")
        if len(self.offset) != 2 or not all(math.isfinite(v) for v in self.offset):
            raise InvalidInputError(f"spatial offset {self.offset} is invalid; give two finite numbers (x, y)")

        if self.kind == "homography":
            if self.matrix is None:
                raise InvalidInputError("a homography spatial mapping needs a 3x3 'matrix'")
            matrix = np.asarray(self.matrix, dtype=np.float64)
            if matrix.shape != (3, 3) or not np.all(np.isfinite(matrix)) or abs(np.linalg.det(matrix)) < 1e-12:
                raise InvalidInputError(f"homography {self.matrix} is not an invertible 3x3 matrix")
            object.__setattr__(self, "matrix", tuple(tuple(float(v) for v in row) for row in matrix))
        elif self.matrix is not None:
            raise InvalidInputError(f"a 'matrix' is only used by a homography mapping, not by {self.kind!r}")

    def to_json(self) -> dict[str, Any]:
        """Return the JSON form stored in sidecar files."""
        if self.kind == "stretch":
            return {"kind": "stretch"}
        if self.kind == "scale_offset":
            return {"kind": "scale_offset", "scale": list(self.scale), "offset": list(self.offset)}
        return {"kind": "homography", "matrix": [list(row) for row in self.matrix]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SpatialMapping:
        """Build a mapping from its sidecar JSON form, raising :class:`InvalidInputError` if malformed."""
        if not isinstance(data, dict):
            raise InvalidInputError(f"spatial mapping {data!r} is not a JSON object")
        unknown = set(data) - {"kind", "scale", "offset", "matrix"}
        if unknown:
            raise InvalidInputError(f"spatial mapping has unknown keys {sorted(unknown)}")
        try:
            return cls(
                kind=data.get("kind", "stretch"),
                scale=tuple(data.get("scale", (1.0, 1.0))),
                offset=tuple(data.get("offset", (0.0, 0.0))),
                matrix=data.get("matrix"),
            )
        except (TypeError, ValueError) as error:
            if isinstance(error, InvalidInputError):
                raise
            raise InvalidInputError(f"spatial mapping {data!r} is malformed: {error}") from error


def check_stretch(spike_size: tuple[int, int], video_size: tuple[int, int]) -> None:
    """Raise unless a plain resize from ``spike_size`` to ``video_size`` (both (H, W)) keeps the aspect ratio."""
    spike_aspect = spike_size[1] / spike_size[0]
    video_aspect = video_size[1] / video_size[0]
    difference = abs(spike_aspect / video_aspect - 1.0)
    if difference > STRETCH_ASPECT_TOLERANCE:
        raise InvalidInputError(
            f"spike size {spike_size[0]}x{spike_size[1]} and video size {video_size[0]}x{video_size[1]} differ in "
            f"aspect ratio by {difference:.1%} (more than {STRETCH_ASPECT_TOLERANCE:.0%}); describe the mapping "
            "with a scale_offset or homography 'spatial' entry in the .dat.json sidecar"
        )


def _resize(images_hwc: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    import cv2

    height, width = images_hwc.shape[:2]
    if (height, width) == tuple(size_hw):
        return images_hwc
    shrinking = size_hw[0] * size_hw[1] < height * width
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    resized = cv2.resize(images_hwc, (size_hw[1], size_hw[0]), interpolation=interpolation)
    return resized.reshape(size_hw[0], size_hw[1], images_hwc.shape[2])


def _translate(images_hwc: np.ndarray, offset_xy: tuple[float, float], size_hw: tuple[int, int]) -> np.ndarray:
    """Place ``images_hwc`` on a zero canvas of ``size_hw`` shifted by ``offset_xy`` video pixels."""
    import cv2

    channels = images_hwc.shape[2]
    if all(float(v).is_integer() for v in offset_xy):
        canvas = np.zeros((size_hw[0], size_hw[1], channels), dtype=images_hwc.dtype)
        dx, dy = int(offset_xy[0]), int(offset_xy[1])
        src_y0, src_x0 = max(0, -dy), max(0, -dx)
        dst_y0, dst_x0 = max(0, dy), max(0, dx)
        rows = min(images_hwc.shape[0] - src_y0, size_hw[0] - dst_y0)
        cols = min(images_hwc.shape[1] - src_x0, size_hw[1] - dst_x0)
        if rows > 0 and cols > 0:
            canvas[dst_y0 : dst_y0 + rows, dst_x0 : dst_x0 + cols] = images_hwc[
                src_y0 : src_y0 + rows, src_x0 : src_x0 + cols
            ]
        return canvas

    matrix = np.array([[1.0, 0.0, offset_xy[0]], [0.0, 1.0, offset_xy[1]]])
    warped = cv2.warpAffine(images_hwc, matrix, (size_hw[1], size_hw[0]), flags=cv2.INTER_LINEAR, borderValue=0)
    return warped.reshape(size_hw[0], size_hw[1], channels)


def map_to_video(images: np.ndarray, mapping: SpatialMapping, video_size: tuple[int, int]) -> np.ndarray:
    """Resample spike-sized images onto the video pixel grid.

    Area interpolation is used when shrinking, so each video pixel averages the spike rates it
    covers; bilinear interpolation when enlarging.

    Args:
        images: ``(C, H, W)`` float32 images at the spike size (e.g. voxel bins with rates in [0, 1]).
        mapping: how spike pixels relate to video pixels.
        video_size: target ``(H, W)``.

    Returns:
        ``(C, video H, video W)`` float32 array.
    """
    video_size = (int(video_size[0]), int(video_size[1]))
    spike_size = images.shape[-2:]
    if mapping.kind == "stretch" and tuple(spike_size) == video_size:
        return images

    images_hwc = np.ascontiguousarray(rearrange(images, "c h w -> h w c"))
    if mapping.kind == "stretch":
        check_stretch(spike_size, video_size)
        mapped = _resize(images_hwc, video_size)
    elif mapping.kind == "scale_offset":
        scaled_size = (
            max(1, round(spike_size[0] * mapping.scale[1])),
            max(1, round(spike_size[1] * mapping.scale[0])),
        )
        mapped = _translate(_resize(images_hwc, scaled_size), mapping.offset, video_size)
    else:
        import cv2

        # NOTE: warpPerspective samples bilinearly without prefiltering, so a homography that
        # shrinks by more than about 2x aliases; resample with scale_offset first in that case.
        mapped = cv2.warpPerspective(
            images_hwc,
            np.asarray(mapping.matrix, dtype=np.float64),
            (video_size[1], video_size[0]),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=0,
        ).reshape(video_size[0], video_size[1], images_hwc.shape[2])

    return np.ascontiguousarray(rearrange(mapped, "h w c -> c h w"))
