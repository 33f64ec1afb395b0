"""``spikedeblur train``: train a VRT+Spike model from a TOML configuration."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

import typer

from spikedeblur.cli._app import global_options, stderr_console, stdout_console

logger = logging.getLogger(__name__)

EXAMPLES = """
Examples:

  spikedeblur train --config configs/compact-tiny.toml --output-dir runs/tiny

  spikedeblur train --config configs/compact-tiny.toml --output-dir runs/tiny --resume auto

  torchrun --nproc-per-node 4 -m spikedeblur train --config big.toml
"""


def _format_record(record: dict[str, Any]) -> str:
    if "val_psnr" in record:
        return (
            f"step {record['step']}: validation PSNR {record['val_psnr']:.2f} dB "
            f"(blurry {record['val_psnr_blurry']:.2f}, spikes zeroed {record['val_psnr_without_spikes']:.2f}, "
            f"spike reliance {record['val_spike_reliance']:+.2f} dB), SSIM {record['val_ssim']:.4f}"
        )
    return (
        f"step {record['step']} [{record['phase']}]: loss {record['loss']:.5f}, "
        f"lr {record['lr']:.2e}, {record['seconds_per_step']:.2f} s/step"
    )


def train(
    config: Annotated[
        Path, typer.Option("--config", "-c", help="Training configuration file (TOML).", show_default=False)
    ],
    output_dir: Annotated[
        Path | None,
        typer.Option("--output-dir", "-o", help="Folder for checkpoints, metrics.jsonl and final.safetensors."),
    ] = None,
    resume: Annotated[
        str | None,
        typer.Option(help="Continue from a checkpoint file, or 'auto' for the newest one in the output folder."),
    ] = None,
    device: Annotated[
        str | None, typer.Option(help="auto, cpu, cuda or cuda:N; overrides training.device in the config.")
    ] = None,
    max_steps: Annotated[
        int | None, typer.Option(min=1, help="Stop after this many steps of this call (the schedule is unchanged).")
    ] = None,
) -> None:
    """Train a VRT+Spike model: Charbonnier or MSE loss, AdamW + cosine schedule, phases, checkpoints.

    Under torchrun every process trains on its own samples with DistributedDataParallel.
    """
    from spikedeblur.training.config import load_config
    from spikedeblur.training.trainer import Trainer, check_output_dir

    overrides = {"output_dir": str(output_dir.resolve())} if output_dir is not None else {}
    settings = load_config(config, **overrides)
    check_output_dir(settings.output_dir, resume=resume is not None)

    def show(record: dict[str, Any]) -> None:
        if not global_options.quiet:
            stderr_console.print(_format_record(record), highlight=False, markup=False)

    trainer = Trainer(settings, device=device, log=show)
    resume_path: Path | None = None
    if resume == "auto":
        resume_path = trainer.latest_checkpoint()
        if resume_path is None:
            logger.info("no checkpoint in %s; starting from step 0", settings.output_dir)
    elif resume is not None:
        resume_path = Path(resume)
        if not resume_path.is_file():
            raise typer.BadParameter(f"checkpoint {resume_path} not found; give a step_*.pt file or 'auto'")

    result = trainer.train(resume=resume_path, max_steps=max_steps)
    if trainer.context.is_main:
        stdout_console.print(f"trained to step {result.step} of {settings.training.steps}")
        if result.final_weights is not None:
            stdout_console.print(f"weights: {result.final_weights}")


def register(app: typer.Typer) -> None:
    """Add the ``train`` command to ``app``."""
    app.command("train", epilog=EXAMPLES)(train)
