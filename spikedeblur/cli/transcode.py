"""``spikedeblur transcode``: decode and re-encode a video with the writer's options, no model."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from spikedeblur.cli._app import global_options, stderr_console, stdout_console
from spikedeblur.cli._video_options import (
    CodecOption,
    CrfOption,
    EncoderOptionOption,
    EvenSize,
    EvenSizeOption,
    NoAudioOption,
    OutputOption,
    OverwriteOption,
    PixelFormatOption,
    PresetOption,
    build_encode_options,
    resolve_output_path,
)

logger = logging.getLogger(__name__)


def transcode(
    input_path: Annotated[
        Path, typer.Argument(metavar="INPUT", help="Video file, folder of images (PNG/JPEG/TIFF) or single image.")
    ],
    output: OutputOption = None,
    codec: CodecOption = "libx264",
    crf: CrfOption = None,
    preset: PresetOption = None,
    encoder_option: EncoderOptionOption = None,
    pixel_format: PixelFormatOption = None,
    even_size: EvenSizeOption = EvenSize.pad,
    no_audio: NoAudioOption = False,
    overwrite: OverwriteOption = False,
    fps: Annotated[
        float | None,
        typer.Option("--fps", min=0.001, help="Frame rate of an image-folder input, in frames per second. Default 25."),
    ] = None,
) -> None:
    """Re-encode a video frame by frame through spikedeblur's reader and writer, without a model.

    Keeps every frame and timestamp, copies audio and subtitles, and keeps bit depth, colour tags
    and rotation. Useful for re-encoding and for checking the video path end to end.

    Examples:

      spikedeblur transcode clip.mov -o clip.mp4 --crf 20

      spikedeblur transcode clip.mp4 --codec ffv1 -o lossless.mkv

      spikedeblur transcode clip.mp4 -o frames/%06d.png
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from spikedeblur.video import VideoReader, open_video_writer

    options = build_encode_options(
        codec=codec,
        crf=crf,
        preset=preset,
        encoder_option=encoder_option,
        pixel_format=pixel_format,
        even_size=even_size,
        no_audio=no_audio,
    )
    output_path = resolve_output_path(input_path, output, "transcode")

    with VideoReader(input_path, image_fps=fps) as reader:
        info = reader.info
        copy_from = None if info.is_image_sequence else input_path
        writer = open_video_writer(
            output_path,
            source=info,
            options=options,
            overwrite=overwrite,
            copy_streams_from=copy_from,
            inputs=(input_path,),
        )
        progress = Progress(
            TextColumn("transcode"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=stderr_console,
            disable=not global_options.show_progress,
            transient=True,
        )
        with writer, progress:
            task = progress.add_task("frames", total=info.num_frames if info.num_frames_exact else None)
            for frame in reader:
                writer.write(frame.image, pts=frame.pts)
                progress.advance(task)

    logger.info("transcoded %d frames", writer.frames_written)
    stdout_console.print(str(output_path))


def register(app: typer.Typer) -> None:
    """Add ``transcode`` to ``app``."""
    app.command("transcode")(transcode)
