"""Per-video-frame spike voxels at video size, for inference and training.

:func:`open_spike_source` resolves the stream metadata (options over the ``.dat.json`` sidecar over
defaults, or a data set ``config.yaml`` for per-frame-file folders, or a guessed size) and returns
a :class:`SpikeSource` whose :meth:`~SpikeSource.voxels` decodes only the ticks of one frame.
"""

from __future__ import annotations

import abc
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from spikedeblur.errors import InvalidInputError, SpikeCoverageError
from spikedeblur.spikes.dat import DatReader, check_input_file
from spikedeblur.spikes.guess import confidence, propose_sizes
from spikedeblur.spikes.layout import find_config, list_frame_files, read_config_size
from spikedeblur.spikes.options import SpikeOptions
from spikedeblur.spikes.sidecar import SpikeMeta, read_sidecar
from spikedeblur.spikes.spatial import check_stretch, map_to_video
from spikedeblur.spikes.timing import frame_window
from spikedeblur.spikes.voxelize import check_bins, voxelize_dat

logger = logging.getLogger(__name__)

MissingPolicy = Literal["error", "zero"]


class SpikeSource(abc.ABC):
    """Spike voxels for video frames; use :func:`open_spike_source` to create one.

    Attributes:
        meta: the resolved stream metadata (size, clock, frame mapping, spatial mapping).
        spike_size: ``(H, W)`` of the decoded spike images.
        output_size: ``(H, W)`` of the returned voxels: the video size, or the spike size when no
            video size was given.
    """

    def __init__(
        self,
        name: str,
        meta: SpikeMeta,
        *,
        video_size: tuple[int, int] | None,
        missing: MissingPolicy,
        scale: float,
    ) -> None:
        if missing not in ("error", "zero"):
            raise InvalidInputError(f"missing-spike policy {missing!r} is unknown; use 'error' or 'zero'")
        self.name = name
        self.meta = meta
        self.spike_size = meta.size
        self.output_size = tuple(video_size) if video_size is not None else self.spike_size
        self.missing = missing
        self.scale = scale
        self._warned_missing = False
        if meta.spatial.kind == "stretch":
            check_stretch(self.spike_size, self.output_size)

    def __enter__(self) -> SpikeSource:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Release open files."""

    @abc.abstractmethod
    def window(self, index: int, time_s: float, duration_s: float) -> tuple[int, int]:
        """Return the half-open tick range of video frame ``index`` (file-local for per-frame files)."""

    @abc.abstractmethod
    def covers(self, index: int, time_s: float, duration_s: float) -> bool:
        """Return whether the stream contains every tick of frame ``index``."""

    @abc.abstractmethod
    def _describe_gap(self, index: int, time_s: float, duration_s: float) -> str:
        """Return the message for an uncovered frame: what the stream has and what the frame needs."""

    @abc.abstractmethod
    def _voxels_at_spike_size(self, index: int, time_s: float, duration_s: float, bins: int) -> np.ndarray:
        """Return the ``(K, H, W)`` voxels of a covered frame at the spike size."""

    def covered_frames(self, times_s: Sequence[float], durations_s: Sequence[float]) -> int:
        """Return how many leading frames are covered: the index of the first uncovered frame, or the count."""
        for index, (time_s, duration_s) in enumerate(zip(times_s, durations_s, strict=True)):
            if not self.covers(index, float(time_s), float(duration_s)):
                return index
        return len(times_s)

    def check_coverage(self, times_s: Sequence[float], durations_s: Sequence[float]) -> None:
        """Raise :class:`SpikeCoverageError` for the first frame the stream does not cover."""
        first_gap = self.covered_frames(times_s, durations_s)
        if first_gap < len(times_s):
            time_s, duration_s = float(times_s[first_gap]), float(durations_s[first_gap])
            raise SpikeCoverageError(self._describe_gap(first_gap, time_s, duration_s))

    def voxels(self, index: int, time_s: float, duration_s: float, *, bins: int = 32) -> np.ndarray:
        """Voxelize the exposure of video frame ``index`` shown at ``time_s`` for ``duration_s`` seconds.

        Returns:
            ``(K, H, W)`` float32 at :attr:`output_size`: firing rates in [0, 1], multiplied by
            ``threshold / gain`` when the source was opened with ``intensity=True``.

        Raises:
            SpikeCoverageError: if the stream does not cover the frame and ``missing`` is "error".
        """
        bins = check_bins(bins)
        if not self.covers(index, time_s, duration_s):
            message = self._describe_gap(index, time_s, duration_s)
            if self.missing == "error":
                raise SpikeCoverageError(message)
            if not self._warned_missing:
                logger.warning("%s; using zero voxels for such frames", message)
                self._warned_missing = True
            return np.zeros((bins, *self.output_size), dtype=np.float32)

        voxels = self._voxels_at_spike_size(index, time_s, duration_s, bins)
        voxels = map_to_video(voxels, self.meta.spatial, self.output_size)
        if self.scale != 1.0:
            voxels *= np.float32(self.scale)
        return voxels


class DatSpikeSource(SpikeSource):
    """One continuous ``.dat`` stream on a tick clock."""

    def __init__(self, reader: DatReader, meta: SpikeMeta, **kwargs) -> None:
        super().__init__(reader.path.name, meta, **kwargs)
        self.reader = reader
        self.num_ticks = reader.num_frames

    def close(self) -> None:
        self.reader.close()

    def window(self, index: int, time_s: float, duration_s: float) -> tuple[int, int]:
        return frame_window(self.meta, index, time_s, duration_s)

    def covers(self, index: int, time_s: float, duration_s: float) -> bool:
        if self.meta.frame_ticks is not None and index >= len(self.meta.frame_ticks):
            return False
        start, stop = self.window(index, time_s, duration_s)
        return 0 <= start and stop <= self.reader.num_frames

    def _describe_gap(self, index: int, time_s: float, duration_s: float) -> str:
        if self.meta.frame_ticks is not None and index >= len(self.meta.frame_ticks):
            return (
                f"spike stream {self.name} lists ticks for {len(self.meta.frame_ticks)} frames in frame_ticks, "
                f"so video frame {index} at {time_s:.4f} s is not covered; extend the table, trim the video, "
                "or pass --missing-spikes zero to give such frames empty voxels"
            )
        start, stop = self.window(index, time_s, duration_s)
        ticks = self.reader.num_frames
        return (
            f"spike stream {self.name} has ticks 0..{ticks - 1} ({ticks / self.meta.rate_hz:.4f} s at "
            f"{self.meta.rate_hz:g} Hz), but video frame {index} at {time_s:.4f} s needs ticks {start}..{stop - 1}; "
            "check --spike-rate, --spike-offset and --spikes-per-frame, trim the video, "
            "or pass --missing-spikes zero to give such frames empty voxels"
        )

    def _voxels_at_spike_size(self, index: int, time_s: float, duration_s: float, bins: int) -> np.ndarray:
        start, stop = self.window(index, time_s, duration_s)
        return voxelize_dat(self.reader, start, stop, bins)


class FrameFileSpikeSource(SpikeSource):
    """A folder with one ``.dat`` file per video frame; file ``i`` (in name order) is frame ``i``."""

    def __init__(self, folder: Path, files: list[Path], meta: SpikeMeta, *, strict: bool = False, **kwargs) -> None:
        super().__init__(folder.name, meta, **kwargs)
        self.folder = folder
        self.files = files
        self.strict = strict

    def _reader(self, index: int) -> DatReader:
        height, width = self.spike_size
        return DatReader(
            self.files[index], height, width, flip=self.meta.flip, head_cols=self.meta.head_cols, strict=self.strict
        )

    def window(self, index: int, time_s: float, duration_s: float) -> tuple[int, int]:
        with self._reader(index) as reader:
            return 0, reader.num_frames

    def covers(self, index: int, time_s: float, duration_s: float) -> bool:
        return 0 <= index < len(self.files)

    def _describe_gap(self, index: int, time_s: float, duration_s: float) -> str:
        return (
            f"spike folder {self.folder} has {len(self.files)} per-frame files, so video frame {index} at "
            f"{time_s:.4f} s is not covered; trim the video, add the missing files, "
            "or pass --missing-spikes zero to give such frames empty voxels"
        )

    def _voxels_at_spike_size(self, index: int, time_s: float, duration_s: float, bins: int) -> np.ndarray:
        with self._reader(index) as reader:
            return voxelize_dat(reader, 0, reader.num_frames, bins)


def _guess_size(path: Path, meta: SpikeMeta, options: SpikeOptions) -> SpikeMeta:
    proposals = propose_sizes(path, flip=meta.flip)
    if options.head_cols is not None:
        proposals = [p for p in proposals if p.head_cols == options.head_cols]
    if not proposals:
        raise InvalidInputError(
            f"the size of spike file {path} is unknown and no common sensor size fits its "
            f"{path.stat().st_size} bytes; pass --spike-size HEIGHTxWIDTH"
        )

    best = proposals[0]
    margin = confidence(proposals)
    margin_text = "the only size that fits" if margin is None else f"score {best.score:.3f}, margin {margin:.3f}"
    logger.warning(
        "no size recorded for %s; using the best guess %s (%s). Pass --spike-size or write a .dat.json sidecar "
        "to set it",
        path.name,
        best.label,
        margin_text,
    )
    return meta.replace(height=best.height, width=best.width, head_cols=best.head_cols)


def resolve_meta(path: str | os.PathLike[str], options: SpikeOptions | None = None) -> SpikeMeta:
    """Return the metadata of a ``.dat`` file or per-frame folder: options over sidecar/config over defaults.

    A missing size is guessed with :func:`~spikedeblur.spikes.guess.propose_sizes` and logged as a warning.
    """
    path = Path(path)
    options = options if options is not None else SpikeOptions()

    if path.is_dir():
        files = list_frame_files(path)
        meta = options.merge_over(None)
        if meta.size is None:
            config = find_config(files[0].parent)
            if config is not None:
                height, width = read_config_size(config)
                meta = meta.replace(height=height, width=width)
            else:
                meta = _guess_size(files[0], meta, options)
        return meta

    check_input_file(path)
    meta = options.merge_over(read_sidecar(path))
    if meta.size is None:
        meta = _guess_size(path, meta, options)
    return meta


def open_spike_source(
    path: str | os.PathLike[str],
    options: SpikeOptions | None = None,
    *,
    video_size: tuple[int, int] | None = None,
    missing: MissingPolicy = "error",
    intensity: bool = False,
) -> SpikeSource:
    """Open a ``.dat`` stream or a per-frame-file folder as a source of per-frame voxels.

    Args:
        path: a ``.dat`` file, or a clip folder of per-frame ``.dat`` files (or its ``spike/`` folder).
        options: overrides merged over the sidecar ``NAME.dat.json`` or the folder's ``config.yaml``.
        video_size: ``(H, W)`` of the video the voxels must match; None keeps the spike size.
        missing: "error" raises :class:`SpikeCoverageError` for an uncovered frame, "zero" returns
            zero voxels and logs one warning.
        intensity: multiply rates by ``threshold / gain`` from the metadata (raises if unknown).
    """
    path = Path(path)
    options = options if options is not None else SpikeOptions()
    meta = resolve_meta(path, options)

    scale = 1.0
    if intensity:
        if meta.threshold is None or meta.gain is None:
            raise InvalidInputError(
                f"intensity scaling needs the simulator threshold and gain, which the metadata of {path} lacks; "
                "add them to the .dat.json sidecar or drop --intensity"
            )
        scale = meta.threshold / meta.gain

    common = {"video_size": video_size, "missing": missing, "scale": scale}
    if path.is_dir():
        return FrameFileSpikeSource(path, list_frame_files(path), meta, strict=options.strict, **common)

    reader = DatReader(path, meta.height, meta.width, flip=meta.flip, head_cols=meta.head_cols, strict=options.strict)
    try:
        return DatSpikeSource(reader, meta, **common)
    except BaseException:
        reader.close()
        raise
