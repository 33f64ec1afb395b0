"""``spikedeblur demo``: simulate a procedural clip, deblur it with the shipped model, and score it."""

from __future__ import annotations

import json
import logging
import time
from fractions import Fraction
from pathlib import Path
from typing import Annotated

import typer

from spikedeblur.cli._app import global_options, stderr_console, stdout_console

logger = logging.getLogger(__name__)

# The compact model trained by `spikedeblur train --config configs/compact-tiny.toml`.
PACKAGED_WEIGHTS = "vrt-spike-tiny-compact.safetensors"

DEMO_SIZE = (192, 256)  # (H, W)
DEMO_TICKS_PER_FRAME = 64
DEMO_THRESHOLD = 2.0


def packaged_weights_path() -> Path:
    """Return the path of the compact model shipped inside the package."""
    from importlib.resources import files

    return Path(str(files("spikedeblur.weights") / "packaged" / PACKAGED_WEIGHTS))


def demo(
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Folder to create for the demo's files.")
    ] = Path("spikedeblur-demo"),
    frames: Annotated[int, typer.Option(min=2, max=200, help="Blurry frames in the clip.")] = 12,
    seed: Annotated[int, typer.Option(help="Seed of the procedural scene and the spike simulator.")] = 0,
    weights: Annotated[
        str | None,
        typer.Option(help="Weights to run instead of the shipped compact model: a registry name or a file."),
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = "auto",
    overwrite: Annotated[
        bool, typer.Option(help="Replace an output folder written by an earlier demo or simulate (one with manifest.json).")
    ] = False,
) -> None:
    """Run the whole pipeline offline on a procedural clip and report PSNR/SSIM.

    Renders a moving procedural scene, simulates its blurry video and spike stream, deblurs the video
    with the shipped compact model through the same engine as `spikedeblur run`, and scores the
    result against the ground truth. OUTPUT gets blurry.mp4, spikes.dat, sharp/ (ground truth),
    deblurred.mp4, comparison.mp4 (blurry | deblurred | ground truth), scores.csv and scores.json.
    """
    from spikedeblur.cli.eval import eval_command
    from spikedeblur.data.dataset import check_dataset_output, dataset_encode_options, write_dataset
    from spikedeblur.data.simulate import ExposureConfig, SpikeSimulationConfig, simulate_scene, spike_size
    from spikedeblur.data.synthetic import SCENE_PRESETS, ProceduralScene
    from spikedeblur.errors import InputNotFoundError
    from spikedeblur.inference.pipeline import RunRequest, deblur_video

    if weights is None:
        weights_path = packaged_weights_path()
        if not weights_path.is_file():
            raise InputNotFoundError(
                f"the shipped model {weights_path} is missing from this installation; reinstall spikedeblur "
                "or pass --weights FILE"
            )
        weights = str(weights_path)
    elif Path(weights).suffix in (".safetensors", ".pth", ".pt") and not Path(weights).is_file():
        # Fail before simulating, so a mistyped file name does not leave a half-finished demo folder.
        raise InputNotFoundError(f"weights file {weights} not found; pass an existing file or a registry name")
    check_dataset_output(output, overwrite=overwrite)

    started = time.perf_counter()
    height, width = DEMO_SIZE
    exposure = ExposureConfig(ticks_per_frame=DEMO_TICKS_PER_FRAME, spike_scale=0.5)
    spikes = SpikeSimulationConfig(threshold=DEMO_THRESHOLD, seed=seed)
    scene = ProceduralScene(SCENE_PRESETS["demo"], seed=seed)
    stderr_console.print(f"simulating {frames} frames of a procedural scene ({width}x{height}, seed {seed})")
    write_dataset(
        simulate_scene(scene, frames, exposure=exposure, spikes=spikes),
        output,
        height=height,
        width=width,
        fps=Fraction(25),
        exposure=exposure,
        spikes=spikes,
        spike_size=spike_size(height, width, exposure.spike_scale),
        source={"kind": "procedural", "seed": seed, "scene_preset": "demo"},
        expected_frames=frames,
        overwrite=overwrite,
    )

    stderr_console.print(f"deblurring with {weights}")
    request = RunRequest(
        input_path=output / "blurry.mp4",
        output_path=output / "deblurred.mp4",
        spikes_path=output / "spikes.dat",
        weights=weights,
        device=device,
        # Lossless, like blurry.mp4, so the scores measure the model and not the encoder.
        encode_options=dataset_encode_options(),
    )
    summary = deblur_video(request)
    logger.info("deblurred %d frames at %.2f frames/s on %s", summary.stats.frames, summary.stats.fps, summary.device)

    # eval prints the PSNR/SSIM table to stdout and writes the CSV and the side-by-side video.
    eval_command(
        pred=output / "deblurred.mp4",
        gt=output / "sharp",
        blurry=output / "blurry.mp4",
        csv_path=output / "scores.csv",
        compare=output / "comparison.mp4",
    )
    _write_scores_json(output)

    if not global_options.quiet:
        stderr_console.print(f"demo finished in {time.perf_counter() - started:.0f} s")
    stdout_console.print(str(output))


def _write_scores_json(output: Path) -> None:
    """Summarise scores.csv as scores.json: mean PSNR/SSIM of the deblurred and blurry frames."""
    import csv

    with open(output / "scores.csv", newline="", encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    columns = [name for name in rows[0] if name not in ("sequence", "frame")]
    means = {}
    for name in columns:
        values = [float(row[name]) for row in rows if row[name] not in ("", "inf")]
        if values:
            means[name] = sum(values) / len(values)
    (output / "scores.json").write_text(json.dumps({"frames": len(rows), "mean": means}, indent=2) + "\n", encoding="utf-8")


def register(app: typer.Typer) -> None:
    """Add the ``demo`` command to ``app``."""
    app.command("demo")(demo)
