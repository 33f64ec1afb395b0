"""Turn a weights name or path into a verified local file, downloading into the cache when allowed."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

from spikedeblur.errors import CheckpointError, DownloadError, InputNotFoundError
from spikedeblur.weights.cache import WeightsCache, file_sha256, is_offline
from spikedeblur.weights.download import ProgressCallback, download_file, mirror_urls
from spikedeblur.weights.registry import REGISTRY, WeightsRecord, get_record
from spikedeblur.weights.verify import verify_weights_file

logger = logging.getLogger(__name__)

WEIGHTS_FILE_SUFFIXES = (".pth", ".pt", ".safetensors")

CacheState = Literal["packaged", "verified", "unverified", "corrupt", "partial", "missing"]


@dataclass(frozen=True)
class WeightsStatus:
    """State of one registry entry on this machine.

    ``state`` values:

    - ``packaged``: shipped in the package.
    - ``verified``: cached, and matches the published or recorded SHA-256.
    - ``unverified``: cached, with no hash known yet.
    - ``corrupt``: cached, but the hash or size does not match.
    - ``partial``: only an interrupted ``.part`` download exists.
    - ``missing``: nothing cached.
    """

    record: WeightsRecord
    state: CacheState
    path: Path
    size: int | None
    sha256: str | None


def packaged_root() -> Path:
    """Return the folder inside the installed package that contains packaged weight files."""
    return Path(str(resources.files("spikedeblur.weights").joinpath("packaged")))


def packaged_path(record: WeightsRecord) -> Path:
    """Return the file of a packaged record; raise :class:`CheckpointError` if the installation lacks it."""
    if record.packaged is None:
        raise ValueError(f"weights {record.name} are not packaged")

    path = packaged_root() / record.packaged
    if not path.is_file():
        raise CheckpointError(
            f"packaged weights {record.name} are missing from the installation ({path}); reinstall spikedeblur"
        )
    return path


def _size_matches(record: WeightsRecord, size: int) -> bool:
    return not record.size_exact or size == record.size


def weights_status(record: WeightsRecord, *, cache_dir: str | os.PathLike[str] | None = None) -> WeightsStatus:
    """Return the cache state of ``record``, hashing a cached file to tell ``verified`` from ``corrupt``."""
    cache = WeightsCache(cache_dir)
    if record.is_packaged:
        path = packaged_path(record)
        return WeightsStatus(record, "packaged", path, path.stat().st_size, record.sha256)

    path = cache.path_for(record)
    if not path.is_file():
        part = cache.part_path_for(record)
        if part.is_file():
            return WeightsStatus(record, "partial", part, part.stat().st_size, None)
        return WeightsStatus(record, "missing", path, None, None)

    size = path.stat().st_size
    expected = cache.expected_sha256(record)
    if expected is None:
        return WeightsStatus(record, "unverified", path, size, None)

    sha256 = file_sha256(path)
    state: CacheState = "verified" if sha256 == expected and _size_matches(record, size) else "corrupt"
    return WeightsStatus(record, state, path, size, sha256)


def _offline_error(record: WeightsRecord, path: Path) -> DownloadError:
    url = record.urls[0] if record.urls else "its source"
    return DownloadError(
        f"weights {record.name} are not cached and offline mode is on (--offline or SPIKEDEBLUR_OFFLINE=1); "
        f"download {url} and save it as {path}, or run 'spikedeblur download-weights {record.name}' online"
    )


def _check_cached_file(record: WeightsRecord, cache: WeightsCache, path: Path) -> None:
    """Check a cached file against its published or recorded hash, recording one on first use."""
    size = path.stat().st_size
    if not _size_matches(record, size):
        raise CheckpointError(
            f"cached weights {path} have {size} bytes, expected {record.size}; "
            f"run 'spikedeblur download-weights {record.name} --force' to download them again"
        )

    expected = cache.expected_sha256(record)
    sha256 = file_sha256(path)
    if expected is None:
        # A file placed in the cache by hand (offline installs) gets the same structural check as a download
        # before its hash is trusted.
        verify_weights_file(record, path)
        cache.record_hash(record, sha256=sha256, size=size, source=f"file placed at {path}")
        return

    if sha256 != expected:
        origin = "published" if record.sha256 is not None else "recorded on first download"
        raise CheckpointError(
            f"cached weights {path} have SHA-256 {sha256}, not the {origin} {expected}; "
            f"run 'spikedeblur download-weights {record.name} --force' to download them again"
        )


def ensure_cached(
    record: WeightsRecord,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    offline: bool | None = None,
    force: bool = False,
    progress: ProgressCallback | None = None,
    timeout: float | None = None,
) -> Path:
    """Return the verified local file of ``record``, downloading it first if needed and allowed.

    Packaged records return the file inside the package. ``force`` downloads again even when a cached copy
    exists and, for records without a published hash, records the hash anew. With offline mode on, the
    network is never used and a missing file raises :class:`DownloadError` naming where to put it.
    """
    if record.is_packaged:
        path = packaged_path(record)
        if record.sha256 is not None and file_sha256(path) != record.sha256:
            raise CheckpointError(f"packaged weights {path} fail their SHA-256 check; reinstall spikedeblur")
        return path

    cache = WeightsCache(cache_dir)
    path = cache.path_for(record)
    if path.is_file() and not force:
        _check_cached_file(record, cache, path)
        return path

    if is_offline(offline):
        raise _offline_error(record, path)

    cache.ensure_directory()
    if force and record.sha256 is None:
        cache.forget_hash(record)
    expected_sha256 = cache.expected_sha256(record)

    logger.info("downloading %s (%s, licence %s)", record.name, record.file_name, record.licence)
    download_options = {} if timeout is None else {"timeout": timeout}
    sha256 = download_file(
        mirror_urls(record.file_name, record.urls),
        path,
        expected_sha256=expected_sha256,
        expected_size=record.size if record.size_exact else None,
        verify=lambda part: verify_weights_file(record, part),
        progress=progress,
        **download_options,
    )

    if expected_sha256 is None:
        cache.record_hash(record, sha256=sha256, size=path.stat().st_size, source="first download")
    return path


def _looks_like_path(text: str) -> bool:
    return os.sep in text or "/" in text or text.endswith(WEIGHTS_FILE_SUFFIXES) or text.startswith(("~", "."))


def resolve_weights(
    name_or_path: str | os.PathLike[str],
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    offline: bool | None = None,
    progress: ProgressCallback | None = None,
) -> Path:
    """Return a local weights file for a registry name or a path (what ``run --weights`` accepts).

    A ``Path``, or a string that is not a registry name, is taken as a file path and must exist. It is
    passed through unchecked because the model loader validates it. A registry name resolves to the
    packaged file or the cached download, downloading when offline mode is off.

    Raises:
        InputNotFoundError: a path that does not exist.
        InvalidInputError: a string that is neither a registry name nor an existing file.
        DownloadError: the download failed, or offline mode is on and the file is not cached.
        CheckpointError: a cached or downloaded file failed verification.
    """
    if isinstance(name_or_path, str) and name_or_path in REGISTRY:
        return ensure_cached(get_record(name_or_path), cache_dir=cache_dir, offline=offline, progress=progress)

    text = os.fspath(name_or_path)
    path = Path(text).expanduser()
    if path.is_file():
        return path
    if path.exists():
        raise InputNotFoundError(f"weights path {path} is not a file; give a .pth or .safetensors file")
    if not isinstance(name_or_path, str) or _looks_like_path(text):
        raise InputNotFoundError(f"weights file {path} does not exist; check the path or give a registry name")

    # Neither a known name nor an existing file: the lookup raises an error listing the known names.
    return ensure_cached(get_record(text), cache_dir=cache_dir, offline=offline, progress=progress)
