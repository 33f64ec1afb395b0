"""``spikedeblur info``: describe a spike ``.dat`` file, a per-frame spike folder, or a video."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated, Any

import typer

from spikedeblur.cli._app import stdout_console
from spikedeblur.cli._spike_options import (
    ExposureOption,
    HeadColsOption,
    NoFlipOption,
    SpikeOffsetOption,
    SpikeRateOption,
    SpikeSizeOption,
    SpikesPerFrameOption,
    StrictOption,
    build_spike_options,
)
from spikedeblur.errors import InputNotFoundError

logger = logging.getLogger(__name__)


def _size_source(options, sidecar) -> str:
    if options.size is not None:
        return "option"
    if sidecar is not None and sidecar.size is not None:
        return "sidecar"
    return "guess"


def _proposals_json(proposals) -> list[dict[str, Any]]:
    return [
        {
            "height": proposal.height,
            "width": proposal.width,
            "head_cols": proposal.head_cols,
            "frames": proposal.num_frames,
            "score": round(proposal.score, 4),
        }
        for proposal in proposals
    ]


# A best proposal this well correlated is almost never wrong (the true size scores 0.98-0.999 on the
# sample recordings, wrong sizes below 0.5), so a given size that differs from it deserves a warning.
_CONFIDENT_SCORE = 0.8


def _warn_if_size_disagrees(meta, proposals, size_source: str) -> None:
    if size_source == "guess" or not proposals or proposals[0].score < _CONFIDENT_SCORE:
        return
    best = proposals[0]
    if (meta.height, meta.width, meta.head_cols) != (best.height, best.width, best.head_cols):
        logger.warning(
            "size %dx%d from the %s disagrees with the best-scoring size %dx%d (score %.3f); sizes are "
            "height x width, so check the order and the value",
            meta.height,
            meta.width,
            size_source,
            best.height,
            best.width,
            best.score,
        )


def describe_dat(path: Path, options) -> dict[str, Any]:
    """Collect the facts ``info`` reports for one ``.dat`` file."""
    from spikedeblur.spikes.dat import DatReader
    from spikedeblur.spikes.guess import confidence, propose_sizes
    from spikedeblur.spikes.sidecar import read_sidecar, sidecar_path
    from spikedeblur.spikes.source import resolve_meta
    from spikedeblur.spikes.stats import stream_stats

    sidecar = read_sidecar(path)
    meta = options.merge_over(sidecar)
    proposals = propose_sizes(path, flip=meta.flip)
    size_source = _size_source(options, sidecar)
    if meta.size is None:
        # The proposals are printed below, so take the best one directly instead of logging a guess.
        candidates = [p for p in proposals if options.head_cols is None or p.head_cols == options.head_cols]
        if candidates:
            meta = meta.replace(height=candidates[0].height, width=candidates[0].width, head_cols=candidates[0].head_cols)
        else:
            meta = resolve_meta(path, options)
    _warn_if_size_disagrees(meta, proposals, size_source)

    with DatReader(path, meta.height, meta.width, flip=meta.flip, head_cols=meta.head_cols, strict=options.strict) as reader:
        stats = stream_stats(reader)
        facts: dict[str, Any] = {
            "path": str(path),
            "kind": "spike-dat",
            "file_bytes": path.stat().st_size,
            "height": meta.height,
            "width": meta.width,
            "head_cols": meta.head_cols,
            "flip": meta.flip,
            "size_source": size_source,
            "sidecar": str(sidecar_path(path)) if sidecar is not None else None,
            "frames": reader.num_frames,
            "frame_bytes": reader.frame_bytes,
            "trailing_bytes": reader.trailing_bytes,
            "rate_hz": meta.rate_hz,
            "duration_s": reader.num_frames / meta.rate_hz,
        }
    facts.update(stats.to_json())
    facts["size_proposals"] = _proposals_json(proposals)
    facts["size_confidence"] = confidence(proposals)
    return facts


def describe_folder(path: Path, options) -> dict[str, Any]:
    """Collect the facts ``info`` reports for a folder of per-frame ``.dat`` files."""
    import numpy as np

    from spikedeblur.spikes.dat import DatReader
    from spikedeblur.spikes.layout import find_config, list_frame_files
    from spikedeblur.spikes.source import resolve_meta
    from spikedeblur.spikes.stats import firing_stats

    files = list_frame_files(path)
    meta = resolve_meta(path, options)
    config = find_config(files[0].parent)
    if options.size is not None:
        size_source = "option"
    elif config is not None:
        size_source = "config"
    else:
        size_source = "guess"
    ticks = []
    trailing_files = 0
    total = np.zeros((meta.height, meta.width), dtype=np.uint64)
    # Open one file at a time: a clip can have thousands of files, more than the open-file limit.
    for file in files:
        with DatReader(
            file, meta.height, meta.width, flip=meta.flip, head_cols=meta.head_cols, strict=options.strict
        ) as reader:
            total += reader.count_spikes(0, reader.num_frames)
            ticks.append(reader.num_frames)
            trailing_files += bool(reader.trailing_bytes)
    stats = firing_stats(total, sum(ticks))

    facts: dict[str, Any] = {
        "path": str(path),
        "kind": "spike-frame-files",
        "files": len(files),
        "first_file": files[0].name,
        "last_file": files[-1].name,
        "height": meta.height,
        "width": meta.width,
        "head_cols": meta.head_cols,
        "flip": meta.flip,
        "size_source": size_source,
        "config": str(config) if config is not None else None,
        "ticks_per_file": {"min": min(ticks), "max": max(ticks), "mean": sum(ticks) / len(ticks)},
        "trailing_bytes_files": trailing_files,
    }
    facts.update(stats.to_json())
    return facts


def _print_facts(facts: dict[str, Any]) -> None:
    out = stdout_console.print
    out(f"[bold]{facts['path']}[/]", markup=True)

    if facts["kind"] == "spike-frame-files":
        out(f"  layout           one .dat per video frame: {facts['files']} file{'s' if facts['files'] != 1 else ''} ({facts['first_file']} .. {facts['last_file']})")
        size_note = facts["size_source"] + (f" {facts['config']}" if facts["config"] else "")
        ticks = facts["ticks_per_file"]
        tick_text = f"{ticks['min']}..{ticks['max']} (mean {ticks['mean']:.1f})"
    else:
        size_note = facts["size_source"] + (f" {facts['sidecar']}" if facts["sidecar"] else "")

    head = f" + {facts['head_cols']} head columns" if facts["head_cols"] else ""
    out(f"  size             {facts['height']}x{facts['width']}{head} (height x width, from {size_note})")
    out(f"  row order        {'bottom-to-top (flipped on reading)' if facts['flip'] else 'top-to-bottom'}")

    if facts["kind"] == "spike-frame-files":
        out(f"  ticks per file   {tick_text}")
        if facts["trailing_bytes_files"]:
            out(f"  [yellow]partial frames   {facts['trailing_bytes_files']} files end with a partial frame[/]", markup=True)
    else:
        out(f"  frames (ticks)   {facts['frames']} of {facts['frame_bytes']} bytes")
        trailing = facts["trailing_bytes"]
        out(f"  trailing bytes   {trailing}" + (" (ignored: not a whole frame)" if trailing else ""))
        out(f"  duration         {facts['duration_s']:.4f} s at {facts['rate_hz']:g} Hz")

    percentiles = ", ".join(f"p{key} {value:.3f}" for key, value in facts["rate_percentiles"].items())
    out(f"  firing rate      mean {facts['mean_rate']:.4f} spikes/tick; per pixel {percentiles}")
    out(f"  dead pixels      {facts['dead_pixels']}")
    out(f"  hot pixels       {facts['hot_pixels']}")

    if facts["kind"] == "spike-dat":
        proposals = facts["size_proposals"]
        if not proposals:
            out("  proposed sizes   none of the common sensor sizes fits the file size")
        else:
            rows = []
            for proposal in proposals:
                head = f"+{proposal['head_cols']}" if proposal["head_cols"] else ""
                rows.append(f"{proposal['height']}x{proposal['width']}{head} (score {proposal['score']:.3f})")
            margin = facts["size_confidence"]
            margin_text = f"; confidence margin {margin:.3f}" if margin is not None else ""
            out(f"  proposed sizes   {', '.join(rows)}{margin_text}")


def info(
    path: Annotated[Path, typer.Argument(help="A spike .dat file, a folder of per-frame .dat files, or a video.")],
    json_output: Annotated[bool, typer.Option("--json", help="Print the facts as JSON on stdout.")] = False,
    spike_size: SpikeSizeOption = None,
    spike_rate: SpikeRateOption = None,
    spike_offset: SpikeOffsetOption = None,
    spikes_per_frame: SpikesPerFrameOption = None,
    exposure: ExposureOption = None,
    no_flip: NoFlipOption = False,
    head_cols: HeadColsOption = None,
    strict: StrictOption = False,
    write_sidecar: Annotated[
        bool,
        typer.Option(
            "--write-sidecar",
            help="Save the size and clock in use (from options, an existing sidecar or the best guess) to "
            "NAME.dat.json beside a .dat file, so later commands need no spike options.",
        ),
    ] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="With --write-sidecar, replace an existing sidecar.")] = False,
) -> None:
    """Describe a spike stream (frames, duration, firing rates, dead and hot pixels, likely sizes) or a video."""
    options = build_spike_options(
        spike_size=spike_size,
        spike_rate=spike_rate,
        spike_offset=spike_offset,
        spikes_per_frame=spikes_per_frame,
        exposure=exposure,
        no_flip=no_flip,
        head_cols=head_cols,
        strict=strict,
    )

    if not path.exists():
        raise InputNotFoundError(f"input {path} not found; check the path")
    if write_sidecar and (path.is_dir() or path.suffix.lower() != ".dat"):
        raise typer.BadParameter("--write-sidecar needs a .dat file", param_hint="'--write-sidecar'")
    if path.is_dir():
        from spikedeblur.spikes.layout import is_frame_file_folder

        if not is_frame_file_folder(path):
            # A folder of images is a video in our terms (an image sequence).
            _show_video_info(path, json_output=json_output)
            return
        facts = describe_folder(path, options)
    elif path.suffix.lower() == ".dat":
        facts = describe_dat(path, options)
        if write_sidecar:
            _write_sidecar(path, options, facts, overwrite=overwrite)
    else:
        _show_video_info(path, json_output=json_output)
        return

    if json_output:
        stdout_console.print(json.dumps(facts, indent=2), markup=False, highlight=False)
    else:
        _print_facts(facts)


def _write_sidecar(path: Path, options, facts: dict[str, Any], *, overwrite: bool) -> None:
    from spikedeblur.spikes.sidecar import read_sidecar, write_sidecar

    meta = options.merge_over(read_sidecar(path)).replace(
        height=facts["height"], width=facts["width"], head_cols=facts["head_cols"]
    )
    written = write_sidecar(path, meta, overwrite=overwrite)
    logger.info("wrote %s (%dx%d, %g Hz)", written, meta.height, meta.width, meta.rate_hz)


def _show_video_info(path: Path, *, json_output: bool) -> None:
    from spikedeblur.cli._info_video import show_video_info

    show_video_info(path, json_output=json_output)


def register(app: typer.Typer) -> None:
    """Add the ``info`` command to ``app``."""
    app.command("info")(info)
