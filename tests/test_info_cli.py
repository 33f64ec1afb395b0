"""``spikedeblur info`` dispatch: spike files, spike folders, image folders and empty folders."""

from __future__ import annotations

import cv2
import numpy as np
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
