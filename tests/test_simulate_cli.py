"""`spikedeblur simulate`: the data set it writes, and how `run`'s spike reader sees it."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from spikedeblur.cli import app
from spikedeblur.data.dataset import write_dataset
from spikedeblur.data.simulate import ExposureConfig, SpikeSimulationConfig, simulate_frames
from spikedeblur.spikes import DatReader
from spikedeblur.spikes.source import open_spike_source
from spikedeblur.spikes.spatial import map_to_video
from spikedeblur.spikes.voxelize import voxelize
from spikedeblur.video import VideoReader

runner = CliRunner()


def _simulate(*args: str):
    return runner.invoke(app, ["--quiet", "simulate", *map(str, args)])


@pytest.fixture(scope="module")
def procedural_dataset(tmp_path_factory):
    output = tmp_path_factory.mktemp("sim") / "scene"
    result = _simulate("--procedural", "--frames", 3, "--size", "64x48", "--ticks-per-frame", 16, "-o", output)
    assert result.exit_code == 0, result.output
    return output


def test_procedural_dataset_layout(procedural_dataset):
    manifest = json.loads((procedural_dataset / "manifest.json").read_text())

    assert manifest["num_frames"] == 3
    assert manifest["ticks_per_frame"] == 16
    assert manifest["exposure_ticks"] == 16
    assert (manifest["spike_width"], manifest["spike_height"]) == (32, 24)
    assert sorted(path.name for path in (procedural_dataset / "sharp").iterdir()) == [
        "000000.png",
        "000001.png",
        "000002.png",
    ]
    assert not list(procedural_dataset.parent.glob(".*.part"))


def test_procedural_dataset_streams_have_all_ticks(procedural_dataset):
    with DatReader(procedural_dataset / "spikes.dat", 24, 32) as reader:
        assert reader.num_frames == 48

    with VideoReader(procedural_dataset / "blurry.mp4") as reader:
        frames = [frame for frame in reader]
    assert len(frames) == 3
    assert frames[0].image.shape == (48, 64, 3)
    assert reader.info.fps == 25


def test_spike_source_reads_dataset_without_options(procedural_dataset):
    with open_spike_source(procedural_dataset / "spikes.dat", video_size=(48, 64)) as source:
        window = source.window(1, 1 / 25, 1 / 25)
        voxels = source.voxels(1, 1 / 25, 1 / 25, bins=8)
        mapping = source.meta.spatial

    with DatReader(procedural_dataset / "spikes.dat", 24, 32) as reader:
        expected = map_to_video(voxelize(reader.read(16, 32), 8), mapping, (48, 64))
    assert window == (16, 32)
    assert voxels.shape == (8, 48, 64)
    np.testing.assert_allclose(voxels, expected, atol=1e-6)


def test_blurry_video_matches_simulated_blur(procedural_dataset):
    with VideoReader(procedural_dataset / "blurry.mp4") as reader:
        decoded = next(iter(reader)).image.astype(np.float64)
    sharp = cv2.cvtColor(cv2.imread(str(procedural_dataset / "sharp" / "000000.png")), cv2.COLOR_BGR2RGB)

    # The blurry frame differs visibly from its sharp frame but keeps its mean brightness.
    blur_error = np.abs(decoded - sharp.astype(np.float64)).mean()
    assert blur_error > 1.0
    assert decoded.mean() == pytest.approx(sharp.mean(), abs=4.0)


@pytest.fixture
def sharp_folder(tmp_path):
    """Nine PNG frames of a bright square moving 2 px per frame."""
    folder = tmp_path / "sharp_in"
    folder.mkdir()
    for index in range(9):
        image = np.full((32, 48, 3), 40, np.uint8)
        image[8:20, 4 + 2 * index : 16 + 2 * index] = 220
        cv2.imwrite(str(folder / f"{index:04d}.png"), image)
    return folder


def test_video_input_upsampled_timing(sharp_folder, tmp_path):
    output = tmp_path / "from_video"

    result = _simulate(sharp_folder, "-o", output, "--upsample", 4, "--frames-per-blur", 3, "--fps", 30)

    assert result.exit_code == 0, result.output
    manifest = json.loads((output / "manifest.json").read_text())
    sidecar = json.loads((output / "spikes.dat.json").read_text())
    assert manifest["ticks_per_frame"] == 12
    assert manifest["exposure_ticks"] == 9
    assert manifest["fps"] == pytest.approx(10.0)
    # 9 source frames give 33 upsampled ticks; one leading blend is dropped so windows start on
    # source frames, leaving 2 whole intervals of 12 ticks.
    assert manifest["num_frames"] == 2
    assert sidecar["frame_ticks"] == [[1, 9], [13, 21]]


def test_sparse_exposure_warns_with_fix(sharp_folder, tmp_path):
    # 3 frames per blur at 4x give 9 exposed ticks, fewer than 32 bins; 16x gives 2 * 16 + 1 = 33.
    arguments = ["simulate", str(sharp_folder), "--frames-per-blur", "3", "--fps", "30"]
    result = runner.invoke(app, [*arguments, "-o", str(tmp_path / "sparse"), "--upsample", "4"])
    assert result.exit_code == 0, result.output
    assert "only 9 spike ticks" in " ".join(result.output.split())
    assert "--upsample 16 gives 33 ticks" in " ".join(result.output.split())

    result = runner.invoke(app, [*arguments, "-o", str(tmp_path / "dense"), "--upsample", "16"])
    assert result.exit_code == 0, result.output
    assert "voxel bins" not in result.output


def test_video_input_ground_truth_is_centre_source_frame(sharp_folder, tmp_path):
    output = tmp_path / "centre"

    result = _simulate(sharp_folder, "-o", output, "--upsample", 4, "--frames-per-blur", 3, "--fps", 30)

    assert result.exit_code == 0, result.output
    # Frame 0 exposes source frames 1..3 (ticks 4..12 of the upsampled stream), centred on frame 2.
    ground_truth = cv2.imread(str(output / "sharp" / "000000.png"))
    source = cv2.imread(str(sharp_folder / "0002.png"))
    np.testing.assert_array_equal(ground_truth, source)


def test_simulate_without_input_is_usage_error(tmp_path):
    result = _simulate("-o", tmp_path / "x")

    assert result.exit_code == 2


def test_simulate_keeps_existing_output(tmp_path):
    output = tmp_path / "existing"
    output.mkdir()
    (output / "keep.txt").write_text("mine")

    result = _simulate("--procedural", "--frames", 1, "--size", "32x32", "-o", output)

    assert result.exit_code == 1
    assert "already exists" in result.stderr
    assert (output / "keep.txt").read_text() == "mine"


def test_overwrite_keeps_foreign_folder(tmp_path):
    output = tmp_path / "thesis"
    (output / "figures").mkdir(parents=True)
    (output / "thesis.tex").write_text("mine")
    (output / "figures" / "plot.pdf").write_text("also mine")

    result = _simulate("--procedural", "--frames", 1, "--size", "32x32", "-o", output, "--overwrite")

    assert result.exit_code == 1
    assert "did not write" in result.stderr
    assert (output / "thesis.tex").read_text() == "mine"
    assert (output / "figures" / "plot.pdf").read_text() == "also mine"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["thesis"]


def test_overwrite_replaces_earlier_dataset(tmp_path):
    output = tmp_path / "scene"
    first = _simulate("--procedural", "--frames", 1, "--size", "32x32", "--seed", 1, "-o", output)
    assert first.exit_code == 0, first.output

    second = _simulate("--procedural", "--frames", 2, "--size", "32x32", "--seed", 2, "-o", output, "--overwrite")

    assert second.exit_code == 0, second.output
    manifest = json.loads((output / "manifest.json").read_text())
    assert manifest["num_frames"] == 2
    assert manifest["source"]["seed"] == 2


def test_simulate_missing_input_fails(tmp_path):
    result = _simulate(tmp_path / "nope.mp4", "-o", tmp_path / "out")

    assert result.exit_code == 1
    assert "not found" in result.stderr
    assert not (tmp_path / "out").exists()


def test_simulate_bad_spike_scale_fails(tmp_path):
    result = _simulate("--procedural", "--frames", 1, "--size", "32x32", "--spike-scale", 0.1, "-o", tmp_path / "o")

    assert result.exit_code == 1
    assert "spike scale" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_failed_write_leaves_no_output(tmp_path):
    rng = np.random.default_rng(0)
    frames = [rng.random((16, 16, 3), dtype=np.float32) for _ in range(8)]
    exposure = ExposureConfig(ticks_per_frame=4, spike_scale=1.0)

    def failing():
        yield from simulate_frames(frames[:4], exposure=exposure)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_dataset(
            failing(),
            tmp_path / "broken",
            height=16,
            width=16,
            fps=25,
            exposure=exposure,
            spikes=SpikeSimulationConfig(),
            spike_size=(16, 16),
            source={"kind": "test"},
        )

    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_bikes_simulate_run_eval_end_to_end(tmp_path):
    from conftest import shared_file

    from spikedeblur.models.checkpoint import save_checkpoint
    from spikedeblur.models.registry import create_model

    bikes = shared_file("video/bikes.mp4")
    dataset = tmp_path / "bikes_sim"
    weights = tmp_path / "tiny.safetensors"
    model = create_model("vrt-spike-tiny")
    # A zero output head makes the untrained model return its input, so the scores are predictable.
    torch.nn.init.zeros_(model.backbone.conv_last.weight)
    torch.nn.init.zeros_(model.backbone.conv_last.bias)
    save_checkpoint(model, weights, preset="vrt-spike-tiny")

    simulated = _simulate(bikes, "-o", dataset, "--max-frames", 7, "--upsample", 2, "--frames-per-blur", 3)
    deblurred = runner.invoke(
        app,
        ["--quiet", "run", str(dataset / "blurry.mp4"), "--spikes", str(dataset / "spikes.dat"),
         "--weights", str(weights), "--device", "cpu", "-o", str(tmp_path / "deblurred.mp4")],
    )
    scored = runner.invoke(
        app,
        ["eval", "--pred", str(tmp_path / "deblurred.mp4"), "--gt", str(dataset / "sharp"),
         "--blurry", str(dataset / "blurry.mp4"), "--json"],
    )

    assert simulated.exit_code == 0, simulated.output
    assert deblurred.exit_code == 0, deblurred.output
    assert scored.exit_code == 0, scored.output
    summary = json.loads(scored.stdout)
    assert summary["num_frames"] == 2
    assert float(summary["baseline_mean"]["psnr"]) > 20
    assert float(summary["mean"]["psnr"]) == pytest.approx(float(summary["baseline_mean"]["psnr"]), abs=0.5)


@pytest.mark.slow
def test_default_model_deblurs_bikes_simulation(tmp_path):
    from conftest import shared_file

    bikes = shared_file("video/bikes.mp4")
    dataset = tmp_path / "bikes_sim"
    zero_spikes = dataset / "zero.dat"

    # Seven source frames of 32 blended ticks each give 224 ticks per blurry frame, 7 per voxel bin.
    simulated = _simulate(bikes, "-o", dataset, "--max-frames", 22, "--upsample", 32, "--frames-per-blur", 7)
    assert simulated.exit_code == 0, simulated.output
    num_frames = json.loads((dataset / "manifest.json").read_text())["num_frames"]
    zero_spikes.write_bytes(bytes((dataset / "spikes.dat").stat().st_size))
    (dataset / "zero.dat.json").write_text((dataset / "spikes.dat.json").read_text())

    scores = {}
    for name, spikes in (("with_spikes", dataset / "spikes.dat"), ("spikes_zeroed", zero_spikes)):
        output = tmp_path / f"{name}.mp4"
        deblurred = runner.invoke(
            app, ["--quiet", "run", str(dataset / "blurry.mp4"), "--spikes", str(spikes), "--device", "cpu", "-o", str(output)]
        )
        assert deblurred.exit_code == 0, deblurred.output
        scored = runner.invoke(
            app, ["eval", "--pred", str(output), "--gt", str(dataset / "sharp"), "--blurry", str(dataset / "blurry.mp4"), "--json"]
        )
        assert scored.exit_code == 0, scored.output
        scores[name] = json.loads(scored.stdout)

    blurry_psnr = scores["with_spikes"]["baseline_mean"]["psnr"]
    assert num_frames >= 2
    assert scores["with_spikes"]["num_frames"] == num_frames
    assert scores["with_spikes"]["mean"]["psnr"] > blurry_psnr + 1.0
    assert scores["with_spikes"]["mean"]["psnr"] > scores["spikes_zeroed"]["mean"]["psnr"] + 1.0
