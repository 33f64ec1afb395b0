"""Command-line interface: ``spikedeblur COMMAND ...``.

Each command group lives in its own module and is registered here explicitly, so importing the CLI
never depends on side effects of scanning the package.
"""

from __future__ import annotations

from spikedeblur.cli._app import app, run_app

# Command modules in the order `spikedeblur --help` lists them: the main job first.
from spikedeblur.cli import run as _run
from spikedeblur.cli import demo as _demo
from spikedeblur.cli import info as _info
from spikedeblur.cli import voxelize as _voxelize
from spikedeblur.cli import transcode as _transcode
from spikedeblur.cli import simulate as _simulate
from spikedeblur.cli import eval as _eval
from spikedeblur.cli import train as _train
from spikedeblur.cli import models as _models
from spikedeblur.cli import download_weights as _download_weights

for _module in (
    _run,
    _demo,
    _info,
    _voxelize,
    _transcode,
    _simulate,
    _eval,
    _train,
    _models,
    _download_weights,
):
    _module.register(app)


def main() -> None:
    """Entry point of the ``spikedeblur`` console script."""
    run_app()


__all__ = ["app", "main"]
