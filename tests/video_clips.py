"""Small synthetic clips written with PyAV, for the video tests and benchmark."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def moving_pattern(index: int, width: int, height: int) -> np.ndarray:
    """Return a smooth RGB uint8 frame that shifts with ``index`` so frames differ."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    red = 128 + 100 * np.sin((xs + 3 * index) / 9.0)
    green = 128 + 100 * np.cos((ys - 2 * index) / 7.0)
    blue = 128 + 90 * np.sin((xs + ys + 5 * index) / 13.0)
    return np.stack([red, green, blue], axis=-1).round().clip(0, 255).astype(np.uint8)


def make_clip(
    path: Path,
    *,
    width: int = 64,
    height: int = 48,
    num_frames: int = 25,
    fps: int = 25,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    time_base: Fraction | None = None,
    pts: list[int] | None = None,
    bframes: int = 2,
    audio: bool = False,
    audio_start_s: float = 0.0,
    subtitles: list[tuple[float, float, str]] | None = None,
    rotation: int = 0,
    colorspace: int | None = None,
    color_range: int | None = None,
    frames: list[np.ndarray] | None = None,
) -> Path:
    """Encode a clip and return its path.

    ``pts`` gives each frame's timestamp in ``time_base`` (default ``1/fps``), for variable frame
    rate clips. ``subtitles`` are ``(start_s, end_s, text)`` SubRip cues (MKV only). ``frames``
    replaces the moving pattern with given ``(H, W, 3)`` uint8 or uint16 RGB images.
    """
    time_base = time_base or Fraction(1, fps)
    container = av.open(str(path), mode="w")
    options = {"preset": "ultrafast", "crf": "10"} if codec in ("libx264", "libx265") else {}
    if codec == "libx264":
        # ultrafast disables B-frames; switch them back on so the decoder reorders frames.
        options["x264-params"] = f"bframes={bframes}:b-adapt=0"
    stream = container.add_stream(codec, rate=fps, options=options)
    stream.width = width
    stream.height = height
    stream.pix_fmt = pix_fmt
    stream.time_base = time_base
    stream.codec_context.time_base = time_base
    if colorspace is not None:
        stream.codec_context.colorspace = colorspace
    if color_range is not None:
        stream.codec_context.color_range = color_range
    if rotation:
        stream.set_display_rotation(rotation)

    audio_stream = container.add_stream("aac", rate=48000, layout="mono") if audio else None
    subtitle_stream = container.add_mux_stream("subrip") if subtitles else None
    if subtitle_stream is not None:
        subtitle_stream.time_base = Fraction(1, 1000)

    for index in range(num_frames):
        image = frames[index] if frames is not None else moving_pattern(index, width, height)
        rgb_format = "rgb48le" if image.dtype == np.uint16 else "rgb24"
        frame = av.VideoFrame.from_ndarray(image, format=rgb_format)
        reformat = {"format": pix_fmt}
        if colorspace is not None:
            reformat["dst_colorspace"] = {1: "ITU709", 5: "ITU601", 6: "ITU601"}[colorspace]
        if color_range is not None:
            reformat["src_color_range"] = "JPEG"
            reformat["dst_color_range"] = {1: "MPEG", 2: "JPEG"}[color_range]
        frame = frame.reformat(**reformat)
        frame.pts = pts[index] if pts is not None else round(Fraction(index, fps) / time_base)
        frame.time_base = time_base
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))

    if audio_stream is not None:
        _write_audio(container, audio_stream, seconds=num_frames / fps, start_s=audio_start_s)
    if subtitle_stream is not None:
        for start_s, end_s, text in subtitles:
            packet = av.Packet(text.encode())
            packet.stream = subtitle_stream
            packet.pts = packet.dts = round(start_s * 1000)
            packet.duration = round((end_s - start_s) * 1000)
            packet.time_base = Fraction(1, 1000)
            container.mux(packet)
    container.close()
    return path


def _write_audio(container, stream, *, seconds: float, start_s: float) -> None:
    samples_per_frame = 1024
    total = int(seconds * 48000)
    start = round(start_s * 48000)
    for offset in range(0, total, samples_per_frame):
        t = (np.arange(samples_per_frame) + offset) / 48000
        tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None, :]
        frame = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
        frame.sample_rate = 48000
        frame.pts = start + offset
        frame.time_base = Fraction(1, 48000)
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))
