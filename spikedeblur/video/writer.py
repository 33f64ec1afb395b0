"""Streaming video writer: encodes on a background thread, copies audio/subtitles, writes atomically."""

from __future__ import annotations

import contextlib
import logging
from fractions import Fraction
from pathlib import Path

import av
import av.error
import numpy as np
from av.video.reformatter import ColorRange, Interpolation

from spikedeblur.errors import InvalidInputError
from spikedeblur.fileio import atomic_output
from spikedeblur.video._worker import END, QueueWorker
from spikedeblur.video.colour import FULL_RANGE, ColorTags, YuvConversion, resolve_yuv_conversion
from spikedeblur.video.encode_options import (
    EncodeOptions,
    check_encoder_available,
    check_encoder_option_names,
    choose_pixel_format,
    even_size_for,
    pixel_format_depth,
)
from spikedeblur.video.info import VideoInfo
from spikedeblur.video.stream_copy import StreamCopier

logger = logging.getLogger(__name__)

# Accurate rounding keeps colours within a level of the truth. FULL_CHR_H_INT is left out because
# with it swscale (FFmpeg 8, PyAV 18.1) returns a zero green channel for 10-bit to rgb48le.
_SWSCALE_FLAGS = Interpolation.BILINEAR | Interpolation.ACCURATE_RND

# Frame rate and time base for writers given no source; 1/90000 s resolves any common frame rate.
_DEFAULT_FPS = Fraction(25)
_DEFAULT_TIME_BASE = Fraction(1, 90000)


