"""Import of VRT's released checkpoints (``{'params': state_dict}`` or a bare state dict).

Our parameter names are VRT's own, so importing is a strict check rather than a renaming: every
key must be present with the expected shape, and nothing else. VRT's files also store buffers
that are pure functions of the configuration (relative position indices, the mutual-attention
sine position encoding, SpyNet's ImageNet mean and std). The model recomputes those, so the
importer compares the stored copies with the recomputed values and then drops them.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor

from spikedeblur.errors import CheckpointError, InputNotFoundError
from spikedeblur.models.vrt import VRT
from spikedeblur.models.vrt_config import VRTConfig

logger = logging.getLogger(__name__)

DERIVED_BUFFER_SUFFIXES = ("relative_position_index", "position_bias", "spynet.mean", "spynet.std")
"""Checkpoint entries that are recomputed from the configuration instead of loaded."""

_LISTED_KEYS = 8
"""Keys named per category in an import error before the rest is summarised as a count."""


def official_layout(config: VRTConfig) -> dict[str, tuple[torch.Size, torch.dtype]]:
    """Key, shape and dtype of every entry of an official checkpoint for ``config``.

    Built on the meta device, so it allocates nothing.
    """
    return dict(_cached_layout(config))


@functools.lru_cache(maxsize=8)
def _cached_layout(config: VRTConfig) -> dict[str, tuple[torch.Size, torch.dtype]]:
    model = VRT(config, device="meta")
    layout = {name: (value.shape, value.dtype) for name, value in model.state_dict().items()}
    for name, buffer in model.named_buffers():
        layout[name] = (buffer.shape, buffer.dtype)
    return layout


def _is_derived(key: str) -> bool:
    return key.endswith(DERIVED_BUFFER_SUFFIXES)


def _summarise(label: str, items: list[str]) -> str:
    shown = ", ".join(items[:_LISTED_KEYS])
    more = f" and {len(items) - _LISTED_KEYS} more" if len(items) > _LISTED_KEYS else ""
    return f"{len(items)} {label} ({shown}{more})"


def _unwrap(checkpoint: Mapping[str, object]) -> dict[str, Tensor]:
    """Take the state dict out of ``{'params': ...}`` and drop a DataParallel ``module.`` prefix."""
    state = checkpoint.get("params", checkpoint)
    if not isinstance(state, Mapping):
        raise CheckpointError("the checkpoint's 'params' entry is not a state dict; pass a VRT .pth file")
    tensors = {}
    for key, value in state.items():
        if not isinstance(value, Tensor):
            raise CheckpointError(f"checkpoint entry {key!r} is a {type(value).__name__}, not a tensor; pass a VRT .pth file")
        tensors[key.removeprefix("module.")] = value
    return tensors


def convert_vrt_state_dict(state_dict: Mapping[str, object], config: VRTConfig) -> dict[str, Tensor]:
    """Check an official VRT state dict against ``config`` and return the entries to load.

    Args:
        state_dict: ``{'params': sd}`` or a bare ``sd`` with VRT's key names.
        config: the configuration the checkpoint was trained with.

    Returns:
        the learned parameters, keyed for ``VRT(config).load_state_dict(..., strict=True)``.

    Raises:
        CheckpointError: missing, unexpected or misshaped keys (all named in one message), or
            stored derived buffers that differ from the recomputed ones.
    """
    state = _unwrap(state_dict)
    layout = official_layout(config)

    missing = sorted(key for key in layout if key not in state)
    unexpected = sorted(key for key in state if key not in layout)
    mismatched = sorted(
        f"{key} {tuple(state[key].shape)} != {tuple(layout[key][0])}"
        for key in layout
        if key in state and state[key].shape != layout[key][0]
    )
    problems = [
        _summarise(label, items)
        for label, items in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", mismatched))
        if items
    ]
    if problems:
        raise CheckpointError(
            "checkpoint does not match the VRT configuration: " + "; ".join(problems)
            + "; check that the preset matches the checkpoint (vrt-deblur for 005-007, vrt-denoise for 008)"
        )

    _check_derived_buffers(state, config)
    return {key: value for key, value in state.items() if not _is_derived(key)}


def _check_derived_buffers(state: Mapping[str, Tensor], config: VRTConfig) -> None:
    """Compare the stored derived buffers with the values the model computes for ``config``."""
    reference = dict(VRT(config, device="cpu").named_buffers()) if any(_is_derived(k) for k in state) else {}
    differing = []
    for key, stored in state.items():
        if not _is_derived(key):
            continue
        expected = reference[key]
        if expected.dtype.is_floating_point:
            same = torch.allclose(stored.float(), expected.float(), atol=1e-5, rtol=1e-5)
        else:
            same = torch.equal(stored.long(), expected.long())
        if not same:
            differing.append(key)
    if differing:
        raise CheckpointError(
            "checkpoint buffers differ from their closed form for this configuration: "
            + _summarise("buffers", differing)
            + "; the file was made with a different window size or width"
        )


def load_vrt_checkpoint(model: VRT, path_or_state_dict: str | Path | Mapping[str, object]) -> None:
    """Load an official VRT checkpoint (file path or already-loaded dict) into ``model``.

    Files are read with ``torch.load(weights_only=True)``, which refuses pickled code.

    Raises:
        InputNotFoundError: the file does not exist.
        CheckpointError: the file is unreadable or does not match ``model.config``.
    """
    if isinstance(path_or_state_dict, (str, Path)):
        path = Path(path_or_state_dict)
        if not path.is_file():
            raise InputNotFoundError(f"checkpoint {path} does not exist; check the path")
        try:
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # noqa: BLE001 - torch.load raises many types for corrupt files
            raise CheckpointError(f"cannot read checkpoint {path}: {error}; pass an official VRT .pth file") from error
        if not isinstance(checkpoint, Mapping):
            raise CheckpointError(f"checkpoint {path} contains a {type(checkpoint).__name__}, not a state dict; pass a VRT .pth file")
        logger.info("loading VRT checkpoint %s", path)
    else:
        checkpoint = path_or_state_dict

    weights = convert_vrt_state_dict(checkpoint, model.config)
    model.load_state_dict(weights, strict=True)


def random_vrt_state_dict(config: VRTConfig, *, seed: int) -> dict[str, Tensor]:
    """Draw a complete official-layout state dict with every parameter random, for parity checks.

    Unlike training initialisation, nothing is zero: the last offset convolution of the
    deformable alignment gets random weights too, so tests exercise the deformable sampling.
    Weights are uniform in +-1/sqrt(fan_in) (the default Conv/Linear range), biases in +-0.1,
    LayerNorm scales in 1 +- 0.1, bias tables normal with std 0.5. Derived buffers hold their
    closed-form values. The same seed gives the same tensors on every platform (CPU generator).
    """
    generator = torch.Generator().manual_seed(seed)
    model = VRT(config, device="cpu")
    buffers = dict(model.named_buffers())
    state: dict[str, Tensor] = {}
    for key, (shape, dtype) in sorted(official_layout(config).items()):
        if key in buffers:
            state[key] = buffers[key].clone()
            continue
        if key.endswith("relative_position_bias_table"):
            value = torch.randn(shape, generator=generator) * 0.5
        elif len(shape) >= 2:
            bound = 1.0 / (torch.Size(shape[1:]).numel() ** 0.5)
            value = (torch.rand(shape, generator=generator) * 2 - 1) * bound
        elif ".norm" in key or key.startswith("norm") or ".reshape.1" in key or ".0.1." in key:
            value = 1.0 + (torch.rand(shape, generator=generator) * 2 - 1) * 0.1
        else:
            value = (torch.rand(shape, generator=generator) * 2 - 1) * 0.1
        state[key] = value.to(dtype)
    return state
