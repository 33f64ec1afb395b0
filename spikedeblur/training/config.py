"""Training configuration: frozen dataclasses read from a TOML file.

Example (every key is optional except where noted)::

    seed = 0
    output_dir = "runs/tiny"          # relative paths are relative to the TOML file

    [model]
    preset = "vrt-spike-tiny"
    init_weights = "base.safetensors" # optional starting weights
    grad_checkpointing = false
    fusion_windows = [1, 1, 1, 1]     # optional: per-scale fusion window replacing the preset's
    output_init_scale = 0.1           # shrink the random output head so training starts near the identity

    [data]
    kind = "procedural"               # "procedural", "simulated" or "gopro-spike"
    paths = []                        # data set folders for "simulated" and "gopro-spike"
    clip_length = 4
    crop_size = 64
    ticks_per_bin = [1, 3]            # spike ticks per voxel bin, drawn per clip
    threshold = [1.0, 4.0]            # integrate-and-fire threshold, drawn per clip
    speed = [2.0, 12.0]               # procedural layer speed in pixels per frame, drawn per clip
    spike_scale = 0.5

    [optimizer]
    lr = 4e-4
    weight_decay = 1e-4
    warmup_steps = 50
    loss = "charbonnier"              # or "mse"

    [training]
    steps = 2000
    batch_size = 2

    [[phases]]                        # optional; default is one phase training everything
    name = "spike-branch"
    steps = 500
    train = "spike"                   # spike branch and fusion only, backbone frozen
    [[phases]]
    name = "all"
    steps = 1500
    train = "all"

    [validation]
    num_clips = 4
    clip_length = 4
    size = 96
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from spikedeblur.errors import InputNotFoundError, InvalidInputError

DATA_KINDS = ("procedural", "simulated", "gopro-spike")
PHASE_TARGETS = ("spike", "all")
PRECISIONS = ("auto", "fp32", "bf16")
LOSSES = ("charbonnier", "mse")


def _check_range(name: str, value: Any, *, minimum: float, maximum: float = math.inf) -> tuple[float, float]:
    """Return ``value`` as a (low, high) pair, accepting a single number for a fixed value."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = (value, value)
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise InvalidInputError(f"{name}={value!r} is invalid; give a number or a [low, high] pair")
    low, high = (float(v) for v in value)
    if not (minimum <= low <= high <= maximum):
        raise InvalidInputError(f"{name}={list(value)} is invalid; give {minimum} <= low <= high <= {maximum}")
    return low, high


@dataclass(frozen=True, kw_only=True)
class ModelSection:
    """The model to train: a registry preset, optional starting weights, memory options.

    ``output_init_scale`` multiplies the random weights of the backbone's last convolution when no
    ``init_weights`` are given. Thanks to the global residual, a small scale makes the untrained
    model return nearly its blurry input instead of noise. 0 makes it exactly the identity, but then
    every gradient that reaches the layers before the head is zero at the first step, and the spike
    branch, behind the zero-initialised fusion as well, learns far more slowly.

    ``fusion_windows`` replaces the preset's cross-attention window per encoder scale (pixels, or
    "global"). The model is then a custom configuration, saved with its full config but no preset.
    """

    preset: str = "vrt-spike-tiny"
    init_weights: Path | None = None
    grad_checkpointing: bool = False
    output_init_scale: float = 0.1
    fusion_windows: tuple[int | str, ...] | None = None

    def __post_init__(self) -> None:
        if self.fusion_windows is not None:
            object.__setattr__(self, "fusion_windows", tuple(self.fusion_windows))
        if not 0.0 <= self.output_init_scale <= 1.0:
            raise InvalidInputError(f"output_init_scale={self.output_init_scale} is invalid; use a value in [0, 1]")


