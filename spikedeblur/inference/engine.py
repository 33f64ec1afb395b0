"""Streaming clip-and-tile inference: frames and spike voxels in, restored frames out.

:func:`run_inference` reads frames from any iterable, requests each frame's spike voxels from a
voxel provider, cuts the stream into overlapping temporal clips and each clip into overlapping spatial tiles,
runs the model on every tile, blends the overlaps with smooth positive weights and hands each
finished frame to a sink, in input order and with the input's timestamp.

Memory stays bounded whatever the video length: the engine keeps at most ``clip_len + 1`` input
frames and the outputs of the current clip. Inputs are prepared (decoded, voxelized, converted to
tensors) in a background thread and outputs are converted and written in another, so I/O overlaps
with the model's work.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from einops import rearrange

from spikedeblur.errors import DeviceError, InvalidInputError
from spikedeblur.inference import devices
from spikedeblur.inference._threads import BackgroundConsumer, BackgroundIterator
from spikedeblur.inference.ensemble import run_self_ensemble
from spikedeblur.inference.settings import InferenceSettings
from spikedeblur.inference.tiling import TilePlan, clip_weights, plan_tiles, reflect_indices

logger = logging.getLogger(__name__)


class SourceFrame(Protocol):
    """A decoded input frame: ``image`` is ``(H, W, 3)`` RGB, uint8 or uint16."""

    index: int
    pts: int | None
    time: float
    image: np.ndarray


class VoxelProvider(Protocol):
    """A spike stream that returns the voxels of one video frame's exposure window."""

    def voxels(self, index: int, time_s: float, duration_s: float, *, bins: int = 32) -> np.ndarray:
        """Return ``(bins, H, W)`` float32 firing rates in [0, 1] at the video frame size."""
        ...


class FrameSink(Protocol):
    """The destination of finished frames: a video writer, a PNG writer or a test collector."""

    def write(self, image: np.ndarray, *, pts: int | None = None, time: float | None = None) -> None:
        """Store one ``(H, W, 3)`` frame with the input frame's timestamp."""
        ...


RestorationModel = Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]
"""``model(frames (B, T, 3, H, W) in [0, 1], spike_voxels (B, T, K, H, W) | None) -> (B, T, 3, H, W)``."""


@dataclass(frozen=True, kw_only=True)
class ModelGeometry:
    """Input constraints of a model: sizes must be multiples of ``size_multiple`` and at least ``min_size``."""

    size_multiple: int = 8
    min_size: int = 64
    min_frames: int = 1
    num_bins: int = 32

    @classmethod
    def of(cls, model: object) -> ModelGeometry:
        """Read the constraints from the model's attributes, keeping the defaults for missing ones."""
        defaults = cls()
        return cls(
            size_multiple=int(getattr(model, "size_multiple", defaults.size_multiple)),
            min_size=int(getattr(model, "min_size", defaults.min_size)),
            min_frames=int(getattr(model, "min_frames", defaults.min_frames)),
            num_bins=int(getattr(model, "num_bins", defaults.num_bins)),
        )


@dataclass(frozen=True)
class InferenceProgress:
    """A progress report: frames written so far and the tile side in use (0 when one tile covers the frame)."""

    frames_done: int
    total_frames: int | None
    clips_done: int
    elapsed_s: float
    tile: int


@dataclass(frozen=True)
class InferenceStats:
    """The summary of a finished run.

    ``tile`` is the tile side of the last clip, 0 when one tile covered the whole frame. Memory peaks
    are None where the platform does not report them.
    """

    frames: int
    clips: int
    elapsed_s: float
    tile: int
    tile_reductions: int
    peak_host_bytes: int | None
    peak_device_bytes: int | None

    @property
    def fps(self) -> float:
        """Frames per second over the whole run."""
        return self.frames / self.elapsed_s if self.elapsed_s > 0 else float("inf")


@dataclass
class _PreparedFrame:
    position: int
    pts: int | None
    time: float
    source_dtype: np.dtype
    image: torch.Tensor  # (3, H, W) float32 in [0, 1]
    voxels: torch.Tensor | None  # (K, H, W) float32