def to_rgb_array(image: np.ndarray, *, deep: bool) -> np.ndarray:
    """Convert ``(H, W, 3)`` uint8, uint16 or float32 in [0, 1] RGB to uint16 if ``deep`` else uint8."""
    if image.ndim != 3 or image.shape[2] != 3:
        raise InvalidInputError(f"frame of shape {image.shape} is invalid; give (H, W, 3) RGB")
    if image.dtype == np.uint8:
        return image.astype(np.uint16) * 257 if deep else image
    if image.dtype == np.uint16:
        if deep:
            return image
        return ((image.astype(np.uint32) + 128) // 257).astype(np.uint8)
    if image.dtype in (np.float32, np.float64, np.float16):
        scale = 65535.0 if deep else 255.0
        scaled = np.clip(image, 0.0, 1.0) * scale + 0.5
        return scaled.astype(np.uint16 if deep else np.uint8)
    raise InvalidInputError(f"frame dtype {image.dtype} is invalid; give uint8, uint16 or float32 in [0, 1]")


def fit_to_size(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Pad by repeating the last row/column, or crop, so that ``image`` is ``height`` x ``width``."""
    image = image[:height, :width]
    pad_rows = height - image.shape[0]
    pad_columns = width - image.shape[1]
    if pad_rows or pad_columns:
        image = np.pad(image, ((0, pad_rows), (0, pad_columns), (0, 0)), mode="edge")
    return image


class VideoWriter:
    """Encode RGB frames into a video file, atomically.

    Frames are converted and encoded on a background thread behind a bounded queue, so ``write``
    returns as soon as the frame is queued. The file is written to a temporary path beside
    ``path`` and renamed onto it only when the ``with`` block ends without an exception. On any
    exception or Ctrl-C the temporary file is removed and ``path`` is left untouched.

    ``source`` supplies the frame size, frame rate, time base, bit depth, colour tags and rotation
    of the output. Without it the size comes from the first frame, the rate is 25 fps, the time base
    1/90000 s and the depth 8 bits. With
    ``copy_streams_from``, that file's audio and subtitle streams are copied packet for packet.
    """

    def __init__(
        self,
        path: Path,
        *,
        source: VideoInfo | None,
        options: EncodeOptions | None = None,
        overwrite: bool = False,
        copy_streams_from: Path | None = None,
        inputs: tuple[Path, ...] = (),
        queue_size: int = 8,
    ) -> None:
        self.path = Path(path)
        self.source = source
        self.options = options or EncodeOptions()
        self._overwrite = overwrite
        self._copy_streams_from = Path(copy_streams_from) if copy_streams_from else None
        self._inputs = tuple(Path(p) for p in inputs) + ((self._copy_streams_from,) if copy_streams_from else ())
        self._queue_size = queue_size

        self._codec = check_encoder_available(self.options.codec)
        check_encoder_option_names(self.options.codec, list(self.options.codec_options()))
        bit_depth = source.bit_depth if source is not None else 8
        source_pix_fmt = source.pix_fmt if source is not None and not source.is_image_sequence else None
        self.pix_fmt = choose_pixel_format(
            self._codec, source_pix_fmt=source_pix_fmt, bit_depth=bit_depth, requested=self.options.pixel_format
        )
        self.deep = pixel_format_depth(self.pix_fmt) > 8

        self._stack = contextlib.ExitStack()
        self._container: av.container.OutputContainer | None = None
        self._stream = None
        self._copier: StreamCopier | None = None
        self._worker: QueueWorker | None = None
        self._entered = False
        self.frames_written = 0
        self._last_pts: int | None = None

    # --- lifecycle ---

    def __enter__(self) -> VideoWriter:
        temp_path = self._stack.enter_context(atomic_output(self.path, overwrite=self._overwrite, inputs=self._inputs))
        self._temp_path = temp_path
        self._entered = True
        try:
            if self.source is not None:
                self._open(self.source.width, self.source.height)
        except BaseException as error:
            self._abort(error)
            raise
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        if exc_type is not None:
            self._abort(exc)
            return
        try:
            self._finish()
        except BaseException as error:
            self._abort(error)
            raise
        self._stack.close()  # renames the temporary file onto the target

    def _abort(self, error: BaseException) -> None:
        """Stop encoding and delete the temporary file, leaving the target untouched."""
        if self._worker is not None:
            self._worker.stop()
            self._worker = None
        self._close_files()
        # Handing the exception to atomic_output makes it delete the temporary file.
        self._stack.__exit__(type(error), error, error.__traceback__)

    def _close_files(self) -> None:
        if self._copier is not None:
            self._copier.close()
            self._copier = None
        if self._container is not None:
            with contextlib.suppress(av.error.FFmpegError, OSError):
                self._container.close()
            self._container = None

    def _finish(self) -> None:
        if self.frames_written == 0:
            # A video without frames is not playable, so it is not kept even when the encoder is open.
            raise InvalidInputError(f"no frames were written to {self.path}; nothing to encode")
        self._worker.finish()
        self._worker = None
        self._container.close()
        self._container = None
        if self._copier is not None:
            self._copier.close()
            self._copier = None
        logger.debug("encoded %d frames into %s", self.frames_written, self.path)

    # --- opening the encoder ---

    def _open(self, width: int, height: int) -> None:
        source = self.source
        options = self.options
        self.input_size = (width, height)
        self.output_size = even_size_for(self.pix_fmt, width, height, options.even_size)
        if self.output_size != self.input_size:
            action = "padding" if options.even_size == "pad" else "cropping"
            logger.info(
                "%s needs even sizes: %s %dx%d to %dx%d", self.pix_fmt, action, width, height, *self.output_size
            )

        fps = source.fps if source is not None else _DEFAULT_FPS
        self.time_base = source.time_base if source is not None else _DEFAULT_TIME_BASE
        self.fps = fps
        self._start_pts = source.start_pts if source is not None else 0

        try:
            container = av.open(str(self._temp_path), mode="w", format=_format_for(self.path))
        except (av.error.FFmpegError, ValueError) as error:
            raise InvalidInputError(
                f"cannot write {self.path}: unknown container for suffix {self.path.suffix!r}; use .mp4, .mkv or .mov"
            ) from error
        self._container = container
        codec_id = self._codec.canonical_name
        if codec_id not in container.supported_codecs:
            raise InvalidInputError(
                f"the {container.format.name} container of {self.path.name} cannot hold {options.codec} "
                f"({codec_id}) video; use .mkv, or choose another encoder with --codec"
            )

        stream = container.add_stream(options.codec, rate=fps, options=options.codec_options())
        stream.width, stream.height = self.output_size
        stream.pix_fmt = self.pix_fmt
        stream.time_base = self.time_base
        stream.codec_context.time_base = self.time_base
        self._conversion = self._output_conversion()
        self._tag_colour(stream.codec_context)
        if source is not None and source.rotation:
            stream.set_display_rotation(source.rotation)
        self._stream = stream

        if self._copy_streams_from is not None:
            self._copier = StreamCopier(
                self._copy_streams_from,
                container,
                copy_audio=options.copy_audio,
                copy_subtitles=options.copy_subtitles,
            )

        try:
            container.start_encoding()
        except av.error.FFmpegError as error:
            raise InvalidInputError(
                f"encoder {options.codec} rejected its settings ({error.strerror or error}); "
                f"check --crf, --preset, --pixel-format and -e options {options.codec_options()}"
            ) from error

        self._worker = QueueWorker(self._encode_loop, maxsize=self._queue_size, name=f"encode {self.path.name}")
        self._worker.start()

    def _output_conversion(self) -> YuvConversion | None:
        if av.VideoFormat(self.pix_fmt).is_rgb:
            return None
        source = self.source
        if source is not None and source.conversion is not None:
            return source.conversion
        width, height = self.output_size
        return resolve_yuv_conversion(ColorTags(), width=width, height=height, pix_fmt=self.pix_fmt)

    def _tag_colour(self, codec_context) -> None:
        tags = self.source.color if self.source is not None else ColorTags()
        if self._conversion is not None:
            # Tag the matrix and range used to encode, so players do not guess differently.
            codec_context.colorspace = self._conversion.space
            codec_context.color_range = self._conversion.range
        if tags.primaries != ColorTags().primaries:
            codec_context.color_primaries = tags.primaries
        if tags.trc != ColorTags().trc:
            codec_context.color_trc = tags.trc

    # --- writing ---

    def write(self, image: np.ndarray, *, pts: int | None = None, time: float | None = None) -> None:
        """Queue one ``(H, W, 3)`` RGB frame (uint8, uint16, or float32 in [0, 1]) for encoding.

        ``pts`` is in the source time base. Without it, ``time`` (seconds) is converted to the time
        base. Without both, the frame is placed one frame interval after the previous one.
        Timestamps must increase strictly.
        """
        if not self._entered:
            raise RuntimeError("use VideoWriter as a context manager: with VideoWriter(...) as writer")
        if self._container is None:
            self._open(image.shape[1], image.shape[0])

        width, height = self.input_size
        if image.shape[:2] != (height, width):
            raise InvalidInputError(
                f"frame {self.frames_written} is {image.shape[1]}x{image.shape[0]} but the output is {width}x{height}"
            )
        pts = self._resolve_pts(pts, time)
        self._worker.put((image, pts))
        self.frames_written += 1

    def _resolve_pts(self, pts: int | None, time: float | None) -> int:
        if pts is None and time is not None:
            pts = round(Fraction(time).limit_denominator(10**9) / self.time_base)
        if pts is None:
            pts = self._start_pts + round(Fraction(self.frames_written) / self.fps / self.time_base)
        if self._last_pts is not None and pts <= self._last_pts:
            raise InvalidInputError(
                f"frame {self.frames_written} has timestamp {pts}, not after the previous {self._last_pts}; "
                "timestamps must increase strictly"
            )
        self._last_pts = pts
        return int(pts)

    def _encode_loop(self, worker: QueueWorker) -> None:
        container = self._container
        stream = self._stream
        width, height = self.output_size
        rgb_format = "rgb48le" if self.deep else "rgb24"
        conversion = self._conversion
        reformat_kwargs = {"format": self.pix_fmt, "interpolation": _SWSCALE_FLAGS}
        if conversion is not None:
            reformat_kwargs.update(
                src_color_range=ColorRange.JPEG,
                dst_colorspace=conversion.swscale_matrix,
                dst_color_range=ColorRange.JPEG if conversion.range == FULL_RANGE else ColorRange.MPEG,
            )

        while True:
            item = worker.receive()
            if item is END:
                break
            image, pts = item
            array = fit_to_size(to_rgb_array(image, deep=self.deep), width, height)
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format=rgb_format)
            frame = frame.reformat(**reformat_kwargs)
            frame.pts = pts
            frame.time_base = self.time_base
            if self._copier is not None:
                self._copier.copy_until(float(pts * self.time_base), container)
            container.mux(stream.encode(frame))

        container.mux(stream.encode(None))
        if self._copier is not None:
            self._copier.copy_rest(container)


def _format_for(path: Path) -> str | None:
    """Return the muxer for ``path``'s suffix, or None to let FFmpeg guess from the temporary name."""
    return {".mkv": "matroska", ".mp4": "mp4", ".mov": "mov", ".webm": "webm", ".avi": "avi", ".m4v": "mp4"}.get(
        path.suffix.lower()
    )
