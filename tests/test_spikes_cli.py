"""Tests for `spikedeblur info` on spike inputs and `spikedeblur voxelize`."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import shared_file
from spikedeblur.cli import app
from spikedeblur.spikes import SpikeMeta, voxelize, write_dat

runner = CliRunner()


def _smooth_spikes(num_ticks, height=32, width=48, seed=0):
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0.05, 0.9, width)[None, :] * np.linspace(0.3, 1.0, height)[:, None]
    return (rng.random((num_ticks, height, width)) < ramp).astype(np.uint8)


@pytest.fixture
def stream(tmp_path):
    spikes = _smooth_spikes(200)
    path = write_dat(tmp_path / "cam.dat", spikes, meta=SpikeMeta(rate_hz=1000.0))
    return path, spikes


def test_info_json_reports_stream(stream):
    path, spikes = stream

    result = runner.invoke(app, ["info", str(path), "--json"])

    assert result.exit_code == 0, result.output
    facts = json.loads(result.stdout)
    assert facts["frames"] == 200
    assert (facts["height"], facts["width"]) == (32, 48)
    assert facts["size_source"] == "sidecar"
    assert facts["duration_s"] == pytest.approx(0.2)
    assert facts["mean_rate"] == pytest.approx(spikes.mean(), rel=1e-5)
    assert facts["trailing_bytes"] == 0
    assert facts["dead_pixels"] == 0


def test_info_counts_dead_and_hot_pixels(tmp_path):
    spikes = np.zeros((100, 16, 16), np.uint8)
    spikes[::4] = 1  # every pixel fires at rate 0.25
    spikes[:, 5, 5] = 0  # dead
    spikes[:, 9, 9] = 1  # hot: rate 1.0 next to 0.25
    path = write_dat(tmp_path / "px.dat", spikes)

    result = runner.invoke(app, ["info", str(path), "--json", "--spike-size", "16x16"])

    facts = json.loads(result.stdout)
    assert facts["size_source"] == "option"
    assert facts["dead_pixels"] == 1
    assert facts["hot_pixels"] == 1


def test_info_text_on_gopro_sample():
    path = shared_file("gopro-spike/000226.dat")

    result = runner.invoke(app, ["info", str(path)])

    assert result.exit_code == 0, result.output
    assert "360x640 (height x width, from guess)" in result.stdout
    assert "proposed sizes   360x640" in result.stdout
    assert "frames (ticks)   88" in result.stdout


def test_info_reports_trailing_bytes(stream):
    path, _ = stream
    path.write_bytes(path.read_bytes() + b"\0" * 10)

    result = runner.invoke(app, ["info", str(path), "--json"])

    assert json.loads(result.stdout)["trailing_bytes"] == 10
    strict = runner.invoke(app, ["info", str(path), "--strict"])
    assert strict.exit_code == 1
    assert "10 bytes" in strict.output


def test_info_frame_file_folder(tmp_path):
    (tmp_path / "config.yaml").write_text("spike_h: 32\nspike_w: 48\n")
    folder = tmp_path / "train" / "clip" / "spike"
    folder.mkdir(parents=True)
    for index, length in enumerate([56, 88]):
        write_dat(folder / f"{index:06d}.dat", _smooth_spikes(length, seed=index))

    result = runner.invoke(app, ["info", str(folder.parent), "--json"])

    assert result.exit_code == 0, result.output
    facts = json.loads(result.stdout)
    assert facts["files"] == 2
    assert facts["size_source"] == "config"
    assert facts["ticks_per_file"] == {"min": 56, "max": 88, "mean": 72.0}


@pytest.mark.parametrize(
    ("name", "content", "args", "message"),
    [
        ("missing.dat", None, [], "not found"),
        ("empty.dat", b"", [], "is empty"),
        ("folder", "directory", [], "contains no image files"),
        ("odd.dat", b"\1" * 1001, [], "no common sensor size"),
        ("s.dat", b"\1" * 64, ["--spike-size", "5x7"], "multiple of 8"),
        ("t.dat", b"\1" * 60, ["--spike-size", "8x64"], "less than one"),
    ],
)
def test_info_bad_input_one_line_error(tmp_path, name, content, args, message):
    path = tmp_path / name
    if content == "directory":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)

    result = runner.invoke(app, ["info", str(path), *args])

    assert result.exit_code == 1
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert "Traceback" not in result.output


def test_debug_shows_traceback(tmp_path):
    (tmp_path / "empty.dat").write_bytes(b"")

    result = runner.invoke(app, ["--debug", "info", str(tmp_path / "empty.dat")])

    assert result.exit_code != 0
    assert result.exception is not None
    assert "is empty" in str(result.exception)


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--spike-offset", "-0.5"], "--spike-offset"),
        (["--bins", "0"], "--bins"),
        (["--spike-size", "250"], "--spike-size"),
        (["--exposure", "fast"], "--exposure"),
        (["--spike-rate", "0"], "--spike-rate"),
        (["--exposure", "50%", "--spikes-per-frame", "20"], "--exposure"),
        (["--size", "video"], "--size"),
        (["--preview", "p.gif"], "--preview"),
    ],
)
def test_voxelize_bad_option_is_usage_error(stream, tmp_path, args, option):
    path, _ = stream

    result = runner.invoke(app, ["voxelize", str(path), "--fps", "50", "-o", str(tmp_path / "x.npz"), *args])

    assert result.exit_code == 2
    assert option in result.output
    assert not (tmp_path / "x.npz").exists()


def test_voxelize_fps_writes_npz(stream, tmp_path):
    path, spikes = stream
    output = tmp_path / "v.npz"

    result = runner.invoke(app, ["voxelize", str(path), "--fps", "50", "--bins", "8", "-o", str(output)])

    assert result.exit_code == 0, result.output
    data = np.load(output)
    assert data["voxels"].shape == (10, 8, 32, 48)
    assert np.array_equal(data["tick_start"], np.arange(0, 200, 20))
    assert np.array_equal(data["tick_stop"], np.arange(20, 220, 20))
    assert np.allclose(data["frame_times"], np.arange(10) / 50)
    assert int(data["bins"]) == 8
    assert json.loads(str(data["meta"]))["rate_hz"] == 1000.0
    assert np.allclose(data["voxels"][3], voxelize(spikes[60:80], 8))


def test_voxelize_spikes_per_frame_resized_float16(stream, tmp_path):
    path, spikes = stream
    output = tmp_path / "s.npz"
    preview = tmp_path / "p.png"

    result = runner.invoke(
        app,
        ["voxelize", str(path), "--spikes-per-frame", "64", "--size", "16x24", "--dtype", "float16",
         "-o", str(output), "--preview", str(preview)],
    )

    assert result.exit_code == 0, result.output
    voxels = np.load(output)["voxels"]
    assert voxels.shape == (3, 32, 16, 24)
    assert voxels.dtype == np.float16
    expected = voxelize(spikes[64:128], 32)[:, :2, :2].mean(axis=(1, 2))
    assert np.allclose(voxels[1, :, 0, 0], expected, atol=2e-3)
    image = cv2.imread(str(preview), cv2.IMREAD_GRAYSCALE)
    assert image.shape[0] == 16
    assert image.shape[1] > 24


def test_voxelize_uncovered_frames_fail_without_output(stream, tmp_path):
    path, _ = stream
    output = tmp_path / "u.npz"

    result = runner.invoke(app, ["voxelize", str(path), "--fps", "50", "--frames", "12", "-o", str(output)])

    assert result.exit_code == 1
    assert "video frame 10" in result.output
    assert not output.exists()


def test_voxelize_missing_zero_pads(stream, tmp_path):
    path, _ = stream
    output = tmp_path / "z.npz"

    result = runner.invoke(
        app, ["voxelize", str(path), "--fps", "50", "--frames", "12", "--missing", "zero", "-o", str(output)]
    )

    assert result.exit_code == 0, result.output
    voxels = np.load(output)["voxels"]
    assert voxels[9].any()
    assert not voxels[10:].any()


def test_voxelize_keeps_existing_output(stream, tmp_path):
    path, _ = stream
    output = tmp_path / "keep.npz"
    output.write_bytes(b"precious")

    result = runner.invoke(app, ["voxelize", str(path), "--fps", "50", "-o", str(output)])

    assert result.exit_code == 1
    assert "--overwrite" in result.output
    assert output.read_bytes() == b"precious"


def test_voxelize_needs_a_frame_source(stream, tmp_path):
    path, _ = stream

    result = runner.invoke(app, ["voxelize", str(path), "-o", str(tmp_path / "n.npz")])

    assert result.exit_code == 2
    assert "--video" in result.output


def test_voxelize_video_timestamps_and_mp4_preview(tmp_path):
    import av

    video = tmp_path / "clip.mp4"
    with av.open(str(video), "w") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for index in range(6):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), index * 30, np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    spikes = _smooth_spikes(300, height=24, width=32)
    dat = write_dat(tmp_path / "cam.dat", spikes, meta=SpikeMeta(rate_hz=1000.0))
    output, preview = tmp_path / "v.npz", tmp_path / "v.mp4"

    result = runner.invoke(
        app,
        ["voxelize", str(dat), "--video", str(video), "--size", "video", "--bins", "4",
         "-o", str(output), "--preview", str(preview)],
    )

    assert result.exit_code == 0, result.output
    data = np.load(output)
    assert data["voxels"].shape == (6, 4, 48, 64)
    assert np.allclose(data["frame_times"], np.arange(6) / 25)
    assert np.array_equal(data["tick_start"], np.arange(0, 240, 40))
    with av.open(str(preview)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 6


def test_voxelize_sidecar_spikes_per_frame_with_fps(tmp_path):
    spikes = _smooth_spikes(100)
    path = write_dat(tmp_path / "spf.dat", spikes, meta=SpikeMeta(spikes_per_frame=30, first_tick=5))
    output = tmp_path / "spf.npz"

    result = runner.invoke(app, ["voxelize", str(path), "--fps", "24", "--bins", "4", "-o", str(output)])

    assert result.exit_code == 0, result.output
    data = np.load(output)
    assert np.array_equal(data["tick_start"], [5, 35, 65])
    assert np.allclose(data["frame_times"], np.arange(3) / 24)


def test_voxelize_frame_file_folder(tmp_path):
    (tmp_path / "config.yaml").write_text("spike_h: 32\nspike_w: 48\n")
    folder = tmp_path / "clip" / "spike"
    folder.mkdir(parents=True)
    clips = [_smooth_spikes(length, seed=length) for length in (56, 88)]
    for index, spikes in enumerate(clips):
        write_dat(folder / f"{index:06d}.dat", spikes)
    output = tmp_path / "f.npz"

    result = runner.invoke(app, ["voxelize", str(tmp_path / "clip"), "--bins", "8", "-o", str(output)])

    assert result.exit_code == 0, result.output
    data = np.load(output)
    assert data["voxels"].shape == (2, 8, 32, 48)
    assert np.array_equal(data["tick_stop"], [56, 88])
    assert np.isnan(data["frame_times"]).all()
    assert np.allclose(data["voxels"][1], voxelize(clips[1], 8))
