"""The streaming engine with stand-in models: exact blending, order, timestamps, memory bounds, OOM, errors."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch

from spikedeblur.errors import DeviceError, InvalidInputError
from spikedeblur.inference import InferenceSettings, ModelGeometry, run_inference

BINS = 4


@dataclass
class Frame:
    index: int
    pts: int | None
    time: float
    image: np.ndarray


def make_frames(count: int, height: int, width: int, *, seed: int = 0, dtype=np.uint8, start_s: float = 0.0) -> list[Frame]:
    rng = np.random.default_rng(seed)
    maximum = np.iinfo(dtype).max
    frames = []
    for index in range(count):
        image = rng.integers(0, maximum + 1, size=(height, width, 3), dtype=np.int64).astype(dtype)
        # Irregular timestamps, as in a variable-frame-rate video.
        frames.append(Frame(index=index, pts=1000 + 40 * index + (index % 3), time=start_s + 0.04 * index + 0.001 * (index % 3), image=image))
    return frames


class PatternSpikes:
    """Voxels that depend on the frame index, the duration and the pixel, so a mix-up changes the output."""

    def __init__(self, height: int, width: int) -> None:
        rows = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
        columns = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
        self.pattern = (rows * columns)[None]
        self.calls: list[tuple[int, float, float]] = []

    def voxels(self, index: int, time_s: float, duration_s: float, *, bins: int = 32) -> np.ndarray:
        self.calls.append((index, time_s, duration_s))
        levels = (np.arange(bins, dtype=np.float32)[:, None, None] + 1) / bins
        return np.clip(self.pattern * levels * ((index % 5) + 1) / 5, 0.0, 1.0).astype(np.float32)


class PixelModel(torch.nn.Module):
    """Acts on each pixel of each frame alone, so any clip and tile split must give the same result."""

    size_multiple = 8
    min_size = 64
    num_bins = BINS

    def __init__(self, min_frames: int = 2) -> None:
        super().__init__()
        self.min_frames = min_frames
        self.shapes: list[tuple[int, ...]] = []

    def forward(self, frames: torch.Tensor, spike_voxels: torch.Tensor | None) -> torch.Tensor:
        self.shapes.append(tuple(frames.shape))
        restored = 0.2 + 0.6 * frames * (1.0 - 0.5 * frames)
        if spike_voxels is not None:
            restored = restored + 0.15 * spike_voxels.mean(dim=2, keepdim=True) - 0.05 * spike_voxels[:, :, :1]
        return restored.clamp(0.0, 1.0)


class ListSink:
    def __init__(self) -> None:
        self.images: list[np.ndarray] = []
        self.pts: list[int | None] = []
        self.times: list[float | None] = []

    def write(self, image: np.ndarray, *, pts: int | None = None, time: float | None = None) -> None:
        self.images.append(image)
        self.pts.append(pts)
        self.times.append(time)


def whole_video_reference(model: PixelModel, frames: list[Frame], spikes: PatternSpikes | None) -> np.ndarray:
    images = torch.stack([torch.from_numpy(frame.image).float().permute(2, 0, 1) / 255.0 for frame in frames])
    voxels = None
    if spikes is not None:
        durations = [frames[i + 1].time - frames[i].time for i in range(len(frames) - 1)]
        durations.append(durations[-1] if durations else 0.04)
        voxels = torch.stack(
            [torch.from_numpy(spikes.voxels(f.index, f.time, d, bins=BINS)) for f, d in zip(frames, durations, strict=True)]
        )[None]
    with torch.no_grad():
        restored = model(images[None], voxels)[0]
    return restored.permute(0, 2, 3, 1).numpy()


EXACT_CASES = {
    "sizes-not-dividing": dict(count=20, height=100, width=130, clip_len=6, clip_overlap=2, tile=64, tile_overlap=16),
    "sizes-dividing-no-overlap": dict(count=16, height=128, width=128, clip_len=8, clip_overlap=0, tile=64, tile_overlap=0),
    "shorter-than-clip-small-frame": dict(count=3, height=50, width=37, clip_len=8, clip_overlap=2, tile=64, tile_overlap=8),
    "single-frame": dict(count=1, height=65, width=71, clip_len=4, clip_overlap=1, tile=64, tile_overlap=20),
    "odd-sizes-large-overlap": dict(count=11, height=97, width=203, clip_len=5, clip_overlap=3, tile=72, tile_overlap=30),
    "whole-frames": dict(count=9, height=81, width=99, clip_len=4, clip_overlap=1, tile=0, tile_overlap=0),
}


@pytest.mark.parametrize("with_spikes", [True, False], ids=["spikes", "no-spikes"])
@pytest.mark.parametrize("case", sorted(EXACT_CASES))
def test_tiled_inference_equals_whole_video(case, with_spikes):
    params = EXACT_CASES[case]
    frames = make_frames(params["count"], params["height"], params["width"])
    spikes = PatternSpikes(params["height"], params["width"]) if with_spikes else None
    model = PixelModel()
    sink = ListSink()
    settings = InferenceSettings(
        clip_len=params["clip_len"],
        clip_overlap=params["clip_overlap"],
        tile=params["tile"],
        tile_overlap=params["tile_overlap"],
    )

    stats = run_inference(frames, model, sink, settings=settings, spikes=spikes, output_dtype=np.float32, frame_interval_s=0.04)

    expected = whole_video_reference(PixelModel(), frames, spikes)
    assert stats.frames == len(frames)
    assert len(sink.images) == len(frames)
    result = np.stack(sink.images)
    assert np.isfinite(result).all()
    np.testing.assert_allclose(result, expected, atol=1e-6, rtol=0)


def test_model_sees_only_valid_sizes():
    frames = make_frames(3, 50, 90)
    model = PixelModel(min_frames=4)

    run_inference(frames, model, ListSink(), settings=InferenceSettings(clip_len=4, clip_overlap=1, tile=64, tile_overlap=8))

    assert model.shapes
    for batch, time_steps, channels, height, width in model.shapes:
        assert batch == 1
        assert channels == 3
        assert time_steps >= 4
        assert height % 8 == 0
        assert height >= 64
        assert width % 8 == 0
        assert width >= 64


def test_timestamps_and_order_pass_through():
    frames = make_frames(13, 64, 64)
    sink = ListSink()

    run_inference(frames, PixelModel(), sink, settings=InferenceSettings(clip_len=4, clip_overlap=1, tile=0, tile_overlap=0))

    assert sink.pts == [frame.pts for frame in frames]
    assert sink.times == [frame.time for frame in frames]
    assert all(image.dtype == np.uint8 and image.shape == (64, 64, 3) for image in sink.images)


def test_sixteen_bit_input_gives_sixteen_bit_output():
    frames = make_frames(3, 64, 64, dtype=np.uint16)
    sink = ListSink()

    run_inference(frames, PixelModel(), sink, settings=InferenceSettings(clip_len=4, clip_overlap=1, tile=0, tile_overlap=0))

    assert all(image.dtype == np.uint16 for image in sink.images)
    expected = whole_video_reference(PixelModel(), [Frame(f.index, f.pts, f.time, (f.image / 257.0).astype(np.uint8)) for f in frames], None)
    assert np.abs(np.stack(sink.images) / 65535.0 - expected).max() < 0.01


def test_spike_windows_follow_frame_timestamps():
    frames = make_frames(4, 64, 64, start_s=1.5)
    spikes = PatternSpikes(64, 64)

    run_inference(frames, PixelModel(), ListSink(), settings=InferenceSettings(clip_len=2, clip_overlap=0, tile=0), spikes=spikes)

    indices = [call[0] for call in spikes.calls]
    times = [call[1] for call in spikes.calls]
    durations = [call[2] for call in spikes.calls]
    assert indices == [0, 1, 2, 3]
    np.testing.assert_allclose(times, [frame.time - frames[0].time for frame in frames])
    expected = [frames[i + 1].time - frames[i].time for i in range(3)]
    np.testing.assert_allclose(durations[:3], expected)
    assert durations[3] == pytest.approx(expected[2])


def test_memory_stays_bounded_by_clip_length():
    clip_len = 5
    prefetch = 2
    pulled = 0
    lead = []

    def source():
        nonlocal pulled
        for frame in make_frames(60, 64, 64):
            pulled += 1
            yield frame

    class LeadSink(ListSink):
        def write(self, image, *, pts=None, time=None):
            lead.append(pulled - len(self.images))
            super().write(image, pts=pts, time=time)

    sink = LeadSink()
    run_inference(
        source(),
        PixelModel(),
        sink,
        settings=InferenceSettings(clip_len=clip_len, clip_overlap=2, tile=0),
        prefetch=prefetch,
    )

    assert len(sink.images) == 60
    # Frames read but not yet written: the clip, one look-ahead frame, the queues and the frame in flight.
    assert max(lead) <= 2 * clip_len + 2 * prefetch + 3


class OutOfMemoryAboveTile(PixelModel):
    """Raises CUDA's out-of-memory error for tiles larger than ``limit`` pixels on a side."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self.failures = 0

    def forward(self, frames, spike_voxels):
        if max(frames.shape[-2:]) > self.limit:
            self.failures += 1
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return super().forward(frames, spike_voxels)


