"""Tests for timing windows, the voxelizer and the TFP/TFI reconstructions."""

from __future__ import annotations

import numpy as np
import pytest

from spikedeblur.errors import InvalidInputError
from spikedeblur.spikes import DatReader, SpikeMeta, frame_window, tfi, tfp, uniform_frame_times, voxelize, write_dat
from spikedeblur.spikes.timing import exposure_interval, frame_durations, time_to_tick
from spikedeblur.spikes.voxelize import bin_edges, voxelize_dat


def _random_spikes(num_ticks, height=6, width=8, seed=0, rate=0.4):
    rng = np.random.default_rng(seed)
    return (rng.random((num_ticks, height, width)) < rate).astype(np.uint8)


@pytest.mark.parametrize("num_ticks", [32, 33, 50, 64, 100, 1000])
def test_rate_times_length_equals_count(num_ticks):
    spikes = _random_spikes(num_ticks)

    voxels = voxelize(spikes, 32)
    lengths = np.diff(bin_edges(num_ticks, 32))

    assert voxels.shape == (32, 6, 8)
    assert voxels.dtype == np.float32
    assert voxels.min() >= 0
    assert voxels.max() <= 1
    assert lengths.sum() == num_ticks
    assert lengths.max() - lengths.min() <= 1
    assert np.allclose((voxels * lengths[:, None, None]).sum(axis=0), spikes.sum(axis=0), atol=1e-3)


@pytest.mark.parametrize("num_ticks", [1, 3, 7, 31])
def test_short_window_conserves_count(num_ticks):
    spikes = _random_spikes(num_ticks, seed=num_ticks)

    voxels = voxelize(spikes, 32)

    assert voxels.shape == (32, 6, 8)
    assert voxels.min() >= 0
    assert voxels.max() <= 1 + 1e-6
    assert np.allclose(voxels.sum(axis=0) * num_ticks / 32, spikes.sum(axis=0), atol=1e-4)


def test_single_tick_window_repeats_tick():
    spikes = _random_spikes(1)

    voxels = voxelize(spikes, 4)

    for k in range(4):
        assert np.array_equal(voxels[k], spikes[0])


def test_empty_window_gives_zeros():
    voxels = voxelize(np.zeros((0, 3, 5), np.uint8), 8)

    assert voxels.shape == (8, 3, 5)
    assert not voxels.any()


def test_bins_equal_to_ticks_is_identity():
    spikes = _random_spikes(16)

    assert np.array_equal(voxelize(spikes, 16), spikes.astype(np.float32))


@pytest.mark.parametrize("bins", [0, -3, 2.5, True])
def test_invalid_bin_count_raises(bins):
    with pytest.raises(InvalidInputError, match="bin count"):
        voxelize(_random_spikes(40), bins)


@pytest.mark.parametrize(("start", "stop", "bins"), [(0, 100, 32), (7, 60, 32), (3, 10, 32), (5, 5, 4), (0, 700, 2)])
def test_voxelize_dat_matches_decoded(tmp_path, start, stop, bins):
    spikes = _random_spikes(700, height=8, width=24, seed=3)
    reader = DatReader(write_dat(tmp_path / "v.dat", spikes), 8, 24)

    fast = voxelize_dat(reader, start, stop, bins)

    assert np.allclose(fast, voxelize(spikes[start:stop], bins))


def test_tfp_is_mean_rate():
    spikes = _random_spikes(41)

    image = tfp(spikes)

    assert image.dtype == np.float32
    assert np.allclose(image, spikes.mean(axis=0))


def test_tfi_inverse_interval():
    spikes = np.zeros((10, 1, 4), np.uint8)
    spikes[[2, 6], 0, 0] = 1  # interval 4 around tick 5
    spikes[[5, 6], 0, 1] = 1  # spike at the reference tick and the next one
    spikes[[8], 0, 2] = 1  # no spike before: prev = -1
    # pixel 3 never fires: 1 / (10 + 1)

    image = tfi(spikes, index=5)

    assert image[0, 0] == pytest.approx(1 / 4)
    assert image[0, 1] == pytest.approx(1 / 1)
    assert image[0, 2] == pytest.approx(1 / 9)
    assert image[0, 3] == pytest.approx(1 / 11)


def test_tfi_default_index_is_centre():
    spikes = np.zeros((9, 1, 1), np.uint8)
    spikes[[3, 5], 0, 0] = 1

    assert tfi(spikes)[0, 0] == pytest.approx(1 / 2)
    with pytest.raises(InvalidInputError, match="outside the window"):
        tfi(spikes, index=9)


def test_contiguous_windows_tile_clock():
    meta = SpikeMeta(rate_hz=20000.0, offset_s=0.013)
    times, durations = uniform_frame_times(29.97, 200)

    windows = [frame_window(meta, i, t, d) for i, (t, d) in enumerate(zip(times, durations, strict=True))]

    assert windows[0][0] == 260
    for (_, stop), (next_start, _) in zip(windows, windows[1:], strict=False):
        assert stop == next_start
    lengths = [stop - start for start, stop in windows]
    assert set(lengths) <= {667, 668}


def test_irregular_times_tile_clock():
    meta = SpikeMeta(rate_hz=40000.0)
    times = np.cumsum(np.random.default_rng(2).uniform(0.02, 0.05, size=100))
    durations = frame_durations(times)

    windows = [frame_window(meta, i, t, d) for i, (t, d) in enumerate(zip(times, durations, strict=True))]

    for (_, stop), (next_start, _) in zip(windows, windows[1:], strict=False):
        assert stop == next_start


def test_exposure_centred_on_interval():
    meta = SpikeMeta(rate_hz=1000.0, exposure_fraction=0.5)

    assert frame_window(meta, 0, 0.0, 0.04) == (10, 30)
    assert frame_window(meta, 1, 0.04, 0.04) == (50, 70)
    assert frame_window(meta.replace(exposure_fraction=None, exposure_s=0.01), 0, 0.0, 0.04) == (15, 25)


def test_exposure_longer_than_interval_raises():
    with pytest.raises(InvalidInputError, match="longer than the frame interval"):
        exposure_interval(0.0, 0.04, exposure_s=0.05)


def test_spikes_per_frame_ignores_clock():
    meta = SpikeMeta(spikes_per_frame=88, first_tick=20)

    assert frame_window(meta, 0, 123.0, 1.0) == (20, 108)
    assert frame_window(meta, 3, 0.0, 1.0) == (284, 372)


def test_frame_ticks_table_is_inclusive():
    meta = SpikeMeta(frame_ticks=((0, 9), (12, 30)))

    assert frame_window(meta, 1, 0.0, 1.0) == (12, 31)
    with pytest.raises(InvalidInputError, match="no entry in frame_ticks"):
        frame_window(meta, 2, 0.0, 1.0)


def test_time_to_tick_exact_boundaries():
    assert time_to_tick(0.1, rate_hz=20000.0) == 2000
    assert time_to_tick(3 / 30, rate_hz=30.0 * 1000) == 3000
    assert time_to_tick(0.10001, rate_hz=20000.0) == 2001


def test_frame_durations_reject_unsorted():
    with pytest.raises(InvalidInputError, match="must increase"):
        frame_durations([0.0, 0.04, 0.04])
    assert np.allclose(frame_durations([0.0, 0.04, 0.1]), [0.04, 0.06, 0.05])
