"""Records of the named model weights and the registry that contains them.

Each :class:`WeightsRecord` records where a file comes from (download mirrors or a file shipped inside the
package), how to check it (size, SHA-256), under which licence it may be used, and which model preset
loads it. ``spikedeblur run --weights NAME`` and ``spikedeblur download-weights NAME`` look names up here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from spikedeblur.errors import InvalidInputError

WeightsFormat = Literal["vrt-pth", "safetensors"]
WEIGHTS_FORMATS: tuple[str, ...] = ("vrt-pth", "safetensors")

_NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True, kw_only=True)
class WeightsRecord:
    """A named weights file: its sources, integrity data, licence and the model preset that loads it.

    Attributes:
        name: Registry key, lower case (``vrt-deblur-gopro``).
        file_name: Name of the file in the cache folder (and at the end of each URL).
        format: ``"vrt-pth"`` for an official VRT ``.pth`` checkpoint (``{'params': state_dict}``),
            ``"safetensors"`` for weights saved by spikedeblur.
        preset: Name of the model preset whose architecture the weights fit.
        description: One line for listings: what the model was trained on and for which task.
        licence: Licence of the weights (SPDX identifier where one exists), printed on download.
        urls: Download mirrors, tried in order. Empty for packaged weights.
        size: File size in bytes. Exact when ``size_exact`` is true. Otherwise it is the publisher's rounded
            figure, used only for display.
        size_exact: Whether ``size`` is the exact byte count, so that a download of another size is rejected.
        sha256: Lower-case hex SHA-256 of the file, or None where the publisher gives none. Then the hash
            seen on the first download is recorded in the cache and checked on every later use.
        packaged: Path of a file shipped inside the package, relative to ``spikedeblur/weights/packaged/``.
            Packaged weights load without any network access.
        source_url: Page that documents the weights (release page, model card), for listings.
    """

    name: str
    file_name: str
    format: WeightsFormat
    preset: str
    description: str
    licence: str
    urls: tuple[str, ...] = ()
    size: int
    size_exact: bool = True
    sha256: str | None = None
    packaged: str | None = None
    source_url: str | None = None

    def __post_init__(self) -> None:
        if not _NAME_PATTERN.match(self.name):
            raise ValueError(f"weights name {self.name!r} must be lower case letters, digits, '.', '_' or '-'")
        if not self.file_name or "/" in self.file_name or "\\" in self.file_name or self.file_name.startswith("."):
            raise ValueError(f"weights {self.name}: file_name {self.file_name!r} must be a plain file name")
        if self.format not in WEIGHTS_FORMATS:
            raise ValueError(f"weights {self.name}: format {self.format!r} must be one of {', '.join(WEIGHTS_FORMATS)}")
        if not isinstance(self.urls, tuple):
            raise ValueError(f"weights {self.name}: urls must be a tuple of strings, got {type(self.urls).__name__}")
        for url in self.urls:
            if not url.startswith(("https://", "http://")):
                raise ValueError(f"weights {self.name}: URL {url!r} must start with https:// or http://")
        if not self.urls and self.packaged is None:
            raise ValueError(f"weights {self.name}: give at least one URL or a packaged file")
        if self.size <= 0:
            raise ValueError(f"weights {self.name}: size must be a positive number of bytes, got {self.size}")
        if self.sha256 is not None and not _SHA256_PATTERN.match(self.sha256):
            raise ValueError(f"weights {self.name}: sha256 must be 64 lower-case hex digits, got {self.sha256!r}")
        if self.packaged is not None and (self.packaged.startswith("/") or ".." in self.packaged.split("/")):
            raise ValueError(f"weights {self.name}: packaged path {self.packaged!r} must be relative to the package")

    @property
    def is_packaged(self) -> bool:
        """Whether the file ships inside the package (no download needed)."""
        return self.packaged is not None


class WeightsRegistry:
    """Named :class:`WeightsRecord` entries in registration order; a name can be registered only once."""

    def __init__(self) -> None:
        self._records: dict[str, WeightsRecord] = {}

    def register(self, record: WeightsRecord) -> WeightsRecord:
        """Add ``record``; raise ``ValueError`` if its name is taken, so a typo cannot shadow an entry."""
        if record.name in self._records:
            raise ValueError(f"weights name {record.name!r} is already registered")
        self._records[record.name] = record
        return record

    def unregister(self, name: str) -> WeightsRecord:
        """Remove and return the record called ``name`` (raises ``KeyError`` when absent)."""
        return self._records.pop(name)

    def get(self, name: str) -> WeightsRecord:
        """Return the record called ``name``; raise :class:`InvalidInputError` listing the known names."""
        try:
            return self._records[name]
        except KeyError:
            known = ", ".join(self._records) or "none"
            raise InvalidInputError(
                f"unknown weights name {name!r}; known names: {known} (or give a path to a weights file)"
            ) from None

    def list(self) -> tuple[WeightsRecord, ...]:
        """Return all records in registration order."""
        return tuple(self._records.values())

    def __contains__(self, name: object) -> bool:
        return name in self._records

    def __len__(self) -> int:
        return len(self._records)


_VRT_RELEASE = "https://github.com/JingyunLiang/VRT/releases/download/v0.0"
_VRT_RELEASE_PAGE = "https://github.com/JingyunLiang/VRT/releases/tag/v0.0"
_VRT_LICENCE = "CC-BY-NC-4.0"
# An estimate for display only: the release publishes no byte count and no hash, and a random state dict of
# the vrt-deblur layout saved with torch.save (torch 2.13) takes 106,551,881 bytes. The SHA-256 is recorded
# on first download instead (see cache.py).
_VRT_DEBLUR_SIZE = 106_500_000


def _vrt_deblur_record(name: str, task_id: str, data_set: str) -> WeightsRecord:
    return WeightsRecord(
        name=name,
        file_name=f"{task_id}.pth",
        format="vrt-pth",
        preset="vrt-deblur",
        description=f"official VRT deblurring model trained on {data_set}; RGB only, ignores spikes",
        licence=_VRT_LICENCE,
        urls=(f"{_VRT_RELEASE}/{task_id}.pth",),
        size=_VRT_DEBLUR_SIZE,
        size_exact=False,
        sha256=None,
        source_url=_VRT_RELEASE_PAGE,
    )


REGISTRY = WeightsRegistry()
REGISTRY.register(_vrt_deblur_record("vrt-deblur-dvd", "005_VRT_videodeblurring_DVD", "DVD"))
REGISTRY.register(_vrt_deblur_record("vrt-deblur-gopro", "006_VRT_videodeblurring_GoPro", "GoPro"))
REGISTRY.register(_vrt_deblur_record("vrt-deblur-reds", "007_VRT_videodeblurring_REDS", "REDS"))

REGISTRY.register(
    WeightsRecord(
        name="vrt-spike-tiny-compact",
        file_name="vrt-spike-tiny-compact.safetensors",
        format="safetensors",
        preset="vrt-spike-tiny",
        description=(
            "compact VRT+Spike model shipped in the package, trained on procedural scenes on a 2-core CPU "
            "(see docs/model-card.md)"
        ),
        licence="Apache-2.0",
        size=1_235_948,
        sha256="47551e35eca4135bdab4cf5af874855fc0f5733effbabb5e7aa2e568dd36a143",
        packaged="vrt-spike-tiny-compact.safetensors",
    )
)

# Name that ``spikedeblur run`` uses when no --weights is given. It is the packaged model, so the
# default needs no download and uses the spike stream.
DEFAULT = "vrt-spike-tiny-compact"


def register_record(record: WeightsRecord) -> WeightsRecord:
    """Add ``record`` to the global registry (raises ``ValueError`` for a duplicate name)."""
    return REGISTRY.register(record)


def get_record(name: str) -> WeightsRecord:
    """Return the global record called ``name`` (raises :class:`InvalidInputError` when unknown)."""
    return REGISTRY.get(name)


def list_records() -> tuple[WeightsRecord, ...]:
    """Return every record of the global registry in registration order."""
    return REGISTRY.list()