def test_out_of_memory_halves_tile(caplog):
    frames = make_frames(9, 150, 260)
    model = OutOfMemoryAboveTile(limit=64)
    sink = ListSink()

    with caplog.at_level("WARNING", logger="spikedeblur.inference.engine"):
        stats = run_inference(
            frames,
            model,
            sink,
            settings=InferenceSettings(clip_len=4, clip_overlap=1, tile=256, tile_overlap=20),
            output_dtype=np.float32,
        )

    assert stats.frames == 9
    assert len(sink.images) == 9
    assert stats.tile == 64
    assert stats.tile_reductions == 2
    assert model.failures == 2
    assert "retrying the clip with 128px tiles" in caplog.text
    np.testing.assert_allclose(np.stack(sink.images), whole_video_reference(PixelModel(), frames, None), atol=1e-6)


def test_out_of_memory_below_minimum_tile():
    frames = make_frames(3, 128, 128)
    sink = ListSink()

    with pytest.raises(DeviceError, match=r"out of memory on cpu with 64px tiles.*--clip-len"):
        run_inference(frames, OutOfMemoryAboveTile(limit=32), sink, settings=InferenceSettings(clip_len=4, tile=128, tile_overlap=16))

    assert sink.images == []


def test_whole_frame_out_of_memory_tiles():
    frames = make_frames(2, 200, 200)
    sink = ListSink()

    stats = run_inference(frames, OutOfMemoryAboveTile(limit=104), sink, settings=InferenceSettings(clip_len=2, clip_overlap=0, tile=0, tile_overlap=16))

    assert stats.tile == 96
    assert len(sink.images) == 2


