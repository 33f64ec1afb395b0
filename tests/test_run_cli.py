"""``spikedeblur run`` end to end on generated clips with a synthetic spike stream and a tiny model."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import torch
from typer.testing import CliRunner
from video_clips import make_clip

from spikedeblur.cli import app
from spikedeblur.spikes import DatWriter, SpikeMeta

runner = CliRunner()

WIDTH, HEIGHT, FPS, FRAMES = 64, 48, 25, 10
SPIKE_RATE_HZ = 2000.0  # 80 ticks per video frame at 25 fps


def run_cli(*args: str):
    return runner.invoke(app, ["run", *args, "--no-progress"])


def one_line(text: str) -> str:
    """Join the lines that rich wraps in log output, so messages can be searched."""
    return " ".join(text.split())


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory) -> Path:
    from spikedeblur.models.checkpoint import save_checkpoint
    from spikedeblur.models.registry import create_model

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "tiny.safetensors"
    save_checkpoint(create_model("vrt-spike-tiny"), path, preset="vrt-spike-tiny")
    return path


def write_spikes(path: Path, *, seconds: float, height: int = HEIGHT // 2, width: int = WIDTH // 2) -> Path:
    """Write a random spike stream of ``seconds`` at half the video size, with its sidecar."""
    ticks = int(round(seconds * SPIKE_RATE_HZ))
    rng = np.random.default_rng(0)
    meta = SpikeMeta(height=height, width=width, rate_hz=SPIKE_RATE_HZ)
    with DatWriter(path, height, width, meta=meta) as writer:
        writer.write(rng.random((ticks, height, width)) < 0.3)
    return path


def frame_pts(path: Path) -> list[int]:
    with av.open(str(path)) as container:
        return sorted(frame.pts for frame in container.decode(video=0))


def audio_payloads(path: Path) -> list[bytes]:
    with av.open(str(path)) as container:
        return [bytes(packet) for packet in container.demux(audio=0) if packet.size]


@pytest.fixture
def clip(tmp_path) -> Path:
    return make_clip(tmp_path / "blurry.mp4", width=WIDTH, height=HEIGHT, num_frames=FRAMES, fps=FPS, audio=True)


@pytest.mark.slow
def test_run_keeps_frames_timestamps_audio(tmp_path, clip, tiny_weights):
    spikes = write_spikes(tmp_path / "cam.dat", seconds=FRAMES / FPS)
    output = tmp_path / "sharp.mp4"

    result = run_cli(str(clip), "--spikes", str(spikes), "--weights", str(tiny_weights), "-o", str(output), "--clip-len", "4", "--preset", "ultrafast")

    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(output)
    assert frame_pts(output) == frame_pts(clip)
    assert len(frame_pts(output)) == FRAMES
    assert audio_payloads(output) == audio_payloads(clip)
    assert len(audio_payloads(clip)) > 5


def test_run_uncovered_frames_fail_without_output(tmp_path, clip, tiny_weights):
    spikes = write_spikes(tmp_path / "short.dat", seconds=6 / FPS)
    output = tmp_path / "sharp.mp4"

    result = run_cli(str(clip), "--spikes", str(spikes), "--weights", str(tiny_weights), "-o", str(output))

    assert result.exit_code == 1
    assert "video frame 6 at 0.2400 s" in one_line(result.output)
    assert not output.exists()
    assert not list(tmp_path.glob(".sharp*"))


def test_run_missing_spikes_zero_warns(tmp_path, clip, tiny_weights):
    spikes = write_spikes(tmp_path / "short.dat", seconds=6 / FPS)
    output = tmp_path / "sharp.mkv"

    result = run_cli(str(clip), "--spikes", str(spikes), "--weights", str(tiny_weights), "-o", str(output), "--missing-spikes", "zero", "--preset", "ultrafast")

    assert result.exit_code == 0, result.output
    assert "zero voxels" in one_line(result.output)
    assert len(frame_pts(output)) == FRAMES


def test_run_without_spikes_default_output_name(clip, tiny_weights):
    result = run_cli(str(clip), "--weights", str(tiny_weights), "--tile", "0", "--preset", "ultrafast")

    expected = clip.with_name("blurry_run.mp4")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(expected)
    assert len(frame_pts(expected)) == FRAMES


def test_run_benchmark_writes_nothing(tmp_path, clip):
    result = run_cli(str(clip), "--model", "vrt-spike-tiny", "--benchmark", "--clip-len", "5")

    assert result.exit_code == 0, result.output
    assert f"{FRAMES} frames in" in result.stdout
    assert "frames/s" in result.stdout
    assert sorted(path.name for path in tmp_path.iterdir()) == ["blurry.mp4"]


def test_run_existing_output_untouched(tmp_path, clip, tiny_weights):
    output = tmp_path / "sharp.mp4"
    output.write_bytes(b"keep me")

    result = run_cli(str(clip), "--weights", str(tiny_weights), "-o", str(output))

    assert result.exit_code == 1
    assert "--overwrite" in one_line(result.output)
    assert output.read_bytes() == b"keep me"


def test_run_interrupt_leaves_no_partial_output(tmp_path, clip, tiny_weights, monkeypatch):
    import spikedeblur.inference.pipeline as pipeline

    real_run_inference = pipeline.run_inference

    def interrupted_run(frames, model, sink, **kwargs):
        def write_then_interrupt(report):
            if report.frames_done >= 2:
                raise KeyboardInterrupt

        return real_run_inference(frames, model, sink, **{**kwargs, "progress": write_then_interrupt})

    monkeypatch.setattr(pipeline, "run_inference", interrupted_run)
    output = tmp_path / "sharp.mp4"

    result = run_cli(str(clip), "--weights", str(tiny_weights), "-o", str(output), "--clip-len", "2", "--clip-overlap", "0")

    assert result.exit_code == 130
    assert not output.exists()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["blurry.mp4"]


@pytest.mark.parametrize(
    ("arguments", "exit_code", "message"),
    [
        (["--tile", "100"], 1, "multiple of 8"),
        (["--clip-len", "0"], 2, "--clip-len"),
        (["--tile-overlap", "-3"], 2, "--tile-overlap"),
        (["--self-ensemble", "3"], 2, "--self-ensemble"),
        (["--clip-len", "4", "--clip-overlap", "4"], 1, "clip overlap 4"),
        (["--device", "cuda"], 1, "no CUDA"),
        (["--device", "tpu"], 1, "unknown"),
        (["--precision", "fp8"], 1, "precision 'fp8' is unknown"),
        (["--model", "no-such-preset"], 1, "no-such-preset"),
        (["--spikes", "missing.dat"], 1, "does not exist"),
    ],
)
def test_run_rejects_bad_options(clip, tiny_weights, arguments, exit_code, message):
    result = run_cli(str(clip), "--weights", str(tiny_weights), *arguments)

    assert result.exit_code == exit_code, result.output
    assert message in one_line(result.output)
    assert not clip.with_name("blurry_run.mp4").exists()


def test_run_missing_input_is_usage_error():
    result = run_cli()

    assert result.exit_code == 2
    assert "INPUT" in one_line(result.output)


def test_run_nonexistent_input(tmp_path, tiny_weights):
    result = run_cli(str(tmp_path / "nope.mp4"), "--weights", str(tiny_weights))

    assert result.exit_code == 1
    assert "nope.mp4 does not exist" in one_line(result.output)


def test_run_default_weights_need_no_download(tmp_path, clip):
    output = tmp_path / "sharp.mp4"
    spikes = write_spikes(tmp_path / "cam.dat", seconds=FRAMES / FPS)

    # The test cache is empty and offline, so this only passes with weights shipped in the package.
    result = run_cli(str(clip), "--spikes", str(spikes), "-o", str(output), "--preset", "ultrafast")

    assert result.exit_code == 0, result.output
    assert len(frame_pts(output)) == FRAMES


def test_run_registry_download_offline_error(clip):
    result = run_cli(str(clip), "--weights", "vrt-deblur-gopro")

    assert result.exit_code == 1
    assert "offline" in one_line(result.output).lower()


def test_run_rgb_only_weights_reject_spikes(tmp_path, clip):
    from spikedeblur.models.checkpoint import save_checkpoint
    from spikedeblur.models.registry import create_model

    weights = tmp_path / "rgb.safetensors"
    save_checkpoint(create_model("vrt-tiny"), weights, preset="vrt-tiny")
    spikes = write_spikes(tmp_path / "cam.dat", seconds=FRAMES / FPS)

    result = run_cli(str(clip), "--weights", str(weights), "--spikes", str(spikes))

    assert result.exit_code == 1
    assert "without a spike branch" in one_line(result.output)


def test_run_rgb_only_name_rejects_spikes(tmp_path, clip, monkeypatch):
    import spikedeblur.inference.pipeline as pipeline

    def fail_if_loaded(*args, **kwargs):
        raise AssertionError("the weights were resolved before the spike check")

    monkeypatch.setattr(pipeline, "load_inference_model", fail_if_loaded)
    spikes = write_spikes(tmp_path / "cam.dat", seconds=FRAMES / FPS)

    result = run_cli(str(clip), "--weights", "vrt-deblur-gopro", "--spikes", str(spikes), "-o", str(tmp_path / "o.mp4"))

    assert result.exit_code == 1
    assert "without a spike branch" in one_line(result.output)
    assert "drop --spikes" in one_line(result.output)


def test_run_spike_stream_as_input_fails(tmp_path):
    spikes = write_spikes(tmp_path / "cam.dat", seconds=FRAMES / FPS)

    result = run_cli(str(spikes), "-o", str(tmp_path / "o.mp4"))

    assert result.exit_code == 1
    assert "is a spike stream" in one_line(result.output)
    assert f"--spikes {spikes}" in one_line(result.output)
    assert not (tmp_path / "o.mp4").exists()


def test_run_video_as_spikes_fails(tmp_path, clip):
    result = run_cli(str(clip), "--spikes", str(clip), "-o", str(tmp_path / "o.mp4"))

    assert result.exit_code == 1
    assert "is a video file, not a spike stream" in one_line(result.output)


def test_run_list_devices():
    result = runner.invoke(app, ["run", "--list-devices"])

    assert result.exit_code == 0
    assert result.stdout.splitlines()[-1].startswith("cpu")


def test_run_image_folder_to_png_sequence(tmp_path, tiny_weights):
    import cv2

    frames_in = tmp_path / "frames"
    frames_in.mkdir()
    rng = np.random.default_rng(1)
    for index in range(3):
        cv2.imwrite(str(frames_in / f"{index:03d}.png"), rng.integers(0, 256, size=(40, 56, 3), dtype=np.uint8))
    output = tmp_path / "out"

    result = run_cli(str(frames_in), "--weights", str(tiny_weights), "-o", f"{output}/")

    assert result.exit_code == 0, result.output
    written = sorted(output.glob("*.png"))
    assert len(written) == 3
    assert cv2.imread(str(written[0])).shape == (40, 56, 3)


def test_run_benchmark_of_rgb_preset_drops_spikes(tmp_path, clip):
    spikes = write_spikes(tmp_path / "cam.dat", seconds=FRAMES / FPS)

    result = run_cli(str(clip), "--spikes", str(spikes), "--model", "vrt-tiny", "--benchmark", "--clip-len", "5")

    assert result.exit_code == 0, result.output
    assert "is RGB-only" in one_line(result.output)
    assert "is not used" in one_line(result.output)


def test_run_spike_model_without_spikes_warns(tmp_path, clip, tiny_weights):
    output = tmp_path / "sharp.mp4"

    result = run_cli(str(clip), "--weights", str(tiny_weights), "-o", str(output), "--preset", "ultrafast")

    assert result.exit_code == 0, result.output
    assert "no --spikes given" in one_line(result.output)
    assert len(frame_pts(output)) == FRAMES


def test_run_existing_output_checked_before_model(tmp_path, clip, monkeypatch):
    import spikedeblur.inference.pipeline as pipeline

    def fail_if_loaded(*args, **kwargs):
        raise AssertionError("the model was loaded before the output check")

    monkeypatch.setattr(pipeline, "load_inference_model", fail_if_loaded)
    output = tmp_path / "sharp.mp4"
    output.write_bytes(b"keep me")

    result = run_cli(str(clip), "-o", str(output))

    assert result.exit_code == 1
    assert "already exists" in one_line(result.output)
    assert output.read_bytes() == b"keep me"
