"""Pairing of prediction, ground-truth and blurry inputs for ``spikedeblur eval``.

An input is one sequence (a video file, an image folder, or a single image) or a collection of sequences.
A collection is a folder with no images directly inside. Its sub-folders and video files are the sequences,
as in the test split of REDS or GoPro (``GT/000/00000000.png``). Collections are matched by sequence name (the sub-folder
name or the video's file name without its extension).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from spikedeblur.errors import InputNotFoundError, InvalidInputError

logger = logging.getLogger(__name__)

VIDEO_SUFFIXES = frozenset({".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v", ".y4m"})
_IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"})


@dataclass(frozen=True)
class SequenceInputs:
    """Paths of one sequence to score: prediction, ground truth and optionally the blurry input."""

    name: str
    prediction: Path
    ground_truth: Path
    blurry: Path | None = None


def _has_images(folder: Path) -> bool:
    return any(entry.is_file() and entry.suffix.lower() in _IMAGE_SUFFIXES for entry in folder.iterdir())


def list_collection(folder: Path) -> dict[str, Path] | None:
    """Return the sequences of a collection folder by name, or None when ``folder`` is a single sequence."""
    if not folder.is_dir() or _has_images(folder):
        return None

    entries: dict[str, Path] = {}
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir() or (entry.is_file() and entry.suffix.lower() in VIDEO_SUFFIXES):
            name = entry.name if entry.is_dir() else entry.stem
            if name in entries:
                raise InvalidInputError(f"{folder} has two sequences named {name!r} ({entries[name].name}, {entry.name})")
            entries[name] = entry
    if not entries:
        raise InvalidInputError(
            f"folder {folder} contains no images, no sequence folders and no videos; give a video or a frame folder"
        )
    return entries


def _check_exists(path: Path, role: str) -> Path:
    path = Path(path).expanduser()
    if not path.exists():
        raise InputNotFoundError(f"{role} {path} does not exist; check the path")
    return path


def _match(role: str, folder: Path, wanted: dict[str, Path], found: dict[str, Path] | None) -> dict[str, Path]:
    if found is None:
        raise InvalidInputError(
            f"the ground truth is a folder of sequences but the {role} {folder} is a single sequence; "
            "give a folder with the same sequence names"
        )
    missing = [name for name in wanted if name not in found]
    if missing:
        raise InvalidInputError(f"the {role} folder {folder} lacks sequences {', '.join(missing)} of the ground truth")
    extra = [name for name in found if name not in wanted]
    if extra:
        logger.warning("ignoring %s sequences without ground truth: %s", role, ", ".join(extra))
    return found


def pair_inputs(prediction: Path, ground_truth: Path, blurry: Path | None = None) -> list[SequenceInputs]:
    """Return the sequences to score, matching collections by name.

    Raises:
        InputNotFoundError: a path does not exist.
        InvalidInputError: one side is a collection and the other is not, or sequences are missing.
    """
    prediction = _check_exists(prediction, "prediction")
    ground_truth = _check_exists(ground_truth, "ground truth")
    blurry = _check_exists(blurry, "blurry input") if blurry is not None else None

    truth_sequences = list_collection(ground_truth)
    if truth_sequences is None:
        for role, path in (("prediction", prediction), ("blurry input", blurry)):
            if path is not None and list_collection(path) is not None:
                raise InvalidInputError(
                    f"the {role} {path} is a folder of sequences but the ground truth {ground_truth} is a single "
                    "sequence; give matching inputs"
                )
        return [SequenceInputs(ground_truth.stem if ground_truth.is_file() else ground_truth.name, prediction, ground_truth, blurry)]

    prediction_sequences = _match("prediction", prediction, truth_sequences, list_collection(prediction))
    blurry_sequences = (
        _match("blurry input", blurry, truth_sequences, list_collection(blurry)) if blurry is not None else None
    )
    return [
        SequenceInputs(
            name=name,
            prediction=prediction_sequences[name],
            ground_truth=truth_path,
            blurry=blurry_sequences[name] if blurry_sequences is not None else None,
        )
        for name, truth_path in truth_sequences.items()
    ]
