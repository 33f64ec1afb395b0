"""Spike stream options shared by every command that reads spikes (``info``, ``voxelize``, ``run``).

Use the ``Annotated`` aliases as parameter types and pass the values to :func:`build_spike_options`::

    def command(..., spike_size: SpikeSizeOption = None, spike_rate: SpikeRateOption = None, ...):
        options = build_spike_options(spike_size=spike_size, spike_rate=spike_rate, ...)
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from spikedeblur.errors import InvalidInputError

_PANEL = "Spike stream"

SpikeSizeOption = Annotated[
    Optional[str],
    typer.Option(
        "--spike-size",
        metavar="HxW",
        help="Spike image size as HEIGHTxWIDTH, e.g. 250x400 (default: from NAME.dat.json, else guessed).",
        rich_help_panel=_PANEL,
    ),
]
SpikeRateOption = Annotated[
    Optional[float],
    typer.Option(
        "--spike-rate", metavar="HZ", help="Spike ticks per second (default 20000).", rich_help_panel=_PANEL
    ),
]
SpikeOffsetOption = Annotated[
    Optional[float],
    typer.Option(
        "--spike-offset",
        metavar="SECONDS",
        help="Time of the video's first frame on the spike clock, in seconds after the first tick (>= 0).",
        rich_help_panel=_PANEL,
    ),
]
SpikesPerFrameOption = Annotated[
    Optional[int],
    typer.Option(
        "--spikes-per-frame",
        metavar="N",
        help="Fixed number of spike ticks per video frame, as in synthetic data sets; ignores the clock.",
        rich_help_panel=_PANEL,
    ),
]
ExposureOption = Annotated[
    Optional[str],
    typer.Option(
        "--exposure",
        metavar="TIME",
        help="Exposure centred on each frame interval: seconds (0.01, 10ms) or a share of the interval (50%). "
        "Default: the whole interval.",
        rich_help_panel=_PANEL,
    ),
]
NoFlipOption = Annotated[
    bool,
    typer.Option(
        "--no-flip",
        help="The file stores rows top-to-bottom (most cameras store them bottom-to-top).",
        rich_help_panel=_PANEL,
    ),
]
HeadColsOption = Annotated[
    Optional[int],
    typer.Option(
        "--head-cols",
        metavar="N",
        help="Extra columns at the end of each stored row to drop, e.g. 16 for 250x416 files.",
        rich_help_panel=_PANEL,
    ),
]
StrictOption = Annotated[
    bool,
    typer.Option(
        "--strict",
        help="Fail on a trailing partial frame instead of ignoring it with a warning.",
        rich_help_panel=_PANEL,
    ),
]


def build_spike_options(
    *,
    spike_size: str | None = None,
    spike_rate: float | None = None,
    spike_offset: float | None = None,
    spikes_per_frame: int | None = None,
    exposure: str | None = None,
    no_flip: bool = False,
    head_cols: int | None = None,
    strict: bool = False,
):
    """Return a :class:`~spikedeblur.spikes.options.SpikeOptions`, raising ``typer.BadParameter`` on a bad value."""
    from spikedeblur.spikes.options import SpikeOptions, parse_exposure, parse_size

    def checked(option: str, build):
        try:
            return build()
        except InvalidInputError as error:
            raise typer.BadParameter(str(error), param_hint=f"'{option}'") from error

    size = checked("--spike-size", lambda: parse_size(spike_size, description="spike size")) if spike_size else None
    exposure_s, exposure_fraction = checked("--exposure", lambda: parse_exposure(exposure)) if exposure else (None, None)

    if exposure is not None and spikes_per_frame is not None:
        raise typer.BadParameter(
            "--exposure sets a window on the clock and --spikes-per-frame a fixed tick count; give only one",
            param_hint="'--exposure'",
        )

    # Check each value alone first, so the error names the option that caused it.
    checked("--spike-rate", lambda: SpikeOptions(rate_hz=spike_rate))
    checked("--spike-offset", lambda: SpikeOptions(offset_s=spike_offset))
    checked("--spikes-per-frame", lambda: SpikeOptions(spikes_per_frame=spikes_per_frame))
    checked("--exposure", lambda: SpikeOptions(exposure_s=exposure_s, exposure_fraction=exposure_fraction))
    checked("--head-cols", lambda: SpikeOptions(head_cols=head_cols))

    return SpikeOptions(
        size=size,
        rate_hz=spike_rate,
        offset_s=spike_offset,
        spikes_per_frame=spikes_per_frame,
        exposure_s=exposure_s,
        exposure_fraction=exposure_fraction,
        flip=False if no_flip else None,
        head_cols=head_cols,
        strict=strict,
    )
