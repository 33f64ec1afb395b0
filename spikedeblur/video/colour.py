"""Colour tags of a video stream and the YUV<->RGB matrix and range used for conversion.

Tag values are FFmpeg's enum codes (``AVColorSpace``, ``AVColorRange``, ``AVColorPrimaries``,
``AVColorTransferCharacteristic``), so they can be copied onto an output stream unchanged. The names
are the ones ``ffprobe`` prints.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from av.video.reformatter import ColorRange, Colorspace

logger = logging.getLogger(__name__)

UNSPECIFIED_SPACE = 2
UNSPECIFIED_RANGE = 0
UNSPECIFIED_PRIMARIES = 2
UNSPECIFIED_TRC = 2

LIMITED_RANGE = 1
FULL_RANGE = 2

BT709 = 1
BT601 = 6  # smpte170m; bt470bg (5) uses the same matrix

SPACE_NAMES = {
    0: "gbr",
    1: "bt709",
    2: "unknown",
    4: "fcc",
    5: "bt470bg",
    6: "smpte170m",
    7: "smpte240m",
    8: "ycgco",
    9: "bt2020nc",
    10: "bt2020c",
}
RANGE_NAMES = {0: "unknown", 1: "tv", 2: "pc"}
PRIMARIES_NAMES = {1: "bt709", 2: "unknown", 4: "bt470m", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 9: "bt2020"}
TRC_NAMES = {
    1: "bt709",
    2: "unknown",
    4: "gamma22",
    5: "gamma28",
    6: "smpte170m",
    7: "smpte240m",
    8: "linear",
    13: "iec61966-2-1",
    14: "bt2020-10",
    15: "bt2020-12",
    16: "smpte2084",
    18: "arib-std-b67",
}

# swscale knows one matrix per family, so several FFmpeg colour spaces share one entry.
_SWSCALE_MATRIX = {
    1: Colorspace.ITU709,
    4: Colorspace.FCC,
    5: Colorspace.ITU601,
    6: Colorspace.ITU601,
    7: Colorspace.SMPTE240M,
    9: Colorspace.BT2020,
    10: Colorspace.BT2020,
}

# The HD threshold that players use when a stream carries no matrix tag.
HD_MIN_HEIGHT = 720
HD_MIN_WIDTH = 1280


@dataclass(frozen=True)
class ColorTags:
    """Colour tags of a stream as FFmpeg enum codes; 2 (or 0 for ``range``) means untagged."""

    space: int = UNSPECIFIED_SPACE
    range: int = UNSPECIFIED_RANGE
    primaries: int = UNSPECIFIED_PRIMARIES
    trc: int = UNSPECIFIED_TRC

    def names(self) -> dict[str, str]:
        """Return the tags as ffprobe names, e.g. ``{"space": "bt709", "range": "tv", ...}``."""
        return {
            "space": SPACE_NAMES.get(self.space, str(self.space)),
            "range": RANGE_NAMES.get(self.range, str(self.range)),
            "primaries": PRIMARIES_NAMES.get(self.primaries, str(self.primaries)),
            "trc": TRC_NAMES.get(self.trc, str(self.trc)),
        }


@dataclass(frozen=True)
class YuvConversion:
    """The matrix and range used to convert between YUV and RGB, and whether they were guessed.

    ``space`` and ``range`` are FFmpeg enum codes that are never "unspecified" here.
    """

    space: int
    range: int
    space_guessed: bool
    range_guessed: bool

    @property
    def swscale_matrix(self) -> Colorspace:
        return _SWSCALE_MATRIX.get(self.space, Colorspace.ITU601)

    @property
    def swscale_range(self) -> ColorRange:
        return ColorRange.JPEG if self.range == FULL_RANGE else ColorRange.MPEG


def resolve_yuv_conversion(tags: ColorTags, *, width: int, height: int, pix_fmt: str) -> YuvConversion:
    """Choose the YUV<->RGB matrix and range from the tags, guessing what is untagged.

    An untagged matrix is BT.709 for frames of at least 1280x720 and BT.601 below, which is what
    players assume. An untagged range is full for the ``yuvj*`` pixel formats and limited otherwise.
    """
    space_guessed = tags.space not in _SWSCALE_MATRIX
    if space_guessed:
        is_hd = height >= HD_MIN_HEIGHT or width >= HD_MIN_WIDTH
        space = BT709 if is_hd else BT601
    else:
        space = tags.space

    range_guessed = tags.range not in (LIMITED_RANGE, FULL_RANGE)
    if range_guessed:
        color_range = FULL_RANGE if pix_fmt.startswith("yuvj") else LIMITED_RANGE
    else:
        color_range = tags.range

    return YuvConversion(space=space, range=color_range, space_guessed=space_guessed, range_guessed=range_guessed)


def describe_guess(conversion: YuvConversion) -> str | None:
    """Return a log line saying which untagged values were guessed, or None if nothing was."""
    guessed = []
    if conversion.space_guessed:
        guessed.append(f"matrix {SPACE_NAMES[conversion.space]}")
    if conversion.range_guessed:
        guessed.append(f"range {RANGE_NAMES[conversion.range]}")
    if not guessed:
        return None
    return "untagged colour, assuming " + " and ".join(guessed)