def test_bad_tile_size_fails_before_model_runs():
    model = PixelModel()

    with pytest.raises(InvalidInputError, match="multiple of 8"):
        run_inference(make_frames(3, 64, 64), model, ListSink(), settings=InferenceSettings(clip_len=2, clip_overlap=0, tile=100, tile_overlap=10))

    assert model.shapes == []


def test_clip_shorter_than_model_minimum_rejected():
    with pytest.raises(InvalidInputError, match="--clip-len 4"):
        run_inference(make_frames(3, 64, 64), PixelModel(min_frames=4), ListSink(), settings=InferenceSettings(clip_len=2, clip_overlap=0))


def test_empty_input_rejected():
    with pytest.raises(InvalidInputError, match="no frames"):
        run_inference([], PixelModel(), ListSink(), settings=InferenceSettings(clip_len=2, clip_overlap=0))


def test_frame_size_change_rejected():
    frames = make_frames(3, 64, 64) + make_frames(1, 64, 72)

    with pytest.raises(InvalidInputError, match="same size"):
        run_inference(frames, PixelModel(), ListSink(), settings=InferenceSettings(clip_len=2, clip_overlap=0, tile=0))


def test_grayscale_frame_rejected():
    frame = Frame(index=0, pts=0, time=0.0, image=np.zeros((64, 64), dtype=np.uint8))

    with pytest.raises(InvalidInputError, match="RGB"):
        run_inference([frame], PixelModel(), ListSink(), settings=InferenceSettings(clip_len=2, clip_overlap=0))


def test_reader_error_reaches_caller():
    def broken_source():
        yield from make_frames(3, 64, 64)
        raise OSError("decoder failed at frame 3")

    with pytest.raises(OSError, match="decoder failed"):
        run_inference(broken_source(), PixelModel(), ListSink(), settings=InferenceSettings(clip_len=2, clip_overlap=0, tile=0))


def test_sink_error_reaches_caller():
    class FullDisk(ListSink):
        def write(self, image, *, pts=None, time=None):
            raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        run_inference(make_frames(8, 64, 64), PixelModel(), FullDisk(), settings=InferenceSettings(clip_len=2, clip_overlap=0, tile=0))


def test_interrupt_in_model_stops_threads():
    class Interrupting(PixelModel):
        def forward(self, frames, spike_voxels):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_inference(make_frames(30, 64, 64), Interrupting(), ListSink(), settings=InferenceSettings(clip_len=2, clip_overlap=0, tile=0))

    import threading

    assert not [thread for thread in threading.enumerate() if thread.name.startswith("spikedeblur-") and thread.is_alive()]


def test_model_with_wrong_output_shape_rejected():
    class Cropping(PixelModel):
        def forward(self, frames, spike_voxels):
            return frames[..., :-8, :]

    with pytest.raises(InvalidInputError, match="model returned shape"):
        run_inference(make_frames(2, 64, 64), Cropping(), ListSink(), settings=InferenceSettings(clip_len=2, clip_overlap=0, tile=0))


def test_progress_reports_frames_and_tile():
    reports = []

    run_inference(
        make_frames(7, 64, 100),
        PixelModel(),
        None,
        settings=InferenceSettings(clip_len=3, clip_overlap=1, tile=64, tile_overlap=8),
        total_frames=7,
        progress=reports.append,
    )

    assert reports[-1].frames_done == 7
    assert reports[-1].total_frames == 7
    assert [report.frames_done for report in reports] == sorted(report.frames_done for report in reports)
    assert {report.tile for report in reports} == {64}


def test_single_tile_reported_as_whole_frame():
    stats = run_inference(make_frames(2, 50, 60), PixelModel(), None, settings=InferenceSettings(clip_len=2, clip_overlap=0, tile=128, tile_overlap=8))

    assert stats.tile == 0


def test_geometry_defaults_when_model_has_no_attributes():
    geometry = ModelGeometry.of(lambda frames, voxels: frames)

    assert (geometry.size_multiple, geometry.min_size, geometry.min_frames, geometry.num_bins) == (8, 64, 1, 32)
