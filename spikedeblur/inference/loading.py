"""Build the model that ``spikedeblur run`` uses: weights resolved and loaded, in a common call form."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from spikedeblur.inference.engine import ModelGeometry, RestorationModel

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class InferenceModel:
    """A model ready for :func:`~spikedeblur.inference.run_inference`.

    Attributes:
        restore: ``restore(frames (B, T, 3, H, W), spike_voxels (B, T, K, H, W) | None)``.
        geometry: the model's size constraints and spike bins.
        preset: the model preset name, or None for a custom configuration.
        uses_spikes: whether the model has a spike branch; a plain VRT has none.
        source: where the weights came from (a file path, or "random initialisation").
    """

    restore: RestorationModel
    geometry: ModelGeometry
    preset: str | None
    uses_spikes: bool
    source: str


def _as_restoration_model(module: torch.nn.Module, *, uses_spikes: bool) -> RestorationModel:
    if uses_spikes:
        return module

    # A plain VRT takes (frames, noise_map); spike voxels do not apply to it.
    def restore(frames: torch.Tensor, spike_voxels: torch.Tensor | None) -> torch.Tensor:
        return module(frames)

    return restore


def load_inference_model(
    weights: str | Path | None,
    *,
    preset: str | None,
    device: torch.device,
    dtype: torch.dtype,
    compile_model: bool = False,
    offline: bool | None = None,
) -> InferenceModel:
    """Resolve ``weights`` (a registry name or a file) and load it as an :class:`InferenceModel`.

    ``preset`` names the architecture for an official VRT ``.pth`` file and, for our own
    ``.safetensors`` files, the architecture they must contain. With ``weights=None`` the model of
    ``preset`` is built with random weights, which is only useful for benchmarks. ``compile_model``
    wraps the model in :func:`torch.compile`.
    """
    from spikedeblur.models.checkpoint import load_model
    from spikedeblur.models.registry import create_model
    from spikedeblur.models.vrt_spike import VRTSpike
    from spikedeblur.weights.registry import REGISTRY, get_record
    from spikedeblur.weights.resolve import resolve_weights

    if weights is None:
        if preset is None:
            raise ValueError("a preset is needed to build a model without weights")
        module = create_model(preset, device=device, dtype=dtype).eval()
        source = "random initialisation"
        logger.warning("no weights given: preset %s runs with random weights, so only its speed is meaningful", preset)
    else:
        if preset is None and isinstance(weights, str) and weights in REGISTRY:
            preset = get_record(weights).preset
        path = resolve_weights(weights, offline=offline)
        module, metadata = load_model(path, preset=preset, device=device, dtype=dtype)
        preset = preset or metadata.preset
        source = str(path)

    uses_spikes = isinstance(module, VRTSpike)
    geometry = ModelGeometry.of(module)

    restore = _as_restoration_model(module, uses_spikes=uses_spikes)
    if compile_model:
        logger.info("compiling the model with torch.compile; the first clip takes longer")
        restore = torch.compile(restore)

    return InferenceModel(restore=restore, geometry=geometry, preset=preset, uses_spikes=uses_spikes, source=source)
