"""Per-frame and per-sequence PSNR/SSIM scores of predictions against ground truth, with an optional baseline.

The library entry point for validation and ``spikedeblur eval`` is :func:`evaluate_sequences`. It streams:
only the current frame of each sequence is in memory, so long videos can be scored.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from spikedeblur.errors import InvalidInputError
from spikedeblur.evaluation.metrics import luma_pair, prepare_pair, psnr_prepared, ssim_prepared

logger = logging.getLogger(__name__)

METRIC_NAMES = ("psnr", "ssim", "psnr_y", "ssim_y")


@dataclass(frozen=True)
class FrameScores:
    """PSNR (dB) and SSIM of one frame, or their means, on RGB and on BT.601 luma (Y)."""

    psnr: float
    ssim: float
    psnr_y: float
    ssim_y: float

    def as_dict(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in METRIC_NAMES}

    @staticmethod
    def mean_of(scores: Sequence[FrameScores]) -> FrameScores:
        """Return the metric-wise mean of ``scores``; PSNR is ``inf`` if any frame was identical."""
        if not scores:
            raise ValueError("cannot average an empty list of scores")
        return FrameScores(*(float(np.mean([getattr(s, name) for s in scores])) for name in METRIC_NAMES))


def score_frame(prediction: np.ndarray, ground_truth: np.ndarray, *, crop_border: int = 0) -> FrameScores:
    """Score one (H, W, 3) RGB prediction against its ground truth (uint8, uint16 or float in [0, 1])."""
    # Convert once and share the float images between the four scores.
    rgb_prediction, rgb_truth = prepare_pair(prediction, ground_truth, crop_border=crop_border)
    y_prediction, y_truth = luma_pair(rgb_prediction, rgb_truth)
    return FrameScores(
        psnr=psnr_prepared(rgb_prediction, rgb_truth),
        ssim=ssim_prepared(rgb_prediction, rgb_truth),
        psnr_y=psnr_prepared(y_prediction, y_truth),
        ssim_y=ssim_prepared(y_prediction, y_truth),
    )


@dataclass(frozen=True)
class FrameResult:
    """Scores of one frame: the prediction and, when a baseline (the blurry input) was given, the baseline."""

    sequence: str
    index: int
    prediction: FrameScores
    baseline: FrameScores | None = None


@dataclass(frozen=True)
class SequenceResult:
    """Scores of every frame of one sequence, in order."""

    name: str
    frames: tuple[FrameResult, ...]

    @property
    def mean(self) -> FrameScores:
        """Mean of the prediction scores over the frames."""
        return FrameScores.mean_of([frame.prediction for frame in self.frames])

    @property
    def baseline_mean(self) -> FrameScores | None:
        """Mean of the baseline scores over the frames, or None without a baseline."""
        if not self.frames or self.frames[0].baseline is None:
            return None
        return FrameScores.mean_of([frame.baseline for frame in self.frames])


@dataclass(frozen=True)
class EvaluationResult:
    """Scores of several sequences.

    The summary follows VRT's protocol: each sequence's frames are averaged first, then the sequence means
    are averaged, so long and short sequences weigh the same.
    """

    sequences: tuple[SequenceResult, ...]
    crop_border: int = 0

    @property
    def frames(self) -> tuple[FrameResult, ...]:
        return tuple(frame for sequence in self.sequences for frame in sequence.frames)

    @property
    def mean(self) -> FrameScores:
        return FrameScores.mean_of([sequence.mean for sequence in self.sequences])

    @property
    def baseline_mean(self) -> FrameScores | None:
        means = [sequence.baseline_mean for sequence in self.sequences]
        if any(mean is None for mean in means):
            return None
        return FrameScores.mean_of(means)

    def as_dict(self) -> dict:
        """Return the summary and per-sequence means as JSON-ready values (``inf`` becomes the string "inf")."""
        baseline = self.baseline_mean
        return {
            "crop_border": self.crop_border,
            "num_sequences": len(self.sequences),
            "num_frames": len(self.frames),
            "mean": _json_scores(self.mean),
            "baseline_mean": _json_scores(baseline) if baseline is not None else None,
            "sequences": [
                {
                    "name": sequence.name,
                    "num_frames": len(sequence.frames),
                    "mean": _json_scores(sequence.mean),
                    "baseline_mean": (
                        _json_scores(sequence.baseline_mean) if sequence.baseline_mean is not None else None
                    ),
                }
                for sequence in self.sequences
            ],
        }


def _json_scores(scores: FrameScores) -> dict[str, float | str]:
    return {name: ("inf" if math.isinf(value) else value) for name, value in scores.as_dict().items()}


FrameCallback = Callable[[FrameResult, np.ndarray, np.ndarray, "np.ndarray | None"], None]
"""Called after each frame as ``callback(result, prediction, ground_truth, baseline_or_None)``."""

_END = object()


def frames_from(source: Iterable[np.ndarray] | object) -> Iterator[np.ndarray]:
    """Yield (H, W, 3) numpy images from a sequence source.

    ``source`` is an iterable of (H, W, 3) images (uint8, uint16 or float in [0, 1]) or a torch tensor
    (T, 3, H, W) with values in [0, 1], as the models produce.
    """
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        torch = None

    if torch is not None and isinstance(source, torch.Tensor):
        if source.ndim != 4 or source.shape[1] != 3:
            raise InvalidInputError(f"a frame tensor must be (T, 3, H, W), got shape {tuple(source.shape)}")
        for frame in source.detach():
            yield frame.permute(1, 2, 0).float().cpu().numpy()
        return

    for frame in source:
        yield getattr(frame, "image", frame)


def _count_rest(iterator: Iterator) -> int:
    return sum(1 for _ in iterator)


def evaluate_sequence(
    predictions: Iterable[np.ndarray] | object,
    ground_truths: Iterable[np.ndarray] | object,
    *,
    baselines: Iterable[np.ndarray] | object | None = None,
    name: str = "",
    crop_border: int = 0,
    on_frame: FrameCallback | None = None,
) -> SequenceResult:
    """Score a prediction sequence frame by frame against its ground truth (and a baseline, if given).

    Each source is an iterable of (H, W, 3) images, of objects with an ``image`` attribute (such as the
    video reader's frames), or a (T, 3, H, W) torch tensor in [0, 1]. All sources must have the same
    number of frames and frame size. The exception is a 4:2:0 video made from odd-sized frames, which has
    one row or column more or less than them. Then the common area is scored.

    Raises:
        InvalidInputError: frame counts or frame sizes differ; the message names both values.
    """
    prediction_iter = frames_from(predictions)
    truth_iter = frames_from(ground_truths)
    baseline_iter = frames_from(baselines) if baselines is not None else None
    label = f" in sequence {name!r}" if name else ""

    results: list[FrameResult] = []
    size_notes: set[str] = set()
    for index in itertools.count():
        prediction = next(prediction_iter, _END)
        truth = next(truth_iter, _END)
        baseline = next(baseline_iter, _END) if baseline_iter is not None else None

        if prediction is _END or truth is _END:
            # Count what is left of the longer source so that the message can give both totals.
            prediction_total = index + (0 if prediction is _END else 1 + _count_rest(prediction_iter))
            truth_total = index + (0 if truth is _END else 1 + _count_rest(truth_iter))
            if prediction_total != truth_total:
                raise InvalidInputError(
                    f"the prediction has {prediction_total} frames but the ground truth has {truth_total}{label}; "
                    "evaluate matching sequences"
                )
            if baseline_iter is not None:
                baseline_total = index + (0 if baseline is _END else 1 + _count_rest(baseline_iter))
                if baseline_total != truth_total:
                    raise InvalidInputError(
                        f"the blurry input has {baseline_total} frames but the ground truth has {truth_total}{label}; "
                        "give the input the prediction was made from"
                    )
            break

        if baseline is _END:
            raise InvalidInputError(
                f"the blurry input ended after {index} frames, before the ground truth{label}; "
                "give the input the prediction was made from"
            )

        scored_prediction, prediction_truth = _match_size(
            prediction, truth, role="prediction", index=index, label=label, notes=size_notes
        )
        baseline_scores = None
        if baseline is not None:
            scored_baseline, baseline_truth = _match_size(
                baseline, truth, role="blurry input", index=index, label=label, notes=size_notes
            )
            baseline_scores = score_frame(scored_baseline, baseline_truth, crop_border=crop_border)
        result = FrameResult(
            sequence=name,
            index=index,
            prediction=score_frame(scored_prediction, prediction_truth, crop_border=crop_border),
            baseline=baseline_scores,
        )
        results.append(result)
        if on_frame is not None:
            on_frame(result, prediction, truth, baseline)

    if not results:
        raise InvalidInputError(f"no frames to evaluate{label}; check the inputs")
    return SequenceResult(name=name, frames=tuple(results))


def _is_even_size_fix(size: int, truth_size: int) -> bool:
    """Return whether ``size`` differs from ``truth_size`` only by the row or column a 4:2:0 encoder adds or drops."""
    return size == truth_size or (truth_size % 2 == 1 and abs(size - truth_size) == 1)


def _match_size(image: np.ndarray, truth: np.ndarray, *, role: str, index: int, label: str, notes: set[str]):
    """Return ``image`` and ``truth`` cropped to a common size, or raise if their sizes really differ.

    Video encoders with 4:2:0 chroma need even sizes, so a video written from odd-sized frames has one row
    or column more (padding) or less (cropping) than its source. That difference is tolerated: both images
    are cropped to the common top-left area.
    """
    if image.shape[:2] == truth.shape[:2]:
        return image, truth

    height, width = image.shape[:2]
    truth_height, truth_width = truth.shape[:2]
    if not (_is_even_size_fix(height, truth_height) and _is_even_size_fix(width, truth_width)):
        raise InvalidInputError(
            f"frame {index}{label}: the {role} is {width}x{height} but the ground truth is "
            f"{truth_width}x{truth_height}; compare frames of equal size"
        )

    common_height, common_width = min(height, truth_height), min(width, truth_width)
    if role not in notes:
        notes.add(role)
        logger.info(
            "the %s is %dx%d and the ground truth %dx%d%s, the even-size rounding of 4:2:0 video; "
            "scoring the common %dx%d area",
            role, width, height, truth_width, truth_height, label, common_width, common_height,
        )
    return image[:common_height, :common_width], truth[:common_height, :common_width]


def evaluate_sequences(
    predictions: Iterable[Iterable[np.ndarray] | object] | object,
    ground_truths: Iterable[Iterable[np.ndarray] | object] | object,
    *,
    baselines: Iterable[Iterable[np.ndarray] | object] | object | None = None,
    names: Sequence[str] | None = None,
    crop_border: int = 0,
    on_frame: FrameCallback | None = None,
) -> EvaluationResult:
    """Score several sequences and return per-frame, per-sequence and summary scores.

    Args:
        predictions: One source per sequence (see :func:`evaluate_sequence`), or a (B, T, 3, H, W) torch
            tensor in [0, 1], read as B sequences.
        ground_truths: The matching ground-truth sources, in the same order and layout.
        baselines: Optional matching baseline sources (the blurry inputs), scored against the ground truth.
        names: Sequence names for reports; defaults to "0", "1", ...
        crop_border: Pixels removed from each side before scoring.
        on_frame: Called after each frame with the result and the images.

    Raises:
        InvalidInputError: the numbers of sequences, frames or frame sizes differ.
    """
    prediction_list = _split_sequences(predictions)
    truth_list = _split_sequences(ground_truths)
    baseline_list = _split_sequences(baselines) if baselines is not None else None
    if len(prediction_list) != len(truth_list):
        raise InvalidInputError(
            f"{len(prediction_list)} prediction sequences but {len(truth_list)} ground-truth sequences; give matching sets"
        )
    if baseline_list is not None and len(baseline_list) != len(truth_list):
        raise InvalidInputError(
            f"{len(baseline_list)} blurry sequences but {len(truth_list)} ground-truth sequences; give matching sets"
        )
    if names is None:
        names = [str(index) for index in range(len(truth_list))]
    if len(names) != len(truth_list):
        raise InvalidInputError(f"{len(names)} names for {len(truth_list)} sequences; give one name per sequence")

    sequences = []
    for index, name in enumerate(names):
        sequences.append(
            evaluate_sequence(
                prediction_list[index],
                truth_list[index],
                baselines=baseline_list[index] if baseline_list is not None else None,
                name=name,
                crop_border=crop_border,
                on_frame=on_frame,
            )
        )
    return EvaluationResult(sequences=tuple(sequences), crop_border=crop_border)


def _split_sequences(sources) -> list:
    import torch

    if isinstance(sources, torch.Tensor):
        if sources.ndim != 5:
            raise InvalidInputError(f"a batch of sequences must be (B, T, 3, H, W), got shape {tuple(sources.shape)}")
        return list(sources)
    return list(sources)
