"""Exceptions for problems a user can fix.

The CLI prints any :class:`SpikedeblurError` as one line on stderr and exits with code 1; other
exceptions are treated as bugs. Each message names the offending value and says what to do.
"""


class SpikedeblurError(Exception):
    """Base class for errors caused by input, configuration or environment, not by a bug."""


class InvalidInputError(SpikedeblurError, ValueError):
    """An input value, file content or option is invalid (wrong size, bad range, corrupt data)."""


class InputNotFoundError(SpikedeblurError, FileNotFoundError):
    """An input file or folder does not exist."""


class OutputExistsError(SpikedeblurError, FileExistsError):
    """The output path exists and overwriting was not requested."""


class SpikeCoverageError(InvalidInputError):
    """The spike stream does not cover the exposure window of some video frame."""


class CheckpointError(SpikedeblurError):
    """A checkpoint is missing keys, has unexpected keys or shapes, or does not match the config."""


class DownloadError(SpikedeblurError):
    """A download failed, or the downloaded file failed verification."""


class DeviceError(SpikedeblurError):
    """The requested device or precision is not available."""