@dataclass(frozen=True, kw_only=True)
class DataSection:
    """Training data and its augmentation ranges; ranges are drawn uniformly once per clip."""

    kind: str = "procedural"
    paths: tuple[Path, ...] = ()
    clip_length: int = 4
    crop_size: int = 64
    ticks_per_bin: tuple[float, float] = (1, 3)
    threshold: tuple[float, float] = (1.0, 4.0)
    speed: tuple[float, float] = (2.0, 12.0)
    spike_scale: float = 0.5
    scene_layers: int = 4
    flips: bool = True

    def __post_init__(self) -> None:
        if self.kind not in DATA_KINDS:
            raise InvalidInputError(f"data kind {self.kind!r} is unknown; use one of {', '.join(DATA_KINDS)}")
        if self.kind != "procedural" and not self.paths:
            raise InvalidInputError(f"data kind {self.kind!r} needs 'paths': the data set folders to read")
        if self.clip_length < 2:
            raise InvalidInputError(f"clip_length={self.clip_length} is invalid; use 2 or more frames")
        if self.crop_size < 16:
            raise InvalidInputError(f"crop_size={self.crop_size} is invalid; use 16 pixels or more")
        object.__setattr__(self, "ticks_per_bin", _check_range("ticks_per_bin", self.ticks_per_bin, minimum=1))
        object.__setattr__(self, "threshold", _check_range("threshold", self.threshold, minimum=1e-3))
        object.__setattr__(self, "speed", _check_range("speed", self.speed, minimum=0.0))
        if not 0 < self.spike_scale <= 1:
            raise InvalidInputError(f"spike_scale={self.spike_scale} is invalid; use a fraction in (0, 1]")
        if self.scene_layers < 3:
            raise InvalidInputError(f"scene_layers={self.scene_layers} is invalid; use 3 or more")


@dataclass(frozen=True, kw_only=True)
class OptimizerSection:
    """The loss, and AdamW with linear warm-up and a cosine decay to ``min_lr_ratio * lr``.

    ``loss`` is ``"charbonnier"`` (smooth L1 with ``charbonnier_eps``) or ``"mse"``. Train a model
    from random weights with MSE. Such a model starts near the identity: it returns its blurry input.
    An L1-like loss then pulls every uncertain pixel back to exactly that, because the median
    correction of a weak predictor is zero. With Charbonnier, ``vrt-spike-tiny`` kept a spike
    reliance of 0.00 dB for hundreds of steps; with MSE it passed 2 dB within 150 steps. Charbonnier
    suits fine-tuning a model that already deblurs.
    """

    lr: float = 4e-4
    weight_decay: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.99)
    warmup_steps: int = 50
    min_lr_ratio: float = 0.05
    grad_clip: float = 1.0
    charbonnier_eps: float = 1e-3
    loss: str = "charbonnier"

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise InvalidInputError(f"loss {self.loss!r} is unknown; use one of {', '.join(LOSSES)}")
        if not self.lr > 0:
            raise InvalidInputError(f"lr={self.lr} is invalid; use a positive learning rate such as 4e-4")
        if self.weight_decay < 0 or self.warmup_steps < 0 or not 0 <= self.min_lr_ratio <= 1:
            raise InvalidInputError("weight_decay and warmup_steps must be >= 0 and min_lr_ratio in [0, 1]")
        object.__setattr__(self, "betas", tuple(float(v) for v in self.betas))


@dataclass(frozen=True, kw_only=True)
class TrainingSection:
    """Loop length, batch, precision and how often to log, validate and save."""

    steps: int = 1000
    batch_size: int = 2
    device: str = "auto"
    precision: str = "auto"
    log_every: int = 10
    validate_every: int = 250
    checkpoint_every: int = 250
    keep_checkpoints: int = 3

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "log_every", "validate_every", "checkpoint_every", "keep_checkpoints"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidInputError(f"training {name}={value!r} is invalid; use a positive integer")
        if self.precision not in PRECISIONS:
            raise InvalidInputError(f"precision {self.precision!r} is unknown; use one of {', '.join(PRECISIONS)}")


@dataclass(frozen=True, kw_only=True)
class Phase:
    """A run of steps that trains either the spike branch and fusion only, or every parameter."""

    name: str
    steps: int
    train: str = "all"

    def __post_init__(self) -> None:
        if self.train not in PHASE_TARGETS:
            raise InvalidInputError(f"phase {self.name!r} train={self.train!r} is unknown; use 'spike' or 'all'")
        if self.steps < 1:
            raise InvalidInputError(f"phase {self.name!r} steps={self.steps} is invalid; use 1 or more")


