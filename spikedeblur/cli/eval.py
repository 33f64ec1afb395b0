"""``spikedeblur eval``: PSNR/SSIM of a deblurred result against ground truth, with the blurry input as baseline."""

from __future__ import annotations

import contextlib
import csv
import json
import math
from pathlib import Path
from typing import Annotated, Optional

import typer

from spikedeblur.cli._app import global_options, stderr_console, stdout_console

_PANEL_LABELS = {"blurry": "blurry", "prediction": "ours", "ground_truth": "ground truth"}
# Panels shorter than this get no label, because the text would cover most of the picture.
_MIN_LABELLED_HEIGHT = 48


def _format_psnr(value: float) -> str:
    return "inf" if math.isinf(value) else f"{value:.2f}"


def _format_row(scores) -> list[str]:
    return [_format_psnr(scores.psnr), f"{scores.ssim:.4f}", _format_psnr(scores.psnr_y), f"{scores.ssim_y:.4f}"]


def _print_summary(result) -> None:
    from rich.table import Table

    mean = result.mean
    baseline = result.baseline_mean
    title = f"{len(result.frames)} frames, {len(result.sequences)} sequence(s), crop border {result.crop_border}"

    table = Table(title=title, show_edge=False, pad_edge=False)
    for column in ("", "PSNR (dB)", "SSIM", "PSNR-Y (dB)", "SSIM-Y"):
        table.add_column(column, justify="right" if column else "left", no_wrap=True)
    table.add_row("prediction", *_format_row(mean))
    if baseline is not None:
        table.add_row("blurry input", *_format_row(baseline))
        gain = [
            _format_gain(mean.psnr - baseline.psnr, 2),
            _format_gain(mean.ssim - baseline.ssim, 4),
            _format_gain(mean.psnr_y - baseline.psnr_y, 2),
            _format_gain(mean.ssim_y - baseline.ssim_y, 4),
        ]
        table.add_row("gain", *gain)
    stdout_console.print(table)

    if len(result.sequences) > 1:
        per_sequence = Table(title="per sequence (prediction)", show_edge=False, pad_edge=False)
        for column in ("sequence", "frames", "PSNR (dB)", "SSIM", "PSNR-Y (dB)", "SSIM-Y"):
            per_sequence.add_column(column, justify="left" if column == "sequence" else "right", no_wrap=True)
        for sequence in result.sequences:
            per_sequence.add_row(sequence.name, str(len(sequence.frames)), *_format_row(sequence.mean))
        stdout_console.print(per_sequence)


def _format_gain(value: float, digits: int) -> str:
    if math.isnan(value) or math.isinf(value):
        return "-"
    return f"{value:+.{digits}f}"


def _write_csv(path: Path, result, *, overwrite: bool) -> None:
    from spikedeblur.evaluation import METRIC_NAMES
    from spikedeblur.fileio import atomic_output

    has_baseline = result.baseline_mean is not None
    header = ["sequence", "frame", *METRIC_NAMES]
    if has_baseline:
        header += [f"blurry_{name}" for name in METRIC_NAMES]

    with atomic_output(path, overwrite=overwrite) as temp_path, open(temp_path, "w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(header)
        for frame in result.frames:
            row = [frame.sequence, frame.index, *(_csv_value(v) for v in frame.prediction.as_dict().values())]
            if has_baseline:
                row += [_csv_value(v) for v in frame.baseline.as_dict().values()]
            writer.writerow(row)


def _csv_value(value: float) -> str:
    return "inf" if math.isinf(value) else f"{value:.6f}"


def _to_uint8(image):
    import numpy as np

    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        return np.round(image / 257.0).astype(np.uint8)
    return np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)


def _label(panel, text: str):
    import cv2

    if panel.shape[0] < _MIN_LABELLED_HEIGHT:
        return panel
    panel = panel.copy()
    scale = max(0.4, panel.shape[0] / 720)
    origin = (8, int(8 + 22 * scale))
    thickness = max(1, round(2 * scale))
    # A dark outline under white text keeps the label readable on bright and dark content alike.
    cv2.putText(panel, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thickness + 2, cv2.LINE_AA)
    cv2.putText(panel, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thickness, cv2.LINE_AA)
    return panel


def side_by_side(prediction, ground_truth, blurry=None):
    """Return one (H, n*W, 3) uint8 frame: blurry | ours | ground truth (blurry only when given), labelled."""
    import numpy as np

    panels = []
    if blurry is not None:
        panels.append(_label(_to_uint8(blurry), _PANEL_LABELS["blurry"]))
    panels.append(_label(_to_uint8(prediction), _PANEL_LABELS["prediction"]))
    panels.append(_label(_to_uint8(ground_truth), _PANEL_LABELS["ground_truth"]))
    return np.concatenate(panels, axis=1)


