"""Encoder settings: :class:`EncodeOptions`, encoder availability and output pixel formats."""

from __future__ import annotations

import difflib
import logging
from collections.abc import Mapping
from dataclasses import dataclass

import av

from spikedeblur.errors import InvalidInputError

logger = logging.getLogger(__name__)

EVEN_SIZE_POLICIES = ("pad", "crop")

# Encoders that take a constant rate factor, with the valid range of that factor.
CRF_RANGES = {"libx264": (0, 51), "libx265": (0, 51), "libsvtav1": (0, 63)}
DEFAULT_CRF = 18
# x264 and x265 name their speed presets; SVT-AV1 numbers them, so it gets no default preset.
NAMED_PRESET_ENCODERS = frozenset({"libx264", "libx265"})
DEFAULT_PRESET = "medium"

# Encoders worth listing when the requested one is missing, in order of preference.
WELL_KNOWN_ENCODERS = (
    "libx264",
    "libx265",
    "libsvtav1",
    "ffv1",
    "prores_ks",
    "libvpx-vp9",
    "mpeg4",
    "h264_nvenc",
    "hevc_nvenc",
    "av1_nvenc",
)

# Fallback output formats when the encoder cannot take the source's pixel format, best first.
_FALLBACK_FORMATS_8BIT = ("yuv420p", "yuv422p", "yuv444p")
_FALLBACK_FORMATS_DEEP = ("yuv420p10le", "yuv422p10le", "yuv444p10le", "yuv420p12le", "yuv444p16le")


@dataclass(frozen=True, kw_only=True)
class EncodeOptions:
    """Encoder settings of a :class:`~spikedeblur.video.writer.VideoWriter`.

    ``crf`` and ``preset`` of None mean the encoder's default here: CRF 18 for libx264, libx265 and
    libsvtav1 and preset ``medium`` for libx264 and libx265; other encoders get neither.
    ``encoder_options`` are passed to FFmpeg unchanged (values are strings). ``pixel_format`` of
    None keeps the source's pixel format when the encoder supports it, else picks a 4:2:0 format
    with the source's bit depth. ``even_size`` sets how odd sizes are made even for chroma
    subsampled formats: ``pad`` repeats the last row or column, ``crop`` drops it.
    """

    codec: str = "libx264"
    crf: int | None = None
    preset: str | None = None
    encoder_options: tuple[tuple[str, str], ...] = ()
    pixel_format: str | None = None
    even_size: str = "pad"
    copy_audio: bool = True
    copy_subtitles: bool = True

    def __post_init__(self) -> None:
        if not self.codec or not isinstance(self.codec, str):
            raise InvalidInputError(f"codec {self.codec!r} is invalid; give an encoder name such as libx264")
        if isinstance(self.encoder_options, Mapping):
            object.__setattr__(self, "encoder_options", tuple((str(k), str(v)) for k, v in self.encoder_options.items()))
        for key, value in self.encoder_options:
            if not key or "=" in key:
                raise InvalidInputError(f"encoder option {key}={value} is invalid; write it as key=value")
        if self.crf is not None:
            low, high = CRF_RANGES.get(self.codec, (0, 63))
            if not low <= self.crf <= high:
                raise InvalidInputError(f"CRF {self.crf} is out of range for {self.codec}; give {low} to {high}")
            if self.codec not in CRF_RANGES:
                raise InvalidInputError(
                    f"encoder {self.codec} takes no CRF; drop --crf or pass its own quality option with -e"
                )
        if self.even_size not in EVEN_SIZE_POLICIES:
            raise InvalidInputError(f"even-size policy {self.even_size!r} is invalid; give pad or crop")

    def codec_options(self) -> dict[str, str]:
        """Return the FFmpeg options for the encoder: CRF, preset, then ``encoder_options``."""
        options = {}
        if self.codec in CRF_RANGES:
            options["crf"] = str(self.crf if self.crf is not None else DEFAULT_CRF)
        if self.preset is not None:
            options["preset"] = self.preset
        elif self.codec in NAMED_PRESET_ENCODERS:
            options["preset"] = DEFAULT_PRESET
        options.update(dict(self.encoder_options))
        return options


