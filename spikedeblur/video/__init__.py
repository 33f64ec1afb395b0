"""Streaming video input and output.

Read frames with :class:`VideoReader` (video files, image folders, single images) and write them
with :func:`open_video_writer`, which returns a :class:`VideoWriter` for video files or an
:class:`ImageSequenceWriter` for a folder or ``%06d.png`` pattern. :func:`probe` describes an input
before decoding. See ``docs/video-io.md`` for the decisions on colour, rotation and timestamps.
"""

from __future__ import annotations

from pathlib import Path

from spikedeblur.video.colour import ColorTags, YuvConversion
from spikedeblur.video.encode_options import ENCODE_PRESETS, EncodeOptions, check_encoder_available
from spikedeblur.video.image_writer import ImageSequenceWriter, is_image_sequence_target
from spikedeblur.video.info import StreamInfo, VideoInfo, probe
from spikedeblur.video.reader import VideoFrame, VideoReader
from spikedeblur.video.writer import VideoWriter


def open_video_writer(
    path: Path | str,
    *,
    source: VideoInfo | None,
    options: EncodeOptions | None = None,
    overwrite: bool = False,
    copy_streams_from: Path | None = None,
    inputs: tuple[Path, ...] = (),
) -> VideoWriter | ImageSequenceWriter:
    """Return a PNG-sequence writer for a folder or ``%d`` pattern, else a video writer.

    Both are context managers with ``write(image, *, pts=None, time=None)``; see their classes.
    """
    if is_image_sequence_target(path):
        return ImageSequenceWriter(path, source=source, overwrite=overwrite, inputs=inputs)
    return VideoWriter(
        Path(path),
        source=source,
        options=options,
        overwrite=overwrite,
        copy_streams_from=copy_streams_from,
        inputs=inputs,
    )


__all__ = [
    "ENCODE_PRESETS",
    "ColorTags",
    "EncodeOptions",
    "ImageSequenceWriter",
    "StreamInfo",
    "VideoFrame",
    "VideoInfo",
    "VideoReader",
    "VideoWriter",
    "YuvConversion",
    "check_encoder_available",
    "open_video_writer",
    "probe",
]
