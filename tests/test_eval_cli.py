"""``spikedeblur eval`` on frame folders, videos and folders of sequences, through the CLI."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import av
import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from spikedeblur.cli import app
from spikedeblur.evaluation import psnr, ssim

runner = CliRunner()

HEIGHT, WIDTH, NUM_FRAMES = 48, 64, 4


def _frames(seed: int, count: int = NUM_FRAMES) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    base = cv2.GaussianBlur(rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8), (5, 5), 1.0)
    return [np.roll(base, shift=2 * index, axis=1) for index in range(count)]


def _noisy(frames: list[np.ndarray], amount: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [
        np.clip(frame.astype(np.int16) + rng.integers(-amount, amount + 1, frame.shape), 0, 255).astype(np.uint8)
        for frame in frames
    ]


def _write_folder(folder, frames) -> None:
    folder.mkdir(parents=True)
    for index, frame in enumerate(frames):
        cv2.imwrite(str(folder / f"{index:05d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))


def _write_video(path, frames) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264rgb", rate=10, options={"qp": "0", "preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "rgb24"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


def _mean_abs_difference(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(np.abs(a.astype(np.float64) - b.astype(np.float64))))


@pytest.fixture
def clip(tmp_path):
    """Ground truth, a close prediction and a blurrier input as PNG folders."""
    truth = _frames(seed=0)
    prediction = _noisy(truth, 4, seed=1)
    blurry = [cv2.GaussianBlur(frame, (9, 9), 3.0) for frame in truth]
    _write_folder(tmp_path / "gt", truth)
    _write_folder(tmp_path / "pred", prediction)
    _write_folder(tmp_path / "blurry", blurry)
    return {"truth": truth, "prediction": prediction, "blurry": blurry, "root": tmp_path}


def test_eval_folders_writes_csv_matching_library(clip, tmp_path):
    scores = tmp_path / "scores.csv"

    result = runner.invoke(
        app,
        ["-q", "eval", "--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt"),
         "--blurry", str(tmp_path / "blurry"), "--csv", str(scores)],
    )

    rows = list(csv.DictReader(scores.open()))
    assert result.exit_code == 0, result.output
    assert "blurry input" in result.stdout
    assert len(rows) == NUM_FRAMES
    assert float(rows[1]["psnr"]) == pytest.approx(psnr(clip["prediction"][1], clip["truth"][1]), abs=1e-5)
    assert float(rows[1]["ssim_y"]) == pytest.approx(
        ssim(clip["prediction"][1], clip["truth"][1], y_channel=True), abs=1e-5
    )
    assert float(rows[2]["blurry_psnr"]) == pytest.approx(psnr(clip["blurry"][2], clip["truth"][2]), abs=1e-5)


def test_eval_json_summary(clip, tmp_path):
    result = runner.invoke(
        app,
        ["-q", "eval", "--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt"),
         "--blurry", str(tmp_path / "blurry"), "--json", "--crop-border", "2"],
    )

    summary = json.loads(result.stdout)
    expected_psnr = np.mean([psnr(p, t, crop_border=2) for p, t in zip(clip["prediction"], clip["truth"])])
    assert result.exit_code == 0
    assert summary["num_frames"] == NUM_FRAMES
    assert summary["crop_border"] == 2
    assert summary["mean"]["psnr"] == pytest.approx(expected_psnr)
    assert summary["baseline_mean"]["psnr"] < summary["mean"]["psnr"]


def test_eval_reads_lossless_video(clip, tmp_path):
    _write_video(tmp_path / "pred.mkv", clip["prediction"])

    result = runner.invoke(app, ["-q", "eval", "--pred", str(tmp_path / "pred.mkv"), "--gt", str(tmp_path / "gt"), "--json"])

    summary = json.loads(result.stdout)
    expected_psnr = np.mean([psnr(p, t) for p, t in zip(clip["prediction"], clip["truth"])])
    assert result.exit_code == 0, result.output
    assert summary["num_frames"] == NUM_FRAMES
    assert summary["mean"]["psnr"] == pytest.approx(expected_psnr, abs=1e-6)


def test_eval_odd_size_video_from_writer(tmp_path):
    from spikedeblur.video import EncodeOptions, VideoWriter

    truth = [frame[:47, :63] for frame in _frames(seed=3)]
    _write_folder(tmp_path / "gt", truth)
    with VideoWriter(tmp_path / "pred.mp4", source=None, options=EncodeOptions(crf=10, preset="ultrafast")) as writer:
        for frame in truth:
            writer.write(frame)

    result = runner.invoke(app, ["-q", "eval", "--pred", str(tmp_path / "pred.mp4"), "--gt", str(tmp_path / "gt"), "--json"])

    summary = json.loads(result.stdout)
    assert result.exit_code == 0, result.output
    assert summary["num_frames"] == NUM_FRAMES
    assert summary["mean"]["psnr"] > 25  # 4:2:0 chroma costs about 3 dB on this texture; misaligned frames score far lower


def test_eval_identical_inputs_report_inf(clip, tmp_path):
    result = runner.invoke(app, ["-q", "eval", "--pred", str(tmp_path / "gt"), "--gt", str(tmp_path / "gt"), "--json"])

    summary = json.loads(result.stdout)
    assert summary["mean"]["psnr"] == "inf"
    assert summary["mean"]["ssim"] == pytest.approx(1.0)


def test_eval_frame_count_mismatch_names_counts(clip, tmp_path):
    (tmp_path / "pred" / f"{NUM_FRAMES - 1:05d}.png").unlink()

    result = runner.invoke(app, ["eval", "--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt")])

    assert result.exit_code == 1
    assert f"the prediction has {NUM_FRAMES - 1}" in result.stderr
    assert f"the ground truth has {NUM_FRAMES}" in result.stderr


def test_eval_compare_writes_side_by_side(clip, tmp_path):
    compare = tmp_path / "compare.mp4"

    result = runner.invoke(
        app,
        ["-q", "eval", "--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt"),
         "--blurry", str(tmp_path / "blurry"), "--compare", str(compare)],
    )

    with av.open(str(compare)) as container:
        decoded = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    assert result.exit_code == 0, result.output
    assert len(decoded) == NUM_FRAMES
    assert decoded[0].shape == (HEIGHT, 3 * WIDTH, 3)
    # Below the label band, each panel is closest to its own source despite lossy 4:2:0 encoding.
    below_labels = slice(HEIGHT // 2, None)
    left_panel = decoded[2][below_labels, :WIDTH]
    right_panel = decoded[2][below_labels, 2 * WIDTH :]
    truth = clip["truth"][2][below_labels]
    blurry = clip["blurry"][2][below_labels]
    assert _mean_abs_difference(right_panel, truth) < _mean_abs_difference(right_panel, blurry)
    assert _mean_abs_difference(left_panel, blurry) < _mean_abs_difference(left_panel, truth)


def test_eval_keeps_existing_csv_without_overwrite(clip, tmp_path):
    scores = tmp_path / "scores.csv"
    scores.write_text("keep me")

    result = runner.invoke(
        app, ["eval", "--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt"), "--csv", str(scores)]
    )

    assert result.exit_code == 1
    assert "--overwrite" in result.stderr
    assert scores.read_text() == "keep me"


def test_eval_missing_input_is_error(tmp_path):
    result = runner.invoke(app, ["eval", "--pred", str(tmp_path / "nope"), "--gt", str(tmp_path)])

    assert result.exit_code == 1
    assert "does not exist" in result.stderr


@pytest.fixture
def sequences(tmp_path):
    """Two sequences of different lengths in REDS-style folders: gt/NAME/*.png and pred/NAME/*.png."""
    for name, seed, count in (("000", 0, 3), ("001", 5, 2)):
        truth = _frames(seed=seed, count=count)
        _write_folder(tmp_path / "gt" / name, truth)
        _write_folder(tmp_path / "pred" / name, _noisy(truth, 3 + seed, seed=seed))
    return tmp_path


def test_eval_sequence_folders(sequences):
    result = runner.invoke(
        app, ["-q", "eval", "--pred", str(sequences / "pred"), "--gt", str(sequences / "gt"), "--json"]
    )

    summary = json.loads(result.stdout)
    means = [entry["mean"]["psnr"] for entry in summary["sequences"]]
    assert result.exit_code == 0, result.output
    assert [entry["name"] for entry in summary["sequences"]] == ["000", "001"]
    assert [entry["num_frames"] for entry in summary["sequences"]] == [3, 2]
    assert summary["mean"]["psnr"] == pytest.approx(np.mean(means))


def test_eval_sequence_folders_table(sequences):
    result = runner.invoke(app, ["-q", "eval", "--pred", str(sequences / "pred"), "--gt", str(sequences / "gt")])

    assert result.exit_code == 0
    assert "per sequence" in result.stdout
    assert "001" in result.stdout


def test_eval_missing_sequence_is_named(sequences):
    import shutil

    shutil.rmtree(sequences / "pred" / "001")

    result = runner.invoke(app, ["eval", "--pred", str(sequences / "pred"), "--gt", str(sequences / "gt")])

    assert result.exit_code == 1
    assert "lacks sequences 001" in result.stderr


def test_eval_compare_needs_one_sequence(sequences):
    result = runner.invoke(
        app,
        ["eval", "--pred", str(sequences / "pred"), "--gt", str(sequences / "gt"),
         "--compare", str(sequences / "c.mp4")],
    )

    assert result.exit_code == 2
    assert not (sequences / "c.mp4").exists()


def test_metrics_import_no_skimage():
    code = "import sys, spikedeblur.evaluation, spikedeblur.cli.eval; assert 'skimage' not in sys.modules"

    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)

    assert completed.returncode == 0, completed.stderr


def _write_simulated_dataset(folder, truth, blurry) -> None:
    """Lay out a data set as ``spikedeblur simulate`` writes it: sharp/ frames, blurry.mp4 and a manifest."""
    _write_folder(folder / "sharp", truth)
    _write_video(folder / "blurry.mp4", blurry)
    manifest = {"format": "spikedeblur.simulated-dataset", "version": 1, "blurry": "blurry.mp4", "sharp": "sharp"}
    (folder / "manifest.json").write_text(json.dumps(manifest))


def test_eval_simulated_dataset_adds_baseline(clip, tmp_path):
    _write_simulated_dataset(tmp_path / "dataset", clip["truth"], clip["blurry"])

    result = runner.invoke(
        app, ["-q", "eval", "--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "dataset"), "--json"]
    )

    summary = json.loads(result.stdout)
    expected_baseline = np.mean([psnr(b, t) for b, t in zip(clip["blurry"], clip["truth"])])
    assert result.exit_code == 0, result.output
    assert summary["num_frames"] == NUM_FRAMES
    assert summary["baseline_mean"]["psnr"] == pytest.approx(expected_baseline, abs=1e-6)


def test_eval_folder_of_simulated_datasets(tmp_path):
    for name, seed in (("clip_a", 0), ("clip_b", 1)):
        truth = _frames(seed=seed, count=2)
        _write_simulated_dataset(tmp_path / "test" / name, truth, [cv2.GaussianBlur(f, (7, 7), 2.0) for f in truth])
        (tmp_path / "results").mkdir(exist_ok=True)
        _write_video(tmp_path / "results" / f"{name}.mkv", _noisy(truth, 3, seed=seed))

    result = runner.invoke(
        app, ["-q", "eval", "--pred", str(tmp_path / "results"), "--gt", str(tmp_path / "test"), "--json"]
    )

    summary = json.loads(result.stdout)
    assert result.exit_code == 0, result.output
    assert [entry["name"] for entry in summary["sequences"]] == ["clip_a", "clip_b"]
    assert summary["baseline_mean"] is not None
    assert summary["mean"]["psnr"] > summary["baseline_mean"]["psnr"]
