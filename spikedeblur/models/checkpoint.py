"""Save and load model weights as safetensors files with JSON metadata.

A checkpoint is one ``.safetensors`` file: the model's state dict plus string metadata that records
the preset name, the full configuration as JSON, the spike bins K, the package version and a
description of the training data. Loading rebuilds the model from the stored configuration, or,
when loading into an existing model, first checks that the configurations match and lists every
field that differs.

Official VRT ``.pth`` checkpoints load into the backbone of a VRT+Spike model (or into a bare VRT)
through :func:`spikedeblur.models.vrt_checkpoint.load_vrt_checkpoint`. The spike branch then keeps
its identity initialisation, so the model reproduces VRT exactly.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import Tensor, nn

from spikedeblur import __version__
from spikedeblur.errors import CheckpointError, InputNotFoundError, InvalidInputError
from spikedeblur.fileio import atomic_output
from spikedeblur.models.registry import ModelKind, build_model, create_model, get_preset
from spikedeblur.models.vrt import VRT
from spikedeblur.models.vrt_config import VRTConfig
from spikedeblur.models.vrt_spike import VRTSpike, VRTSpikeConfig

logger = logging.getLogger(__name__)

FORMAT_NAME = "spikedeblur-checkpoint"
FORMAT_VERSION = "1"
OFFICIAL_VRT_SUFFIXES = (".pth", ".pt")

# Number of key names an error lists before it summarises the rest as a count.
_LISTED_KEYS = 8


@dataclass(frozen=True)
class CheckpointMetadata:
    """Metadata that a checkpoint stores beside its tensors.

    Attributes:
        kind: ``"vrt-spike"`` or ``"vrt"``.
        preset: name of the preset the model was built from, or ``None`` for a custom configuration.
        config: the full model configuration.
        package_version: spikedeblur version that wrote the file.
        training_data: free-text description of the training data.
        extra: further string fields given by the writer (for example training steps or metrics).
    """

    kind: ModelKind
    preset: str | None
    config: VRTSpikeConfig | VRTConfig
    package_version: str
    training_data: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def num_bins(self) -> int | None:
        """Spike time bins per frame, or ``None`` for a backbone without a spike branch."""
        return self.config.num_bins if isinstance(self.config, VRTSpikeConfig) else None

    def to_strings(self) -> dict[str, str]:
        """Return the safetensors metadata (string keys and values)."""
        return {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "kind": self.kind,
            "preset": self.preset or "",
            "config": json.dumps(_config_to_dict(self.config), sort_keys=True),
            "num_bins": "" if self.num_bins is None else str(self.num_bins),
            "package_version": self.package_version,
            "training_data": self.training_data,
            "extra": json.dumps(self.extra, sort_keys=True),
        }

    @classmethod
    def from_strings(cls, metadata: Mapping[str, str] | None, *, source: str) -> CheckpointMetadata:
        """Parse safetensors metadata written by :meth:`to_strings`; ``source`` names the file in errors."""
        if not metadata or metadata.get("format") != FORMAT_NAME:
            raise CheckpointError(
                f"{source} has no spikedeblur metadata; load weights saved by spikedeblur, "
                "or an official VRT .pth file"
            )
        if metadata.get("format_version") != FORMAT_VERSION:
            raise CheckpointError(
                f"{source} has checkpoint format version {metadata.get('format_version')!r}; this spikedeblur "
                f"({__version__}) reads version {FORMAT_VERSION}, so upgrade spikedeblur"
            )

        kind = metadata.get("kind")
        try:
            config_data = json.loads(metadata["config"])
            extra = json.loads(metadata.get("extra") or "{}")
            if kind == "vrt-spike":
                config: VRTSpikeConfig | VRTConfig = VRTSpikeConfig.from_dict(config_data)
            elif kind == "vrt":
                config = VRTConfig(**config_data)
            else:
                raise ValueError(f"unknown model kind {kind!r}")
        except (KeyError, TypeError, ValueError) as error:
            raise CheckpointError(f"{source} has invalid metadata: {error}") from error

        return cls(
            kind=kind,
            preset=metadata.get("preset") or None,
            config=config,
            package_version=metadata.get("package_version", ""),
            training_data=metadata.get("training_data", ""),
            extra={str(key): str(value) for key, value in extra.items()},
        )


def _config_to_dict(config: VRTSpikeConfig | VRTConfig) -> dict[str, Any]:
    return json.loads(json.dumps(asdict(config)))


def config_differences(expected: VRTSpikeConfig | VRTConfig, actual: VRTSpikeConfig | VRTConfig) -> list[str]:
    """List the fields that differ between two configurations as ``"name: expected != actual"``."""
    if type(expected) is not type(actual):
        return [f"model kind: {type(expected).__name__} != {type(actual).__name__}"]

    def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
        flat: dict[str, Any] = {}
        for key, value in data.items():
            if isinstance(value, Mapping):
                flat.update(flatten(value, f"{prefix}{key}."))
            else:
                flat[f"{prefix}{key}"] = value
        return flat

    left = flatten(_config_to_dict(expected))
    right = flatten(_config_to_dict(actual))
    return [
        f"{name}: {left.get(name, '<absent>')} != {right.get(name, '<absent>')}"
        for name in sorted(set(left) | set(right))
        if left.get(name) != right.get(name)
    ]


def _model_kind(model: nn.Module) -> ModelKind:
    if isinstance(model, VRTSpike):
        return "vrt-spike"
    if isinstance(model, VRT):
        return "vrt"
    raise InvalidInputError(f"cannot checkpoint a {type(model).__name__}; expected a VRTSpike or VRT model")


def save_checkpoint(
    model: nn.Module,
    path: str | Path,
    *,
    preset: str | None = None,
    training_data: str = "",
    extra: Mapping[str, str] | None = None,
    overwrite: bool = False,
) -> CheckpointMetadata:
    """Write ``model``'s weights and metadata to a ``.safetensors`` file, atomically.

    Args:
        model: a :class:`VRTSpike` or :class:`VRT`.
        path: output file; an existing file raises :class:`~spikedeblur.errors.OutputExistsError`
            unless ``overwrite`` is set.
        preset: the preset the model was built from; its configuration must equal the model's.
        training_data: free-text description of the training data.
        extra: further string fields to record (for example training steps or metrics).
        overwrite: replace an existing file.

    Returns:
        the metadata that was written.
    """
    kind = _model_kind(model)
    if preset is not None:
        differences = config_differences(get_preset(preset).config, model.config)
        if differences:
            raise InvalidInputError(
                f"model config differs from preset {preset!r} ({'; '.join(differences)}); "
                "pass preset=None to save a custom configuration"
            )

    metadata = CheckpointMetadata(
        kind=kind,
        preset=preset,
        config=model.config,
        package_version=__version__,
        training_data=training_data,
        extra={str(key): str(value) for key, value in (extra or {}).items()},
    )
    # safetensors rejects tensors that share storage, so each entry gets its own contiguous copy.
    state = {name: tensor.detach().to("cpu", copy=True).contiguous() for name, tensor in model.state_dict().items()}

    path = Path(path)
    with atomic_output(path, overwrite=overwrite) as temporary:
        save_file(state, str(temporary), metadata=metadata.to_strings())
    logger.info("saved %s checkpoint %s (%d tensors)", kind, path, len(state))
    return metadata


def _read_safetensors(path: Path, *, device: torch.device | str) -> tuple[dict[str, Tensor], dict[str, str] | None]:
    if not path.is_file():
        raise InputNotFoundError(f"checkpoint {path} does not exist; check the path")
    try:
        with safe_open(str(path), framework="pt", device=str(device)) as handle:
            metadata = handle.metadata()
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"{path} is not a readable safetensors file ({error}); re-download or re-save it") from error
    return tensors, metadata


def _format_keys(names: list[str]) -> str:
    shown = ", ".join(names[:_LISTED_KEYS])
    if len(names) > _LISTED_KEYS:
        shown += f" and {len(names) - _LISTED_KEYS} more"
    return shown


def load_state_strict(model: nn.Module, state: Mapping[str, Tensor], *, source: str) -> None:
    """Copy ``state`` into ``model``; missing, unexpected or misshaped keys raise one :class:`CheckpointError`."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    misshaped = sorted(
        f"{name} {tuple(state[name].shape)} != {tuple(expected[name].shape)}"
        for name in set(expected) & set(state)
        if state[name].shape != expected[name].shape
    )

    problems = []
    if missing:
        problems.append(f"missing keys: {_format_keys(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_format_keys(unexpected)}")
    if misshaped:
        problems.append(f"wrong shapes (checkpoint != model): {_format_keys(misshaped)}")
    if problems:
        raise CheckpointError(f"{source} does not fit the model: {'; '.join(problems)}")

    model.load_state_dict(state, strict=True)