ENCODE_PRESETS: dict[str, EncodeOptions] = {
    "default": EncodeOptions(),
    "fast": EncodeOptions(preset="veryfast"),
    "lossless": EncodeOptions(codec="ffv1"),
    "edit": EncodeOptions(codec="prores_ks"),
}


def parse_encoder_option(text: str) -> tuple[str, str]:
    """Split ``key=value`` into its two parts; raise InvalidInputError when there is no ``=``."""
    key, separator, value = text.partition("=")
    if not separator or not key:
        raise InvalidInputError(f"encoder option {text!r} is invalid; write it as key=value, e.g. tune=film")
    return key.strip(), value.strip()


def check_encoder_available(name: str) -> av.Codec:
    """Return the video encoder ``name``; raise naming the encoders this PyAV build has if it is missing."""
    try:
        codec = av.Codec(name, "w")
    except (av.error.FFmpegError, ValueError, av.codec.codec.UnknownCodecError):
        codec = None
    if codec is None or codec.type != "video":
        present = [encoder for encoder in WELL_KNOWN_ENCODERS if _is_video_encoder(encoder)]
        raise InvalidInputError(
            f"video encoder {name!r} is not available in this PyAV {av.__version__} build; "
            f"available: {', '.join(present) or 'none of the common ones'}"
        )
    return codec


def check_encoder_option_names(name: str, keys: list[str]) -> None:
    """Raise if an option name is unknown to encoder ``name``, because FFmpeg would silently ignore it."""
    supported = av.codec.CodecContext.create(name, "w").supported_options
    known = {option.name for option in supported.generic} | {option.name for option in supported.private}
    for key in keys:
        if key in known:
            continue
        if key == "preset":
            raise InvalidInputError(f"encoder {name} has no presets; drop --preset")
        close = difflib.get_close_matches(key, sorted(known), n=3, cutoff=0.75)
        hint = f"; did you mean {', '.join(close)}?" if close else "; list them with ffmpeg -h encoder=" + name
        raise InvalidInputError(f"encoder option {key!r} is not an option of {name}{hint}")


def _is_video_encoder(name: str) -> bool:
    try:
        return av.Codec(name, "w").type == "video"
    except Exception:  # noqa: BLE001 - any failure means "not usable here"
        return False


def choose_pixel_format(codec: av.Codec, *, source_pix_fmt: str | None, bit_depth: int, requested: str | None) -> str:
    """Pick the encoder's pixel format: the requested one, else the source's, else one of equal depth."""
    supported = [video_format.name for video_format in (codec.video_formats or ())]
    if requested is not None:
        if supported and requested not in supported:
            raise InvalidInputError(
                f"pixel format {requested} is not supported by {codec.name}; choose one of {', '.join(supported)}"
            )
        return requested

    # The yuvj formats are deprecated aliases that only mark full range, which the colour tags carry.
    source = source_pix_fmt.replace("yuvj", "yuv") if source_pix_fmt else None
    if source is not None and source in supported:
        return source
    fallbacks = _FALLBACK_FORMATS_DEEP if bit_depth > 8 else _FALLBACK_FORMATS_8BIT
    for candidate in fallbacks:
        if not supported or candidate in supported:
            return candidate
    return supported[0]


def pixel_format_depth(pix_fmt: str) -> int:
    """Return the largest component depth of ``pix_fmt`` in bits."""
    return max(component.bits for component in av.VideoFormat(pix_fmt).components)


def even_size_for(pix_fmt: str, width: int, height: int, policy: str) -> tuple[int, int]:
    """Return the frame size the encoder gets: ``width``/``height`` made even where chroma is subsampled."""
    video_format = av.VideoFormat(pix_fmt)
    if video_format.chroma_width(2) == 1 and width % 2:
        width = width + 1 if policy == "pad" else width - 1
    if video_format.chroma_height(2) == 1 and height % 2:
        height = height + 1 if policy == "pad" else height - 1
    if width < 2 or height < 2:
        raise InvalidInputError(f"frame size {width}x{height} is too small to encode; frames need at least 2x2 pixels")
    return width, height
