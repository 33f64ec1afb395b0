"""`spikedeblur demo`: the offline end-to-end run with the shipped compact model."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from spikedeblur.cli import app
from spikedeblur.cli.demo import packaged_weights_path
from spikedeblur.models.checkpoint import load_model

runner = CliRunner()


def test_shipped_model_loads():
    model, metadata = load_model(packaged_weights_path(), device="cpu")

    assert metadata.preset == "vrt-spike-tiny"
    assert model.num_bins == 32
    assert packaged_weights_path().stat().st_size < 8 * 1024 * 1024


@pytest.mark.slow
def test_demo_writes_videos_and_scores(tmp_path):
    output = tmp_path / "demo"

    result = runner.invoke(app, ["--quiet", "demo", "-o", str(output), "--frames", "3", "--device", "cpu"])

    assert result.exit_code == 0, result.output
    for name in ("blurry.mp4", "deblurred.mp4", "comparison.mp4", "scores.csv", "scores.json", "spikes.dat"):
        assert (output / name).is_file(), name
    scores = json.loads((output / "scores.json").read_text())
    assert scores["frames"] == 3
    assert "PSNR" in result.stdout
    assert scores["mean"]["blurry_psnr"] > 10
    assert scores["mean"]["psnr"] > scores["mean"]["blurry_psnr"] + 0.5
    assert scores["mean"]["psnr_y"] > scores["mean"]["blurry_psnr_y"] + 2.0


def test_demo_keeps_existing_output(tmp_path):
    output = tmp_path / "demo"
    output.mkdir()
    (output / "mine.txt").write_text("keep")

    result = runner.invoke(app, ["demo", "-o", str(output), "--frames", "2"])

    assert result.exit_code == 1
    assert "already exists" in result.stderr
    assert "simulating" not in result.stderr
    assert (output / "mine.txt").read_text() == "keep"


def test_demo_overwrite_keeps_foreign_folder(tmp_path):
    output = tmp_path / "papers"
    output.mkdir()
    (output / "draft.tex").write_text("keep")

    result = runner.invoke(app, ["demo", "-o", str(output), "--frames", "2", "--overwrite"])

    assert result.exit_code == 1
    assert "did not write" in " ".join(result.stderr.split())
    assert (output / "draft.tex").read_text() == "keep"


def test_demo_missing_weights_file_fails(tmp_path):
    result = runner.invoke(app, ["demo", "-o", str(tmp_path / "d"), "--weights", str(tmp_path / "none.safetensors")])

    assert result.exit_code == 1
    assert "none.safetensors" in result.stderr
    assert not (tmp_path / "d").exists()
