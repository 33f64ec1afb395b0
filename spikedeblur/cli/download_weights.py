"""``spikedeblur download-weights``: fetch registry weights into the cache, or list their state."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from spikedeblur.cli._app import global_options, stderr_console, stdout_console

_LICENCE_NOTES = {
    "CC-BY-NC-4.0": "non-commercial use only, with attribution; https://creativecommons.org/licenses/by-nc/4.0/",
}

_STATE_STYLES = {
    "packaged": "green",
    "verified": "green",
    "unverified": "yellow",
    "corrupt": "bold red",
    "partial": "yellow",
    "missing": "dim",
}


def _format_size(size: int | None, *, exact: bool = True) -> str:
    if size is None:
        return "-"
    text = f"{size / 1e6:.1f} MB"
    return text if exact else f"~{text}"


def _licence_line(record) -> str:
    note = _LICENCE_NOTES.get(record.licence)
    source = f" (source: {record.source_url})" if record.source_url else ""
    return f"{record.name}: licence {record.licence}" + (f", {note}" if note else "") + source


def _print_list(records, *, cache_dir: Path | None, as_json: bool) -> None:
    from rich.table import Table

    from spikedeblur.weights import DEFAULT, weights_status

    statuses = [weights_status(record, cache_dir=cache_dir) for record in records]

    if as_json:
        entries = [
            {
                "name": status.record.name,
                "default": status.record.name == DEFAULT,
                "state": status.state,
                "path": str(status.path),
                "size": status.size if status.size is not None else status.record.size,
                "size_exact": status.size is not None or status.record.size_exact,
                "sha256": status.sha256 or status.record.sha256,
                "licence": status.record.licence,
                "preset": status.record.preset,
                "format": status.record.format,
                "description": status.record.description,
                "urls": list(status.record.urls),
            }
            for status in statuses
        ]
        stdout_console.print_json(json.dumps(entries))
        return

    table = Table(show_edge=False, pad_edge=False, caption="* default for 'spikedeblur run'")
    for column in ("name", "state", "size", "licence"):
        table.add_column(column, no_wrap=True)
    table.add_column("description", min_width=20)
    for status in statuses:
        record = status.record
        name = f"{record.name} *" if record.name == DEFAULT else record.name
        size = (
            _format_size(status.size)
            if status.state not in ("missing", "partial")
            else _format_size(record.size, exact=record.size_exact)
        )
        style = _STATE_STYLES[status.state]
        table.add_row(name, f"[{style}]{status.state}[/]", size, record.licence, record.description)
    stdout_console.print(table)


def _download_with_progress(record, *, cache_dir: Path | None, offline: bool | None, force: bool) -> Path:
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    from spikedeblur.weights import ensure_cached

    if not global_options.show_progress:
        return ensure_cached(record, cache_dir=cache_dir, offline=offline, force=force)

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=stderr_console, transient=True) as bar:
        task = bar.add_task(record.name, total=None)

        def update(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        return ensure_cached(record, cache_dir=cache_dir, offline=offline, force=force, progress=update)


def download_weights(
    names: Annotated[
        Optional[list[str]], typer.Argument(help="Registry names to download (see --list).", show_default=False)
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Download every registry entry.")] = False,
    list_: Annotated[
        bool, typer.Option("--list", help="List the registry with cached/verified state, size and licence.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="With --list, print JSON instead of a table.")] = False,
    cache_dir: Annotated[
        Optional[Path],
        typer.Option(
            "--cache-dir",
            help="Folder for downloaded weights [default: $SPIKEDEBLUR_HOME/weights, else the user cache folder].",
            file_okay=False,
        ),
    ] = None,
    offline: Annotated[
        Optional[bool],
        typer.Option(
            "--offline/--online",
            help="Never use the network; only check the cache [default: $SPIKEDEBLUR_OFFLINE, else online].",
            show_default=False,
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Download again even if cached, and re-record unpublished hashes.")
    ] = False,
) -> None:
    """Download pretrained weights into the cache and verify them, or list the registry.

    Each file is downloaded with resume support, checked (size, SHA-256, checkpoint structure) and moved
    into the cache only when valid. The path of each file is printed on stdout.

    Examples:

        spikedeblur download-weights --list

        spikedeblur download-weights vrt-deblur-gopro

        SPIKEDEBLUR_MIRROR=https://example.org/weights spikedeblur download-weights --all
    """
    from spikedeblur.weights import get_record, list_records

    if as_json and not list_:
        raise typer.BadParameter("--json only applies to --list", param_hint="--json")

    if list_:
        if names or all_:
            raise typer.BadParameter("--list takes no names and no --all", param_hint="--list")
        _print_list(list_records(), cache_dir=cache_dir, as_json=as_json)
        return

    if all_ and names:
        raise typer.BadParameter("give names or --all, not both", param_hint="--all")
    if not all_ and not names:
        raise typer.BadParameter("give at least one name, --all or --list", param_hint="NAMES")

    records = list_records() if all_ else [get_record(name) for name in dict.fromkeys(names)]
    for record in records:
        if record.is_packaged:
            from spikedeblur.weights import ensure_cached

            path = ensure_cached(record)
            stderr_console.print(f"{record.name}: packaged with spikedeblur, nothing to download")
        else:
            stderr_console.print(_licence_line(record))
            path = _download_with_progress(record, cache_dir=cache_dir, offline=offline, force=force)
        stdout_console.print(str(path))


def register(app: typer.Typer) -> None:
    """Add the ``download-weights`` command to ``app``."""
    app.command("download-weights")(download_weights)
