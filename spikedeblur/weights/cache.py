"""The weights cache folder, offline mode and the SHA-256 hashes recorded for files without a published one.

Folder choice, first match wins: the ``cache_dir`` argument (``--cache-dir``), which contains the weight files
directly; ``$SPIKEDEBLUR_HOME/weights``; the platform's user cache folder for "spikedeblur" plus
``/weights`` (``~/.cache/spikedeblur/weights`` on Linux).

Hashes recorded on first download live in ``hashes.json`` inside that folder, keyed by record name.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from spikedeblur.errors import InvalidInputError
from spikedeblur.weights.registry import WeightsRecord

logger = logging.getLogger(__name__)

HOME_ENV = "SPIKEDEBLUR_HOME"
OFFLINE_ENV = "SPIKEDEBLUR_OFFLINE"
HASHES_FILE_NAME = "hashes.json"
PART_SUFFIX = ".part"

_TRUE_WORDS = {"1", "true", "yes", "on"}
_FALSE_WORDS = {"", "0", "false", "no", "off"}


def resolve_cache_dir(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Return the folder that contains downloaded weight files (not created here)."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()

    home = os.environ.get(HOME_ENV)
    if home:
        return Path(home).expanduser() / "weights"

    return Path(platformdirs.user_cache_dir("spikedeblur", appauthor=False)) / "weights"


def is_offline(offline: bool | None = None) -> bool:
    """Return ``offline`` when given, else whether ``SPIKEDEBLUR_OFFLINE`` is set to a true value."""
    if offline is not None:
        return offline

    value = os.environ.get(OFFLINE_ENV, "").strip().lower()
    if value in _TRUE_WORDS:
        return True
    if value in _FALSE_WORDS:
        return False
    raise InvalidInputError(f"{OFFLINE_ENV}={value!r} is not a boolean; set it to 1 or 0")


def file_sha256(path: Path, *, chunk_size: int = 1 << 20) -> str:
    """Return the lower-case hex SHA-256 of the file at ``path``."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class RecordedHash:
    """The SHA-256 and size of a weights file as seen when it was first downloaded or placed in the cache."""

    sha256: str
    size: int
    recorded_at: str
    source: str


class WeightsCache:
    """Paths of cached weight files and the hashes recorded for them.

    Nothing is created on construction, so listing the state of an empty cache writes nothing to disk.
    """

    def __init__(self, cache_dir: str | os.PathLike[str] | None = None) -> None:
        self.directory = resolve_cache_dir(cache_dir)

    def path_for(self, record: WeightsRecord) -> Path:
        """Return where the file of ``record`` lives once downloaded."""
        return self.directory / record.file_name

    def part_path_for(self, record: WeightsRecord) -> Path:
        """Return the partial-download file of ``record`` (``NAME.part``), kept between attempts for resuming."""
        return self.directory / (record.file_name + PART_SUFFIX)

    @property
    def hashes_path(self) -> Path:
        return self.directory / HASHES_FILE_NAME

    def ensure_directory(self) -> None:
        """Create the cache folder, or raise a one-line error if it cannot be created."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise InvalidInputError(
                f"cannot create the weights cache folder {self.directory} ({error.strerror}); "
                "choose another one with --cache-dir or SPIKEDEBLUR_HOME"
            ) from error

    def _load_hashes(self) -> dict[str, dict]:
        try:
            text = self.hashes_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise InvalidInputError(
                f"the hash records file {self.hashes_path} is not valid JSON ({error.msg}); "
                "delete it and verify the cached weights again"
            ) from error
        if not isinstance(data, dict):
            raise InvalidInputError(f"the hash records file {self.hashes_path} must contain a JSON object; delete it")
        return data

    def _save_hashes(self, data: dict[str, dict]) -> None:
        self.ensure_directory()

        # Write beside the target and rename, so a crash never leaves a half-written records file.
        fd, temp_name = tempfile.mkstemp(prefix=".hashes.", suffix=".json", dir=self.directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as stream:
                json.dump(data, stream, indent=2, sort_keys=True)
                stream.write("\n")
            os.replace(temp_name, self.hashes_path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp_name)
            raise

    def recorded_hash(self, record: WeightsRecord) -> RecordedHash | None:
        """Return the hash recorded for ``record``, or None if none was recorded."""
        entry = self._load_hashes().get(record.name)
        if entry is None:
            return None
        try:
            return RecordedHash(
                sha256=str(entry["sha256"]),
                size=int(entry["size"]),
                recorded_at=str(entry.get("recorded_at", "")),
                source=str(entry.get("source", "")),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise InvalidInputError(
                f"the hash record of {record.name} in {self.hashes_path} is malformed ({error}); delete that entry"
            ) from error

    def record_hash(self, record: WeightsRecord, *, sha256: str, size: int, source: str) -> RecordedHash:
        """Store the SHA-256 and size of ``record``'s file so that every later use is checked against them."""
        recorded = RecordedHash(
            sha256=sha256,
            size=size,
            recorded_at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            source=source,
        )
        data = self._load_hashes()
        data[record.name] = {
            "file_name": record.file_name,
            "sha256": recorded.sha256,
            "size": recorded.size,
            "recorded_at": recorded.recorded_at,
            "source": recorded.source,
        }
        self._save_hashes(data)
        logger.info("recorded SHA-256 %s for %s in %s", sha256, record.name, self.hashes_path)
        return recorded

    def forget_hash(self, record: WeightsRecord) -> None:
        """Remove the recorded hash of ``record``, if any."""
        data = self._load_hashes()
        if data.pop(record.name, None) is not None:
            self._save_hashes(data)

    def expected_sha256(self, record: WeightsRecord) -> str | None:
        """Return the published SHA-256 of ``record``, else the recorded one, else None."""
        if record.sha256 is not None:
            return record.sha256
        recorded = self.recorded_hash(record)
        return recorded.sha256 if recorded is not None else None
