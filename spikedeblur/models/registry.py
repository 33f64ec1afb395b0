"""Named model presets: the VRT+Spike models and the plain VRT backbones they build on.

``create_model(name)`` builds a randomly initialised model from a preset. VRT+Spike presets return a
:class:`~spikedeblur.models.vrt_spike.VRTSpike` that takes ``(frames, spike_voxels)``. Backbone presets
return a bare :class:`~spikedeblur.models.vrt.VRT`, which takes frames only (plus a noise map for
``vrt-denoise``).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from spikedeblur.errors import InvalidInputError
from spikedeblur.models.memory import MemoryEstimate, measure_forward_memory
from spikedeblur.models.vrt import VRT
from spikedeblur.models.vrt_config import VRT_PRESETS, VRTConfig
from spikedeblur.models.vrt_spike import VRTSpike, VRTSpikeConfig

logger = logging.getLogger(__name__)

ModelKind = Literal["vrt-spike", "vrt"]

# Clip size that `spikedeblur models` reports memory for: 6 frames of 192×192.
DEFAULT_MEMORY_CLIP = (6, 192, 192)


@dataclass(frozen=True)
class ModelPreset:
    """A named model configuration with a one-line description."""

    name: str
    description: str
    config: VRTSpikeConfig | VRTConfig

    @property
    def kind(self) -> ModelKind:
        return "vrt-spike" if isinstance(self.config, VRTSpikeConfig) else "vrt"

    @property
    def num_bins(self) -> int | None:
        """Spike time bins per frame, or ``None`` for a backbone without a spike branch."""
        return self.config.num_bins if isinstance(self.config, VRTSpikeConfig) else None


_PRESETS: dict[str, ModelPreset] = {}


def register_preset(preset: ModelPreset) -> None:
    """Add ``preset`` to the registry; a name that is already registered raises ``ValueError``."""
    if preset.name in _PRESETS:
        raise ValueError(f"model preset {preset.name!r} is already registered; choose another name")
    _PRESETS[preset.name] = preset


register_preset(
    ModelPreset(
        "vrt-spike",
        "VRT deblurring backbone (7 stages at 96 channels) + spike branch of 96 channels, K=32",
        VRTSpikeConfig(
            backbone=VRT_PRESETS["vrt-deblur"],
            num_bins=32,
            spike_channels=96,
            temporal_heads=6,
            fusion_heads=6,
        ),
    )
)
register_preset(
    ModelPreset(
        "vrt-spike-small",
        "vrt-small backbone (48 channels, no flow alignment) + spike branch of 48 channels, K=32",
        VRTSpikeConfig(
            backbone=VRT_PRESETS["vrt-small"],
            num_bins=32,
            spike_channels=48,
            temporal_heads=4,
            fusion_heads=4,
        ),
    )
)
register_preset(
    ModelPreset(
        "vrt-spike-tiny",
        "vrt-tiny backbone (16 channels, no flow alignment) + spike branch of 16 channels, K=32",
        VRTSpikeConfig(
            backbone=VRT_PRESETS["vrt-tiny"],
            num_bins=32,
            spike_channels=16,
            temporal_heads=2,
            fusion_heads=2,
        ),
    )
)
for _name, _description in (
    ("vrt-deblur", "VRT backbone alone, the layout of the released deblurring checkpoints"),
    ("vrt-denoise", "VRT backbone alone with a noise-map input, the released denoising layout"),
    ("vrt-small", "VRT backbone alone, 48 channels, no flow alignment"),
    ("vrt-tiny", "VRT backbone alone, 16 channels, no flow alignment"),
):
    register_preset(ModelPreset(_name, _description, VRT_PRESETS[_name]))


def get_preset(name: str) -> ModelPreset:
    """Return the preset called ``name``; an unknown name raises :class:`InvalidInputError`."""
    try:
        return _PRESETS[name]
    except KeyError:
        raise InvalidInputError(
            f"unknown model preset {name!r}; choose one of {', '.join(_PRESETS)} (see `spikedeblur models`)"
        ) from None


def preset_names() -> list[str]:
    """Return the registered preset names in registration order."""
    return list(_PRESETS)


def build_model(
    config: VRTSpikeConfig | VRTConfig, *, device: torch.device | str | None = None, dtype: torch.dtype | None = None
) -> nn.Module:
    """Build a randomly initialised model for ``config``: a VRTSpike or a bare VRT."""
    if isinstance(config, VRTSpikeConfig):
        return VRTSpike(config, device=device, dtype=dtype)
    return VRT(config, device=device, dtype=dtype)


def create_model(
    name: str, *, device: torch.device | str | None = None, dtype: torch.dtype | None = None
) -> nn.Module:
    """Build the model of preset ``name`` with random weights (fusion layers at identity).

    Returns a :class:`VRTSpike` for ``vrt-spike*`` presets and a :class:`VRT` for backbone presets.
    """
    preset = get_preset(name)
    logger.debug("building model preset %s", name)
    return build_model(preset.config, device=device, dtype=dtype)


@functools.cache
def count_parameters(name: str) -> int:
    """Return the number of parameters of preset ``name``, counted on the ``meta`` device."""
    model = create_model(name, device="meta")
    return sum(parameter.numel() for parameter in model.parameters())


@dataclass(frozen=True)
class PresetInfo:
    """One row of :func:`list_presets`."""

    name: str
    kind: ModelKind
    description: str
    parameters: int
    num_bins: int | None


def list_presets(names: Sequence[str] | None = None) -> list[PresetInfo]:
    """Describe the presets called ``names`` (default: all, in registration order) with parameter counts."""
    presets = _PRESETS.values() if not names else [get_preset(name) for name in names]
    return [
        PresetInfo(preset.name, preset.kind, preset.description, count_parameters(preset.name), preset.num_bins)
        for preset in presets
    ]


def estimate_memory(
    name: str,
    *,
    frames: int = DEFAULT_MEMORY_CLIP[0],
    height: int = DEFAULT_MEMORY_CLIP[1],
    width: int = DEFAULT_MEMORY_CLIP[2],
    batch: int = 1,
    dtype: torch.dtype = torch.float32,
    with_spikes: bool = True,
) -> MemoryEstimate:
    """Estimate the tensor memory of one inference forward pass of preset ``name``.

    The forward pass runs on the ``meta`` device, so no memory is allocated and no arithmetic is
    done, while :func:`~spikedeblur.models.memory.measure_forward_memory` follows every tensor that
    is created and freed. Attention is counted as a fused kernel that does not store the attention
    matrix. Allocator overhead is not included, so the real peak on a device is somewhat higher.

    Args:
        name: preset name.
        frames, height, width, batch: clip size (B, T, H, W).
        dtype: parameter and activation dtype.
        with_spikes: pass spike voxels to a VRT+Spike model; ``False`` measures its backbone path.
    """
    preset = get_preset(name)
    model = build_model(preset.config, device="meta", dtype=dtype).eval()
    clip = torch.empty(batch, frames, 3, height, width, device="meta", dtype=dtype)

    if preset.kind == "vrt-spike":
        voxels = None
        if with_spikes:
            voxels = torch.empty(batch, frames, preset.num_bins, height, width, device="meta", dtype=dtype)
        return measure_forward_memory(model, clip, voxels)
    if preset.config.noise_map:
        return measure_forward_memory(model, clip, torch.empty(batch, frames, 1, height, width, device="meta", dtype=dtype))
    return measure_forward_memory(model, clip)


__all__ = [
    "DEFAULT_MEMORY_CLIP",
    "ModelPreset",
    "PresetInfo",
    "build_model",
    "count_parameters",
    "create_model",
    "estimate_memory",
    "get_preset",
    "list_presets",
    "preset_names",
    "register_preset",
]
