"""Streaming frame reader for video files, image folders and single images."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import av.error
import numpy as np
from av.video.reformatter import ColorRange, Interpolation

from spikedeblur.errors import InvalidInputError
from spikedeblur.video._worker import END, QueueWorker
from spikedeblur.video.colour import describe_guess
from spikedeblur.video.images import list_image_files, read_image_with_alpha_flag
from spikedeblur.video.info import VideoInfo, open_video_container, probe, select_video_stream

logger = logging.getLogger(__name__)

# Accurate rounding and full-resolution chroma interpolation keep 8-bit colours within 2 levels of
# the truth (without FULL_CHR_H_INT a yellow patch is 4 levels off). Deep sources go without
# FULL_CHR_H_INT because with it swscale (FFmpeg 8, PyAV 18.1) zeroes green in rgb48le output.
_SWSCALE_FLAGS_8BIT = Interpolation.BILINEAR | Interpolation.ACCURATE_RND | Interpolation.FULL_CHR_H_INT
_SWSCALE_FLAGS_DEEP = Interpolation.BILINEAR | Interpolation.ACCURATE_RND


@dataclass(frozen=True, eq=False)
class VideoFrame:
    """One decoded frame.

    ``image`` is ``(H, W, 3)`` RGB, uint8 for 8-bit sources and uint16 on the full 0..65535 scale
    for deeper ones. ``pts`` is the source timestamp in units of ``VideoInfo.time_base`` (None when
    the source has none) and ``time`` is the same instant in seconds.
    """

    index: int
    pts: int | None
    time: float
    image: np.ndarray


def drain_decoder(stream) -> None:
    """Flush and discard the frames a decoder still holds, so that closing it cannot hang.

    With frame threading and PyAV's logging switched on (``av.logging.set_level``, which some
    libraries call on import), closing a decoder that still contains frames hung in the tests here
    (PyAV 18.1, FFmpeg 8). Draining it first avoided the hang.
    """
    with contextlib.suppress(av.error.FFmpegError):
        stream.codec_context.decode(None)


class VideoReader:
    """Decode frames on a background thread, ``prefetch`` frames ahead of the caller.

    Use as a context manager and iterate it::

        with VideoReader(path) as reader:
            for frame in reader:
                ...

    Video frames are converted to RGB with the matrix and range the stream declares (guessed and
    logged when untagged). The rotation tag is not applied; it is reported in ``info.rotation``.
    The decoder is drained at the end, so every frame that the file contains is yielded. A file
    that stops before the length its header declares yields what it has and logs a warning.
    """

    def __init__(
        self,
        path: Path,
        *,
        prefetch: int = 8,
        image_fps: Fraction | float | None = None,
        count_frames: bool = True,
    ) -> None:
        if prefetch < 1:
            raise InvalidInputError(f"prefetch {prefetch} is invalid; give at least 1 frame")
        self.path = Path(path)
        self.info: VideoInfo = probe(self.path, count_frames=count_frames, image_fps=image_fps)
        self._prefetch = prefetch
        self._worker: QueueWorker | None = None
        self.frames_decoded = 0

        guess = describe_guess(self.info.conversion) if self.info.conversion else None
        if guess:
            logger.info("%s: %s", self.path.name, guess)
        # Gray+alpha formats have 2 components and YUVA/RGBA formats 4; frames come out as RGB.
        if not self.info.is_image_sequence and len(av.VideoFormat(self.info.pix_fmt).components) in (2, 4):
            logger.warning("%s: dropping the %s alpha channel; outputs are RGB", self.path.name, self.info.pix_fmt)

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        """Stop the decoding thread and release the file; safe to call more than once."""
        if self._worker is not None:
            self._worker.stop()
            self._worker = None

    def __iter__(self) -> Iterator[VideoFrame]:
        if self._worker is not None:
            raise RuntimeError("a VideoReader can be iterated only once; open a new one")
        target = self._decode_images if self.info.is_image_sequence else self._decode_video
        self._worker = QueueWorker(target, maxsize=self._prefetch, name=f"decode {self.path.name}")
        self._worker.start()
        while True:
            item = self._worker.next_item()
            if item is END:
                return
            yield item

    # --- runs on the decoding thread ---

    def _decode_video(self, worker: QueueWorker) -> None:
        info = self.info
        rgb_format = "rgb48le" if info.is_deep else "rgb24"
        swscale_flags = _SWSCALE_FLAGS_DEEP if info.is_deep else _SWSCALE_FLAGS_8BIT
        conversion = info.conversion
        if conversion is None:
            convert_kwargs = {}
        else:
            convert_kwargs = {
                "src_colorspace": conversion.swscale_matrix,
                "src_color_range": conversion.swscale_range,
                "dst_color_range": ColorRange.JPEG,
            }

        def emit(frame: av.VideoFrame) -> None:
            if frame.width != info.width or frame.height != info.height:
                raise InvalidInputError(
                    f"{self.path}: frame {self.frames_decoded} is {frame.width}x{frame.height} but the video "
                    f"started at {info.width}x{info.height}; size changes within a video are not supported"
                )
            image = frame.to_ndarray(format=rgb_format, interpolation=swscale_flags, **convert_kwargs)
            pts = frame.pts
            if pts is not None:
                time = float(pts * info.time_base)
            else:
                time = float(self.frames_decoded / info.fps)
            worker.emit(VideoFrame(index=self.frames_decoded, pts=pts, time=time, image=image))
            self.frames_decoded += 1

        with open_video_container(self.path) as container:
            stream = select_video_stream(container, self.path)
            # Frame threading keeps several frames inside the decoder. The demuxer's final empty packet
            # drains them, and the error path below drains them explicitly, so none is lost.
            stream.thread_type = "AUTO"
            bad_packets = 0
            finished = False
            try:
                for packet in container.demux(stream):
                    try:
                        frames = packet.decode()
                    except av.error.InvalidDataError as error:
                        bad_packets += 1
                        logger.debug("skipping undecodable packet at pts %s: %s", packet.pts, error)
                        continue
                    for frame in frames:
                        emit(frame)
                finished = True
            except av.error.FFmpegError as error:
                # Demuxing failed, e.g. at the cut of a truncated file: keep what the decoder holds.
                logger.warning("%s: reading stopped: %s", self.path.name, error.strerror or error)
                try:
                    for frame in stream.codec_context.decode(None):
                        emit(frame)
                except av.error.FFmpegError as drain_error:
                    logger.warning("%s: draining the decoder failed: %s", self.path.name, drain_error)
                finished = True
            finally:
                if not finished:
                    drain_decoder(stream)

        if bad_packets:
            logger.warning("%s: skipped %d undecodable video packets", self.path.name, bad_packets)
        self._check_length()

    def _check_length(self) -> None:
        expected = self.info.expected_frames
        if expected is None:
            return
        tolerance = 1 if self.info.expected_frames_estimated else 0
        if self.frames_decoded < expected - tolerance:
            logger.warning(
                "%s: input ended early: %d of %d frames", self.path.name, self.frames_decoded, expected
            )

    def _decode_images(self, worker: QueueWorker) -> None:
        info = self.info
        files = list_image_files(self.path) if self.path.is_dir() else [self.path]
        expected_dtype = np.uint16 if info.is_deep else np.uint8
        alpha_warned = False
        for index, file in enumerate(files):
            image, had_alpha = read_image_with_alpha_flag(file)
            if had_alpha and not alpha_warned:
                logger.warning("%s: dropping the alpha channel; outputs are RGB without transparency", file.name)
                alpha_warned = True
            if image.shape != (info.height, info.width, 3):
                raise InvalidInputError(
                    f"image {file} is {image.shape[1]}x{image.shape[0]} but the first image is "
                    f"{info.width}x{info.height}; all images of a sequence must have the same size"
                )
            if image.dtype != expected_dtype:
                raise InvalidInputError(
                    f"image {file} has {image.dtype} samples but the first image has {np.dtype(expected_dtype)}; "
                    "all images of a sequence must have the same bit depth"
                )
            worker.emit(VideoFrame(index=index, pts=index, time=float(index * info.time_base), image=image))
            self.frames_decoded += 1