@dataclass(frozen=True)
class _FrameTiming:
    pts: int | None
    time: float
    source_dtype: np.dtype


@dataclass
class _FinishedFrame:
    image: torch.Tensor  # (3, H, W) float32
    pts: int | None
    time: float
    output_dtype: np.dtype


def _image_to_tensor(image: np.ndarray) -> torch.Tensor:
    if image.ndim != 3 or image.shape[2] != 3:
        raise InvalidInputError(f"frame has shape {image.shape}; expected (height, width, 3) RGB")

    if image.dtype == np.uint8:
        scale = 255.0
    elif image.dtype == np.uint16:
        scale = 65535.0
    else:
        raise InvalidInputError(f"frame has dtype {image.dtype}; expected uint8 or uint16 RGB")

    tensor = torch.from_numpy(np.ascontiguousarray(image)).to(torch.float32).div_(scale)
    return rearrange(tensor, "h w c -> c h w").contiguous()


def _tensor_to_image(image: torch.Tensor, dtype: np.dtype) -> np.ndarray:
    """Convert ``(3, H, W)`` float32 to ``(H, W, 3)`` in ``dtype``, clipping to [0, 1] first."""
    hwc = rearrange(image.clamp(0.0, 1.0), "c h w -> h w c")
    if np.issubdtype(dtype, np.integer):
        maximum = float(np.iinfo(dtype).max)
        return hwc.mul(maximum).round_().numpy().astype(dtype)
    return np.ascontiguousarray(hwc.numpy().astype(dtype, copy=False))


def _prepare_frames(
    frames: Iterable[SourceFrame],
    *,
    spikes: VoxelProvider | None,
    bins: int,
    frame_interval_s: float | None,
) -> Iterator[_PreparedFrame]:
    """Convert frames to tensors and attach voxels, one frame ahead to know each frame's duration.

    A frame's exposure window lasts until the next frame starts, which also holds for variable frame
    rates. The last frame keeps the previous interval, or ``frame_interval_s`` when there is only one.
    Spike times count from the first frame, which the spike clock's offset refers to.
    """
    previous: SourceFrame | None = None
    previous_interval = frame_interval_s
    position = 0
    first_time: float | None = None

    def prepare(frame: SourceFrame, duration_s: float | None) -> _PreparedFrame:
        voxels = None
        if spikes is not None:
            if duration_s is None or duration_s <= 0:
                raise InvalidInputError(
                    f"frame {frame.index} at {frame.time:.6f} s has no usable duration for its spike window; "
                    "the video needs a frame rate"
                )
            array = spikes.voxels(frame.index, frame.time - first_time, duration_s, bins=bins)
            voxels = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
        return _PreparedFrame(
            position=position,
            pts=frame.pts,
            time=frame.time,
            source_dtype=frame.image.dtype,
            image=_image_to_tensor(frame.image),
            voxels=voxels,
        )

    for frame in frames:
        if first_time is None:
            first_time = frame.time
        if previous is not None:
            interval = frame.time - previous.time
            if interval > 0:
                previous_interval = interval
            yield prepare(previous, previous_interval)
            position += 1
        previous = frame

    if previous is not None:
        yield prepare(previous, previous_interval)


_OUT_OF_MEMORY_ERRORS: tuple[type[BaseException], ...] = (torch.OutOfMemoryError,)


