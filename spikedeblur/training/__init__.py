"""Training of VRT+Spike models: configuration, data sets and the training loop."""

from spikedeblur.training.config import TrainConfig, load_config, parse_config
from spikedeblur.training.trainer import (
    Trainer,
    TrainResult,
    ValidationResult,
    charbonnier_loss,
    cosine_schedule,
    mse_loss,
)

__all__ = [
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "ValidationResult",
    "charbonnier_loss",
    "cosine_schedule",
    "load_config",
    "mse_loss",
    "parse_config",
]
