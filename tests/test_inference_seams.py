"""Tile seams with a real VRT+Spike model: smooth blending against VRT's trim-and-average scheme.

A transformer's output shifts a little when its context changes, so tiled output never equals the
whole-frame output exactly. A seam is where that shift concentrates: near tile borders. The test
compares the mean absolute difference to the whole-frame output near the borders with the one
elsewhere, for our blending and for VRT's own scheme (each interior tile edge trimmed by half the
overlap, then a uniform average).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch

from spikedeblur.inference import InferenceSettings, ModelGeometry, run_inference
from spikedeblur.inference.tiling import window_starts

SIZE = 256
TILE = 64
OVERLAP = 16
BORDER = 4
FRAMES = 2


@dataclass
class Frame:
    index: int
    pts: int
    time: float
    image: np.ndarray


class ArraySpikes:
    def __init__(self, voxels: torch.Tensor) -> None:
        self.voxels_by_frame = voxels

    def voxels(self, index: int, time_s: float, duration_s: float, *, bins: int = 32) -> np.ndarray:
        return self.voxels_by_frame[index].numpy()


class CollectSink:
    def __init__(self) -> None:
        self.images: list[np.ndarray] = []

    def write(self, image: np.ndarray, *, pts: int | None = None, time: float | None = None) -> None:
        self.images.append(image)


def make_model() -> torch.nn.Module:
    from spikedeblur.models.registry import create_model

    torch.manual_seed(0)
    model = create_model("vrt-spike-tiny").eval()
    # The fusion layers start as the identity (zero weights), which would make the spikes irrelevant.
    # Small random weights make the output depend on spike context as well as on RGB context.
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.numel() > 1 and not parameter.any():
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.05)
    return model


def make_inputs() -> tuple[torch.Tensor, torch.Tensor]:
    """Return frames ``(T, 3, H, W)`` in [0, 1] with texture at several scales, and voxels ``(T, K, H, W)``."""
    generator = torch.Generator().manual_seed(2)
    coordinates = torch.linspace(0, 1, SIZE)
    rows, columns = torch.meshgrid(coordinates, coordinates, indexing="ij")
    frames = []
    for frame_index in range(FRAMES):
        shift = 0.02 * frame_index
        base = torch.stack(
            [
                0.5 + 0.3 * torch.sin(12 * (rows + shift)) * torch.cos(9 * columns),
                0.5 + 0.3 * torch.cos(20 * rows * columns + shift),
                0.5 + 0.2 * torch.sin(30 * (columns - shift)),
            ]
        )
        frames.append((base + 0.1 * torch.rand(base.shape, generator=generator)).clamp(0, 1))
    images = torch.stack(frames)
    voxels = torch.rand(FRAMES, 32, SIZE, SIZE, generator=generator) * images.mean(dim=1, keepdim=True)
    return images, voxels


class RecordingModel:
    """Calls the model and keeps each tile's output, so VRT's scheme can reuse the same tile outputs."""

    def __init__(self, model) -> None:
        self.model = model
        self.outputs: list[torch.Tensor] = []

    def __call__(self, frames: torch.Tensor, spike_voxels: torch.Tensor | None) -> torch.Tensor:
        restored = self.model(frames, spike_voxels)
        self.outputs.append(restored[0].float().cpu())
        return restored


def vrt_trimmed_tiles(tile_outputs: list[torch.Tensor]) -> torch.Tensor:
    """Blend like VRT's test script: trim ``OVERLAP // 2`` pixels off each interior tile edge, then average.

    ``tile_outputs`` are ``(T, 3, TILE, TILE)`` in raster order over the starts of :func:`window_starts`.
    """
    total = torch.zeros(FRAMES, 3, SIZE, SIZE)
    counts = torch.zeros(1, 1, SIZE, SIZE)
    starts = window_starts(SIZE, TILE, OVERLAP)
    positions = [(top, left) for top in starts for left in starts]
    assert len(tile_outputs) == len(positions)
    trim = OVERLAP // 2
    for (top, left), restored in zip(positions, tile_outputs, strict=True):
        mask = torch.ones(1, 1, TILE, TILE)
        if top > 0:
            mask[..., :trim, :] = 0
        if top + TILE < SIZE:
            mask[..., TILE - trim :, :] = 0
        if left > 0:
            mask[..., :, :trim] = 0
        if left + TILE < SIZE:
            mask[..., :, TILE - trim :] = 0
        total[..., top : top + TILE, left : left + TILE] += restored * mask
        counts[..., top : top + TILE, left : left + TILE] += mask
    return total / counts


def border_mask() -> torch.Tensor:
    """Pixels within ``BORDER`` of an interior tile edge or of a trimmed edge, the same for both schemes."""
    near_line = torch.zeros(SIZE, dtype=torch.bool)
    trim = OVERLAP // 2
    for start in window_starts(SIZE, TILE, OVERLAP):
        for line in (start, start + TILE, start + trim, start + TILE - trim):
            if 0 < line < SIZE:
                near_line[max(0, line - BORDER) : min(SIZE, line + BORDER)] = True
    return near_line[:, None] | near_line[None, :]


def seam_ratio(tiled: torch.Tensor, whole: torch.Tensor, mask: torch.Tensor) -> float:
    difference = (tiled - whole).abs().mean(dim=(0, 1))
    return float(difference[mask].mean() / difference[~mask].mean())


@pytest.mark.slow
def test_smooth_blending_has_weaker_seams_than_vrt_scheme():
    model = make_model()
    images, voxels = make_inputs()
    frames = [
        Frame(index, pts=index, time=0.04 * index, image=(images[index].permute(1, 2, 0).numpy() * 65535).round().astype(np.uint16))
        for index in range(FRAMES)
    ]
    # The engine reads 16-bit frames; compare against inputs quantised the same way.
    quantised = torch.stack([torch.from_numpy(frame.image.astype(np.float32) / 65535).permute(2, 0, 1) for frame in frames])
    with torch.inference_mode():
        whole = model(quantised[None], voxels[None])[0]

    sink = CollectSink()
    recording = RecordingModel(model)
    run_inference(
        frames,
        recording,
        sink,
        settings=InferenceSettings(clip_len=FRAMES, clip_overlap=0, tile=TILE, tile_overlap=OVERLAP),
        spikes=ArraySpikes(voxels),
        geometry=ModelGeometry.of(model),
        output_dtype=np.float32,
    )
    ours = torch.from_numpy(np.stack(sink.images)).permute(0, 3, 1, 2)
    theirs = vrt_trimmed_tiles(recording.outputs)

    mask = border_mask()
    ours_ratio = seam_ratio(ours, whole.clamp(0, 1), mask)
    vrt_ratio = seam_ratio(theirs.clamp(0, 1), whole.clamp(0, 1), mask)
    print(f"border/elsewhere difference ratio: smooth blending {ours_ratio:.3f}, VRT trim-and-average {vrt_ratio:.3f}")

    assert torch.isfinite(ours).all()
    assert float((ours - whole.clamp(0, 1)).abs().mean()) > 0, "the model ignores its context; the test would prove nothing"
    assert ours_ratio < vrt_ratio
