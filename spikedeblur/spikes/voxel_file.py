"""Write voxel grids to ``.npz`` files one frame at a time, and draw previews of them.

The ``.npz`` is an uncompressed zip of ``.npy`` members that ``numpy.load`` reads as usual. The
``voxels`` member is streamed frame by frame, so memory use does not grow with the number of frames.

Members:

- ``voxels``: ``(T, K, H, W)`` float16 or float32 rates.
- ``frame_times``, ``frame_durations``: seconds, NaN when unknown.
- ``tick_start``, ``tick_stop``: half-open spike tick range of each frame (within each file for
  per-frame-file folders).
- ``bins``; ``spike_size`` and ``size`` as ``(H, W)``.
- ``meta``: the stream metadata as a JSON string.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
from einops import rearrange

from spikedeblur.errors import InvalidInputError


def _npy_header(shape: tuple[int, ...], dtype: np.dtype) -> dict[str, Any]:
    return {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape}


class VoxelFileWriter:
    """Stream ``(K, H, W)`` voxel frames into an ``.npz`` at a path the caller made (use ``atomic_output``)."""

    def __init__(self, path: Path, *, num_frames: int, bins: int, size: tuple[int, int], dtype: str = "float32") -> None:
        if dtype not in ("float16", "float32"):
            raise InvalidInputError(f"voxel dtype {dtype!r} is not supported; use float16 or float32")
        self.path = Path(path)
        self.dtype = np.dtype(dtype)
        self.shape = (int(num_frames), int(bins), int(size[0]), int(size[1]))
        self.frames_written = 0
        self._zip: zipfile.ZipFile | None = None
        self._member = None

    def __enter__(self) -> VoxelFileWriter:
        self._zip = zipfile.ZipFile(self.path, "w", compression=zipfile.ZIP_STORED, allowZip64=True)
        self._member = self._zip.open("voxels.npy", "w", force_zip64=True)
        np.lib.format.write_array_header_2_0(self._member, _npy_header(self.shape, self.dtype))
        return self

    def write_frame(self, voxels: np.ndarray) -> None:
        """Append one ``(K, H, W)`` voxel frame."""
        if voxels.shape != self.shape[1:]:
            raise ValueError(f"voxel frame of shape {voxels.shape} does not match {self.shape[1:]}")
        if self.frames_written >= self.shape[0]:
            raise ValueError(f"all {self.shape[0]} voxel frames were already written")
        self._member.write(np.ascontiguousarray(voxels, dtype=self.dtype).tobytes())
        self.frames_written += 1

    def add_array(self, name: str, value: Any) -> None:
        """Store a small array or scalar as member ``name``; call after the last frame."""
        self._close_voxels()
        with self._zip.open(f"{name}.npy", "w", force_zip64=True) as member:
            np.lib.format.write_array(member, np.asanyarray(value), allow_pickle=False)

    def add_json(self, name: str, value: Any) -> None:
        """Store ``value`` as a JSON string member ``name``."""
        self.add_array(name, np.array(json.dumps(value)))

    def _close_voxels(self) -> None:
        if self._member is not None:
            if self.frames_written != self.shape[0]:
                raise ValueError(f"only {self.frames_written} of {self.shape[0]} voxel frames were written")
            self._member.close()
            self._member = None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            if exc_type is None:
                self._close_voxels()
        finally:
            if self._member is not None:
                self._member.close()
            self._zip.close()


def _to_grey(image: np.ndarray, white: float) -> np.ndarray:
    return np.clip(image / white * 255.0, 0, 255).astype(np.uint8)


def preview_image(voxels: np.ndarray, *, columns: int = 8, gap: int = 4) -> np.ndarray:
    """Draw the TFP (mean over bins) next to a montage of the bins, on one shared grey scale.

    Args:
        voxels: ``(K, H, W)`` float rates.

    Returns:
        ``(H, W_total)`` uint8 grey image; white is the 99.5th percentile of the bin rates.
    """
    import cv2

    bins, height, width = voxels.shape
    voxels = voxels.astype(np.float32, copy=False)
    white = max(float(np.percentile(voxels, 99.5)), 1e-6)

    columns = min(columns, bins)
    rows = -(-bins // columns)
    tile_height = max(1, height // rows)
    tile_width = max(1, round(tile_height * width / height))
    tiles = np.zeros((rows * columns, tile_height, tile_width), np.uint8)
    for index in range(bins):
        tiles[index] = cv2.resize(_to_grey(voxels[index], white), (tile_width, tile_height), interpolation=cv2.INTER_AREA)
    montage = rearrange(tiles, "(r c) h w -> (r h) (c w)", r=rows)

    canvas = np.zeros((height, width + gap + montage.shape[1]), np.uint8)
    canvas[:, :width] = _to_grey(voxels.mean(axis=0), white)
    canvas[: montage.shape[0], width + gap :] = montage
    return canvas
