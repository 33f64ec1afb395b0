"""Command-line interface: ``spikedeblur COMMAND ...``.

Each command group lives in its own module and is registered here explicitly, so importing the CLI
never depends on side effects of scanning the package.
"""

from __future__ import annotations

from spikedeblur.cli._app import app, run_app

# --- command registration: one line per command module, in help order ---
# (helpers: add yours below; keep each import inside this block)
from spikedeblur.cli import download_weights as _download_weights
_download_weights.register(app)
from spikedeblur.cli import eval as _eval
_eval.register(app)
from spikedeblur.cli import models as _models
_models.register(app)
from spikedeblur.cli import info as _info
_info.register(app)
from spikedeblur.cli import voxelize as _voxelize
_voxelize.register(app)
from spikedeblur.cli import transcode as _transcode
_transcode.register(app)
from spikedeblur.cli import simulate as _simulate
_simulate.register(app)
from spikedeblur.cli import train as _train
_train.register(app)
from spikedeblur.cli import demo as _demo
_demo.register(app)
from spikedeblur.cli import run as _run
_run.register(app)
# --- end of command registration ---


def main() -> None:
    """Entry point of the ``spikedeblur`` console script."""
    run_app()


__all__ = ["app", "main"]
