"""Resumable, verified HTTP downloads with the standard library only.

A download writes into ``FILE.part`` beside the destination. When a ``.part`` file already exists, the
request fetches only the remaining bytes with an HTTP ``Range`` header, so an interrupted transfer continues
where it stopped. The finished file is checked (size, SHA-256, an optional structural check) and only then
renamed onto the destination in one step, so the destination never contains a partial or unverified file.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import logging
import os
import re
import socket
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

from spikedeblur import __version__
from spikedeblur.errors import DownloadError, SpikedeblurError

logger = logging.getLogger(__name__)

MIRROR_ENV = "SPIKEDEBLUR_MIRROR"
DEFAULT_TIMEOUT_S = 30.0
# A transfer that breaks after receiving some bytes is resumed from the same URL up to this many times
# before moving on to the next mirror.
MAX_RESUMES_PER_URL = 3

ProgressCallback = Callable[[int, "int | None"], None]
"""Called as ``progress(bytes_done, bytes_total)`` while downloading; ``bytes_total`` is None when unknown."""

VerifyCallback = Callable[[Path], None]
"""Called with the finished ``.part`` file; raises :class:`SpikedeblurError` when its content is invalid."""

_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")
_CHUNK_SIZE = 1 << 16


class _TransferInterrupted(Exception):
    """The connection ended before the announced number of bytes arrived."""


def mirror_urls(file_name: str, urls: Sequence[str]) -> tuple[str, ...]:
    """Return ``urls`` with ``$SPIKEDEBLUR_MIRROR/file_name`` first when that variable is set."""
    base = os.environ.get(MIRROR_ENV, "").strip()
    if not base:
        return tuple(urls)
    if not base.startswith(("https://", "http://")):
        raise DownloadError(f"{MIRROR_ENV}={base!r} must be an http:// or https:// base URL")
    return (f"{base.rstrip('/')}/{file_name}", *urls)


def download_file(
    urls: Sequence[str],
    destination: Path,
    *,
    expected_sha256: str | None = None,
    expected_size: int | None = None,
    verify: VerifyCallback | None = None,
    progress: ProgressCallback | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> str:
    """Download the first URL that works into ``destination`` and return the file's SHA-256.

    Mirrors are tried in order; each failure is logged as a warning. The ``.part`` file is kept after a
    network failure (so a later call resumes it) and deleted after a failed size, hash or ``verify`` check.
    ``timeout`` (seconds) applies to connecting and to each read.

    Raises:
        DownloadError: every URL failed; the message lists each URL with its reason.
    """
    if not urls:
        raise DownloadError(f"no URL to download {destination.name} from")

    destination = Path(destination)
    # NOTE: there is no lock, so two processes downloading the same file share one .part file. The size,
    # hash and structure checks then reject a mixed-up result, but one of the downloads fails.
    part_path = destination.with_name(destination.name + ".part")
    failures: list[str] = []

    for url in urls:
        try:
            _fetch_with_resume(url, part_path, progress=progress, timeout=timeout)
        # ValueError covers http.client.InvalidURL (a malformed host or port in a mirror URL).
        except (OSError, ValueError, http.client.HTTPException, _TransferInterrupted, DownloadError) as error:
            reason = _describe_failure(error)
            logger.warning("download of %s from %s failed: %s", destination.name, url, reason)
            failures.append(f"{url}: {reason}")
            continue

        try:
            sha256 = _check_part(part_path, expected_sha256=expected_sha256, expected_size=expected_size, verify=verify)
        except SpikedeblurError as error:
            with contextlib.suppress(FileNotFoundError):
                part_path.unlink()
            logger.warning("file downloaded from %s was rejected and deleted: %s", url, error)
            failures.append(f"{url}: {error}")
            continue

        os.replace(part_path, destination)
        logger.debug("saved %s (SHA-256 %s)", destination, sha256)
        return sha256

    raise DownloadError(f"could not download {destination.name}: " + "; ".join(failures))


def _describe_failure(error: BaseException) -> str:
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}"
    if isinstance(error, urllib.error.URLError):
        reason = error.reason
        if isinstance(reason, (socket.timeout, TimeoutError)):
            return "timed out"
        return str(reason)
    if isinstance(error, (socket.timeout, TimeoutError)):
        return "timed out"
    return str(error) or error.__class__.__name__


def _fetch_with_resume(url: str, part_path: Path, *, progress: ProgressCallback | None, timeout: float) -> None:
    """Fetch ``url`` into ``part_path``, resuming after a broken transfer while each attempt makes progress."""
    resumes = 0
    while True:
        size_before = part_path.stat().st_size if part_path.exists() else 0
        try:
            _fetch_once(url, part_path, progress=progress, timeout=timeout)
            return
        except (OSError, http.client.HTTPException, _TransferInterrupted) as error:
            if isinstance(error, urllib.error.HTTPError):
                raise
            size_after = part_path.stat().st_size if part_path.exists() else 0
            if size_after <= size_before or resumes >= MAX_RESUMES_PER_URL:
                raise
            resumes += 1
            logger.warning(
                "transfer of %s broke after %d bytes (%s); resuming (%d of %d)",
                url,
                size_after,
                _describe_failure(error),
                resumes,
                MAX_RESUMES_PER_URL,
            )


def _fetch_once(url: str, part_path: Path, *, progress: ProgressCallback | None, timeout: float) -> None:
    """Make one request for ``url``, appending to ``part_path`` when the server honours a Range request."""
    if not url.startswith(("https://", "http://")):
        raise DownloadError(f"unsupported URL scheme in {url!r}; use http:// or https://")

    offset = part_path.stat().st_size if part_path.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": f"spikedeblur/{__version__}"})
    if offset > 0:
        request.add_header("Range", f"bytes={offset}-")

    try:
        response = urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 - scheme checked above
    except urllib.error.HTTPError as error:
        if error.code == 416 and offset > 0:
            # The server rejects the range: the .part file is already complete or does not belong to this
            # file. Start over rather than guess.
            error.close()
            logger.warning("server rejected resuming %s at byte %d; downloading from the start", url, offset)
            part_path.unlink()
            _fetch_once(url, part_path, progress=progress, timeout=timeout)
            return
        raise

    with response:
        status = response.status
        if offset > 0 and status == 206:
            start, total = _parse_content_range(response.headers.get("Content-Range"), url)
            if start != offset:
                raise DownloadError(f"server resumed at byte {start} instead of {offset}")
            mode = "ab"
            logger.info("resuming %s at byte %d", url, offset)
        elif status == 200:
            if offset > 0:
                logger.info("server at %s does not support resuming; downloading from the start", url)
            offset = 0
            mode = "wb"
            total = _content_length(response)
        else:
            raise DownloadError(f"unexpected HTTP status {status}")

        _copy_body(response, part_path, mode=mode, offset=offset, total=total, progress=progress)


def _parse_content_range(header: str | None, url: str) -> tuple[int, int | None]:
    match = _CONTENT_RANGE.match((header or "").strip())
    if match is None:
        raise DownloadError(f"server sent partial content without a valid Content-Range header ({header!r})")
    total = None if match.group(3) == "*" else int(match.group(3))
    return int(match.group(1)), total


def _content_length(response: http.client.HTTPResponse) -> int | None:
    value = response.headers.get("Content-Length")
    if value is None or not value.strip().isdigit():
        return None
    return int(value)


def _copy_body(
    response: http.client.HTTPResponse,
    part_path: Path,
    *,
    mode: str,
    offset: int,
    total: int | None,
    progress: ProgressCallback | None,
) -> None:
    done = offset
    with open(part_path, mode) as stream:
        if progress is not None:
            progress(done, total)
        while True:
            try:
                chunk = response.read(_CHUNK_SIZE)
            except http.client.IncompleteRead as error:
                stream.write(error.partial)
                raise _TransferInterrupted(f"connection closed after {done + len(error.partial)} bytes") from error
            if not chunk:
                break
            stream.write(chunk)
            done += len(chunk)
            if progress is not None:
                progress(done, total)

    if total is not None and done < total:
        raise _TransferInterrupted(f"connection closed after {done} of {total} bytes")
    if total is not None and done > total:
        raise DownloadError(f"server sent {done} bytes, more than the announced {total}")


def _check_part(
    part_path: Path,
    *,
    expected_sha256: str | None,
    expected_size: int | None,
    verify: VerifyCallback | None,
) -> str:
    size = part_path.stat().st_size
    if expected_size is not None and size != expected_size:
        raise DownloadError(f"size is {size} bytes, expected {expected_size}")

    digest = hashlib.sha256()
    with open(part_path, "rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    sha256 = digest.hexdigest()
    if expected_sha256 is not None and sha256 != expected_sha256:
        raise DownloadError(f"SHA-256 is {sha256}, expected {expected_sha256}")

    if verify is not None:
        verify(part_path)
    return sha256
