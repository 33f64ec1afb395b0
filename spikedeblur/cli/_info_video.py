"""The video part of ``spikedeblur info``: codec, size, rate, frames, colour, streams."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from spikedeblur.cli._app import stdout_console


def describe_video(path: Path) -> dict[str, Any]:
    """Collect the facts ``info`` reports for a video file, image folder or image."""
    from spikedeblur.video import probe

    info = probe(path)
    colour = info.color.names()
    conversion = info.conversion
    facts: dict[str, Any] = {
        "path": str(path),
        "kind": "image-sequence" if info.is_image_sequence else "video",
        "container": info.container_format,
        "codec": info.codec,
        "width": info.width,
        "height": info.height,
        "pix_fmt": info.pix_fmt,
        "bit_depth": info.bit_depth,
        "fps": float(info.fps),
        "fps_fraction": str(info.fps),
        "fps_assumed": info.fps_assumed,
        "frames": info.num_frames,
        "frames_counted": info.num_frames_exact,
        "frames_declared": info.expected_frames,
        "duration_s": info.duration_s,
        "time_base": str(info.time_base),
        "start_time_s": float(info.start_pts * info.time_base),
        "rotation": info.rotation,
        "color_space": colour["space"],
        "color_range": colour["range"],
        "color_primaries": colour["primaries"],
        "color_transfer": colour["trc"],
        "decode_matrix": None,
        "decode_range": None,
        "audio": [_stream_json(stream) for stream in info.audio_streams],
        "subtitles": [_stream_json(stream) for stream in info.subtitle_streams],
    }
    if conversion is not None:
        from spikedeblur.video.colour import RANGE_NAMES, SPACE_NAMES

        facts["decode_matrix"] = SPACE_NAMES[conversion.space] + (" (assumed)" if conversion.space_guessed else "")
        facts["decode_range"] = RANGE_NAMES[conversion.range] + (" (assumed)" if conversion.range_guessed else "")
    return facts


def _stream_json(stream) -> dict[str, Any]:
    return {
        "index": stream.index,
        "codec": stream.codec,
        "language": stream.language,
        "title": stream.title,
        "sample_rate": stream.sample_rate,
        "channels": stream.channels,
        "layout": stream.layout,
    }


def _describe_stream(stream: dict[str, Any]) -> str:
    parts = [f"#{stream['index']} {stream['codec']}"]
    if stream["sample_rate"]:
        parts.append(f"{stream['sample_rate']} Hz")
    if stream["layout"]:
        parts.append(stream["layout"])
    if stream["language"]:
        parts.append(f"({stream['language']})")
    if stream["title"]:
        parts.append(f'"{stream["title"]}"')
    return " ".join(parts)


def show_video_info(path: Path, *, json_output: bool) -> None:
    """Print what ``info`` reports for a video, as text or as JSON on stdout."""
    facts = describe_video(path)
    if json_output:
        stdout_console.print_json(json.dumps(facts))
        return

    out = stdout_console.print
    out(f"[bold]{facts['path']}[/]", markup=True)
    out(f"  format           {facts['container']}, {facts['codec']}")
    out(f"  size             {facts['width']}x{facts['height']} (width x height, as decoded, before rotation)")
    fps_note = " (assumed; set it with --fps)" if facts["fps_assumed"] else ""
    out(f"  frame rate       {facts['fps']:g} fps ({facts['fps_fraction']}){fps_note}")
    frames_note = "counted" if facts["frames_counted"] else "estimated from the duration"
    out(f"  frames           {facts['frames']} ({frames_note})")
    out(f"  duration         {facts['duration_s']:.3f} s, starting at {facts['start_time_s']:.3f} s")
    out(f"  time base        {facts['time_base']}")
    out(f"  pixel format     {facts['pix_fmt']}, {facts['bit_depth']}-bit")
    out(f"  rotation         {facts['rotation']} degrees" + (" (carried to outputs, not applied)" if facts["rotation"] else ""))
    out(
        f"  colour tags      matrix {facts['color_space']}, range {facts['color_range']}, "
        f"primaries {facts['color_primaries']}, transfer {facts['color_transfer']}"
    )
    if facts["decode_matrix"]:
        out(f"  decoded with     matrix {facts['decode_matrix']}, range {facts['decode_range']}")
    audio = ", ".join(_describe_stream(stream) for stream in facts["audio"]) or "none"
    subtitles = ", ".join(_describe_stream(stream) for stream in facts["subtitles"]) or "none"
    out(f"  audio            {audio}")
    out(f"  subtitles        {subtitles}")
