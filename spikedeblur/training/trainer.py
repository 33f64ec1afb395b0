"""The training loop: Charbonnier or MSE loss, AdamW with a cosine schedule, phases, checkpoints and DDP.

One process trains on one device. Under ``torchrun`` each process (rank) builds the same model from
the same seed and wraps it in DistributedDataParallel. Each rank draws its own samples, with sample
ids ``(step * world_size + rank) * batch_size + j`` that never repeat across ranks or steps. DDP
averages the gradients, so every rank ends each step with identical weights.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from spikedeblur.data.dataset import MANIFEST_NAME
from spikedeblur.errors import CheckpointError, InvalidInputError, OutputExistsError
from spikedeblur.fileio import atomic_output
from spikedeblur.training.config import TrainConfig
from spikedeblur.training.datasets import (
    FileClipDataset,
    ProceduralClipSettings,
    ProceduralDataset,
    collate,
    make_procedural_clip,
    read_gopro_spike_clips,
    read_simulated_sequence,
)

logger = logging.getLogger(__name__)

CHECKPOINT_FOLDER = "checkpoints"
METRICS_FILE = "metrics.jsonl"
FINAL_WEIGHTS = "final.safetensors"


def charbonnier_loss(prediction: Tensor, target: Tensor, *, eps: float = 1e-3) -> Tensor:
    """Return mean(sqrt((prediction - target)^2 + eps^2)), a smooth L1 loss robust to outliers."""
    difference = prediction.float() - target.float()
    return torch.sqrt(difference * difference + eps * eps).mean()


def mse_loss(prediction: Tensor, target: Tensor) -> Tensor:
    """Return mean((prediction - target)^2) in float32, the loss that PSNR measures."""
    difference = prediction.float() - target.float()
    return (difference * difference).mean()


def cosine_schedule(step: int, *, total_steps: int, warmup_steps: int, min_ratio: float) -> float:
    """Return the learning-rate factor at ``step``: linear warm-up, then cosine decay to ``min_ratio``."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    progress = min(max(progress, 0.0), 1.0)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def sample_ids(step: int, *, rank: int, world_size: int, batch_size: int) -> list[int]:
    """Return the data set indices that ``rank`` trains on at ``step``; no id repeats across ranks or steps."""
    first = (step * world_size + rank) * batch_size
    return list(range(first, first + batch_size))


@dataclass(frozen=True)
class DistributedContext:
    """Rank, world size and device of this process."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: torch.device) -> DistributedContext:
    """Join the process group when started by ``torchrun`` (WORLD_SIZE > 1); NCCL on CUDA, gloo otherwise."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistributedContext()

    import torch.distributed as dist

    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
    context = DistributedContext(
        rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=int(os.environ.get("LOCAL_RANK", "0"))
    )
    logger.info("joined process group: rank %d of %d", context.rank, context.world_size)
    return context


