"""``spikedeblur info`` dispatch: spike files, spike folders, image folders and empty folders."""

from __future__ import annotations

import cv2
import numpy as np
from conftest import shared_file
from typer.testing import CliRunner

from spikedeblur.cli import app

runner = CliRunner()


def test_info_image_folder_described_as_video(tmp_path):
    for index in range(3):
        cv2.imwrite(str(tmp_path / f"frame{index}.png"), np.full((64, 80, 3), 40 * index, np.uint8))

    result = runner.invoke(app, ["info", str(tmp_path)])

    assert result.exit_code == 0, result.stderr
    assert "image folder" in result.stdout
    assert "3 (counted)" in result.stdout


def test_info_empty_folder_is_one_line_error(tmp_path):
    result = runner.invoke(app, ["info", str(tmp_path)])

    assert result.exit_code == 1
    assert str(tmp_path) in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_info_dataset_folder_names_the_stream(tmp_path):
    from spikedeblur.spikes import SpikeMeta, write_dat

    frames = np.zeros((4, 8, 16), dtype=np.uint8)
    write_dat(tmp_path / "spikes.dat", frames, meta=SpikeMeta(height=8, width=16))

    result = runner.invoke(app, ["info", str(tmp_path)])

    assert result.exit_code == 1
    assert "spikes.dat" in result.stderr
    assert "instead of the folder" in result.stderr


def test_info_write_sidecar_saves_size(tmp_path):
    from spikedeblur.spikes import read_sidecar, write_dat

    dat = tmp_path / "cam.dat"
    write_dat(dat, np.zeros((3, 8, 16), dtype=np.uint8))

    first = runner.invoke(app, ["info", str(dat), "--spike-size", "8x16", "--spike-rate", "40000", "--write-sidecar"])
    again = runner.invoke(app, ["info", str(dat), "--write-sidecar"])

    assert first.exit_code == 0, first.stderr
    meta = read_sidecar(dat)
    assert (meta.height, meta.width, meta.rate_hz) == (8, 16, 40000)
    assert again.exit_code == 1
    assert "--overwrite" in again.stderr


def test_info_write_sidecar_rejects_video(tmp_path):
    image = tmp_path / "frame.png"
    cv2.imwrite(str(image), np.zeros((8, 8, 3), np.uint8))

    result = runner.invoke(app, ["info", str(image), "--write-sidecar"])

    assert result.exit_code == 2
    assert "--write-sidecar" in result.stderr


def test_info_warns_on_swapped_spike_size():

    dat = shared_file("reds-spike/200_part1_key_id151.dat")

    swapped = runner.invoke(app, ["info", str(dat), "--spike-size", "400x250"])
    correct = runner.invoke(app, ["info", str(dat), "--spike-size", "250x400"])

    assert swapped.exit_code == 0
    assert "disagrees with the best-scoring size" in swapped.stderr
    assert "250x400" in swapped.stderr
    assert "disagrees" not in correct.stderr
