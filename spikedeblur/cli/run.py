"""``spikedeblur run``: deblur a video with its spike stream through the clip-and-tile engine."""

from __future__ import annotations

import logging
import time
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from spikedeblur.cli._app import global_options, stderr_console, stdout_console
from spikedeblur.cli._spike_options import (
    ExposureOption,
    HeadColsOption,
    NoFlipOption,
    SpikeOffsetOption,
    SpikeRateOption,
    SpikeSizeOption,
    SpikesPerFrameOption,
    StrictOption,
    build_spike_options,
)
from spikedeblur.cli._video_options import (
    CodecOption,
    CrfOption,
    EncoderOptionOption,
    EvenSize,
    EvenSizeOption,
    NoAudioOption,
    OutputOption,
    OverwriteOption,
    PixelFormatOption,
    PresetOption,
    build_encode_options,
    resolve_output_path,
)

logger = logging.getLogger(__name__)

_MODEL_PANEL = "Model and device"
_TILING_PANEL = "Clips and tiles"


class MissingSpikes(str, Enum):
    """Policy for video frames that the spike stream does not cover."""

    fail = "fail"
    zero = "zero"


def _format_bytes(count: int | None) -> str:
    if count is None:
        return "n/a"
    return f"{count / 2**30:.2f} GiB" if count >= 2**30 else f"{count / 2**20:.0f} MiB"


def _print_devices() -> None:
    from spikedeblur.inference.devices import list_devices

    for device in list_devices():
        memory = f", {_format_bytes(device.total_memory_bytes)}" if device.total_memory_bytes else ""
        bf16 = ", bf16" if device.supports_bf16 else ""
        stdout_console.print(f"{device.name}\t{device.description}{memory}{bf16}")


class _ProgressBar:
    """A rich progress bar on stderr showing frames, frames per second, ETA and the current tile size."""

    def __init__(self, *, enabled: bool) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._progress = Progress(
            TextColumn("deblur"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[fps]:.2f} frames/s"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[tile]}"),
            console=stderr_console,
            disable=not enabled,
            transient=True,
        )
        self._task = None

    def __enter__(self) -> _ProgressBar:
        self._progress.__enter__()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._progress.__exit__(*exc_info)

    def update(self, report) -> None:
        """Show an :class:`~spikedeblur.inference.InferenceProgress` report."""
        tile = f"tile {report.tile}px" if report.tile else "whole frames"
        fps = report.frames_done / report.elapsed_s if report.elapsed_s > 0 else 0.0
        if self._task is None:
            self._task = self._progress.add_task("frames", total=report.total_frames, fps=fps, tile=tile)
        self._progress.update(self._task, completed=report.frames_done, fps=fps, tile=tile)


def _check_tile_option(name: str, value: int | None, *, allow_zero: bool) -> None:
    if value is None:
        return
    if value < 0 or (value == 0 and not allow_zero):
        expected = "0 or a positive number" if allow_zero else "a positive number"
        raise typer.BadParameter(f"{value} is invalid; give {expected}", param_hint=f"'{name}'")