def load_checkpoint(model: nn.Module, path: str | Path) -> CheckpointMetadata:
    """Load a checkpoint file into an existing ``model`` and return its metadata.

    For a spikedeblur ``.safetensors`` file, the stored configuration must equal ``model.config``.
    Otherwise one :class:`~spikedeblur.errors.CheckpointError` lists every differing field. An
    official VRT ``.pth``/``.pt`` file loads into the backbone only (see :func:`load_backbone_weights`).
    """
    path = Path(path)
    if path.suffix.lower() in OFFICIAL_VRT_SUFFIXES:
        if not path.is_file():
            raise InputNotFoundError(f"checkpoint {path} does not exist; check the path")
        load_backbone_weights(model, path)
        return _official_metadata(model, path, preset=None)
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    state, raw_metadata = _read_safetensors(path, device=device if device.type != "meta" else "cpu")
    metadata = CheckpointMetadata.from_strings(raw_metadata, source=str(path))

    differences = config_differences(metadata.config, model.config)
    if differences:
        raise CheckpointError(
            f"{path} was saved for a different configuration (checkpoint != model): {'; '.join(differences)}; "
            "build the model with load_model() instead"
        )
    load_state_strict(model, state, source=str(path))
    return metadata


def load_model(
    source: str | Path | Mapping[str, Tensor],
    *,
    metadata: Mapping[str, str] | None = None,
    preset: str | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> tuple[nn.Module, CheckpointMetadata]:
    """Build a model and load weights into it; return ``(model, metadata)`` with the model in eval mode.

    Args:
        source: a spikedeblur ``.safetensors`` file; an official VRT ``.pth``/``.pt`` file, which
            loads into the backbone of ``preset``; or an in-memory state dict with its ``metadata``.
        metadata: safetensors metadata strings for an in-memory ``source``.
        preset: for a ``.pth`` file, the preset to build (default ``vrt-spike``); for a
            ``.safetensors`` file, the preset the caller expects (a mismatch raises).
        device: device of the model.
        dtype: dtype of the model.

    Raises:
        InputNotFoundError: ``source`` is a path that does not exist.
        CheckpointError: the file is unreadable, has no or invalid metadata, or its tensors do not
            fit the stored configuration.
    """
    if isinstance(source, Mapping):
        state = dict(source)
        checkpoint_metadata = CheckpointMetadata.from_strings(metadata, source="state dict")
        description = "state dict"
    else:
        path = Path(source)
        if path.suffix.lower() in OFFICIAL_VRT_SUFFIXES:
            return _load_official_vrt(path, preset=preset or "vrt-spike", device=device, dtype=dtype)
        state, raw_metadata = _read_safetensors(path, device="cpu")
        checkpoint_metadata = CheckpointMetadata.from_strings(raw_metadata, source=str(path))
        description = str(path)

    if preset is not None:
        differences = config_differences(get_preset(preset).config, checkpoint_metadata.config)
        if differences:
            raise CheckpointError(
                f"{description} does not hold preset {preset!r} (preset != checkpoint): {'; '.join(differences)}"
            )

    model = build_model(checkpoint_metadata.config, device=device, dtype=dtype)
    load_state_strict(model, state, source=description)
    logger.info(
        "loaded %s (preset %s, spikedeblur %s)",
        description,
        checkpoint_metadata.preset or "custom",
        checkpoint_metadata.package_version or "unknown",
    )
    return model.eval(), checkpoint_metadata


def load_backbone_weights(model: nn.Module, source: str | Path | Mapping[str, Tensor]) -> None:
    """Load official VRT weights (``.pth`` path or state dict) into ``model``'s backbone.

    For a :class:`VRTSpike`, only the backbone changes, so the spike branch keeps its current weights
    (the identity initialisation for a new model).
    """
    from spikedeblur.models.vrt_checkpoint import load_vrt_checkpoint

    backbone = model.backbone if isinstance(model, VRTSpike) else model
    if not isinstance(backbone, VRT):
        raise InvalidInputError(f"cannot load VRT weights into a {type(model).__name__}; expected a VRTSpike or VRT")
    load_vrt_checkpoint(backbone, source)


def _load_official_vrt(
    path: Path, *, preset: str, device: torch.device | str | None, dtype: torch.dtype | None
) -> tuple[nn.Module, CheckpointMetadata]:
    if not path.is_file():
        raise InputNotFoundError(f"checkpoint {path} does not exist; check the path")
    model = create_model(preset, device=device, dtype=dtype)
    load_backbone_weights(model, path)
    logger.info("loaded official VRT weights %s into preset %s", path, preset)
    return model.eval(), _official_metadata(model, path, preset=preset)


def _official_metadata(model: nn.Module, path: Path, *, preset: str | None) -> CheckpointMetadata:
    spike_note = "; spike branch unchanged" if isinstance(model, VRTSpike) else ""
    return CheckpointMetadata(
        kind=_model_kind(model),
        preset=preset,
        config=model.config,
        package_version=__version__,
        training_data=f"official VRT weights from {path.name}{spike_note}",
    )


__all__ = [
    "CheckpointMetadata",
    "config_differences",
    "load_backbone_weights",
    "load_checkpoint",
    "load_model",
    "load_state_strict",
    "save_checkpoint",
]
