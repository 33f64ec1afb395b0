"""Deblur a video file end to end: open the video, spikes, model and writer, then run the engine."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal

import torch

from spikedeblur.errors import InputNotFoundError, InvalidInputError
from spikedeblur.fileio import check_output_path
from spikedeblur.inference import devices
from spikedeblur.inference.engine import InferenceProgress, InferenceStats, run_inference
from spikedeblur.inference.loading import load_inference_model
from spikedeblur.inference.settings import InferenceSettings, settings_for_preset

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class RunRequest:
    """Everything ``spikedeblur run`` needs; None values take the defaults of the model preset.

    ``output_path=None`` runs the pipeline without writing (benchmark mode). ``weights=None`` uses
    the weights registry's default, except in benchmark mode with a ``model_preset``, where the
    preset runs with random weights.
    """

    input_path: Path
    output_path: Path | None
    spikes_path: Path | None = None
    spike_options: object | None = None
    missing_spikes: Literal["error", "zero"] = "error"
    weights: str | None = None
    model_preset: str | None = None
    clip_len: int | None = None
    clip_overlap: int | None = None
    tile: int | None = None
    tile_overlap: int | None = None
    self_ensemble: int = 1
    device: str = "auto"
    precision: str = "auto"
    compile_model: bool = False
    image_fps: float | None = None
    encode_options: object | None = None
    overwrite: bool = False


@dataclass(frozen=True)
class RunSummary:
    """The result of :func:`deblur_video`: engine statistics and what ran where."""

    stats: InferenceStats
    settings: InferenceSettings
    device: torch.device
    precision: str
    weights_source: str
    output_path: Path | None


_PRECISION_NAMES = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}


def _check_coverage_up_front(source, info) -> None:
    """Fail before any model work when the spike stream cannot cover the video's frames.

    The check assumes frames at a constant rate from the first one. The engine checks every frame's
    real timestamp again while running.
    """
    from spikedeblur.spikes.timing import uniform_frame_times

    if not info.num_frames_exact or info.num_frames < 1 or not info.fps:
        return
    times, durations = uniform_frame_times(float(info.fps), info.num_frames)
    source.check_coverage(times, durations)


def _reject_swapped_inputs(input_path: Path, spikes_path: Path | None) -> None:
    """Raise when the spike stream is given as the video or a video as the spike stream."""
    from spikedeblur.evaluation.inputs import VIDEO_SUFFIXES

    if input_path.suffix.lower() == ".dat":
        raise InvalidInputError(
            f"input {input_path} is a spike stream (.dat), not a video; "
            f"pass the blurry video as INPUT and the stream as --spikes {input_path}"
        )
    if spikes_path is not None and spikes_path.suffix.lower() in VIDEO_SUFFIXES:
        raise InvalidInputError(
            f"--spikes {spikes_path} is a video file, not a spike stream; pass the camera's .dat file as --spikes"
        )


def _reject_rgb_only_record(weights: str) -> None:
    """Raise before any download when a registry name given with --spikes names an RGB-only model."""
    from spikedeblur.models.registry import get_preset
    from spikedeblur.weights.registry import REGISTRY, get_record

    if weights not in REGISTRY:
        return
    preset = get_record(weights).preset
    if get_preset(preset).kind != "vrt-spike":
        raise _rgb_only_weights_error(f"{weights} ({preset})")


def _rgb_only_weights_error(weights: str) -> InvalidInputError:
    return InvalidInputError(
        f"weights {weights} are an RGB-only model without a spike branch, so --spikes cannot be used; "
        "drop --spikes or give VRT+Spike weights"
    )


def deblur_video(request: RunRequest, *, progress: Callable[[InferenceProgress], None] | None = None) -> RunSummary:
    """Deblur ``request.input_path`` into ``request.output_path`` and return the run's summary.

    The output is written atomically: on any error or Ctrl-C no partial file is left. Raises the
    project's errors for invalid inputs, missing files, uncovered spike frames and devices.
    """
    from spikedeblur.spikes.source import open_spike_source
    from spikedeblur.video import VideoReader, open_video_writer
    from spikedeblur.video.image_writer import is_image_sequence_target
    from spikedeblur.weights.registry import DEFAULT

    device = devices.resolve_device(request.device)
    dtype = devices.resolve_precision(request.precision, device)

    if not request.input_path.exists():
        raise InputNotFoundError(f"input {request.input_path} does not exist; check the path")
    if request.spikes_path is not None and not request.spikes_path.exists():
        raise InputNotFoundError(f"spike stream {request.spikes_path} does not exist; check the --spikes path")
    _reject_swapped_inputs(request.input_path, request.spikes_path)

    # Check the output before the model loads, which can take a while; the writer checks again.
    if request.output_path is not None and not is_image_sequence_target(request.output_path):
        inputs = tuple(path for path in (request.input_path, request.spikes_path) if path is not None)
        check_output_path(Path(request.output_path), overwrite=request.overwrite, inputs=inputs)

    weights = request.weights
    if weights is None and not (request.output_path is None and request.model_preset is not None):
        weights = DEFAULT
    if request.spikes_path is not None and request.weights is not None:
        _reject_rgb_only_record(request.weights)
    model = load_inference_model(weights, preset=request.model_preset, device=device, dtype=dtype, compile_model=request.compile_model)
    spikes_path = request.spikes_path
    if spikes_path is not None and not model.uses_spikes:
        if request.weights is not None:
            raise _rgb_only_weights_error(model.source)
        # Reached only for a randomly initialised preset in a benchmark run (no --weights, no output):
        # timing the RGB-only model is still useful, so the stream is dropped instead of refused.
        logger.warning(
            "the model %s is RGB-only, so the spike stream %s is not used; "
            "give VRT+Spike weights with --weights to use it",
            weights or model.preset,
            spikes_path.name,
        )
        spikes_path = None
    if spikes_path is None and model.uses_spikes:
        logger.warning(
            "no --spikes given: the VRT+Spike model runs its RGB backbone alone, which removes far less blur; "
            "pass the spike stream recorded with the video as --spikes CAM.dat"
        )

    settings = settings_for_preset(
        model.preset,
        clip_len=request.clip_len,
        clip_overlap=request.clip_overlap,
        tile=request.tile,
        tile_overlap=request.tile_overlap,
        self_ensemble=request.self_ensemble,
    )
    tiles = f"{settings.tile}px tiles (overlap {settings.tile_overlap} px)" if settings.tile else "whole frames"
    ensemble = f", self-ensemble of {settings.self_ensemble}" if settings.self_ensemble > 1 else ""
    logger.info(
        "%s on %s in %s: clips of %d frames (overlap %d), %s%s",
        model.preset or "custom model",
        device,
        _PRECISION_NAMES.get(dtype, str(dtype)),
        settings.clip_len,
        settings.clip_overlap,
        tiles,
        ensemble,
    )

    with contextlib.ExitStack() as stack:
        reader = stack.enter_context(VideoReader(request.input_path, image_fps=request.image_fps))
        info = reader.info
        frame_interval_s = float(1 / Fraction(info.fps)) if info.fps else None

        spikes = None
        if spikes_path is not None:
            spikes = stack.enter_context(
                open_spike_source(
                    spikes_path,
                    request.spike_options,
                    video_size=(info.height, info.width),
                    missing=request.missing_spikes,
                )
            )
            if request.missing_spikes == "error":
                _check_coverage_up_front(spikes, info)

        sink = None
        if request.output_path is not None:
            sink = stack.enter_context(
                open_video_writer(
                    request.output_path,
                    source=info,
                    options=request.encode_options,
                    overwrite=request.overwrite,
                    copy_streams_from=None if info.is_image_sequence else request.input_path,
                    inputs=tuple(path for path in (request.input_path, spikes_path) if path is not None),
                )
            )

        stats = run_inference(
            reader,
            model.restore,
            sink,
            settings=settings,
            spikes=spikes,
            device=device,
            dtype=dtype,
            geometry=model.geometry,
            frame_interval_s=frame_interval_s,
            total_frames=info.num_frames if info.num_frames_exact else None,
            progress=progress,
        )

    return RunSummary(
        stats=stats,
        settings=settings,
        device=device,
        precision=_PRECISION_NAMES.get(dtype, str(dtype)),
        weights_source=model.source,
        output_path=request.output_path,
    )
