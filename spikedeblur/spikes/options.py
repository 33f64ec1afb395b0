"""User overrides for spike stream metadata, merged over the sidecar file."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from spikedeblur.errors import InvalidInputError
from spikedeblur.spikes.sidecar import SpikeMeta

_SIZE_PATTERN = re.compile(r"^\s*(\d+)\s*[xX×]\s*(\d+)\s*$")
_EXPOSURE_PATTERN = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?\d+)?)\s*(ms|s|%)?\s*$")


def parse_size(text: str, *, description: str = "size") -> tuple[int, int]:
    """Parse ``HxW`` (height first, e.g. ``250x400``) into positive ``(height, width)``."""
    match = _SIZE_PATTERN.match(str(text))
    if not match or int(match.group(1)) < 1 or int(match.group(2)) < 1:
        raise InvalidInputError(f"{description} {text!r} is invalid; give HEIGHTxWIDTH in pixels, such as 250x400")
    return int(match.group(1)), int(match.group(2))


def parse_exposure(text: str) -> tuple[float | None, float | None]:
    """Parse an exposure into ``(seconds, fraction)``, exactly one of which is set.

    ``0.01``, ``0.01s`` and ``10ms`` are seconds; ``50%`` is half of each frame interval.
    """
    match = _EXPOSURE_PATTERN.match(str(text))
    if not match:
        raise InvalidInputError(
            f"exposure {text!r} is invalid; give seconds (0.01, 0.01s, 10ms) or a percentage of the frame interval (50%)"
        )
    value, unit = float(match.group(1)), match.group(2) or "s"
    if unit == "%":
        return None, value / 100.0
    return (value / 1000.0 if unit == "ms" else value), None


@dataclass(frozen=True, kw_only=True)
class SpikeOptions:
    """Overrides from the command line or a caller; None means "use the sidecar or the default".

    Attributes:
        size: ``(height, width)`` after dropping head columns.
        rate_hz: spike ticks per second.
        offset_s: time of the video's first instant on the spike clock, in seconds (>= 0).
        spikes_per_frame: fixed number of ticks per video frame.
        first_tick: tick at which frame 0 starts when ``spikes_per_frame`` is set.
        exposure_s, exposure_fraction: exposure length in seconds, or as a fraction of the frame
            interval; at most one.
        flip: whether rows are stored bottom-to-top.
        head_cols: extra columns per stored row to drop.
        strict: raise instead of warning on a trailing partial frame.
    """

    size: tuple[int, int] | None = None
    rate_hz: float | None = None
    offset_s: float | None = None
    spikes_per_frame: int | None = None
    first_tick: int | None = None
    exposure_s: float | None = None
    exposure_fraction: float | None = None
    flip: bool | None = None
    head_cols: int | None = None
    strict: bool = False

    def __post_init__(self) -> None:
        # Build a throwaway SpikeMeta so the overrides get the same checks and messages as a sidecar.
        self.merge_over(None)

    def merge_over(self, meta: SpikeMeta | None) -> SpikeMeta:
        """Return ``meta`` (or the defaults) with every option that is set applied over it."""
        merged = meta if meta is not None else SpikeMeta()
        changes: dict[str, object] = {}
        if self.size is not None:
            changes["height"], changes["width"] = self.size
        for name in ("rate_hz", "offset_s", "spikes_per_frame", "first_tick", "flip", "head_cols"):
            value = getattr(self, name)
            if value is not None:
                changes[name] = value
        if self.exposure_s is not None or self.exposure_fraction is not None:
            changes["exposure_s"] = self.exposure_s
            changes["exposure_fraction"] = self.exposure_fraction
        # An explicit clock-based exposure on the command line replaces a ticks-per-frame mapping.
        if self.spikes_per_frame is not None or "exposure_s" in changes:
            changes["frame_ticks"] = None
        if "exposure_s" in changes and self.spikes_per_frame is None:
            changes["spikes_per_frame"] = None
        return dataclasses.replace(merged, **changes)

