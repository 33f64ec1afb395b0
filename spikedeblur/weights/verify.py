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
        raise CheckpointError(f"{path.name} has no tensors under 'params'")
    if not all(isinstance(value, torch.Tensor) for value in state_dict.values()):
        raise CheckpointError(f"{path.name}: 'params' contains values that are not tensors")
    return state_dict


def verify_vrt_checkpoint(path: Path, *, preset: str) -> None:
    """Check that ``path`` is an official VRT ``.pth`` whose state dict fits the model ``preset``."""
    state_dict = _load_vrt_state_dict(path)

    # NOTE: until the VRT importer (spikedeblur.models.vrt_checkpoint) is available, only the container is
    # checked: a dict of tensors under 'params'. Key names and shapes are then checked when the model loads.
    try:
        from spikedeblur.models import vrt_checkpoint
    except ImportError:
        logger.debug("VRT importer not available; checked %s by container only (%d tensors)", path, len(state_dict))
        return

    from spikedeblur.models.vrt_config import VRT_PRESETS

    config = VRT_PRESETS[preset]
    vrt_checkpoint.convert_vrt_state_dict(state_dict, config)


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
