"""``spikedeblur voxelize``: cut a spike stream into K time bins per video frame and save them as ``.npz``."""

from __future__ import annotations

import contextlib
import dataclasses
import math
from dataclasses import dataclass
from enum import Enum
from fractions import Fraction
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
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
from spikedeblur.errors import InputNotFoundError, InvalidInputError

class VoxelDtype(str, Enum):
    float16 = "float16"
    float32 = "float32"


class MissingChoice(str, Enum):
    error = "error"
    zero = "zero"


@dataclass(frozen=True)
class FramePlan:
    """Video frames to voxelize: times and durations in seconds (NaN when unknown)."""

    times: np.ndarray
    durations: np.ndarray
    video_size: tuple[int, int] | None
    fps: float | None


def probe_video_frames(path: Path) -> FramePlan:
    """Read the frame timestamps of a video's first video stream from its packets, without decoding.

    Times are relative to the first frame. The last frame lasts for its packet's duration, else one
    frame interval at the stream's average rate, else the median gap.
    """
    import av

    if not path.exists():
        raise InputNotFoundError(f"video {path} not found; check the path")
    if path.is_dir():
        raise InvalidInputError(f"video {path} is a directory; give a video file")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, UnicodeDecodeError) as error:
        raise InvalidInputError(f"video {path} could not be opened ({error}); check that it is a video file") from error

    with container:
        streams = [stream for stream in container.streams if stream.type == "video"]
        if not streams:
            raise InvalidInputError(f"{path} has no video stream")
        stream = streams[0]
        time_base = stream.time_base
        video_size = (stream.codec_context.height, stream.codec_context.width)
        average_rate = float(stream.average_rate) if stream.average_rate else None

        packet_durations: dict[int, int] = {}
        try:
            for packet in container.demux(stream):
                if packet.pts is not None and packet.size > 0:
                    packet_durations[packet.pts] = packet.duration or 0
        except av.error.FFmpegError as error:
            raise InvalidInputError(f"video {path} could not be read ({error})") from error

    if not packet_durations:
        raise InvalidInputError(f"video {path} has no frame timestamps; give --fps and --frames instead of --video")
    pts = np.array(sorted(packet_durations), dtype=np.int64)
    times = (pts - pts[0]) * float(time_base)

    last_duration = packet_durations[int(pts[-1])] * float(time_base)
    if last_duration <= 0:
        last_duration = 1.0 / average_rate if average_rate else None

    from spikedeblur.spikes.timing import frame_durations

    durations = frame_durations(times, last_duration_s=last_duration)
    fps = average_rate if average_rate else 1.0 / float(np.median(durations))
    return FramePlan(times, durations, video_size, fps)


