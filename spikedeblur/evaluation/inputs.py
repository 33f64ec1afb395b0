"""Pairing of prediction, ground-truth and blurry inputs for ``spikedeblur eval``.

An input is one sequence (a video file, an image folder, or a single image) or a collection of sequences.
A collection is a folder with no images directly inside. Its sub-folders and video files are the sequences,
as in the test split of REDS or GoPro (``GT/000/00000000.png``). Collections are matched by sequence name (the sub-folder
name or the video's file name without its extension).

A data set written by ``spikedeblur simulate`` (a folder with a ``manifest.json`` of format
``spikedeblur.simulated-dataset``) given as ground truth is one sequence: its ``sharp/`` frames are the
ground truth and its ``blurry.mp4`` is the baseline unless another blurry input is given. A folder of such
data sets is a collection.
"""

from __future__ import annotations

import logging
import json
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


DATASET_MANIFEST = "manifest.json"
DATASET_FORMAT = "spikedeblur.simulated-dataset"


@dataclass(frozen=True)
class SimulatedDataset:
    """Ground-truth frames and blurry video of a data set written by ``spikedeblur simulate``."""

    sharp: Path
    blurry: Path


def read_simulated_dataset(folder: Path) -> SimulatedDataset | None:
    """Return the ground-truth and blurry paths of a simulated data set, or None if ``folder`` is not one."""
    manifest_path = folder / DATASET_MANIFEST
    if not folder.is_dir() or not manifest_path.is_file():
        return None
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise InvalidInputError(f"cannot read the data set manifest {manifest_path} ({error}); regenerate the data set") from error
    if not isinstance(manifest, dict) or manifest.get("format") != DATASET_FORMAT:
        return None

    sharp = folder / str(manifest.get("sharp", "sharp"))
    blurry = folder / str(manifest.get("blurry", "blurry.mp4"))
    for role, path in (("ground-truth folder", sharp), ("blurry video", blurry)):
        if not path.exists():
            raise InputNotFoundError(f"the data set {folder} lacks its {role} {path}; regenerate the data set")
    return SimulatedDataset(sharp=sharp, blurry=blurry)


def _has_images(folder: Path) -> bool:
    return any(entry.is_file() and entry.suffix.lower() in _IMAGE_SUFFIXES for entry in folder.iterdir())


def list_collection(folder: Path) -> dict[str, Path] | None:
    """Return the sequences of a collection folder by name, or None when ``folder`` is a single sequence."""
    if not folder.is_dir() or _has_images(folder) or read_simulated_dataset(folder) is not None:
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


def _sequence(name: str, prediction: Path, ground_truth: Path, blurry: Path | None) -> SequenceInputs:
    """Build one sequence, reading a simulated data set's ground truth and blurry video from its manifest."""
    dataset = read_simulated_dataset(ground_truth)
    if dataset is None:
        return SequenceInputs(name, prediction, ground_truth, blurry)
    return SequenceInputs(name, prediction, dataset.sharp, blurry if blurry is not None else dataset.blurry)


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
        name = ground_truth.stem if ground_truth.is_file() else ground_truth.name
        return [_sequence(name, prediction, ground_truth, blurry)]

    prediction_sequences = _match("prediction", prediction, truth_sequences, list_collection(prediction))
    blurry_sequences = (
        _match("blurry input", blurry, truth_sequences, list_collection(blurry)) if blurry is not None else None
    )
    return [
        _sequence(
            name,
            prediction_sequences[name],
            truth_path,
            blurry_sequences[name] if blurry_sequences is not None else None,
        )
        for name, truth_path in truth_sequences.items()
    ]