def resolve_training_device(name: str, context_local_rank: int = 0) -> torch.device:
    """Return the torch device for ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (``cuda`` uses LOCAL_RANK)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        name = f"cuda:{context_local_rank}"
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InvalidInputError(f"device {name!r} requested but CUDA is not available; use --device cpu")
    return device


@dataclass
class ValidationResult:
    """Mean scores over the validation clips, in dB for PSNR."""

    psnr: float
    ssim: float
    psnr_without_spikes: float
    psnr_blurry: float

    @property
    def spike_reliance(self) -> float:
        """PSNR with spikes minus PSNR with spikes set to zero; near 0 means the spikes are ignored."""
        return self.psnr - self.psnr_without_spikes


@dataclass
class TrainResult:
    """Outcome of a finished :meth:`Trainer.train` call."""

    step: int
    final_weights: Path | None
    validation: ValidationResult | None
    history: list[dict[str, Any]] = field(default_factory=list)


def build_training_dataset(config: TrainConfig, *, num_bins: int):
    """Build the training data set of ``config.data``: procedural, simulated or GoPro-spike."""
    data = config.data
    if data.kind == "procedural":
        return ProceduralDataset(
            clip_length=data.clip_length,
            size=data.crop_size,
            num_bins=num_bins,
            ticks_per_bin=data.ticks_per_bin,
            threshold=data.threshold,
            speed=data.speed,
            spike_scale=data.spike_scale,
            num_layers=data.scene_layers,
            seed=config.seed,
        )

    if data.kind == "simulated":
        sequences = [read_simulated_sequence(path) for path in _expand_simulated(data.paths)]
    else:
        sequences = [clip for path in data.paths for clip in read_gopro_spike_clips(path)]
    return FileClipDataset(
        sequences,
        clip_length=data.clip_length,
        crop_size=data.crop_size,
        num_bins=num_bins,
        flips=data.flips,
        seed=config.seed,
    )


def _expand_simulated(paths: tuple[Path, ...]) -> list[Path]:
    """Accept data set folders and folders of data sets (any folder below that has a manifest)."""
    found = []
    for path in paths:
        if (path / MANIFEST_NAME).is_file():
            found.append(path)
        elif path.is_dir():
            found.extend(sorted(item.parent for item in path.glob(f"*/{MANIFEST_NAME}")))
        else:
            raise InvalidInputError(f"simulated data set {path} not found; pass a folder written by 'spikedeblur simulate'")
    if not found:
        raise InvalidInputError(f"no simulated data set (a folder with manifest.json) found in {list(map(str, paths))}")
    return found


def validation_clips(config: TrainConfig, *, num_bins: int) -> list[dict[str, np.ndarray]]:
    """Return the fixed procedural validation clips, with parameters that never change between runs."""
    section = config.validation
    clips = []
    for index in range(section.num_clips):
        settings = ProceduralClipSettings(
            clip_length=section.clip_length,
            height=section.size,
            width=section.size,
            num_bins=num_bins,
            ticks_per_bin=section.ticks_per_bin,
            threshold=section.threshold,
            speed=section.speed,
            spike_scale=config.data.spike_scale,
            num_layers=config.data.scene_layers,
        )
        clips.append(make_procedural_clip(settings, seed=section.seed + index))
    return clips


def _trim_to_multiple(sample: dict[str, np.ndarray], multiple: int) -> dict[str, np.ndarray]:
    height, width = sample["blurry"].shape[-2:]
    height, width = height - height % multiple, width - width % multiple
    return {key: value[..., :height, :width] for key, value in sample.items()}


class Trainer:
    """Train a VRT+Spike model as described by a :class:`TrainConfig`.

    Args:
        config: the training configuration.
        device: overrides ``config.training.device``.
        log: optional callback that receives each logged record (a dict), for progress display.
    """

    def __init__(
        self,
        config: TrainConfig,
        *,
        device: str | None = None,
        log: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        from spikedeblur.models.registry import build_model, get_preset

        self.config = config
        self.log_callback = log
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.device = resolve_training_device(device or config.training.device, local_rank)
        self.context = setup_distributed(self.device)
        self.output_dir = Path(config.output_dir)

        # Every rank seeds identically so the models start equal (DDP also broadcasts rank 0's weights).
        torch.manual_seed(config.seed)
        model_config = get_preset(config.model.preset).config
        if config.model.fusion_windows is not None:
            if not hasattr(model_config, "fusion_windows"):
                raise InvalidInputError(f"model preset {config.model.preset!r} has no fusion to configure")
            model_config = dataclasses.replace(model_config, fusion_windows=config.model.fusion_windows)
        self.model = build_model(model_config, device=self.device)
        if not hasattr(self.model, "spike_branch_parameters"):
            raise InvalidInputError(
                f"model preset {config.model.preset!r} has no spike branch; train a vrt-spike* preset"
            )
        if config.model.init_weights is not None:
            from spikedeblur.models.checkpoint import load_checkpoint

            load_checkpoint(self.model, config.model.init_weights)
            logger.info("initialised weights from %s", config.model.init_weights)
        elif config.model.output_init_scale != 1.0:
            head = self.model.backbone.conv_last
            with torch.no_grad():
                head.weight.mul_(config.model.output_init_scale)
                if head.bias is not None:
                    head.bias.mul_(config.model.output_init_scale)
        if config.model.grad_checkpointing:
            self.model.set_grad_checkpointing(True)

        spike_ids = {id(parameter) for parameter in self.model.spike_branch_parameters()}
        self.backbone_parameters = [p for p in self.model.parameters() if id(p) not in spike_ids]
        self.wrapped: nn.Module = self.model
        if self.context.world_size > 1:
            from torch.nn.parallel import DistributedDataParallel

            device_ids = [self.device.index] if self.device.type == "cuda" else None
            self.wrapped = DistributedDataParallel(self.model, device_ids=device_ids)

        optimizer_config = config.optimizer
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(),
            lr=optimizer_config.lr,
            betas=optimizer_config.betas,
            weight_decay=optimizer_config.weight_decay,
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer,
            lambda step: cosine_schedule(
                step,
                total_steps=config.training.steps,
                warmup_steps=optimizer_config.warmup_steps,
                min_ratio=optimizer_config.min_lr_ratio,
            ),
        )
        self.autocast_dtype = self._autocast_dtype()
        self.dataset = build_training_dataset(config, num_bins=self.model.num_bins)
        self.step = 0
        self.history: list[dict[str, Any]] = []

    def _autocast_dtype(self) -> torch.dtype | None:
        precision = self.config.training.precision
        if precision == "fp32":
            return None
        if self.device.type != "cuda":
            if precision == "bf16":
                raise InvalidInputError("bf16 training needs a CUDA device here; use precision = \"fp32\" on CPU")
            return None
        if not torch.cuda.is_bf16_supported():
            if precision == "bf16":
                raise InvalidInputError(f"{self.device} does not support bf16; use precision = \"fp32\"")
            return None
        return torch.bfloat16

    def loss(self, restored: Tensor, sharp: Tensor) -> Tensor:
        """Compute the configured training loss between ``(B, T, 3, H, W)`` outputs and targets."""
        optimizer = self.config.optimizer
        if optimizer.loss == "mse":
            return mse_loss(restored, sharp)
        return charbonnier_loss(restored, sharp, eps=optimizer.charbonnier_eps)

    # --- data -------------------------------------------------------------------------------------

    def batch(self, step: int) -> dict[str, Tensor]:
        """Return this rank's batch for ``step`` as tensors on the training device."""
        context = self.context
        ids = sample_ids(step, rank=context.rank, world_size=context.world_size, batch_size=self.config.training.batch_size)
        samples = [self.dataset[index] for index in ids]
        return {key: torch.from_numpy(value).to(self.device) for key, value in collate(samples).items()}

    # --- checkpoints ------------------------------------------------------------------------------

    def checkpoint_path(self, step: int) -> Path:
        return self.output_dir / CHECKPOINT_FOLDER / f"step_{step:07d}.pt"

    def latest_checkpoint(self) -> Path | None:
        """Return the newest checkpoint in the output folder, or None."""
        folder = self.output_dir / CHECKPOINT_FOLDER
        candidates = sorted(folder.glob("step_*.pt")) if folder.is_dir() else []
        return candidates[-1] if candidates else None

    def save_checkpoint(self) -> Path:
        """Write model, optimizer, scheduler, RNG state and step to ``checkpoints/step_N.pt``."""
        path = self.checkpoint_path(self.step)
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {
            "step": self.step,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "preset": self.config.model.preset,
        }
        with atomic_output(path, overwrite=True) as temporary:
            torch.save(state, temporary)
        logger.info("saved checkpoint %s", path)

        keep = self.config.training.keep_checkpoints
        for old in sorted(path.parent.glob("step_*.pt"))[:-keep]:
            old.unlink()
        return path

    def load_checkpoint(self, path: Path) -> None:
        """Restore a checkpoint written by :meth:`save_checkpoint` and continue from its step."""
        path = Path(path)
        try:
            state = torch.load(path, map_location=self.device, weights_only=True)
        except FileNotFoundError:
            raise
        except Exception as error:  # torch raises several unrelated types for corrupt files
            raise CheckpointError(f"training checkpoint {path} could not be read ({error}); pick another one") from error
        if state.get("preset") != self.config.model.preset:
            raise CheckpointError(
                f"training checkpoint {path} is for preset {state.get('preset')!r}, "
                f"not {self.config.model.preset!r}; use the matching config"
            )

        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"].cpu())
        if state["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([item.cpu() for item in state["cuda_rng"]])
        self.step = int(state["step"])
        logger.info("resumed from %s at step %d", path, self.step)

    # --- validation -------------------------------------------------------------------------------

    @torch.no_grad()
    def validate(self, clips: list[dict[str, np.ndarray]]) -> ValidationResult:
        """Measure PSNR/SSIM with spikes, PSNR with spikes set to zero and the blurry input's PSNR."""
        from spikedeblur.evaluation.metrics import psnr, ssim

        self.model.eval()
        scores: dict[str, list[float]] = {"psnr": [], "ssim": [], "zero": [], "blurry": []}
        for clip in clips:
            clip = _trim_to_multiple(clip, self.model.size_multiple)
            frames = torch.from_numpy(clip["blurry"])[None].to(self.device)
            voxels = torch.from_numpy(clip["voxels"])[None].to(self.device)
            with torch.autocast(self.device.type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None):
                restored = self.model(frames, voxels).float().clamp(0, 1)
                without = self.model(frames, torch.zeros_like(voxels)).float().clamp(0, 1)

            for index in range(frames.shape[1]):
                target = np.moveaxis(clip["sharp"][index], 0, -1)
                ours = np.moveaxis(restored[0, index].cpu().numpy(), 0, -1)
                scores["psnr"].append(psnr(ours, target))
                scores["ssim"].append(ssim(ours, target))
                scores["zero"].append(psnr(np.moveaxis(without[0, index].cpu().numpy(), 0, -1), target))
                scores["blurry"].append(psnr(np.moveaxis(clip["blurry"][index], 0, -1), target))
        self.model.train()
        return ValidationResult(
            psnr=float(np.mean(scores["psnr"])),
            ssim=float(np.mean(scores["ssim"])),
            psnr_without_spikes=float(np.mean(scores["zero"])),
            psnr_blurry=float(np.mean(scores["blurry"])),
        )

    # --- the loop ---------------------------------------------------------------------------------

    def _record(self, record: dict[str, Any]) -> None:
        self.history.append(record)
        if not self.context.is_main:
            return
        self.output_dir.mkdir(parents=True, exist_ok=True)
        with open(self.output_dir / METRICS_FILE, "a", encoding="utf-8") as stream:
            stream.write(json.dumps(record) + "\n")
        if self.log_callback is not None:
            self.log_callback(record)

    def train_step(self) -> float:
        """Run one optimisation step and return the loss (synchronises with the device once)."""
        phase = self.config.phase_at(self.step)
        batch = self.batch(self.step)

        with torch.autocast(self.device.type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None):
            restored = self.wrapped(batch["blurry"], batch["voxels"])
        loss = self.loss(restored, batch["sharp"])

        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if phase.train == "spike":
            # Gradients still flow through the frozen backbone, but AdamW skips parameters without a
            # gradient, so neither the update nor weight decay touches them.
            for parameter in self.backbone_parameters:
                parameter.grad = None
        torch.nn.utils.clip_grad_norm_(
            [p for p in self.model.parameters() if p.grad is not None], self.config.optimizer.grad_clip
        )
        self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        return float(loss.detach())

    def train(self, *, resume: Path | None = None, max_steps: int | None = None) -> TrainResult:
        """Train until ``config.training.steps`` (or ``max_steps`` more steps) and return the outcome.

        Args:
            resume: a checkpoint to continue from.
            max_steps: stop after this many steps of this call even if the schedule goes on.
        """
        if resume is not None:
            self.load_checkpoint(resume)
        training = self.config.training
        stop = training.steps if max_steps is None else min(training.steps, self.step + max_steps)

        validation_set = validation_clips(self.config, num_bins=self.model.num_bins) if self.context.is_main else []
        validation: ValidationResult | None = None
        self.model.train()
        started = time.perf_counter()
        losses: list[float] = []
        while self.step < stop:
            losses.append(self.train_step())

            if self.step % training.log_every == 0 or self.step == stop:
                elapsed = time.perf_counter() - started
                self._record(
                    {
                        "step": self.step,
                        "phase": self.config.phase_at(self.step - 1).name,
                        "loss": float(np.mean(losses)),
                        "lr": self.scheduler.get_last_lr()[0],
                        "seconds_per_step": elapsed / len(losses),
                    }
                )
                losses, started = [], time.perf_counter()

            at_end = self.step == training.steps
            if self.context.is_main and (self.step % training.validate_every == 0 or at_end):
                validation = self.validate(validation_set)
                self._record(
                    {
                        "step": self.step,
                        "val_psnr": validation.psnr,
                        "val_ssim": validation.ssim,
                        "val_psnr_without_spikes": validation.psnr_without_spikes,
                        "val_spike_reliance": validation.spike_reliance,
                        "val_psnr_blurry": validation.psnr_blurry,
                    }
                )
            if self.context.is_main and (self.step % training.checkpoint_every == 0 or self.step == stop):
                self.save_checkpoint()

        final_weights = None
        if self.context.is_main and self.step == training.steps:
            final_weights = self.export_weights(self.output_dir / FINAL_WEIGHTS, validation)
        if self.context.world_size > 1:
            import torch.distributed as dist

            dist.barrier()
        return TrainResult(step=self.step, final_weights=final_weights, validation=validation, history=self.history)

    def export_weights(self, path: Path, validation: ValidationResult | None) -> Path:
        """Save the model as a safetensors checkpoint that ``spikedeblur run --weights`` loads."""
        from spikedeblur.models.checkpoint import save_checkpoint

        extra = {"steps": str(self.step), "seed": str(self.config.seed)}
        if validation is not None:
            extra.update(
                {
                    "val_psnr": f"{validation.psnr:.3f}",
                    "val_psnr_without_spikes": f"{validation.psnr_without_spikes:.3f}",
                    "val_psnr_blurry": f"{validation.psnr_blurry:.3f}",
                }
            )
        data = self.config.data
        description = f"{data.kind} clips, crop {data.crop_size}, T={data.clip_length}, threshold {data.threshold}"
        # A model with overridden fusion windows is no longer the preset, so it is saved by its config alone.
        preset = self.config.model.preset if self.config.model.fusion_windows is None else None
        extra["base_preset"] = self.config.model.preset
        save_checkpoint(self.model, path, preset=preset, training_data=description, extra=extra, overwrite=True)
        return path


def check_output_dir(output_dir: Path, *, resume: bool) -> None:
    """Raise if ``output_dir`` already contains a run and resuming was not requested."""
    folder = Path(output_dir) / CHECKPOINT_FOLDER
    if not resume and folder.is_dir() and any(folder.glob("step_*.pt")):
        raise OutputExistsError(
            f"{output_dir} already contains training checkpoints; pass --resume auto to continue "
            "or choose another --output-dir"
        )
