"""``spikedeblur simulate``: make a blurry video, a spike stream and ground truth from sharp frames."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Annotated

import typer

from spikedeblur.cli._app import global_options, stderr_console, stdout_console

logger = logging.getLogger(__name__)

# Time bins per frame of the shipped models; fewer exposed ticks than this leave bins empty.
VOXEL_BINS = 32

EXAMPLES = """
Examples:

  spikedeblur simulate sharp_240fps.mp4 -o dataset/ --frames-per-blur 7

  spikedeblur simulate bikes.mp4 -o bikes_sim/ --upsample 8 --frames-per-blur 5 --threshold 2

  spikedeblur simulate --procedural --frames 20 --size 256x192 -o scenes/clip0 --seed 3
"""


def _parse_size(value: str) -> tuple[int, int]:
    """Parse ``WxH`` into (height, width)."""
    try:
        width_text, height_text = value.lower().split("x")
        width, height = int(width_text), int(height_text)
    except ValueError:
        raise typer.BadParameter(f"size {value!r} is invalid; write it as WIDTHxHEIGHT, for example 256x192") from None
    if width < 16 or height < 16:
        raise typer.BadParameter(f"size {value!r} is too small; use at least 16x16")
    return height, width


def _warn_sparse_exposure(exposure_ticks: int, frames_per_blur: int) -> None:
    if frames_per_blur > 1:
        # the default exposure spans (frames_per_blur - 1) * upsample + 1 ticks
        upsample = -(-(VOXEL_BINS - 1) // (frames_per_blur - 1))
        fix = f"raise --upsample (--upsample {upsample} gives {(frames_per_blur - 1) * upsample + 1} ticks)"
    else:
        fix = "raise --frames-per-blur and --upsample"
    logger.warning(
        "each exposure spans only %d spike ticks, fewer than the %d voxel bins of the shipped models, "
        "so most bins stay empty; %s",
        exposure_ticks,
        VOXEL_BINS,
        fix,
    )


def _source_frames(reader, upsample: int, skip_ticks: int, max_frames: int | None) -> Iterator:
    """Yield float32 sharp frames in [0, 1] (upsampled), dropping the first ``skip_ticks``."""
    import numpy as np

    from spikedeblur.data.simulate import upsample_frames

    def decoded():
        for frame in itertools.islice(reader, max_frames):
            scale = 65535.0 if frame.image.dtype == np.uint16 else 255.0
            yield frame.image.astype(np.float32) / scale

    return itertools.islice(upsample_frames(decoded(), upsample), skip_ticks, None)


def simulate(
    sharp: Annotated[
        Path | None,
        typer.Argument(help="Sharp input: a video file or a folder of images. Omit with --procedural.", show_default=False),
    ] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="Data set folder to create.", show_default=False)] = ...,
    procedural: Annotated[bool, typer.Option(help="Render a procedural scene instead of reading SHARP.")] = False,
    frames: Annotated[int, typer.Option(min=1, help="Blurry frames to make with --procedural.")] = 16,
    size: Annotated[str, typer.Option(help="Frame size WIDTHxHEIGHT with --procedural.")] = "256x192",
    seed: Annotated[int, typer.Option(help="Seed of the procedural scene and of the spike simulator.")] = 0,
    ticks_per_frame: Annotated[
        int, typer.Option(min=1, help="Spike ticks per blurry frame interval with --procedural.")
    ] = 32,
    frames_per_blur: Annotated[
        int, typer.Option(min=1, help="Source frames per blurry frame (video input); the blurry video runs at fps / this.")
    ] = 7,
    upsample: Annotated[
        int,
        typer.Option(min=1, help="Blend this many frames per source frame before simulating (frame blending, not motion)."),
    ] = 1,
    exposure_ticks: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Ticks averaged into each blurry frame, centred in its interval. Default: the whole interval "
            "(procedural), or the frames-per-blur source frames inclusive (video).",
        ),
    ] = None,
    threshold: Annotated[float, typer.Option(help="Integrate-and-fire threshold θ (intensity units).")] = 2.0,
    gain: Annotated[float, typer.Option(help="Charge per tick per unit intensity.")] = 1.0,
    spike_scale: Annotated[float, typer.Option(help="Spike resolution as a fraction of the RGB size.")] = 0.5,
    noise_rate: Annotated[float, typer.Option(help="Probability of a spurious spike per pixel and tick.")] = 0.0,
    threshold_mismatch: Annotated[
        float, typer.Option(help="Relative spread of a fixed per-pixel threshold (fixed-pattern noise).")
    ] = 0.0,
    linear_light: Annotated[
        bool, typer.Option(help="Average the blur in linear light (sRGB decoded) instead of display values.")
    ] = False,
    max_frames: Annotated[int | None, typer.Option(min=1, help="Read at most this many source frames.")] = None,
    fps: Annotated[
        float | None, typer.Option(min=0.001, help="Frame rate of an image-folder input (default 25).")
    ] = None,
    crf: Annotated[
        int,
        typer.Option(min=0, max=51, help="CRF of the blurry video (libx264, 4:4:4 chroma); 0 is lossless."),
    ] = 0,
    overwrite: Annotated[
        bool, typer.Option(help="Replace an output folder written by an earlier simulate or demo (one with manifest.json).")
    ] = False,
) -> None:
    """Simulate a spike camera and a blurry RGB camera from sharp frames and write a data set.

    Each sharp frame (after optional upsampling) is one spike tick. A blurry frame is the mean of its
    exposure's ticks and its ground truth is the sharp frame at the exposure centre. Writes
    OUTPUT/blurry.mp4, OUTPUT/spikes.dat (+ .dat.json sidecar), OUTPUT/sharp/*.png and OUTPUT/manifest.json.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from spikedeblur.data.dataset import check_dataset_output, dataset_encode_options, write_dataset
    from spikedeblur.data.simulate import ExposureConfig, SpikeSimulationConfig, simulate_frames, simulate_scene, spike_size
    from spikedeblur.data.synthetic import ProceduralScene, SceneConfig
    from spikedeblur.errors import InputNotFoundError

    if procedural == (sharp is not None):
        raise typer.BadParameter("give either a SHARP input or --procedural, not both and not neither")
    spikes = SpikeSimulationConfig(
        threshold=threshold, gain=gain, noise_rate=noise_rate, threshold_mismatch=threshold_mismatch, seed=seed
    )
    encode_options = dataset_encode_options(crf)
    check_dataset_output(output, overwrite=overwrite)

    if procedural:
        height, width = _parse_size(size)
        exposure = ExposureConfig(
            ticks_per_frame=ticks_per_frame, exposure_ticks=exposure_ticks, spike_scale=spike_scale, linear_light=linear_light
        )
        scene = ProceduralScene(SceneConfig(height=height, width=width, num_layers=5), seed=seed)
        simulated = simulate_scene(scene, frames, exposure=exposure, spikes=spikes)
        frame_rate = Fraction(25)
        expected = frames
        source = {"kind": "procedural", "seed": seed, "size": [width, height], "scene": "SceneConfig(num_layers=5)"}
        reader = None
    else:
        from spikedeblur.video import VideoReader

        if not sharp.exists():
            raise InputNotFoundError(f"input {sharp} not found; give a video file or a folder of images")
        reader = VideoReader(sharp, image_fps=fps)
        info = reader.info
        height, width = info.height, info.width
        total_ticks = frames_per_blur * upsample
        if exposure_ticks is None:
            # Spanning the frames-per-blur source frames inclusive puts a source frame, not a blend,
            # at the exposure centre whenever frames-per-blur is odd.
            exposure_ticks = (frames_per_blur - 1) * upsample + 1 if upsample > 1 else frames_per_blur
        exposure = ExposureConfig(
            ticks_per_frame=total_ticks, exposure_ticks=exposure_ticks, spike_scale=spike_scale, linear_light=linear_light
        )
        if exposure_ticks < VOXEL_BINS:
            _warn_sparse_exposure(exposure_ticks, frames_per_blur)
        # Drop leading blended frames so every exposure window starts on a source frame.
        skip_ticks = (-exposure.exposure_start) % upsample
        frame_rate = Fraction(info.fps).limit_denominator(1001 * 1000) / frames_per_blur
        source_count = min(info.num_frames, max_frames) if max_frames else info.num_frames
        expected = max(0, ((source_count - 1) * upsample + 1 - skip_ticks) // total_ticks)
        simulated = simulate_frames(_source_frames(reader, upsample, skip_ticks, max_frames), exposure=exposure, spikes=spikes)
        source = {
            "kind": "video",
            "path": str(sharp),
            "fps": float(info.fps),
            "frames_per_blur": frames_per_blur,
            "upsample": upsample,
            "upsampling": "linear frame blending" if upsample > 1 else "none",
            "skipped_ticks": skip_ticks,
        }

    spike_height, spike_width = spike_size(height, width, spike_scale)
    progress = Progress(
        TextColumn("simulating"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=stderr_console, disable=not global_options.show_progress,
    )
    try:
        with progress:
            task = progress.add_task("simulate", total=expected or None)
            summary = write_dataset(
                simulated,
                output,
                height=height,
                width=width,
                fps=frame_rate,
                exposure=exposure,
                spikes=spikes,
                spike_size=(spike_height, spike_width),
                source=source,
                expected_frames=expected,
                encode_options=encode_options,
                overwrite=overwrite,
                progress=lambda count: progress.update(task, completed=count),
            )
    finally:
        if reader is not None:
            reader.close()

    stdout_console.print(
        f"wrote {summary.num_frames} blurry frames ({width}x{height} at {float(frame_rate):g} fps), "
        f"{summary.num_ticks} spike ticks ({spike_width}x{spike_height}) and ground truth to {summary.path}"
    )


def register(app: typer.Typer) -> None:
    """Add the ``simulate`` command to ``app``."""
    app.command("simulate", epilog=EXAMPLES)(simulate)
