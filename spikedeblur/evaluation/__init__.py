"""Quality metrics (PSNR, SSIM on RGB and BT.601 Y, following VRT's protocol) and sequence evaluation."""

from spikedeblur.evaluation.inputs import SequenceInputs, pair_inputs
from spikedeblur.evaluation.metrics import psnr, rgb_to_y, ssim, to_float255
from spikedeblur.evaluation.scoring import (
    METRIC_NAMES,
    EvaluationResult,
    FrameResult,
    FrameScores,
    SequenceResult,
    evaluate_sequence,
    evaluate_sequences,
    score_frame,
)

__all__ = [
    "METRIC_NAMES",
    "EvaluationResult",
    "FrameResult",
    "FrameScores",
    "SequenceInputs",
    "SequenceResult",
    "evaluate_sequence",
    "evaluate_sequences",
    "pair_inputs",
    "psnr",
    "rgb_to_y",
    "score_frame",
    "ssim",
    "to_float255",
]
