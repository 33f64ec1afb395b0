"""The CLI's global conventions: version, help, exit codes, one-line errors and --debug."""

from __future__ import annotations

import subprocess
import sys

import typer
from typer.testing import CliRunner

from spikedeblur import __version__
from spikedeblur.cli import app
from spikedeblur.errors import InvalidInputError

runner = CliRunner()


def test_version_prints_package_version():
    result = runner.invoke(app, ["--version"])

    assert result.exit_code == 0
    assert result.stdout.strip() == f"spikedeblur {__version__}"


def test_unknown_command_is_usage_error():
    result = runner.invoke(app, ["no-such-command"])

    assert result.exit_code == 2


def test_module_entry_point_runs():
    completed = subprocess.run(
        [sys.executable, "-m", "spikedeblur", "--version"], capture_output=True, text=True, check=False
    )

    assert completed.returncode == 0
    assert __version__ in completed.stdout


def _add_failing_command(name: str, error: Exception) -> None:
    def failing() -> None:
        raise error

    app.command(name, hidden=True)(failing)


def test_known_error_is_one_line_exit_1():
    _add_failing_command("_fail-known", InvalidInputError("bad value 7; use 8"))

    result = runner.invoke(app, ["_fail-known"])

    assert result.exit_code == 1
    assert "bad value 7; use 8" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_unexpected_error_is_one_line_exit_1():
    _add_failing_command("_fail-bug", RuntimeError("boom"))

    result = runner.invoke(app, ["_fail-bug"])

    assert result.exit_code == 1
    assert "boom" in result.stderr
    assert "--debug" in result.stderr
    assert "Traceback" not in result.stderr


def test_debug_reraises_error():
    _add_failing_command("_fail-debug", InvalidInputError("bad"))

    result = runner.invoke(app, ["--debug", "_fail-debug"])

    assert result.exit_code == 1
    assert isinstance(result.exception, InvalidInputError)


def test_missing_file_oserror_is_one_line():
    def opens_missing() -> None:
        open("/nonexistent/spikedeblur-test-file")  # noqa: SIM115

    app.command("_fail-os", hidden=True)(opens_missing)

    result = runner.invoke(app, ["_fail-os"])

    assert result.exit_code == 1
    assert "/nonexistent/spikedeblur-test-file" in result.stderr
    assert "Traceback" not in result.stderr


def test_typer_exit_passes_through():
    def exits() -> None:
        raise typer.Exit(3)

    app.command("_exit-3", hidden=True)(exits)

    assert runner.invoke(app, ["_exit-3"]).exit_code == 3


def test_usage_error_is_one_line_exit_2():
    result = runner.invoke(app, ["--no-such-option"])

    assert result.exit_code == 2
    assert "--no-such-option" in result.stderr
    assert "--help" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_global_option_after_command_hint():
    result = runner.invoke(app, ["info", "clip.mp4", "--debug"])

    assert result.exit_code == 2
    assert "--debug goes before the command" in result.stderr
    assert "spikedeblur --debug info" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_help_shows_argument_help():
    result = runner.invoke(app, ["run", "--help"], env={"COLUMNS": "120"})

    assert result.exit_code == 0
    assert "Blurry video file" in result.stdout