def _open_readers(stack: contextlib.ExitStack, sequence):
    from spikedeblur.video import VideoReader

    prediction = stack.enter_context(VideoReader(sequence.prediction))
    ground_truth = stack.enter_context(VideoReader(sequence.ground_truth))
    blurry = stack.enter_context(VideoReader(sequence.blurry)) if sequence.blurry is not None else None

    # Exact frame counts are known before decoding for most files, so a mismatch fails at once.
    infos = [("prediction", prediction.info), ("ground truth", ground_truth.info)]
    if blurry is not None:
        infos.append(("blurry input", blurry.info))
    if all(info.num_frames_exact for _, info in infos):
        counts = {role: info.num_frames for role, info in infos}
        if len(set(counts.values())) > 1:
            from spikedeblur.errors import InvalidInputError

            described = ", ".join(f"the {role} has {count}" for role, count in counts.items())
            raise InvalidInputError(f"frame counts differ for {sequence.name!r}: {described}; give matching inputs")
    return prediction, ground_truth, blurry


def _open_compare_writer(stack: contextlib.ExitStack, path: Path, sequence, prediction_info, *, overwrite: bool):
    import dataclasses

    from spikedeblur.video import EncodeOptions, open_video_writer

    panels = 3 if sequence.blurry is not None else 2
    # The side-by-side frames are 8-bit RGB of a new width, so only the timing of the prediction is kept.
    source = dataclasses.replace(
        prediction_info,
        width=prediction_info.width * panels,
        pix_fmt="yuv420p",
        bit_depth=8,
        rotation=0,
        audio_streams=(),
        subtitle_streams=(),
    )
    options = EncodeOptions(copy_audio=False, copy_subtitles=False)
    inputs = tuple(p for p in (sequence.prediction, sequence.ground_truth, sequence.blurry) if p is not None)
    return stack.enter_context(open_video_writer(path, source=source, options=options, overwrite=overwrite, inputs=inputs))


def eval_command(
    pred: Annotated[Path, typer.Option("--pred", help="Deblurred result: a video, a frame folder or a folder of sequences.")],
    gt: Annotated[
        Path,
        typer.Option(
            "--gt",
            help="Ground truth: a video, a frame folder, a data set written by simulate (its sharp/ frames) "
            "or a folder of sequences named like those of --pred.",
        ),
    ],
    blurry: Annotated[
        Optional[Path], typer.Option("--blurry", help="Blurry input, scored as the baseline and shown in --compare.")
    ] = None,
    csv_path: Annotated[Optional[Path], typer.Option("--csv", help="Write per-frame scores to this CSV file.")] = None,
    compare: Annotated[
        Optional[Path],
        typer.Option("--compare", help="Write a side-by-side video (blurry | ours | ground truth); one sequence only."),
    ] = None,
    crop_border: Annotated[
        int, typer.Option("--crop-border", min=0, help="Pixels removed from each side before scoring.")
    ] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON instead of a table.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace existing --csv and --compare files.")] = False,
) -> None:
    """Score a deblurred video against ground truth with PSNR and SSIM (RGB and BT.601 Y).

    Metrics follow VRT's protocol: 8-bit scale, SSIM with an 11x11 Gaussian window (sigma 1.5), RGB SSIM
    averaged over channels, and a mean over each sequence's frames before the mean over sequences.

    Examples:

        spikedeblur eval --pred sharp.mp4 --gt gt_frames/ --blurry blurry.mp4

        spikedeblur eval --pred results/ --gt dataset/test/gt/ --csv scores.csv --json
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from spikedeblur.evaluation import EvaluationResult, evaluate_sequence, pair_inputs
    from spikedeblur.fileio import check_output_path

    sequences = pair_inputs(pred, gt, blurry)
    all_inputs = tuple(p for s in sequences for p in (s.prediction, s.ground_truth, s.blurry) if p is not None)
    if compare is not None and len(sequences) > 1:
        raise typer.BadParameter(
            f"--compare writes one video, but the inputs contain {len(sequences)} sequences", param_hint="--compare"
        )
    for output in (csv_path, compare):
        if output is not None:
            check_output_path(output, overwrite=overwrite, inputs=all_inputs)

    results = []
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=stderr_console,
        transient=True,
        disable=not global_options.show_progress,
    ) as bar:
        for sequence in sequences:
            with contextlib.ExitStack() as stack:
                prediction, ground_truth, blurry_reader = _open_readers(stack, sequence)
                task = bar.add_task(f"scoring {sequence.name}", total=ground_truth.info.num_frames or None)
                writer = (
                    _open_compare_writer(stack, compare, sequence, prediction.info, overwrite=overwrite)
                    if compare is not None
                    else None
                )

                def on_frame(result, prediction_image, truth_image, blurry_image, writer=writer, task=task):
                    if writer is not None:
                        writer.write(side_by_side(prediction_image, truth_image, blurry_image))
                    bar.advance(task)

                results.append(
                    evaluate_sequence(
                        prediction,
                        ground_truth,
                        baselines=blurry_reader,
                        name=sequence.name,
                        crop_border=crop_border,
                        on_frame=on_frame,
                    )
                )

    result = EvaluationResult(sequences=tuple(results), crop_border=crop_border)
    if csv_path is not None:
        _write_csv(csv_path, result, overwrite=overwrite)

    if as_json:
        stdout_console.print_json(json.dumps(result.as_dict()))
    else:
        _print_summary(result)
    for label, output in (("per-frame scores", csv_path), ("comparison video", compare)):
        if output is not None:
            stderr_console.print(f"wrote {label} to {output}")


def register(app: typer.Typer) -> None:
    """Add the ``eval`` command to ``app``."""
    app.command("eval")(eval_command)
