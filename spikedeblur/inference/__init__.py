"""Clip-and-tile inference: settings, tiling arithmetic, devices and the streaming engine."""

from spikedeblur.inference.engine import (
    FrameSink,
    InferenceProgress,
    InferenceStats,
    ModelGeometry,
    SourceFrame,
    VoxelProvider,
    run_inference,
)
from spikedeblur.inference.settings import PRESET_SETTINGS, InferenceSettings, settings_for_preset

__all__ = [
    "PRESET_SETTINGS",
    "FrameSink",
    "InferenceProgress",
    "InferenceSettings",
    "InferenceStats",
    "ModelGeometry",
    "SourceFrame",
    "VoxelProvider",
    "run_inference",
    "settings_for_preset",
]
