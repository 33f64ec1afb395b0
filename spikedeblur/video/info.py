"""Stream facts known before decoding: :class:`VideoInfo` and :func:`probe`."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import av.error

from spikedeblur.errors import InputNotFoundError, InvalidInputError
from spikedeblur.video.colour import ColorTags, YuvConversion, resolve_yuv_conversion
from spikedeblur.video.images import is_image_file, list_image_files, read_image_rgb

logger = logging.getLogger(__name__)

# Image folders carry no frame rate; this one is assumed unless the caller gives another.
DEFAULT_IMAGE_FPS = Fraction(25)

_MP4_LIKE_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".3gp"})


@dataclass(frozen=True)
class StreamInfo:
    """One audio or subtitle stream of the input, described for ``info`` and for stream copying."""

    index: int
    kind: str  # "audio" or "subtitle"
    codec: str
    language: str | None = None
    title: str | None = None
    sample_rate: int | None = None
    channels: int | None = None
    layout: str | None = None

    def describe(self) -> str:
        """Return a one-line description such as ``aac 48000 Hz 5.1 (eng)``."""
        parts = [self.codec]
        if self.sample_rate:
            parts.append(f"{self.sample_rate} Hz")
        if self.layout:
            parts.append(self.layout)
        if self.language:
            parts.append(f"({self.language})")
        if self.title:
            parts.append(f'"{self.title}"')
        return " ".join(parts)


@dataclass(frozen=True)
class VideoInfo:
    """Facts about a video file or image sequence, known before its frames are decoded.

    ``width`` and ``height`` are the size of the frames the reader yields, which is the coded size.
    The reader does not apply the rotation tag. It reports the tag in ``rotation`` (degrees, as
    FFmpeg's display matrix gives them), and the writer copies it to the output.
    ``num_frames`` is counted from the packets when ``num_frames_exact`` is true; otherwise it is an
    estimate from the container's duration and frame rate. ``expected_frames`` is what the container
    header promises: its frame count, or else its duration times the frame rate (then
    ``expected_frames_estimated`` is true), or None. The reader compares it with the frames it
    decoded to detect files that end early.
    """

    path: Path
    width: int
    height: int
    fps: Fraction
    num_frames: int
    num_frames_exact: bool
    duration_s: float
    time_base: Fraction
    start_pts: int
    codec: str
    pix_fmt: str
    bit_depth: int
    rotation: int = 0
    color: ColorTags = field(default_factory=ColorTags)
    conversion: YuvConversion | None = None
    container_format: str = ""
    audio_streams: tuple[StreamInfo, ...] = ()
    subtitle_streams: tuple[StreamInfo, ...] = ()
    is_image_sequence: bool = False
    fps_assumed: bool = False
    expected_frames: int | None = None
    expected_frames_estimated: bool = False
    video_stream_index: int = 0

    @property
    def is_deep(self) -> bool:
        """True when samples have more than 8 bits, so frames come as uint16."""
        return self.bit_depth > 8


def probe(path: Path, *, count_frames: bool = True, image_fps: Fraction | float | None = None) -> VideoInfo:
    """Describe a video file, an image folder or a single image without decoding all of it.

    With ``count_frames`` the video packets are read (not decoded) to count frames exactly. That
    reads the whole file but costs no decoding. Without it the count is estimated from metadata.
    ``image_fps`` sets the frame rate of an image folder (25 when None).
    Raises InputNotFoundError for a missing path and InvalidInputError for anything unreadable.
    """
    path = Path(path)
    if not path.exists():
        raise InputNotFoundError(f"input {path} does not exist; check the path")
    if path.is_dir() or is_image_file(path):
        return _probe_images(path, image_fps)
    return _probe_video(path, count_frames=count_frames)


def _probe_images(path: Path, image_fps: Fraction | float | None) -> VideoInfo:
    files = list_image_files(path) if path.is_dir() else [path]
    first = read_image_rgb(files[0])
    fps = Fraction(image_fps).limit_denominator(1001000) if image_fps else DEFAULT_IMAGE_FPS
    if fps <= 0:
        raise InvalidInputError(f"frame rate {image_fps} is invalid; give a positive number")
    bit_depth = 16 if first.dtype.itemsize == 2 else 8

    return VideoInfo(
        path=path,
        width=first.shape[1],
        height=first.shape[0],
        fps=fps,
        num_frames=len(files),
        num_frames_exact=True,
        duration_s=float(len(files) / fps),
        time_base=1 / fps,
        start_pts=0,
        codec=files[0].suffix.lower().lstrip("."),
        pix_fmt="rgb48le" if bit_depth == 16 else "rgb24",
        bit_depth=bit_depth,
        container_format="image folder" if path.is_dir() else "image",
        is_image_sequence=True,
        fps_assumed=image_fps is None,
        expected_frames=len(files),
    )


@contextlib.contextmanager
def open_video_container(path: Path) -> Iterator[av.container.InputContainer]:
    """Open ``path`` with PyAV, turning FFmpeg's errors into one-line InvalidInputErrors."""
    try:
        container = av.open(str(path), mode="r")
    except av.error.FFmpegError as error:
        raise InvalidInputError(_describe_open_failure(path, error)) from error
    try:
        yield container
    finally:
        container.close()


def _describe_open_failure(path: Path, error: Exception) -> str:
    if path.suffix.lower() in _MP4_LIKE_SUFFIXES and _mp4_lacks_index(path):
        return (
            f"input {path} is an MP4/MOV file whose index (moov box) was never written, usually because "
            "the recording or encoding stopped early; it cannot be read, re-record or recover it with an "
            "MP4 repair tool"
        )
    return f"input {path} is not a readable video or image file ({error.strerror or error})"


def _mp4_lacks_index(path: Path) -> bool:
    """Return True when ``path`` starts with an ISO-BMFF ``ftyp`` box but has no top-level ``moov``."""
    boxes = []
    size_total = path.stat().st_size
    with path.open("rb") as file:
        offset = 0
        while offset + 8 <= size_total and len(boxes) < 10000:
            file.seek(offset)
            header = file.read(16)
            size = int.from_bytes(header[:4], "big")
            boxes.append(header[4:8])
            if size == 1 and len(header) == 16:
                size = int.from_bytes(header[8:16], "big")
            if size == 0:
                break  # the box runs to the end of the file
            if size < 8:
                return False  # not a box structure we understand
            offset += size
    return bool(boxes) and boxes[0] == b"ftyp" and b"moov" not in boxes


def select_video_stream(container: av.container.InputContainer, path: Path) -> av.video.stream.VideoStream:
    """Return the first video stream that is not a cover picture; raise if there is none."""
    for stream in container.streams.video:
        if stream.disposition & av.stream.Disposition.attached_pic:
            continue
        if stream.codec_context is None:
            raise InvalidInputError(f"input {path} has a video stream FFmpeg cannot decode; re-encode it first")
        return stream
    raise InvalidInputError(f"input {path} has no video stream")


def stream_by_index(container, index: int):
    """Return the stream whose ``index`` (its position in the file) is ``index``."""
    return next(stream for stream in container.streams if stream.index == index)


def _probe_video(path: Path, *, count_frames: bool) -> VideoInfo:
    with open_video_container(path) as container:
        stream = select_video_stream(container, path)
        first_frame = _decode_first_frame(container, stream, path)
        time_base = stream.time_base or Fraction(1, 90000)
        fps = Fraction(stream.average_rate or stream.guessed_rate or stream.base_rate or 25)
        declared_frames = stream.frames or None
        duration_s = _declared_duration(container, stream)
        audio, subtitles = _describe_other_streams(container)
        codec = stream.codec_context.name
        container_format = container.format.name
        stream_index = stream.index

    pix_fmt = first_frame.format.name
    tags = ColorTags(
        space=int(first_frame.colorspace),
        range=int(first_frame.color_range),
        primaries=int(first_frame.color_primaries),
        trc=int(first_frame.color_trc),
    )
    video_format = av.VideoFormat(pix_fmt)
    conversion = None
    if not video_format.is_rgb:
        conversion = resolve_yuv_conversion(tags, width=first_frame.width, height=first_frame.height, pix_fmt=pix_fmt)

    start_pts = first_frame.pts if first_frame.pts is not None else 0
    expected_frames = declared_frames
    if expected_frames is None and duration_s > 0:
        expected_frames = round(duration_s * fps)
    if count_frames:
        num_frames, counted_duration = _count_packets(path, stream_index, time_base)
        exact = True
        if counted_duration is not None:
            duration_s = counted_duration
    else:
        num_frames = expected_frames or 0
        exact = False

    return VideoInfo(
        path=path,
        width=first_frame.width,
        height=first_frame.height,
        fps=fps,
        num_frames=num_frames,
        num_frames_exact=exact,
        duration_s=duration_s,
        time_base=Fraction(time_base),
        start_pts=start_pts,
        codec=codec,
        pix_fmt=pix_fmt,
        bit_depth=max(component.bits for component in video_format.components),
        rotation=int(first_frame.rotation or 0),
        color=tags,
        conversion=conversion,
        container_format=container_format,
        audio_streams=audio,
        subtitle_streams=subtitles,
        expected_frames=expected_frames,
        expected_frames_estimated=declared_frames is None,
        video_stream_index=stream_index,
    )


def _decode_first_frame(container, stream, path: Path) -> av.VideoFrame:
    try:
        for frame in container.decode(stream):
            return frame
    except av.error.FFmpegError as error:
        raise InvalidInputError(f"input {path} cannot be decoded ({error.strerror or error})") from error
    raise InvalidInputError(f"input {path} contains no decodable video frames")


def _declared_duration(container, stream) -> float:
    """Return the video duration declared by the headers in seconds, or 0.0 when none is declared."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    # The Matroska muxer stores each stream's end time as a tag such as "00:00:01.000000000", so a
    # stream that starts late has a shorter duration than the tag.
    tag = (stream.metadata or {}).get("DURATION")
    if tag:
        with contextlib.suppress(ValueError):
            hours, minutes, seconds = tag.split(":")
            end_s = int(hours) * 3600 + int(minutes) * 60 + float(seconds)
            start_s = float(stream.start_time * stream.time_base) if stream.start_time and stream.time_base else 0.0
            return max(end_s - start_s, 0.0)
    # The container's duration covers every stream, so it is the video's only when there is no other.
    if container.duration and len(container.streams) == 1:
        return container.duration / av.time_base
    return 0.0


def _describe_other_streams(container) -> tuple[tuple[StreamInfo, ...], tuple[StreamInfo, ...]]:
    audio = []
    subtitles = []
    for stream in container.streams:
        metadata = stream.metadata or {}
        language = metadata.get("language")
        language = None if language in (None, "und") else language
        codec_context = stream.codec_context
        if codec_context is not None:
            codec = codec_context.name
        elif stream.codec is not None:
            codec = stream.codec.name
        else:
            codec = "unknown"
        if stream.type == "audio":
            audio.append(
                StreamInfo(
                    index=stream.index,
                    kind="audio",
                    codec=codec,
                    language=language,
                    title=metadata.get("title"),
                    sample_rate=codec_context.sample_rate or None,
                    channels=codec_context.channels or None,
                    layout=codec_context.layout.name if codec_context.layout else None,
                )
            )
        elif stream.type == "subtitle":
            subtitles.append(
                StreamInfo(index=stream.index, kind="subtitle", codec=codec, language=language, title=metadata.get("title"))
            )
    return tuple(audio), tuple(subtitles)


def _count_packets(path: Path, stream_index: int, time_base: Fraction) -> tuple[int, float | None]:
    """Count the video packets and measure the span of their timestamps, without decoding."""
    count = 0
    first_pts = None
    end_pts = None
    with open_video_container(path) as container:
        stream = stream_by_index(container, stream_index)
        try:
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue  # the demuxer's flush packet
                count += 1
                if packet.pts is None:
                    continue
                first_pts = packet.pts if first_pts is None else min(first_pts, packet.pts)
                packet_end = packet.pts + (packet.duration or 0)
                end_pts = packet_end if end_pts is None else max(end_pts, packet_end)
        except av.error.FFmpegError as error:
            logger.warning("reading %s stopped after %d video packets: %s", path, count, error.strerror or error)

    if first_pts is None or end_pts is None:
        return count, None
    return count, float((end_pts - first_pts) * time_base)
