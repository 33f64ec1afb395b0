"""Tests for open_spike_source: metadata resolution, coverage and per-frame-file folders."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from spikedeblur.errors import InputNotFoundError, InvalidInputError, SpikeCoverageError
from spikedeblur.spikes import (
    SpatialMapping,
    SpikeMeta,
    SpikeOptions,
    open_spike_source,
    parse_exposure,
    parse_size,
    resolve_meta,
    uniform_frame_times,
    voxelize,
    write_dat,
    write_sidecar,
)


def _spikes(num_ticks, height=8, width=16, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.random((num_ticks, height, width)) < 0.3).astype(np.uint8)


def test_sidecar_is_read_and_options_override(tmp_path):
    path = write_dat(tmp_path / "a.dat", _spikes(10), meta=SpikeMeta(rate_hz=40000.0, spikes_per_frame=5))

    assert resolve_meta(path).rate_hz == 40000.0
    assert resolve_meta(path).size == (8, 16)
    meta = resolve_meta(path, SpikeOptions(rate_hz=1000.0, exposure_fraction=0.5))
    assert meta.rate_hz == 1000.0
    assert meta.spikes_per_frame is None
    assert meta.exposure_fraction == 0.5


def test_clock_source_voxels_match_window(tmp_path):
    spikes = _spikes(400)
    path = write_dat(tmp_path / "c.dat", spikes, meta=SpikeMeta(rate_hz=1000.0))
    times, durations = uniform_frame_times(10.0, 4)

    with open_spike_source(path) as source:
        voxels = source.voxels(2, times[2], durations[2], bins=8)
        assert source.window(2, times[2], durations[2]) == (200, 300)
        assert source.covered_frames(times, durations) == 4

    assert voxels.shape == (8, 8, 16)
    assert np.allclose(voxels, voxelize(spikes[200:300], 8))


def test_uncovered_frame_raises_with_index(tmp_path):
    path = write_dat(tmp_path / "u.dat", _spikes(250), meta=SpikeMeta(rate_hz=1000.0))
    times, durations = uniform_frame_times(10.0, 5)

    source = open_spike_source(path)

    assert source.covered_frames(times, durations) == 2
    with pytest.raises(SpikeCoverageError, match=r"video frame 2 at 0\.2000 s needs ticks 200\.\.299"):
        source.check_coverage(times, durations)
    with pytest.raises(SpikeCoverageError, match="video frame 3"):
        source.voxels(3, times[3], durations[3])


def test_missing_zero_warns_once(tmp_path, caplog):
    path = write_dat(tmp_path / "z.dat", _spikes(100), meta=SpikeMeta(spikes_per_frame=50))
    source = open_spike_source(path, missing="zero")

    with caplog.at_level(logging.WARNING, logger="spikedeblur"):
        first = source.voxels(2, 0.0, 1.0, bins=4)
        source.voxels(3, 0.0, 1.0, bins=4)

    assert not first.any()
    assert first.shape == (4, 8, 16)
    assert caplog.text.count("zero voxels") == 1


def test_video_size_resamples_by_area(tmp_path):
    spikes = _spikes(64, height=16, width=32)
    path = write_dat(tmp_path / "r.dat", spikes, meta=SpikeMeta(spikes_per_frame=64))

    voxels = open_spike_source(path, video_size=(8, 16)).voxels(0, 0.0, 1.0, bins=2)

    expected = voxelize(spikes, 2)[:, :2, :2].mean(axis=(1, 2))
    assert voxels.shape == (2, 8, 16)
    assert np.allclose(voxels[:, 0, 0], expected)


def test_stretch_aspect_mismatch_raises_on_open(tmp_path):
    path = write_dat(tmp_path / "m.dat", _spikes(4), meta=SpikeMeta())

    with pytest.raises(InvalidInputError, match="aspect ratio"):
        open_spike_source(path, video_size=(8, 8))


def test_scale_offset_sidecar_allows_other_aspect(tmp_path):
    meta = SpikeMeta(height=8, width=16, spikes_per_frame=4, spatial=SpatialMapping(kind="scale_offset"))
    path = write_dat(tmp_path / "o.dat", _spikes(8), meta=meta)

    voxels = open_spike_source(path, video_size=(8, 8)).voxels(0, 0.0, 1.0, bins=2)

    assert voxels.shape == (2, 8, 8)


def test_intensity_scales_by_threshold_over_gain(tmp_path):
    spikes = _spikes(32)
    path = write_dat(tmp_path / "i.dat", spikes, meta=SpikeMeta(spikes_per_frame=32, threshold=2.0, gain=0.5))

    voxels = open_spike_source(path, intensity=True).voxels(0, 0.0, 1.0, bins=4)

    assert np.allclose(voxels, 4.0 * voxelize(spikes, 4))
    write_sidecar(path, SpikeMeta(height=8, width=16), overwrite=True)
    with pytest.raises(InvalidInputError, match="threshold and gain"):
        open_spike_source(path, intensity=True)


def test_unknown_size_is_guessed(tmp_path, caplog):
    rng = np.random.default_rng(0)
    smooth = np.clip(np.linspace(0, 1, 400)[None, :] * np.linspace(0.2, 1, 250)[:, None], 0, 1)
    spikes = (rng.random((20, 250, 400)) < smooth).astype(np.uint8)
    path = write_dat(tmp_path / "g.dat", spikes)

    with caplog.at_level(logging.WARNING, logger="spikedeblur"):
        meta = resolve_meta(path)

    assert meta.size == (250, 400)
    assert "best guess 250x400" in caplog.text


def test_unknown_size_without_fit_raises(tmp_path):
    path = tmp_path / "odd.dat"
    path.write_bytes(b"\1" * 1001)

    with pytest.raises(InvalidInputError, match="no common sensor size fits its 1001 bytes"):
        resolve_meta(path)


def test_bad_paths_raise(tmp_path):
    with pytest.raises(InputNotFoundError):
        open_spike_source(tmp_path / "missing.dat")
    with pytest.raises(InvalidInputError, match="has no .dat files"):
        open_spike_source(tmp_path)


def _make_gopro_tree(root, lengths, height=8, width=16):
    (root / "config.yaml").write_text(f"spike_h: {height}\nspike_w: {width}\n")
    spike_folder = root / "test" / "clip0" / "spike"
    spike_folder.mkdir(parents=True)
    frames = []
    for index, length in enumerate(lengths):
        spikes = _spikes(length, height, width, seed=index)
        write_dat(spike_folder / f"{index:06d}.dat", spikes)
        frames.append(spikes)
    return root / "test" / "clip0", frames


def test_frame_file_folder_maps_file_to_frame(tmp_path):
    clip, frames = _make_gopro_tree(tmp_path, [56, 88, 60])

    source = open_spike_source(clip)

    assert source.meta.size == (8, 16)
    assert source.window(1, 0.0, 0.0) == (0, 88)
    assert np.allclose(source.voxels(1, 0.0, 0.0, bins=8), voxelize(frames[1], 8))
    assert source.covered_frames([0, 1, 2, 3], [1, 1, 1, 1]) == 3
    with pytest.raises(SpikeCoverageError, match="3 per-frame files"):
        source.voxels(3, 0.12, 0.04)


def test_frame_file_folder_accepts_spike_subfolder(tmp_path):
    clip, frames = _make_gopro_tree(tmp_path, [40])

    source = open_spike_source(clip / "spike", SpikeOptions(size=(8, 16)))

    assert np.allclose(source.voxels(0, 0.0, 0.0, bins=4), voxelize(frames[0], 4))


def test_frame_file_config_without_size_raises(tmp_path):
    clip, _ = _make_gopro_tree(tmp_path, [40])
    (tmp_path / "config.yaml").write_text("spike_h: 8\n")

    with pytest.raises(InvalidInputError, match="no spike_h and spike_w"):
        open_spike_source(clip)


@pytest.mark.parametrize(("text", "expected"), [("250x400", (250, 400)), (" 360X640 ", (360, 640))])
def test_parse_size_accepts_hxw(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["250", "0x400", "250x-4", "axb", "250x400x3"])
def test_parse_size_rejects_bad_text(text):
    with pytest.raises(InvalidInputError, match="HEIGHTxWIDTH"):
        parse_size(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0.01", (0.01, None)), ("0.02s", (0.02, None)), ("10ms", (0.01, None)), ("50%", (None, 0.5))],
)
def test_parse_exposure_units(text, expected):
    seconds, fraction = parse_exposure(text)

    assert seconds == pytest.approx(expected[0]) if expected[0] is not None else seconds is None
    assert fraction == expected[1]


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"offset_s": -0.1}, "offset -0.1"),
        ({"rate_hz": -5.0}, "rate_hz -5.0"),
        ({"spikes_per_frame": 0}, "spikes_per_frame 0"),
        ({"head_cols": -16}, "head_cols -16"),
        ({"exposure_fraction": 0.0}, "exposure fraction 0.0"),
    ],
)
def test_options_validate_on_construction(options, match):
    with pytest.raises(InvalidInputError, match=match):
        SpikeOptions(**options)


def test_frame_file_strict_rejects_partial_frame(tmp_path):
    clip, _ = _make_gopro_tree(tmp_path, [40])
    dat = clip / "spike" / "000000.dat"
    dat.write_bytes(dat.read_bytes() + b"\0\0\0")

    assert open_spike_source(clip).voxels(0, 0.0, 0.0, bins=4).shape == (4, 8, 16)
    with pytest.raises(InvalidInputError, match="3 bytes"):
        open_spike_source(clip, SpikeOptions(strict=True)).voxels(0, 0.0, 0.0, bins=4)


def test_guess_finds_head_columns(tmp_path):
    rng = np.random.default_rng(5)
    scene = np.linspace(0.1, 0.9, 400)[None, :] * np.linspace(0.5, 1.0, 250)[:, None]
    pixels = rng.random((10, 250, 400)) < scene
    head = rng.random((10, 250, 16)) < 0.5
    path = write_dat(tmp_path / "head.dat", np.concatenate([pixels, head], axis=2))

    meta = resolve_meta(path)

    assert (meta.height, meta.width, meta.head_cols) == (250, 400, 16)
