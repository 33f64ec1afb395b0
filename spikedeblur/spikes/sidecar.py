"""Stream metadata stored beside a spike file as ``NAME.dat.json``.

A ``.dat`` file records neither its size nor its clock, so our tools write this sidecar and read
it automatically. Command-line options (:class:`~spikedeblur.spikes.options.SpikeOptions`)
override individual fields.

Example::

    {"format": "spikedeblur.spike-meta", "version": 1, "height": 250, "width": 400,
     "rate_hz": 20000, "flip": true, "offset_s": 0.0, "exposure_fraction": 0.5,
     "spatial": {"kind": "scale_offset", "scale": [2, 2], "offset": [0, 0]}}
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spikedeblur.errors import InvalidInputError
from spikedeblur.fileio import atomic_output
from spikedeblur.spikes.spatial import SpatialMapping

logger = logging.getLogger(__name__)

SIDECAR_FORMAT = "spikedeblur.spike-meta"
SIDECAR_VERSION = 1
DEFAULT_RATE_HZ = 20000.0


@dataclass(frozen=True, kw_only=True)
class SpikeMeta:
    """Everything needed to decode a spike stream and line it up with a video.

    Frame mapping, most specific first: ``frame_ticks`` (a per-frame table of first and last tick,
    inclusive, for rigs with hardware triggers), else ``spikes_per_frame`` (frame ``i`` covers ticks
    ``first_tick + i * N`` to ``first_tick + (i + 1) * N - 1``, as in synthetic data sets), else the
    clock: ticks at ``rate_hz`` and an exposure window inside each frame interval.

    Attributes:
        height, width: image size in pixels after dropping head columns; None when unknown.
        rate_hz: spike ticks per second.
        flip: whether rows are stored bottom-to-top (true for most cameras).
        head_cols: extra columns stored at the end of each row and dropped on reading.
        offset_s: time of the video's first instant (t = 0) on the spike clock, in seconds after
            tick 0. Negative values are invalid: trim the start of the video instead.
        spikes_per_frame: fixed number of ticks per video frame, or None.
        first_tick: tick at which frame 0 starts when ``spikes_per_frame`` is set.
        exposure_s: exposure length in seconds, centred on each frame interval.
        exposure_fraction: exposure as a fraction of the frame interval, in (0, 1]. When neither
            exposure field is set, the exposure is the whole frame interval.
        frame_ticks: per-frame ``(first, last)`` ticks, inclusive.
        spatial: mapping from spike pixels to video pixels.
        threshold, gain: simulator threshold and gain when known; intensity is about
            ``threshold / gain * firing rate``.
    """

    height: int | None = None
    width: int | None = None
    rate_hz: float = DEFAULT_RATE_HZ
    flip: bool = True
    head_cols: int = 0
    offset_s: float = 0.0
    spikes_per_frame: int | None = None
    first_tick: int = 0
    exposure_s: float | None = None
    exposure_fraction: float | None = None
    frame_ticks: tuple[tuple[int, int], ...] | None = None
    spatial: SpatialMapping = dataclasses.field(default_factory=SpatialMapping)
    threshold: float | None = None
    gain: float | None = None

    def __post_init__(self) -> None:
        if (self.height is None) != (self.width is None):
            raise InvalidInputError("spike metadata needs both height and width, or neither")
        for name in ("height", "width", "spikes_per_frame"):
            value = getattr(self, name)
            if value is not None and (not _is_int(value) or value < 1):
                raise InvalidInputError(f"spike {name} {value!r} is invalid; give a positive integer")
        for name in ("head_cols", "first_tick"):
            value = getattr(self, name)
            if not _is_int(value) or value < 0:
                raise InvalidInputError(f"spike {name} {value!r} is invalid; give 0 or a positive integer")
        _check_positive("rate_hz", self.rate_hz, unit="Hz")
        if not _is_number(self.offset_s) or self.offset_s < 0:
            raise InvalidInputError(
                f"spike offset {self.offset_s!r} s is invalid; give the time of the video's first frame on the "
                "spike clock (>= 0), and trim the video if it starts before the spike stream"
            )
        if self.exposure_s is not None:
            _check_positive("exposure", self.exposure_s, unit="s")
        if self.exposure_fraction is not None:
            if not _is_number(self.exposure_fraction) or not 0 < self.exposure_fraction <= 1:
                raise InvalidInputError(
                    f"exposure fraction {self.exposure_fraction!r} is invalid; give a value in (0, 1]"
                )
        if self.exposure_s is not None and self.exposure_fraction is not None:
            raise InvalidInputError("give the exposure either in seconds or as a fraction of the frame interval")
        for name in ("threshold", "gain"):
            if getattr(self, name) is not None:
                _check_positive(name, getattr(self, name))
        if not isinstance(self.spatial, SpatialMapping):
            raise InvalidInputError(f"spatial mapping {self.spatial!r} is not a SpatialMapping")
        if self.frame_ticks is not None:
            object.__setattr__(self, "frame_ticks", _check_frame_ticks(self.frame_ticks))

    @property
    def size(self) -> tuple[int, int] | None:
        """``(height, width)``, or None when unknown."""
        return None if self.height is None else (self.height, self.width)

    def replace(self, **changes: Any) -> SpikeMeta:
        """Return a copy with ``changes`` applied and validated."""
        return dataclasses.replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        """Return the sidecar JSON object; fields still at their defaults are included for clarity."""
        data: dict[str, Any] = {"format": SIDECAR_FORMAT, "version": SIDECAR_VERSION}
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            if item.name == "spatial":
                value = value.to_json()
            elif item.name == "frame_ticks" and value is not None:
                value = [list(pair) for pair in value]
            data[item.name] = value
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any], *, source: str = "spike metadata") -> SpikeMeta:
        """Build metadata from a sidecar JSON object, raising :class:`InvalidInputError` if malformed."""
        if not isinstance(data, dict):
            raise InvalidInputError(f"{source} is not a JSON object")
        fields = {item.name for item in dataclasses.fields(cls)}
        unknown = set(data) - fields - {"format", "version"}
        if unknown:
            raise InvalidInputError(f"{source} has unknown keys {sorted(unknown)}; remove them or fix their spelling")
        if data.get("version", SIDECAR_VERSION) != SIDECAR_VERSION:
            raise InvalidInputError(
                f"{source} has version {data['version']!r}; this spikedeblur reads version {SIDECAR_VERSION}"
            )

        values = {key: value for key, value in data.items() if key in fields and value is not None}
        try:
            if "spatial" in values:
                values["spatial"] = SpatialMapping.from_json(values["spatial"])
            if "frame_ticks" in values:
                values["frame_ticks"] = tuple(tuple(pair) for pair in values["frame_ticks"])
            return cls(**values)
        except InvalidInputError as error:
            raise InvalidInputError(f"{source}: {error}") from error
        except (TypeError, ValueError) as error:
            raise InvalidInputError(f"{source} is malformed: {error}") from error


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _check_positive(name: str, value: Any, *, unit: str = "") -> None:
    if not _is_number(value) or value <= 0:
        suffix = f" {unit}" if unit else ""
        raise InvalidInputError(f"spike {name} {value!r}{suffix} is invalid; give a positive number")


def _check_frame_ticks(table: Any) -> tuple[tuple[int, int], ...]:
    pairs = []
    for index, pair in enumerate(table):
        if len(pair) != 2 or not all(_is_int(v) for v in pair) or not 0 <= pair[0] <= pair[1]:
            raise InvalidInputError(
                f"frame_ticks entry {index} is {list(pair)!r}; give [first, last] ticks with 0 <= first <= last"
            )
        pairs.append((int(pair[0]), int(pair[1])))
    if not pairs:
        raise InvalidInputError("frame_ticks is empty; give one [first, last] pair per video frame")
    return tuple(pairs)


def sidecar_path(dat_path: str | os.PathLike[str]) -> Path:
    """Return the sidecar path of a spike file: ``NAME.dat`` -> ``NAME.dat.json``."""
    dat_path = Path(dat_path)
    return dat_path.with_name(dat_path.name + ".json")


def read_sidecar(dat_path: str | os.PathLike[str]) -> SpikeMeta | None:
    """Read ``NAME.dat.json`` beside ``dat_path``; return None when there is none."""
    path = sidecar_path(dat_path)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InvalidInputError(f"spike metadata {path} is not valid JSON ({error}); fix or delete it") from error
    meta = SpikeMeta.from_json(data, source=f"spike metadata {path}")
    logger.debug("read spike metadata from %s", path)
    return meta


def write_sidecar(dat_path: str | os.PathLike[str], meta: SpikeMeta, *, overwrite: bool = False) -> Path:
    """Write ``meta`` to ``NAME.dat.json`` beside ``dat_path`` atomically and return the sidecar path."""
    path = sidecar_path(dat_path)
    with atomic_output(path, overwrite=overwrite) as temp_path:
        temp_path.write_text(json.dumps(meta.to_json(), indent=2) + "\n", encoding="utf-8")
    return path
