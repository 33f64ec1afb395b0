"""``spikedeblur models``: preset listing through the CLI."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from spikedeblur.cli import app
from spikedeblur.models.registry import count_parameters


@pytest.fixture
def runner():
    return CliRunner()


def test_models_json_without_memory(runner):
    result = runner.invoke(app, ["models", "--json", "--no-memory"])

    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["vrt-spike"]["parameters"] == count_parameters("vrt-spike")
    assert rows["vrt-spike"]["num_bins"] == 32
    assert rows["vrt-spike-tiny"]["kind"] == "vrt-spike"
    assert rows["vrt-deblur"]["kind"] == "vrt"
    assert rows["vrt-deblur"]["memory"] is None


def test_models_memory_for_clip(runner):
    result = runner.invoke(app, ["models", "vrt-spike-tiny", "vrt-tiny", "--json", "--clip", "2x64x64"])

    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert sorted(rows) == ["vrt-spike-tiny", "vrt-tiny"]
    fused = rows["vrt-spike-tiny"]["memory"]
    plain = rows["vrt-tiny"]["memory"]
    assert fused["clip"] == [2, 64, 64]
    assert fused["total_bytes"] > plain["total_bytes"] > 0
    assert fused["total_bytes"] == fused["parameter_bytes"] + fused["input_bytes"] + fused["peak_activation_bytes"]


def test_models_table(runner):
    result = runner.invoke(app, ["models", "--no-memory"])

    assert result.exit_code == 0, result.output
    assert "vrt-spike-tiny" in result.stdout
    assert "memory 6×192×192" in result.stdout


@pytest.mark.parametrize("clip", ["6x10", "axbxc", "1x64x64", "0x0x0"])
def test_models_rejects_bad_clip(runner, clip):
    result = runner.invoke(app, ["models", "--clip", clip])

    assert result.exit_code == 2
    assert "--clip" in result.output or "Invalid value" in result.output


def test_models_rejects_clip_model_cannot_run(runner):
    result = runner.invoke(app, ["models", "vrt-spike-tiny", "--clip", "2x60x60"])

    assert result.exit_code == 2
    assert "multiple of 8" in result.output


def test_models_rejects_unknown_preset(runner):
    result = runner.invoke(app, ["models", "vrt-huge", "--no-memory"])

    assert result.exit_code == 2
    assert "vrt-huge" in result.output
