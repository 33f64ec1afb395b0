"""Safe output paths: atomic writes, no silent overwrites, default output names."""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from spikedeblur.errors import InvalidInputError, OutputExistsError

logger = logging.getLogger(__name__)


def check_output_path(output: Path, *, overwrite: bool, inputs: tuple[Path, ...] = ()) -> None:
    """Raise if writing ``output`` would overwrite a file without ``--overwrite`` or clobber an input."""
    for source in inputs:
        if source.exists() and output.exists() and output.resolve() == source.resolve():
            raise InvalidInputError(f"output {output} is the same file as the input; choose another -o path")
        if not output.exists() and output.absolute() == source.absolute():
            raise InvalidInputError(f"output {output} is the same path as the input; choose another -o path")

    if output.exists() and not overwrite:
        raise OutputExistsError(f"output {output} already exists; pass --overwrite to replace it")
    if output.exists() and output.is_dir() and not output.is_symlink():
        raise InvalidInputError(f"output {output} is a directory; give a file path")
    if not output.parent.exists():
        raise InvalidInputError(f"output folder {output.parent} does not exist; create it first")


@contextlib.contextmanager
def atomic_output(output: Path, *, overwrite: bool = False, inputs: tuple[Path, ...] = ()) -> Iterator[Path]:
    """Yield a temporary path beside ``output`` and rename it onto ``output`` only if the block succeeds.

    The temporary file keeps ``output``'s suffix so that writers choosing a format by extension
    (PyAV, OpenCV, NumPy) behave as they would for the final name. On any exception, including
    ``KeyboardInterrupt``, the temporary file is removed and ``output`` is left as it was.
    """
    output = Path(output)
    check_output_path(output, overwrite=overwrite, inputs=inputs)

    fd, temp_name = tempfile.mkstemp(prefix=f".{output.stem}.", suffix=f".part{output.suffix}", dir=output.parent)
    os.close(fd)
    temp_path = Path(temp_name)
    try:
        yield temp_path
        # Re-check: another process may have created the target while we were writing.
        if output.exists() and not overwrite:
            raise OutputExistsError(f"output {output} appeared while writing; pass --overwrite to replace it")
        _apply_final_mode(temp_path, output)
        os.replace(temp_path, output)
        logger.debug("wrote %s", output)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temp_path.unlink()
        raise


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Read once at import: os.umask can only be read by setting it, which is not safe while other threads
# create files.
_UMASK = _read_umask()


def _apply_final_mode(temp_path: Path, output: Path) -> None:
    """Give the finished file the mode a plain ``open(output, "w")`` would, not mkstemp's private 0600."""
    if not temp_path.is_file():
        return
    if output.is_file():
        mode = output.stat().st_mode & 0o777
    else:
        mode = 0o666 & ~_UMASK
    os.chmod(temp_path, mode)


def default_output_path(source: Path, command: str, suffix: str | None = None) -> Path:
    """Return ``<stem>_<command><suffix>`` beside ``source``, adding ``_2``, ``_3``... if it exists."""
    source = Path(source)
    suffix = source.suffix if suffix is None else suffix
    candidate = source.with_name(f"{source.stem}_{command}{suffix}")
    counter = 2
    while candidate.exists():
        candidate = source.with_name(f"{source.stem}_{command}_{counter}{suffix}")
        counter += 1
    return candidate
