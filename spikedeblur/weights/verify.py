"""Structural checks that a weights file is a loadable checkpoint of the expected kind.

Used before a download is accepted and before the SHA-256 of a file without a published hash is recorded,
so a truncated or unrelated file is never cached as "verified".
"""

from __future__ import annotations

import logging
from pathlib import Path

from spikedeblur.errors import CheckpointError
from spikedeblur.weights.registry import WeightsRecord

logger = logging.getLogger(__name__)


def verify_weights_file(record: WeightsRecord, path: Path) -> None:
    """Check that ``path`` contains weights in ``record.format``; raise :class:`CheckpointError` if not."""
    if record.format == "vrt-pth":
        verify_vrt_checkpoint(path, preset=record.preset)
    elif record.format == "safetensors":
        verify_safetensors(path)
    else:  # pragma: no cover - WeightsRecord validates the format
        raise CheckpointError(f"weights {record.name}: unknown format {record.format!r}")


def _load_vrt_state_dict(path: Path) -> dict:
    import pickle

    import torch

    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as error:
        reason = str(error).splitlines()[0] if str(error) else error.__class__.__name__
        raise CheckpointError(f"{path.name} is not a readable PyTorch checkpoint ({reason})") from error

    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"{path.name} contains a {type(checkpoint).__name__}, not a state dict; expected a VRT .pth checkpoint")
    state_dict = checkpoint.get("params", checkpoint)
    if not isinstance(state_dict, dict) or not state_dict:
        raise CheckpointError(f"{path.name} contains no tensors; expected a VRT .pth checkpoint")
    for key, value in state_dict.items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(
                f"{path.name}: entry {key!r} is a {type(value).__name__}, not a tensor; expected a VRT .pth checkpoint"
            )
    return state_dict


def verify_vrt_checkpoint(path: Path, *, preset: str) -> None:
    """Check that ``path`` is an official VRT ``.pth`` whose state dict fits the VRT ``preset``.

    Every key, shape and derived buffer is compared with the model built from the preset, so a file that
    loads but belongs to another task (super-resolution, denoising) is rejected too.
    """
    from spikedeblur.models.vrt_checkpoint import convert_vrt_state_dict
    from spikedeblur.models.vrt_config import get_vrt_config

    state_dict = _load_vrt_state_dict(path)
    try:
        config = get_vrt_config(preset)
    except ValueError as error:
        raise CheckpointError(f"{path.name}: {error}") from error

    try:
        convert_vrt_state_dict(state_dict, config)
    except CheckpointError as error:
        raise CheckpointError(f"{path.name} is not a {preset} checkpoint: {error}") from error
    logger.debug("%s matches the %s layout (%d tensors)", path, preset, len(state_dict))


def verify_safetensors(path: Path) -> None:
    """Check that ``path`` is a safetensors file with at least one tensor."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            keys = list(handle.keys())
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"{path.name} is not a readable safetensors file ({error})") from error
    if not keys:
        raise CheckpointError(f"{path.name} contains no tensors")
