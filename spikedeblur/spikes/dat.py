"""Read and write raw spike camera ``.dat`` streams.

The format has no header and no timestamps. A file is a concatenation of frames of ``H * W / 8``
bytes each (``W`` counts any extra "head" columns the camera appends to each row). Pixels are
packed 8 per byte in row-major order, the first pixel of each group in the least significant bit.
Rows are stored bottom-to-top, so readers flip vertically by default: the bottom-left pixel of the
upright image is bit 0 of byte 0, and the top-row pixel at column 1 is bit 1 of byte
``(H - 1) * W / 8``. See ``docs/spike-format.md`` for a worked example.
"""

from __future__ import annotations

import contextlib
import logging
import mmap
import os
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import numpy as np

from spikedeblur.errors import InputNotFoundError, InvalidInputError
from spikedeblur.fileio import atomic_output

if TYPE_CHECKING:
    from spikedeblur.spikes.sidecar import SpikeMeta

logger = logging.getLogger(__name__)

# Decoding works on chunks of about this many unpacked bytes, so the temporary stays in cache and
# memory use does not grow with the number of frames requested.
_CHUNK_UNPACKED_BYTES = 4 * 1024 * 1024

# Per-pixel counts are summed in uint8 within a chunk, so a chunk must not exceed 255 frames.
_MAX_CHUNK_FRAMES = 255


def frame_nbytes(height: int, width: int, head_cols: int = 0) -> int:
    """Return the size in bytes of one stored frame, raising if it is not a whole number of bytes."""
    for name, value in (("height", height), ("width", width)):
        if int(value) != value or value < 1:
            raise InvalidInputError(f"spike {name} {value} is invalid; give a positive integer such as 250x400")
    if int(head_cols) != head_cols or head_cols < 0:
        raise InvalidInputError(f"head column count {head_cols} is invalid; give 0 or a positive integer")

    pixels = int(height) * (int(width) + int(head_cols))
    if pixels % 8 != 0:
        raise InvalidInputError(
            f"spike frame {height}x{width + head_cols} has {pixels} pixels, not a multiple of 8, so it cannot "
            "be a bit-packed .dat frame; check --spike-size and --head-cols"
        )
    return pixels // 8


def check_input_file(path: Path, *, description: str = "spike file") -> Path:
    """Raise a one-line error if ``path`` is missing, a directory or empty; return it as a Path."""
    path = Path(path)
    if not path.exists():
        raise InputNotFoundError(f"{description} {path} not found; check the path")
    if path.is_dir():
        raise InvalidInputError(f"{description} {path} is a directory; give a .dat file")
    if path.stat().st_size == 0:
        raise InvalidInputError(f"{description} {path} is empty (0 bytes); give a non-empty .dat recording")
    return path