@dataclass(frozen=True, kw_only=True)
class ValidationSection:
    """Fixed procedural clips restored during training, with their spike and motion settings."""

    num_clips: int = 4
    clip_length: int = 4
    size: int = 96
    seed: int = 1_000_000
    ticks_per_bin: int = 2
    threshold: float = 2.0
    speed: float = 8.0


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """The whole training configuration; build it with :func:`load_config`."""

    seed: int = 0
    output_dir: Path = Path("runs/train")
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    optimizer: OptimizerSection = field(default_factory=OptimizerSection)
    training: TrainingSection = field(default_factory=TrainingSection)
    phases: tuple[Phase, ...] = ()
    validation: ValidationSection = field(default_factory=ValidationSection)

    def __post_init__(self) -> None:
        if not self.phases:
            object.__setattr__(self, "phases", (Phase(name="all", steps=self.training.steps),))
        if self.model.output_init_scale == 0 and self.model.init_weights is None and self.phases[0].train == "spike":
            # With a zero output head no gradient reaches the spike branch, and the head itself is
            # part of the frozen backbone, so such a run would never change the model.
            raise InvalidInputError(
                "the first phase trains only the spike branch, but model.output_init_scale = 0 zeroes the "
                "frozen output head so nothing could learn; use a scale above 0, give init_weights, "
                "or start with an 'all' phase"
            )
        total = sum(phase.steps for phase in self.phases)
        if total != self.training.steps:
            raise InvalidInputError(
                f"the phases add up to {total} steps but training.steps is {self.training.steps}; make them equal"
            )

    def phase_at(self, step: int) -> Phase:
        """Return the phase that step ``step`` (0-based) belongs to."""
        end = 0
        for phase in self.phases:
            end += phase.steps
            if step < end:
                return phase
        return self.phases[-1]


def _build(cls: type, section: str, values: Any, base: Path) -> Any:
    if not isinstance(values, dict):
        raise InvalidInputError(f"[{section}] must be a table of keys, got {values!r}")
    known = {item.name for item in fields(cls)}
    unknown = set(values) - known
    if unknown:
        raise InvalidInputError(f"[{section}] has unknown keys {sorted(unknown)}; valid keys: {sorted(known)}")

    converted = dict(values)
    for key in ("paths",):
        if key in converted:
            converted[key] = tuple(_resolve(base, item) for item in converted[key])
    for key in ("init_weights",):
        if converted.get(key):
            converted[key] = _resolve(base, converted[key])
        elif key in converted:
            converted[key] = None
    try:
        return cls(**converted)
    except TypeError as error:
        raise InvalidInputError(f"[{section}] is invalid: {error}") from error


def _resolve(base: Path, value: Any) -> Path:
    path = Path(str(value)).expanduser()
    return path if path.is_absolute() else base / path


def parse_config(data: dict[str, Any], *, base: Path = Path(".")) -> TrainConfig:
    """Build a :class:`TrainConfig` from parsed TOML; relative paths are resolved against ``base``."""
    sections = {
        "model": ModelSection,
        "data": DataSection,
        "optimizer": OptimizerSection,
        "training": TrainingSection,
        "validation": ValidationSection,
    }
    top_level = {"seed", "output_dir", "phases", *sections}
    unknown = set(data) - top_level
    if unknown:
        raise InvalidInputError(f"training config has unknown keys {sorted(unknown)}; valid keys: {sorted(top_level)}")

    values: dict[str, Any] = {name: _build(cls, name, data.get(name, {}), base) for name, cls in sections.items()}
    values["phases"] = tuple(_build(Phase, "phases", item, base) for item in data.get("phases", []))
    values["seed"] = int(data.get("seed", 0))
    values["output_dir"] = _resolve(base, data.get("output_dir", "runs/train"))
    return TrainConfig(**values)


def load_config(path: Path, **overrides: Any) -> TrainConfig:
    """Read a TOML training configuration file.

    ``overrides`` replace top-level keys after reading (the CLI passes ``output_dir`` this way).
    """
    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError(f"training config {path} not found; pass an existing .toml file")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise InvalidInputError(f"training config {path} is not valid TOML: {error}") from error

    data.update({key: value for key, value in overrides.items() if value is not None})
    return parse_config(data, base=path.resolve().parent)