class _ClipRunner:
    """Runs the model over one clip, tile by tile, halving the tile after an out-of-memory error."""

    def __init__(
        self,
        model: RestorationModel,
        *,
        geometry: ModelGeometry,
        settings: InferenceSettings,
        device: torch.device,
        dtype: torch.dtype,
    ) -> None:
        self.model = model
        self.geometry = geometry
        self.device = device
        self.dtype = dtype
        self.tile = settings.tile
        self.tile_overlap = settings.tile_overlap
        self.self_ensemble = settings.self_ensemble
        self.min_tile = int(np.ceil(max(settings.min_tile, geometry.min_size) / geometry.size_multiple)) * geometry.size_multiple
        self.tile_reductions = 0
        # The tile side the last clip ran with, 0 when one tile covered the whole frame.
        self.tile_in_use = settings.tile

    def plan(self, height: int, width: int) -> TilePlan:
        return plan_tiles(
            height,
            width,
            tile=self.tile,
            overlap=self.tile_overlap,
            multiple=self.geometry.size_multiple,
            minimum=self.geometry.min_size,
        )

    def run(self, clip: list[_PreparedFrame]) -> torch.Tensor:
        """Return the restored clip, ``(T, 3, H, W)`` float32 on the CPU, retrying with smaller tiles on OOM."""
        height, width = clip[0].image.shape[-2:]
        while True:
            plan = self.plan(height, width)
            self.tile_in_use = 0 if len(plan) == 1 else plan.largest_side
            try:
                return self._run_tiles(clip, plan)
            except _OUT_OF_MEMORY_ERRORS as error:
                message = str(error).splitlines()[0] if str(error) else error.__class__.__name__

            # Only here, after the except block, are the failed attempt's tensors free to release.
            devices.release_cached_memory(self.device)
            self._reduce_tile(plan, message)

    def _reduce_tile(self, plan: TilePlan, message: str) -> None:
        current = plan.largest_side
        halved = (current // 2) // self.geometry.size_multiple * self.geometry.size_multiple
        if halved < self.min_tile:
            raise DeviceError(
                f"out of memory on {self.device} with {current}px tiles, and tiles below {self.min_tile}px are not "
                f"allowed ({message}); lower --clip-len, use --precision fp16 or bf16, or free device memory"
            )

        self.tile = halved
        self.tile_overlap = min(self.tile_overlap, halved // 2)
        self.tile_reductions += 1
        logger.warning(
            "out of memory on %s with %dpx tiles; retrying the clip with %dpx tiles (%s)",
            self.device,
            current,
            halved,
            message,
        )

    def _gather(self, tensors: list[torch.Tensor], time_index: list[int], rows: slice | torch.Tensor, columns: slice | torch.Tensor) -> torch.Tensor:
        """Stack one tile of every clip frame: ``(T, C, tile_h, tile_w)`` from ``(C, H, W)`` tensors."""
        pieces = []
        for position in time_index:
            piece = tensors[position]
            piece = piece[:, rows] if isinstance(rows, slice) else piece.index_select(1, rows)
            piece = piece[:, :, columns] if isinstance(columns, slice) else piece.index_select(2, columns)
            pieces.append(piece)
        return torch.stack(pieces)

    def _run_tiles(self, clip: list[_PreparedFrame], plan: TilePlan) -> torch.Tensor:
        num_frames = len(clip)
        padded_frames = max(num_frames, self.geometry.min_frames)
        time_index = reflect_indices(num_frames, padded_frames).tolist()

        row_map = reflect_indices(plan.height, plan.canvas_height)
        column_map = reflect_indices(plan.width, plan.canvas_width)

        images = [frame.image for frame in clip]
        voxels = [frame.voxels for frame in clip] if clip[0].voxels is not None else None

        weighted_sum = torch.zeros(num_frames, 3, plan.height, plan.width, dtype=torch.float32)
        weight_sum = torch.zeros(plan.height, plan.width, dtype=torch.float32)

        for tile in plan.tiles():
            bottom = tile.top + tile.height
            right = tile.left + tile.width
            rows = slice(tile.top, bottom) if bottom <= plan.height else row_map[tile.top : bottom]
            columns = slice(tile.left, right) if right <= plan.width else column_map[tile.left : right]

            frames_tile = self._gather(images, time_index, rows, columns)
            frames_tile = rearrange(frames_tile, "t c h w -> 1 t c h w").to(self.device, self.dtype)
            voxels_tile = None
            if voxels is not None:
                voxels_tile = self._gather(voxels, time_index, rows, columns)
                voxels_tile = rearrange(voxels_tile, "t k h w -> 1 t k h w").to(self.device, self.dtype)

            restored = run_self_ensemble(self.model, frames_tile, voxels_tile, size=self.self_ensemble)
            if restored.shape != frames_tile.shape:
                raise InvalidInputError(
                    f"model returned shape {tuple(restored.shape)} for input {tuple(frames_tile.shape)}; "
                    "it must return one RGB frame per input frame at the input size"
                )

            weights = plan.weights(tile).to(self.device)
            real_rows = min(bottom, plan.height) - tile.top
            real_columns = min(right, plan.width) - tile.left
            weighted = (restored[0, :num_frames].float() * weights)[..., :real_rows, :real_columns].cpu()
            weights = weights[:real_rows, :real_columns].cpu()

            weighted_sum[..., tile.top : tile.top + real_rows, tile.left : tile.left + real_columns] += weighted
            weight_sum[tile.top : tile.top + real_rows, tile.left : tile.left + real_columns] += weights

        return weighted_sum / weight_sum


class _TemporalBlender:
    """Accumulates clip outputs per frame with temporal weights and releases frames no clip will touch again."""

    def __init__(self) -> None:
        self.weighted_sums: dict[int, torch.Tensor] = {}
        self.weight_sums: dict[int, float] = {}

    def add(self, start: int, restored: torch.Tensor, weights: torch.Tensor) -> None:
        for offset in range(restored.shape[0]):
            position = start + offset
            weight = float(weights[offset])
            contribution = restored[offset] * weight
            if position in self.weighted_sums:
                self.weighted_sums[position] += contribution
                self.weight_sums[position] += weight
            else:
                self.weighted_sums[position] = contribution
                self.weight_sums[position] = weight

    def pop(self, position: int) -> torch.Tensor:
        weighted_sum = self.weighted_sums.pop(position)
        return weighted_sum / self.weight_sums.pop(position)


def run_inference(
    frames: Iterable[SourceFrame],
    model: RestorationModel,
    sink: FrameSink | None,
    *,
    settings: InferenceSettings,
    spikes: VoxelProvider | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    geometry: ModelGeometry | None = None,
    frame_interval_s: float | None = None,
    total_frames: int | None = None,
    output_dtype: np.dtype | type | None = None,
    progress: Callable[[InferenceProgress], None] | None = None,
    prefetch: int = 4,
) -> InferenceStats:
    """Restore every frame of ``frames`` with ``model`` and write the results to ``sink`` in order.

    Args:
        frames: decoded frames with ``index``, ``pts``, ``time`` (seconds) and ``image``
            ``(H, W, 3)`` uint8 or uint16; every frame must have the same size.
        model: called as ``model(frames (1, T, 3, h, w), spike_voxels (1, T, K, h, w) | None)`` on
            ``device`` in ``dtype``, values in [0, 1]; returns ``(1, T, 3, h, w)``.
        sink: receives one ``(H, W, 3)`` array per input frame with the input's ``pts`` and ``time``;
            None discards the output (benchmark mode).
        settings: clip and tile sizes.
        spikes: gives ``(K, H, W)`` voxels per frame; None runs the model without spikes.
        geometry: the model's size constraints; read from the model's attributes when None.
        frame_interval_s: exposure window of a lone frame when the video has only one.
        total_frames: the expected frame count, for progress reports only.
        output_dtype: dtype of the arrays given to ``sink``; None keeps each input frame's dtype
            (values scaled to its full range), float32 gives [0, 1].
        progress: called after each clip and each written frame.
        prefetch: frames prepared ahead of the model and frames queued for the sink.

    Returns:
        The run's statistics. Raises :class:`InvalidInputError` for an empty or inconsistent
        input and :class:`DeviceError` when even the smallest tile does not fit in device memory.
    """
    device = torch.device(device)
    geometry = geometry or ModelGeometry.of(model)
    if settings.clip_len < geometry.min_frames:
        raise InvalidInputError(
            f"clip length {settings.clip_len} is below this model's minimum of {geometry.min_frames} frames; "
            f"use --clip-len {geometry.min_frames} or more"
        )

    runner = _ClipRunner(model, geometry=geometry, settings=settings, device=device, dtype=dtype)
    blender = _TemporalBlender()
    clip_len = settings.clip_len
    stride = clip_len - settings.clip_overlap
    started = time.perf_counter()
    devices.reset_peak_device_memory(device)

    buffer: dict[int, _PreparedFrame] = {}
    next_start = 0
    next_to_write = 0
    frames_written = 0
    clips_done = 0
    frame_size: tuple[int, int] | None = None

    def report() -> None:
        if progress is not None:
            progress(
                InferenceProgress(
                    frames_done=frames_written,
                    total_frames=total_frames,
                    clips_done=clips_done,
                    elapsed_s=time.perf_counter() - started,
                    tile=runner.tile_in_use,
                )
            )

    def write_through(last_position: int) -> None:
        nonlocal next_to_write, frames_written
        while next_to_write <= last_position:
            meta = metadata.pop(next_to_write)
            image = blender.pop(next_to_write)
            if writer is not None:
                dtype_out = np.dtype(output_dtype) if output_dtype is not None else meta.source_dtype
                writer.submit(_FinishedFrame(image=image, pts=meta.pts, time=meta.time, output_dtype=dtype_out))
            next_to_write += 1
            frames_written += 1
            report()

    def run_clip(start: int, stop: int, *, final: bool) -> None:
        nonlocal clips_done
        clip = [buffer[position] for position in range(start, stop)]
        restored = runner.run(clip)
        weights = clip_weights(start, stop - start, overlap=settings.clip_overlap, total_frames=stop if final else None)
        blender.add(start, restored, weights)
        clips_done += 1
        logger.debug("clip %d: frames %d-%d, tile side %d px (0 = whole frame)", clips_done, start, stop - 1, runner.tile_in_use)

    writer = None
    if sink is not None:

        def write_frame(item: _FinishedFrame) -> None:
            sink.write(_tensor_to_image(item.image, item.output_dtype), pts=item.pts, time=item.time)

        writer = BackgroundConsumer(write_frame, max_pending=prefetch, name="spikedeblur-writer")

    metadata: dict[int, _FrameTiming] = {}
    prepared = _prepare_frames(frames, spikes=spikes, bins=geometry.num_bins, frame_interval_s=frame_interval_s)
    try:
        with torch.inference_mode(), BackgroundIterator(prepared, max_pending=prefetch, name="spikedeblur-reader") as reader:
            count = 0
            for item in reader:
                size = tuple(item.image.shape[-2:])
                if frame_size is None:
                    frame_size = size
                    runner.plan(*size)  # validates the tile size before any model work
                elif size != frame_size:
                    raise InvalidInputError(
                        f"frame {item.position} is {size[1]}x{size[0]} but earlier frames are "
                        f"{frame_size[1]}x{frame_size[0]}; every frame must have the same size"
                    )
                buffer[item.position] = item
                metadata[item.position] = _FrameTiming(item.pts, item.time, item.source_dtype)
                count += 1

                # The clip at next_start is a regular one only if a frame after it exists; otherwise the
                # final, end-aligned clip takes over. Frames up to a regular clip's start are final because
                # every later clip, including the end-aligned one, starts after it.
                while count > next_start + clip_len:
                    run_clip(next_start, next_start + clip_len, final=False)
                    write_through(next_start)
                    for position in [p for p in buffer if p <= next_start]:
                        del buffer[position]
                    next_start += stride
                    report()

            if count == 0:
                raise InvalidInputError("the input has no frames; check that the video decodes")

            final_start = max(0, count - clip_len)
            run_clip(final_start, count, final=True)
            buffer.clear()
            write_through(count - 1)

        if writer is not None:
            writer.finish()
    except BaseException:
        if writer is not None:
            writer.abort()
        raise

    return InferenceStats(
        frames=frames_written,
        clips=clips_done,
        elapsed_s=time.perf_counter() - started,
        tile=runner.tile_in_use,
        tile_reductions=runner.tile_reductions,
        peak_host_bytes=devices.peak_host_memory_bytes(),
        peak_device_bytes=devices.peak_device_memory_bytes(device),
    )