def run(
    input_path: Annotated[
        Optional[Path],
        typer.Argument(metavar="INPUT", help="Blurry video file, folder of images or single image."),
    ] = None,
    spikes: Annotated[
        Optional[Path],
        typer.Option(
            "--spikes",
            help="Spike stream recorded with the video: a .dat file (with NAME.dat.json) or a folder of per-frame "
            ".dat files. Without it a VRT+Spike model runs its RGB backbone alone and removes far less blur.",
            rich_help_panel="Spike stream",
        ),
    ] = None,
    output: OutputOption = None,
    weights: Annotated[
        Optional[str],
        typer.Option(
            "--weights",
            metavar="NAME|PATH",
            help="Registry name (see `spikedeblur download-weights --list`) or a .safetensors/.pth file. "
            "Default: the compact VRT+Spike model shipped in the package.",
            rich_help_panel=_MODEL_PANEL,
        ),
    ] = None,
    model: Annotated[
        Optional[str],
        typer.Option(
            "--model",
            metavar="PRESET",
            help="Model preset (see `spikedeblur models`): the architecture of a .pth file, checked against "
            ".safetensors files; also picks the default clip and tile sizes.",
            rich_help_panel=_MODEL_PANEL,
        ),
    ] = None,
    clip_len: Annotated[
        Optional[int],
        typer.Option("--clip-len", metavar="FRAMES", help="Frames per temporal clip (default: per preset, 12-18).", rich_help_panel=_TILING_PANEL),
    ] = None,
    clip_overlap: Annotated[
        Optional[int],
        typer.Option("--clip-overlap", metavar="FRAMES", help="Frames shared by consecutive clips (default 2).", rich_help_panel=_TILING_PANEL),
    ] = None,
    tile: Annotated[
        Optional[int],
        typer.Option(
            "--tile",
            metavar="PIXELS",
            help="Tile side in pixels, a multiple of 8 and at least 64; 0 runs whole frames (default: per preset, 192-256).",
            rich_help_panel=_TILING_PANEL,
        ),
    ] = None,
    tile_overlap: Annotated[
        Optional[int],
        typer.Option("--tile-overlap", metavar="PIXELS", help="Pixels shared by neighbouring tiles (default 20).", rich_help_panel=_TILING_PANEL),
    ] = None,
    self_ensemble: Annotated[
        int,
        typer.Option(
            "--self-ensemble",
            metavar="N",
            help="Average the model over N flipped, transposed or time-reversed copies of each tile: "
            "1 (off), 2, 4, 8 or 16. N times slower; usually a little sharper.",
            rich_help_panel=_TILING_PANEL,
        ),
    ] = 1,
    device: Annotated[
        str,
        typer.Option("--device", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps.", rich_help_panel=_MODEL_PANEL),
    ] = "auto",
    precision: Annotated[
        str,
        typer.Option(
            "--precision",
            help="auto (bf16 on CUDA where supported, fp16 on other GPUs, fp32 on CPU), fp32, fp16 or bf16.",
            rich_help_panel=_MODEL_PANEL,
        ),
    ] = "auto",
    list_devices: Annotated[
        bool, typer.Option("--list-devices", help="List the available devices and exit.", rich_help_panel=_MODEL_PANEL)
    ] = False,
    compile_model: Annotated[
        bool,
        typer.Option("--compile", help="Compile the model with torch.compile (slower start, often faster on GPUs).", rich_help_panel=_MODEL_PANEL),
    ] = False,
    missing_spikes: Annotated[
        MissingSpikes,
        typer.Option(
            "--missing-spikes",
            case_sensitive=False,
            help="For frames the spike stream does not cover: fail (naming the first such frame) or zero "
            "(run them with empty voxels and warn).",
            rich_help_panel="Spike stream",
        ),
    ] = MissingSpikes.fail,
    no_progress: Annotated[bool, typer.Option("--no-progress", help="Hide the progress bar.")] = False,
    benchmark: Annotated[
        bool,
        typer.Option("--benchmark", help="Run the whole pipeline but write nothing, then print the throughput."),
    ] = False,
    fps: Annotated[
        Optional[float],
        typer.Option("--fps", min=0.001, help="Frame rate of an image-folder input, in frames per second. Default 25."),
    ] = None,
    spike_size: SpikeSizeOption = None,
    spike_rate: SpikeRateOption = None,
    spike_offset: SpikeOffsetOption = None,
    spikes_per_frame: SpikesPerFrameOption = None,
    exposure: ExposureOption = None,
    no_flip: NoFlipOption = False,
    head_cols: HeadColsOption = None,
    strict: StrictOption = False,
    codec: CodecOption = "libx264",
    crf: CrfOption = None,
    preset: PresetOption = None,
    encoder_option: EncoderOptionOption = None,
    pixel_format: PixelFormatOption = None,
    even_size: EvenSizeOption = EvenSize.pad,
    no_audio: NoAudioOption = False,
    overwrite: OverwriteOption = False,
) -> None:
    """Deblur a video with the spike stream recorded alongside it.

    The video runs through the model in overlapping clips of frames and overlapping tiles of
    pixels, blended without seams. The output has one frame per input frame with the same
    timestamps, and the input's audio and subtitles. Memory does not grow with the video's length.

    Examples:

      spikedeblur run blurry.mp4 --spikes cam.dat -o sharp.mp4

      spikedeblur run blurry.mp4 --spikes cam.dat --weights my_model.safetensors --tile 128

      spikedeblur run blurry.mp4 --weights vrt-deblur-gopro -o sharp.mkv

      spikedeblur run blurry.mp4 --model vrt-spike-tiny --benchmark
    """
    if list_devices:
        _print_devices()
        return
    if input_path is None:
        raise typer.BadParameter("INPUT is missing; give the video to deblur", param_hint="'INPUT'")
    for name, value, allow_zero in (
        ("--clip-len", clip_len, False),
        ("--clip-overlap", clip_overlap, True),
        ("--tile", tile, True),
        ("--tile-overlap", tile_overlap, True),
    ):
        _check_tile_option(name, value, allow_zero=allow_zero)
    from spikedeblur.inference.ensemble import SELF_ENSEMBLE_SIZES

    if self_ensemble not in SELF_ENSEMBLE_SIZES:
        sizes = ", ".join(str(size) for size in SELF_ENSEMBLE_SIZES)
        raise typer.BadParameter(f"{self_ensemble} is not supported; give one of {sizes}", param_hint="'--self-ensemble'")

    spike_options = build_spike_options(
        spike_size=spike_size,
        spike_rate=spike_rate,
        spike_offset=spike_offset,
        spikes_per_frame=spikes_per_frame,
        exposure=exposure,
        no_flip=no_flip,
        head_cols=head_cols,
        strict=strict,
    )
    encode_options = None
    if not benchmark:
        encode_options = build_encode_options(
            codec=codec,
            crf=crf,
            preset=preset,
            encoder_option=encoder_option,
            pixel_format=pixel_format,
            even_size=even_size,
            no_audio=no_audio,
        )

    from spikedeblur.inference.pipeline import RunRequest, deblur_video

    request = RunRequest(
        input_path=input_path,
        output_path=None if benchmark else resolve_output_path(input_path, output, "run"),
        spikes_path=spikes,
        spike_options=spike_options,
        missing_spikes="zero" if missing_spikes == MissingSpikes.zero else "error",
        weights=weights,
        model_preset=model,
        clip_len=clip_len,
        clip_overlap=clip_overlap,
        tile=tile,
        tile_overlap=tile_overlap,
        self_ensemble=self_ensemble,
        device=device,
        precision=precision,
        compile_model=compile_model,
        image_fps=fps,
        encode_options=encode_options,
        overwrite=overwrite,
    )
    if benchmark and output is not None:
        logger.warning("--benchmark writes nothing, so -o %s is ignored", output)

    started = time.perf_counter()
    with _ProgressBar(enabled=global_options.show_progress and not no_progress) as bar:
        summary = deblur_video(request, progress=bar.update)
    elapsed = time.perf_counter() - started

    stats = summary.stats
    memory = f"peak host memory {_format_bytes(stats.peak_host_bytes)}"
    if stats.peak_device_bytes is not None:
        memory += f", peak {summary.device} memory {_format_bytes(stats.peak_device_bytes)}"
    logger.info(
        "%d frames in %.1f s (%.2f frames/s, %.1f s with model loading) on %s in %s, %s; %s",
        stats.frames,
        stats.elapsed_s,
        stats.fps,
        elapsed,
        summary.device,
        summary.precision,
        f"{stats.tile}px tiles" if stats.tile else "whole frames",
        memory,
    )
    if benchmark:
        stdout_console.print(
            f"{stats.frames} frames in {stats.elapsed_s:.2f} s: {stats.fps:.3f} frames/s "
            f"({summary.device}, {summary.precision}, {memory})"
        )
    else:
        stdout_console.print(str(request.output_path))


def register(app: typer.Typer) -> None:
    """Add ``run`` to ``app``."""
    app.command("run")(run)