def _chunk_frames(frame_bytes: int) -> int:
    return max(1, min(_MAX_CHUNK_FRAMES, _CHUNK_UNPACKED_BYTES // (frame_bytes * 8)))


class DatReader:
    """Memory-mapped random access to the frames of a ``.dat`` spike stream.

    Only the frames asked for are decoded. ``height`` and ``width`` are the image size after
    dropping ``head_cols`` trailing columns from each stored row. ``flip`` undoes the bottom-to-top
    row order of the file (turn it off for cameras that store rows top-to-bottom).

    A trailing partial frame is ignored with a warning that names the leftover bytes, or raises
    :class:`InvalidInputError` when ``strict`` is true.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        height: int,
        width: int,
        *,
        flip: bool = True,
        head_cols: int = 0,
        strict: bool = False,
    ) -> None:
        self.path = check_input_file(Path(path))
        self.frame_bytes = frame_nbytes(height, width, head_cols)
        self.height = int(height)
        self.width = int(width)
        self.head_cols = int(head_cols)
        self.flip = bool(flip)

        file_size = self.path.stat().st_size
        num_frames, self.trailing_bytes = divmod(file_size, self.frame_bytes)
        stored_size = f"{self.height}x{self.width + self.head_cols}"
        if num_frames == 0:
            raise InvalidInputError(
                f"spike file {self.path} has {file_size} bytes, less than one {stored_size} frame "
                f"({self.frame_bytes} bytes); check --spike-size"
            )
        if self.trailing_bytes:
            message = (
                f"spike file {self.path} ends with {self.trailing_bytes} bytes that do not fill a whole "
                f"{stored_size} frame ({self.frame_bytes} bytes)"
            )
            if strict:
                raise InvalidInputError(f"{message}; check --spike-size, or drop --strict to ignore them")
            logger.warning("%s; ignoring them", message)

        self.num_frames = int(num_frames)
        with open(self.path, "rb") as handle:
            self._mmap = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        self._packed = np.frombuffer(self._mmap, dtype=np.uint8, count=self.num_frames * self.frame_bytes).reshape(
            self.num_frames, self.frame_bytes
        )

    def __len__(self) -> int:
        return self.num_frames

    def __repr__(self) -> str:
        return f"DatReader({str(self.path)!r}, {self.height}, {self.width}, frames={self.num_frames})"

    def __enter__(self) -> DatReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the memory map; later reads raise.

        Arrays returned by :meth:`read_packed` are views of the map, so while any of them is alive
        the map stays open until garbage collection.
        """
        self._packed = None
        memory_map = getattr(self, "_mmap", None)
        if memory_map is not None:
            with contextlib.suppress(BufferError):
                memory_map.close()

    def _release_pages(self, start: int, stop: int) -> None:
        """Drop the mapped pages of frames ``[start, stop)`` from this process's resident memory.

        The pages stay in the operating system's file cache, so a later read is cheap. Without this,
        resident memory grows with every frame read and reaches the file size on long recordings.
        """
        if not hasattr(mmap, "MADV_DONTNEED") or self._packed is None:
            return
        first = -(-start * self.frame_bytes // mmap.PAGESIZE) * mmap.PAGESIZE
        last = stop * self.frame_bytes // mmap.PAGESIZE * mmap.PAGESIZE
        if last > first:
            self._mmap.madvise(mmap.MADV_DONTNEED, first, last - first)

    def _check_range(self, start: int, stop: int) -> tuple[int, int]:
        if start < 0 or stop > self.num_frames or start > stop:
            raise InvalidInputError(
                f"spike frame range [{start}, {stop}) is outside {self.path.name}, which has "
                f"{self.num_frames} frames (0..{self.num_frames - 1})"
            )
        if self._packed is None:
            raise ValueError(f"{self!r} is closed")
        return int(start), int(stop)

    def _to_image(self, unpacked: np.ndarray) -> np.ndarray:
        """Turn ``(..., frame_bytes * 8)`` pixels in storage order into ``(..., H, W)`` upright images."""
        images = unpacked.reshape(*unpacked.shape[:-1], self.height, self.width + self.head_cols)
        if self.head_cols:
            images = images[..., : self.width]
        if self.flip:
            images = images[..., ::-1, :]
        return images

    def read_packed(self, start: int, stop: int) -> np.ndarray:
        """Return the raw bytes of frames ``[start, stop)`` as a read-only ``(N, frame_bytes)`` uint8 view."""
        start, stop = self._check_range(start, stop)
        return self._packed[start:stop]

    def read(self, start: int, stop: int, *, dtype: type | np.dtype = np.uint8) -> np.ndarray:
        """Decode frames ``[start, stop)``.

        Returns:
            ``(N, H, W)`` array of 0/1 spikes, uint8 (default) or bool, top row first.
        """
        dtype = np.dtype(dtype)
        if dtype not in (np.dtype(np.uint8), np.dtype(bool)):
            raise InvalidInputError(f"dtype {dtype} is not supported for spikes; use uint8 or bool")

        packed = self.read_packed(start, stop)
        unpacked = np.unpackbits(packed, axis=-1, bitorder="little")
        self._release_pages(start, stop)
        frames = np.ascontiguousarray(self._to_image(unpacked))
        return frames.view(bool) if dtype == np.dtype(bool) else frames

    def count_spikes(self, start: int, stop: int) -> np.ndarray:
        """Count the spikes of each pixel over frames ``[start, stop)`` without decoding them all at once.

        Returns:
            ``(H, W)`` uint32 counts in ``[0, stop - start]``; zeros for an empty range.
        """
        return self.count_spikes_binned([start, stop])[0]

    def count_spikes_binned(self, edges: np.ndarray | list[int]) -> np.ndarray:
        """Count spikes per pixel in each bin ``[edges[k], edges[k + 1])`` of non-decreasing frame edges.

        Memory use is bounded by the output and one decoding chunk, whatever the number of frames.

        Returns:
            ``(K, H, W)`` uint32 counts for ``K = len(edges) - 1`` bins.
        """
        edges = self._check_edges(edges)
        counts = np.empty((edges.size - 1, self.height, self.width), dtype=np.uint32)
        for index in range(edges.size - 1):
            counts[index] = self._to_image(self._count_storage_order(int(edges[index]), int(edges[index + 1])))
        return counts

    def bin_rates(self, edges: np.ndarray | list[int]) -> np.ndarray:
        """Return the firing rate of each pixel in each bin ``[edges[k], edges[k + 1])``.

        Each bin must be non-empty. This is the fast path of the voxelizer: every bin is counted
        and scaled while its counts are still in cache.

        Returns:
            ``(K, H, W)`` float32 rates in [0, 1].
        """
        edges = self._check_edges(edges)
        lengths = np.diff(edges)
        if np.any(lengths == 0):
            raise InvalidInputError(f"bin edges {edges.tolist()} contain an empty bin; rates need at least one frame")

        rates = np.empty((edges.size - 1, self.height, self.width), dtype=np.float32)
        for index in range(edges.size - 1):
            counts = self._to_image(self._count_storage_order(int(edges[index]), int(edges[index + 1])))
            np.multiply(counts, np.float32(1.0 / lengths[index]), out=rates[index], casting="unsafe")
        return rates

    def _check_edges(self, edges: np.ndarray | list[int]) -> np.ndarray:
        edges = np.asarray(edges, dtype=np.int64)
        if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) < 0):
            raise InvalidInputError(f"bin edges {edges.tolist()} must be at least two non-decreasing frame indices")
        self._check_range(int(edges[0]), int(edges[-1]))
        return edges

    def _count_storage_order(self, start: int, stop: int) -> np.ndarray:
        """Count spikes per stored pixel (storage order, head columns included) over frames ``[start, stop)``."""
        chunk = _chunk_frames(self.frame_bytes)
        chunk_counts = np.zeros(self.frame_bytes * 8, dtype=np.uint8)
        total = None
        for chunk_start in range(start, stop, chunk):
            chunk_stop = min(stop, chunk_start + chunk)
            unpacked = np.unpackbits(self._packed[chunk_start:chunk_stop], axis=-1, bitorder="little")
            self._release_pages(chunk_start, chunk_stop)
            # Summing in uint8 avoids NumPy's default upcast to int64, which is several times
            # slower. A chunk has at most 255 frames, so the sum cannot overflow.
            np.add.reduce(unpacked, axis=0, dtype=np.uint8, out=chunk_counts)
            if stop - start <= chunk:
                return chunk_counts
            if total is None:
                total = np.zeros(chunk_counts.shape, dtype=np.uint32)
            total += chunk_counts
        return total if total is not None else chunk_counts


class DatWriter:
    """Write ``.dat`` spike frames atomically, one batch at a time.

    Use as a context manager. Frames go to a temporary file beside ``path``, which replaces ``path``
    only when the ``with`` block ends without an error, so a crash or Ctrl-C never leaves a partial
    file. With ``meta``, the sidecar ``NAME.dat.json`` is written after the stream (its height,
    width and flip are set from this writer).

    The writer is the exact inverse of :class:`DatReader` with ``head_cols=0``.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        height: int,
        width: int,
        *,
        flip: bool = True,
        overwrite: bool = False,
        meta: SpikeMeta | None = None,
    ) -> None:
        self.path = Path(path)
        self.frame_bytes = frame_nbytes(height, width)
        self.height = int(height)
        self.width = int(width)
        self.flip = bool(flip)
        self.overwrite = overwrite
        self.meta = meta
        self.num_frames = 0
        self._stack: contextlib.ExitStack | None = None
        self._file = None

    def __enter__(self) -> DatWriter:
        stack = contextlib.ExitStack()
        try:
            temp_path = stack.enter_context(atomic_output(self.path, overwrite=self.overwrite))
            self._file = stack.enter_context(open(temp_path, "wb"))
        except BaseException:
            stack.close()
            raise
        self._stack = stack
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        stack, self._stack, self._file = self._stack, None, None
        if stack is None:
            return False
        if exc_type is None and self.num_frames == 0:
            # An empty .dat file is not a valid stream, so discard it instead of renaming it into place.
            error = InvalidInputError(f"no spike frames were written to {self.path}; nothing was saved")
            stack.__exit__(type(error), error, None)
            raise error

        stack.__exit__(exc_type, exc_value, traceback)
        if exc_type is None and self.meta is not None:
            from spikedeblur.spikes.sidecar import write_sidecar

            meta = self.meta.replace(height=self.height, width=self.width, flip=self.flip, head_cols=0)
            write_sidecar(self.path, meta, overwrite=True)
        return False

    def write(self, frames: np.ndarray) -> None:
        """Append frames.

        Args:
            frames: ``(N, H, W)`` or ``(H, W)`` spikes, bool or an integer type holding only 0 and 1,
                top row first.
        """
        if self._file is None:
            raise RuntimeError("DatWriter.write() must be called inside its 'with' block")

        frames = np.asarray(frames)
        if frames.ndim == 2:
            frames = frames[None]
        if frames.ndim != 3 or frames.shape[1:] != (self.height, self.width):
            raise InvalidInputError(
                f"spike frames of shape {frames.shape} do not match the writer size "
                f"(N, {self.height}, {self.width}); pass (N, H, W) frames"
            )
        if frames.dtype != np.bool_:
            if not np.issubdtype(frames.dtype, np.integer):
                raise InvalidInputError(f"spike frames of dtype {frames.dtype} are not binary; pass bool or uint8 0/1")
            if frames.size and (frames.min() < 0 or frames.max() > 1):
                raise InvalidInputError("spike frames contain values other than 0 and 1; pass binary frames")

        chunk = _chunk_frames(self.frame_bytes)
        for start in range(0, frames.shape[0], chunk):
            block = frames[start : start + chunk]
            if self.flip:
                block = block[:, ::-1, :]
            flat = np.ascontiguousarray(block, dtype=np.uint8).reshape(block.shape[0], -1)
            self._file.write(np.packbits(flat, axis=-1, bitorder="little").tobytes())
        self.num_frames += frames.shape[0]


def write_dat(
    path: str | os.PathLike[str],
    frames: np.ndarray,
    *,
    flip: bool = True,
    overwrite: bool = False,
    meta: SpikeMeta | None = None,
) -> Path:
    """Write ``(N, H, W)`` binary spike frames to a new ``.dat`` file atomically and return its path."""
    frames = np.asarray(frames)
    if frames.ndim != 3:
        raise InvalidInputError(f"spike frames of shape {frames.shape} are not (N, H, W)")
    with DatWriter(path, frames.shape[1], frames.shape[2], flip=flip, overwrite=overwrite, meta=meta) as writer:
        writer.write(frames)
    return Path(path)