def _mapped_frame_count(source) -> int | None:
    """Return how many frames a clock-free frame mapping defines, or None when frames follow the clock."""
    from spikedeblur.spikes.source import FrameFileSpikeSource

    meta = source.meta
    if isinstance(source, FrameFileSpikeSource):
        return len(source.files)
    if meta.frame_ticks is not None:
        return len(meta.frame_ticks)
    if meta.spikes_per_frame is not None:
        return max(0, (source.num_ticks - meta.first_tick) // meta.spikes_per_frame)
    return None


def _clock_frame_count(source, fps: float) -> int:
    """Return how many frames at ``fps`` from time 0 the stream covers."""
    from spikedeblur.spikes.timing import uniform_frame_times

    # Count a few frames past the end of the stream to absorb rounding, then keep the covered ones.
    candidates = max(1, math.floor(source.num_ticks / source.meta.rate_hz * fps) + 2)
    times, durations = uniform_frame_times(fps, candidates)
    return source.covered_frames(times, durations)


def _plan_frames(source, *, video: Path | None, fps: float | None, frames: int | None) -> FramePlan:
    from spikedeblur.spikes.source import FrameFileSpikeSource
    from spikedeblur.spikes.timing import uniform_frame_times

    if video is not None:
        plan = probe_video_frames(video)
        if frames is not None:
            plan = FramePlan(plan.times[:frames], plan.durations[:frames], plan.video_size, plan.fps)
        return plan

    count = frames if frames is not None else _mapped_frame_count(source)
    if count is None and fps is not None:
        count = _clock_frame_count(source, fps)
    if count is None:
        raise typer.BadParameter(
            "give the video frames with --video, --fps (and optionally --frames) or --spikes-per-frame",
            param_hint="'--video'",
        )
    if count == 0:
        raise InvalidInputError(
            f"spike stream {source.name} does not cover even one video frame; check --spike-rate, "
            "--spike-offset and --spikes-per-frame"
        )

    if fps is not None:
        times, durations = uniform_frame_times(fps, count)
        return FramePlan(times, durations, None, fps)
    if isinstance(source, FrameFileSpikeSource):
        unknown = np.full(count, np.nan)
        return FramePlan(unknown, unknown.copy(), None, None)

    # Ticks-per-frame mappings: report each frame's time and length on the spike clock.
    rate = source.meta.rate_hz
    windows = np.array([source.window(index, 0.0, 1.0) for index in range(count)], dtype=np.float64)
    return FramePlan(windows[:, 0] / rate, (windows[:, 1] - windows[:, 0]) / rate, None, None)


class _PreviewVideo:
    """Encode grey preview images to an H.264 ``.mp4`` as they arrive."""

    def __init__(self, path: Path, fps: float) -> None:
        import av

        self._container = av.open(str(path), "w")
        self._fps = fps
        self._stream = None

    def write(self, image: np.ndarray) -> None:
        import av

        # yuv420p needs even sizes, so pad one black row or column when needed.
        image = np.pad(image, ((0, image.shape[0] % 2), (0, image.shape[1] % 2)))
        if self._stream is None:
            self._stream = self._container.add_stream("libx264", rate=Fraction(self._fps).limit_denominator(1001))
            self._stream.width, self._stream.height = image.shape[1], image.shape[0]
            self._stream.pix_fmt = "yuv420p"
        frame = av.VideoFrame.from_ndarray(image, format="gray").reformat(format="yuv420p")
        for packet in self._stream.encode(frame):
            self._container.mux(packet)

    def __enter__(self) -> _PreviewVideo:
        return self

    def __exit__(self, exc_type, exc_value, traceback) -> None:
        try:
            if exc_type is None and self._stream is not None:
                for packet in self._stream.encode(None):
                    self._container.mux(packet)
        finally:
            self._container.close()


def voxelize(
    spikes: Annotated[Path, typer.Argument(help="Spike .dat file, or a folder of per-frame .dat files.")],
    output: Annotated[
        Optional[Path],
        typer.Option("--output", "-o", help="Output .npz file (default: <name>_voxels.npz beside the input)."),
    ] = None,
    video: Annotated[
        Optional[Path], typer.Option("--video", help="Take frame times (and --size video) from this video.")
    ] = None,
    fps: Annotated[Optional[float], typer.Option("--fps", help="Frames per second of the video, from time 0.")] = None,
    frames: Annotated[Optional[int], typer.Option("--frames", help="Number of frames (default: all covered).")] = None,
    bins: Annotated[int, typer.Option("--bins", "-k", help="Time bins per frame (K).")] = 32,
    size: Annotated[
        Optional[str],
        typer.Option("--size", metavar="HxW", help="Resample voxels to HEIGHTxWIDTH, or 'video' (default: spike size)."),
    ] = None,
    dtype: Annotated[VoxelDtype, typer.Option("--dtype", help="Voxel number type.")] = VoxelDtype.float32,
    preview: Annotated[
        Optional[Path],
        typer.Option("--preview", help="Also write TFP next to the bins: .png (centre frame) or .mp4 (every frame)."),
    ] = None,
    intensity: Annotated[
        bool, typer.Option("--intensity", help="Scale rates by threshold/gain from the sidecar to intensity units.")
    ] = False,
    missing: Annotated[
        MissingChoice,
        typer.Option(
            "--missing-spikes",
            "--missing",
            help="For frames the stream does not cover: fail (error) or write zeros (zero).",
        ),
    ] = MissingChoice.error,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace existing output files.")] = False,
    spike_size: SpikeSizeOption = None,
    spike_rate: SpikeRateOption = None,
    spike_offset: SpikeOffsetOption = None,
    spikes_per_frame: SpikesPerFrameOption = None,
    exposure: ExposureOption = None,
    no_flip: NoFlipOption = False,
    head_cols: HeadColsOption = None,
    strict: StrictOption = False,
) -> None:
    """Voxelize a spike stream: K firing-rate bins over each video frame's exposure, saved as .npz."""
    from spikedeblur.fileio import atomic_output, check_output_path, default_output_path
    from spikedeblur.spikes.options import parse_size
    from spikedeblur.spikes.source import open_spike_source, resolve_meta
    from spikedeblur.spikes.voxel_file import VoxelFileWriter, preview_image
    from spikedeblur.spikes.voxelize import check_bins

    options = build_spike_options(
        spike_size=spike_size,
        spike_rate=spike_rate,
        spike_offset=spike_offset,
        spikes_per_frame=spikes_per_frame,
        exposure=exposure,
        no_flip=no_flip,
        head_cols=head_cols,
        strict=strict,
    )
    try:
        bins = check_bins(bins)
    except InvalidInputError as error:
        raise typer.BadParameter(str(error), param_hint="'--bins'") from error
    if video is not None and fps is not None:
        raise typer.BadParameter("give either --video or --fps, not both", param_hint="'--fps'")
    if fps is not None and not (math.isfinite(fps) and fps > 0):
        raise typer.BadParameter(f"frame rate {fps} is invalid; give a positive number", param_hint="'--fps'")
    if frames is not None and frames < 1:
        raise typer.BadParameter(f"frame count {frames} is invalid; give a positive integer", param_hint="'--frames'")
    if size == "video" and video is None:
        raise typer.BadParameter("--size video needs --video", param_hint="'--size'")
    if preview is not None and preview.suffix.lower() not in (".png", ".mp4"):
        raise typer.BadParameter(f"preview {preview} must end in .png or .mp4", param_hint="'--preview'")

    output = output if output is not None else default_output_path(spikes, "voxels", ".npz")
    inputs = tuple(path for path in (spikes, video) if path is not None)
    check_output_path(output, overwrite=overwrite, inputs=inputs)
    if preview is not None:
        check_output_path(preview, overwrite=overwrite, inputs=inputs)

    # Resolve the metadata once (a guessed size is logged once), then pin the size for both opens.
    meta = resolve_meta(spikes, options)
    options = dataclasses.replace(options, size=meta.size, head_cols=meta.head_cols)

    # The plan decides the output size (--size video), so plan with a source at spike size first.
    with open_spike_source(spikes, options, missing=missing.value, intensity=intensity) as planning_source:
        plan = _plan_frames(planning_source, video=video, fps=fps, frames=frames)
        spike_size = planning_source.spike_size
    if size is None:
        output_size = spike_size
    elif size == "video":
        output_size = plan.video_size
    else:
        try:
            output_size = parse_size(size)
        except InvalidInputError as error:
            raise typer.BadParameter(str(error), param_hint="'--size'") from error

    with contextlib.ExitStack() as stack:
        source = stack.enter_context(
            open_spike_source(spikes, options, video_size=output_size, missing=missing.value, intensity=intensity)
        )
        if missing is MissingChoice.error:
            source.check_coverage(plan.times, plan.durations)

        count = len(plan.times)
        windows = np.array(
            [source.window(index, plan.times[index], plan.durations[index]) for index in range(count)], dtype=np.int64
        )
        temp_output = stack.enter_context(atomic_output(output, overwrite=overwrite, inputs=inputs))
        writer = stack.enter_context(
            VoxelFileWriter(temp_output, num_frames=count, bins=bins, size=output_size, dtype=dtype.value)
        )
        preview_video = None
        centre_preview = None
        if preview is not None and preview.suffix.lower() == ".mp4":
            temp_preview = stack.enter_context(atomic_output(preview, overwrite=overwrite, inputs=inputs))
            preview_video = stack.enter_context(_PreviewVideo(temp_preview, plan.fps or 25.0))

        progress = None
        if global_options.show_progress:
            from rich.progress import Progress

            progress = stack.enter_context(Progress(console=stderr_console, transient=True))
            task = progress.add_task("voxelizing", total=count)

        for index in range(count):
            voxels = source.voxels(index, plan.times[index], plan.durations[index], bins=bins)
            writer.write_frame(voxels)
            if preview_video is not None:
                preview_video.write(preview_image(voxels))
            elif preview is not None and index == count // 2:
                centre_preview = preview_image(voxels)
            if progress is not None:
                progress.advance(task)

        writer.add_array("frame_times", plan.times)
        writer.add_array("frame_durations", plan.durations)
        writer.add_array("tick_start", windows[:, 0])
        writer.add_array("tick_stop", windows[:, 1])
        writer.add_array("bins", np.int64(bins))
        writer.add_array("spike_size", np.array(spike_size, dtype=np.int64))
        writer.add_array("size", np.array(output_size, dtype=np.int64))
        writer.add_json("meta", source.meta.to_json())

        if centre_preview is not None:
            import cv2

            temp_preview = stack.enter_context(atomic_output(preview, overwrite=overwrite, inputs=inputs))
            if not cv2.imwrite(str(temp_preview), centre_preview):
                raise InvalidInputError(f"preview {preview} could not be written")

    size_mb = output.stat().st_size / 1e6
    stdout_console.print(
        f"wrote {output}: {count} frame{'s' if count != 1 else ''} x {bins} bins x {output_size[0]}x{output_size[1]} {dtype.value} ({size_mb:.1f} MB)",
        markup=False,
    )
    if preview is not None:
        stdout_console.print(f"wrote preview {preview}", markup=False)


def register(app: typer.Typer) -> None:
    """Add the ``voxelize`` command to ``app``."""
    app.command("voxelize")(voxelize)
