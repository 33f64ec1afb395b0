"""Options shared by the commands that write video (``transcode``, ``run``) and their parsing."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from spikedeblur.errors import InvalidInputError
from spikedeblur.fileio import default_output_path

_HELP_PANEL = "Output video"


class EvenSize(str, Enum):
    """Policy for making odd frame sizes even for 4:2:0 and 4:2:2 pixel formats."""

    pad = "pad"
    crop = "crop"


OutputOption = Annotated[
    Path | None,
    typer.Option(
        "--output",
        "-o",
        help=(
            "Output video file (.mp4, .mkv, .mov), or a folder or pattern such as frames/%06d.png for PNG "
            "files. Default: <input stem>_<command>.<ext> beside the input."
        ),
        rich_help_panel=_HELP_PANEL,
    ),
]
CodecOption = Annotated[
    str,
    typer.Option(
        "--codec",
        help="Video encoder: libx264, libx265, libsvtav1, ffv1 (lossless), prores_ks, or any other in this PyAV build.",
        rich_help_panel=_HELP_PANEL,
    ),
]
CrfOption = Annotated[
    int | None,
    typer.Option(
        "--crf",
        help="Constant rate factor for libx264/libx265 (0-51) and libsvtav1 (0-63); lower is better. Default 18.",
        rich_help_panel=_HELP_PANEL,
    ),
]
PresetOption = Annotated[
    str | None,
    typer.Option(
        "--preset",
        help="Encoder speed preset, e.g. ultrafast..veryslow for x264/x265 or 0-13 for SVT-AV1. Default medium for x264/x265.",
        rich_help_panel=_HELP_PANEL,
    ),
]
EncoderOptionOption = Annotated[
    list[str] | None,
    typer.Option(
        "--encoder-option",
        "-e",
        metavar="KEY=VALUE",
        help="Extra FFmpeg encoder option, passed through unchanged; repeatable, e.g. -e tune=film -e g=50.",
        rich_help_panel=_HELP_PANEL,
    ),
]
PixelFormatOption = Annotated[
    str | None,
    typer.Option(
        "--pixel-format",
        help="Output pixel format, e.g. yuv420p or yuv420p10le. Default: the source's, or one with its bit depth.",
        rich_help_panel=_HELP_PANEL,
    ),
]
EvenSizeOption = Annotated[
    EvenSize,
    typer.Option(
        "--even-size",
        case_sensitive=False,
        help="For odd sizes with 4:2:0/4:2:2 output: pad (repeat the last row/column) or crop it.",
        rich_help_panel=_HELP_PANEL,
    ),
]
NoAudioOption = Annotated[
    bool,
    typer.Option("--no-audio", help="Drop the audio streams instead of copying them.", rich_help_panel=_HELP_PANEL),
]
OverwriteOption = Annotated[
    bool,
    typer.Option("--overwrite", help="Replace the output if it exists.", rich_help_panel=_HELP_PANEL),
]


def build_encode_options(
    *,
    codec: str,
    crf: int | None,
    preset: str | None,
    encoder_option: list[str] | None,
    pixel_format: str | None,
    even_size: EvenSize,
    no_audio: bool,
):
    """Return the ``EncodeOptions`` for the parsed options; raise ``typer.BadParameter`` if invalid."""
    from spikedeblur.video.encode_options import (
        EncodeOptions,
        check_encoder_available,
        check_encoder_option_names,
        parse_encoder_option,
    )

    try:
        pairs = tuple(parse_encoder_option(text) for text in encoder_option or ())
        options = EncodeOptions(
            codec=codec,
            crf=crf,
            preset=preset,
            encoder_options=pairs,
            pixel_format=pixel_format,
            even_size=EvenSize(even_size).value,
            copy_audio=not no_audio,
        )
        check_encoder_available(codec)
        check_encoder_option_names(codec, list(options.codec_options()))
    except InvalidInputError as error:
        raise typer.BadParameter(str(error)) from None
    return options


def resolve_output_path(source: Path, output: Path | None, command: str) -> Path:
    """Return ``output``, or ``<stem>_<command>.<ext>`` beside ``source`` without overwriting anything.

    Image folders and single images default to an ``.mp4`` output.
    """
    if output is not None:
        return output
    from spikedeblur.video.images import is_image_file

    suffix = ".mp4" if source.is_dir() or is_image_file(source) else source.suffix
    return default_output_path(source, command, suffix)
