"""``spikedeblur models``: list the model presets with parameter counts and memory estimates."""

from __future__ import annotations

import json
import re
from contextlib import nullcontext
from typing import Annotated, Optional

import typer

from spikedeblur.cli._app import global_options, stderr_console, stdout_console

_CLIP_PATTERN = re.compile(r"^\s*(\d+)\s*[xX×]\s*(\d+)\s*[xX×]\s*(\d+)\s*$")
_MEMORY_METHOD = "forward pass on the meta device; tensor storages only, attention as a fused kernel, no allocator overhead"


def _parse_clip(text: str) -> tuple[int, int, int]:
    match = _CLIP_PATTERN.match(text)
    if not match:
        raise typer.BadParameter(f"{text!r} is not FRAMESxHEIGHTxWIDTH; use for example 6x192x192")
    frames, height, width = (int(part) for part in match.groups())
    if frames < 2 or height < 1 or width < 1:
        raise typer.BadParameter(f"{text!r} is invalid; use at least 2 frames and a positive height and width")
    return frames, height, width


def _format_bytes(size: int) -> str:
    if size >= 2**30:
        return f"{size / 2**30:.2f} GiB"
    return f"{size / 2**20:.0f} MiB"


def _format_parameters(count: int) -> str:
    if count >= 1_000_000:
        return f"{count / 1e6:.2f} M"
    return f"{count / 1e3:.0f} k"


def models(
    names: Annotated[
        Optional[list[str]],
        typer.Argument(metavar="[PRESET]...", help="Presets to show (default: all)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    clip: Annotated[
        str,
        typer.Option(
            "--clip",
            metavar="TxHxW",
            help="Clip size (frames x height x width) that memory is estimated for, batch 1, float32.",
        ),
    ] = "6x192x192",
    memory: Annotated[
        bool, typer.Option("--memory/--no-memory", help="Estimate forward-pass memory (a few seconds per large preset).")
    ] = True,
) -> None:
    """List the model presets with parameter counts and the memory one forward pass needs.

    Memory is estimated by running the forward pass on PyTorch's meta device, which allocates
    nothing, and adding up the tensors that are alive at its peak. Real runs need somewhat more.

    Examples:

        spikedeblur models

        spikedeblur models vrt-spike vrt-deblur --clip 8x256x256 --json
    """
    frames, height, width = _parse_clip(clip)

    from spikedeblur.errors import InvalidInputError
    from spikedeblur.models.registry import estimate_memory, list_presets, preset_names

    unknown = [name for name in names or () if name not in preset_names()]
    if unknown:
        raise typer.BadParameter(
            f"unknown preset {', '.join(unknown)}; choose from {', '.join(preset_names())}", param_hint="PRESET"
        )

    rows = []
    spinner = stderr_console.status("estimating model sizes", spinner="dots")
    with spinner if global_options.show_progress else nullcontext():
        for info in list_presets(names):
            row = {
                "name": info.name,
                "kind": info.kind,
                "parameters": info.parameters,
                "num_bins": info.num_bins,
                "description": info.description,
                "memory": None,
            }
            if memory:
                try:
                    estimate = estimate_memory(info.name, frames=frames, height=height, width=width)
                except InvalidInputError as error:
                    raise typer.BadParameter(f"clip {clip} does not fit preset {info.name}: {error}") from None
                row["memory"] = {
                    "clip": [frames, height, width],
                    "dtype": "float32",
                    "parameter_bytes": estimate.parameter_bytes,
                    "input_bytes": estimate.input_bytes,
                    "peak_activation_bytes": estimate.peak_activation_bytes,
                    "total_bytes": estimate.total_bytes,
                    "method": _MEMORY_METHOD,
                }
            rows.append(row)

    if as_json:
        stdout_console.print_json(json.dumps(rows))
        return
    _print_table(rows, clip=(frames, height, width))


def _print_table(rows: list[dict], *, clip: tuple[int, int, int]) -> None:
    from rich.table import Table

    memory_column = f"memory {clip[0]}×{clip[1]}×{clip[2]}"
    table = Table(show_edge=False, pad_edge=False, caption="memory: estimated float32 inference peak, batch 1")
    table.add_column("name", no_wrap=True)
    table.add_column("parameters", justify="right", no_wrap=True)
    table.add_column("K", justify="right", no_wrap=True)
    table.add_column(memory_column, justify="right", no_wrap=True)
    table.add_column("description", min_width=20)
    for row in rows:
        table.add_row(
            row["name"],
            _format_parameters(row["parameters"]),
            "-" if row["num_bins"] is None else str(row["num_bins"]),
            "-" if row["memory"] is None else _format_bytes(row["memory"]["total_bytes"]),
            row["description"],
        )
    stdout_console.print(table)


def register(app: typer.Typer) -> None:
    """Add the ``models`` command to ``app``."""
    app.command("models")(models)
