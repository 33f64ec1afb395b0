"""PNG-sequence output with the same interface as :class:`~spikedeblur.video.writer.VideoWriter`."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np

from spikedeblur.errors import InvalidInputError, OutputExistsError
from spikedeblur.video._worker import END, QueueWorker
from spikedeblur.video.images import write_png_rgb
from spikedeblur.video.info import VideoInfo
from spikedeblur.video.writer import to_rgb_array

logger = logging.getLogger(__name__)

DEFAULT_PATTERN = "%06d.png"
_NUMBER_FIELD = re.compile(r"%(0?\d*)d")


def is_image_sequence_target(path: Path | str) -> bool:
    """Return True when ``path`` names a folder (existing, ending in a slash, or without suffix) or a
    ``%d`` pattern such as ``frames/%06d.png``."""
    text = str(path)
    path = Path(path)
    if "%" in path.name:
        return True
    if text.endswith(("/", os.sep)) or path.is_dir():
        return True
    return path.suffix == ""


def split_sequence_target(path: Path | str) -> tuple[Path, str]:
    """Return the folder and the file-name pattern for a folder or pattern target."""
    path = Path(path)
    if "%" not in path.name:
        return path, DEFAULT_PATTERN
    if not _NUMBER_FIELD.search(path.name) or path.name.count("%") != 1:
        raise InvalidInputError(f"output pattern {path.name} is invalid; use one number field, e.g. %06d.png")
    if path.suffix.lower() != ".png":
        raise InvalidInputError(f"output pattern {path.name} is invalid; image sequences are written as .png")
    return path.parent, path.name


def _pattern_regex(pattern: str) -> re.Pattern:
    match = _NUMBER_FIELD.search(pattern)
    before, after = pattern[: match.start()], pattern[match.end() :]
    return re.compile(re.escape(before) + r"\d+" + re.escape(after) + r"\Z")


class ImageSequenceWriter:
    """Write RGB frames as numbered PNG files (16-bit when the source is deeper than 8 bits).

    Files are written into a temporary folder beside the target folder and moved into it only when
    the ``with`` block ends without an exception. Existing files matching the pattern are replaced
    only with ``overwrite``, which also removes matching files left from a longer earlier run.
    Frames are numbered from 0 in write order. Timestamps are accepted and checked to increase, as
    :class:`VideoWriter` does, but PNG files cannot store them.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        source: VideoInfo | None,
        overwrite: bool = False,
        inputs: tuple[Path, ...] = (),
        queue_size: int = 8,
        **_video_only,
    ) -> None:
        self.folder, self.pattern = split_sequence_target(path)
        self.path = self.folder / self.pattern
        self.source = source
        self.deep = source is not None and source.bit_depth > 8
        self._overwrite = overwrite
        self._inputs = tuple(Path(p) for p in inputs)
        self._queue_size = queue_size
        self._regex = _pattern_regex(self.pattern)
        self._temp_folder: Path | None = None
        self._worker: QueueWorker | None = None
        self._last_pts: int | None = None
        self.frames_written = 0

        if source is not None and source.rotation:
            logger.warning(
                "PNG files cannot store the %d degree rotation tag of the source; frames are saved as stored",
                source.rotation,
            )
        ignored = sorted(key for key, value in _video_only.items() if value is not None)
        if ignored:
            logger.debug("image-sequence output ignores %s", ", ".join(ignored))

    def __enter__(self) -> ImageSequenceWriter:
        self._check_target()
        self._temp_folder = Path(tempfile.mkdtemp(prefix=f".{self.folder.name}.", suffix=".part", dir=self.folder.parent))
        self._worker = QueueWorker(self._write_loop, maxsize=self._queue_size, name=f"png {self.folder.name}")
        self._worker.start()
        return self

    def _check_target(self) -> None:
        for source in self._inputs:
            if source.exists() and self.folder.exists() and source.resolve() == self.folder.resolve():
                raise InvalidInputError(f"output folder {self.folder} is the input; choose another -o folder")
        if not self.folder.parent.exists():
            raise InvalidInputError(f"output folder {self.folder.parent} does not exist; create it first")
        if self.folder.exists() and not self.folder.is_dir():
            raise OutputExistsError(f"output {self.folder} exists and is not a folder; choose another -o path")
        if self.folder.exists() and not self._overwrite:
            existing = self._matching_files()
            if existing:
                raise OutputExistsError(
                    f"output folder {self.folder} already has {len(existing)} files named like {self.pattern}; "
                    "pass --overwrite to replace them"
                )

    def _matching_files(self) -> list[Path]:
        return [entry for entry in self.folder.iterdir() if self._regex.match(entry.name)]

    def write(self, image: np.ndarray, *, pts: int | None = None, time: float | None = None) -> None:
        """Queue one ``(H, W, 3)`` RGB frame (uint8, uint16, or float32 in [0, 1]) to be saved as PNG."""
        if self._worker is None:
            raise RuntimeError("use ImageSequenceWriter as a context manager")
        if pts is not None:
            if self._last_pts is not None and pts <= self._last_pts:
                raise InvalidInputError(
                    f"frame {self.frames_written} has timestamp {pts}, not after the previous {self._last_pts}; "
                    "timestamps must increase strictly"
                )
            self._last_pts = pts
        name = self.pattern % self.frames_written
        self._worker.put((name, image))
        self.frames_written += 1

    def _write_loop(self, worker: QueueWorker) -> None:
        while True:
            item = worker.receive()
            if item is END:
                return
            name, image = item
            write_png_rgb(self._temp_folder / name, to_rgb_array(image, deep=self.deep))

    def __exit__(self, exc_type, exc, traceback) -> None:
        try:
            if exc_type is None:
                self._worker.finish()
                self._worker = None
                self._publish()
        finally:
            if self._worker is not None:
                self._worker.stop()
                self._worker = None
            with contextlib.suppress(FileNotFoundError):
                shutil.rmtree(self._temp_folder)

    def _publish(self) -> None:
        if self.frames_written == 0:
            raise InvalidInputError(f"no frames were written to {self.path}; nothing to save")
        self.folder.mkdir(exist_ok=True)
        new_names = {entry.name for entry in self._temp_folder.iterdir()}
        if self._overwrite:
            for stale in self._matching_files():
                if stale.name not in new_names:
                    stale.unlink()
        elif self._matching_files():
            raise OutputExistsError(f"files named like {self.pattern} appeared in {self.folder} while writing")
        for name in sorted(new_names):
            os.replace(self._temp_folder / name, self.folder / name)
        logger.debug("wrote %d PNG files into %s", len(new_names), self.folder)
