"""The per-frame-file layout of GoPro-based spike data sets.

There, each blurry video frame has its own ``.dat`` file holding the spike ticks of its exposure
(56 to 88 ticks, no timestamps), in ``<clip>/spike/000000.dat, 000001.dat, ...``. A
``config.yaml`` with ``spike_h`` and ``spike_w`` sits beside the split folders
(``<root>/config.yaml``, ``<root>/train/<clip>/spike/``). File ``i`` in name order is frame ``i``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from spikedeblur.errors import InputNotFoundError, InvalidInputError

logger = logging.getLogger(__name__)

CONFIG_NAME = "config.yaml"

# config.yaml is looked up in the spike folder and this many parents: clip, split, data set root.
_CONFIG_SEARCH_DEPTH = 3


def is_frame_file_folder(path: Path) -> bool:
    """Return whether ``path`` is a folder of per-frame ``.dat`` files (or a clip with a ``spike/`` one)."""
    path = Path(path)
    return path.is_dir() and bool(list_frame_files(path, missing_ok=True))


def list_frame_files(folder: Path, *, missing_ok: bool = False) -> list[Path]:
    """Return the ``.dat`` files of a clip in name order: from ``folder`` itself or its ``spike/`` subfolder."""
    folder = Path(folder)
    if not folder.exists():
        raise InputNotFoundError(f"spike folder {folder} not found; check the path")
    if not folder.is_dir():
        raise InvalidInputError(f"{folder} is not a folder of per-frame .dat files")

    for candidate in (folder, folder / "spike"):
        if candidate.is_dir():
            files = sorted(path for path in candidate.glob("*.dat") if path.is_file())
            streams = [path for path in files if path.with_name(path.name + ".json").is_file()]
            if streams:
                # Per-frame files never carry sidecars. A sidecar marks one continuous stream, such as
                # the spikes.dat of a simulated data set, and reading it as a clip gives nonsense.
                raise InvalidInputError(
                    f"folder {folder} contains the spike stream {streams[0].name} with its sidecar, not one .dat "
                    f"per video frame; pass the file {streams[0]} instead of the folder"
                )
            if files:
                return files
    if missing_ok:
        return []
    raise InvalidInputError(f"folder {folder} has no .dat files (nor a spike/ subfolder with any); give a clip folder")


def find_config(spike_folder: Path) -> Path | None:
    """Return the nearest ``config.yaml`` at or above ``spike_folder``, or None."""
    folder = Path(spike_folder).resolve()
    for candidate in [folder, *folder.parents][: _CONFIG_SEARCH_DEPTH + 1]:
        config = candidate / CONFIG_NAME
        if config.is_file():
            return config
    return None


def read_config_size(config: Path) -> tuple[int, int]:
    """Read ``(spike_h, spike_w)`` from a data set ``config.yaml``."""
    import yaml

    try:
        data = yaml.safe_load(Path(config).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as error:
        raise InvalidInputError(f"data set config {config} is not valid YAML ({error})") from error

    if not isinstance(data, dict) or "spike_h" not in data or "spike_w" not in data:
        raise InvalidInputError(f"data set config {config} has no spike_h and spike_w entries; pass --spike-size")
    height, width = data["spike_h"], data["spike_w"]
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (height, width)):
        raise InvalidInputError(
            f"data set config {config} has spike_h={height!r}, spike_w={width!r}; both must be positive integers"
        )
    logger.debug("spike size %dx%d from %s", height, width, config)
    return height, width
