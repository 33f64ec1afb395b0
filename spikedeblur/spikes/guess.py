"""Propose the resolution of a ``.dat`` file whose size is not recorded anywhere.

Every common sensor size whose frame size divides the file size is a candidate. Decoding the same
bytes at a wrong width wraps rows, which breaks the spatial smoothness of the mean firing-rate
image, so each candidate is scored by the lower of its horizontal and vertical neighbour-pixel
correlations. The margin between the best and the runner-up score is the confidence.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spikedeblur.spikes.dat import DatReader, check_input_file

logger = logging.getLogger(__name__)

# (height, width, head columns) of sensors and data sets in use, real and simulated.
COMMON_SIZES: tuple[tuple[int, int, int], ...] = (
    (250, 400, 0),  # first-generation Vidar camera, REDS simulations
    (250, 400, 16),  # the same camera with 16 head columns per row (250x416 stored)
    (360, 640, 0),  # GoPro-based simulations at half resolution
    (180, 320, 0),  # GoPro-based simulations at quarter resolution
    (720, 1280, 0),
    (1024, 1280, 0),
    (1000, 1000, 0),  # 1-megapixel camera
    (384, 384, 0),
    (256, 256, 0),
    (224, 224, 0),
    (480, 854, 0),
    (500, 800, 0),
)

# Scoring reads at most this many bytes from the middle of the file.
_SCORE_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class SizeProposal:
    """A candidate resolution with its smoothness score (a correlation in [-1, 1])."""

    height: int
    width: int
    head_cols: int
    num_frames: int
    score: float

    @property
    def label(self) -> str:
        """``HxW`` text, with the head columns when there are any."""
        head = f" +{self.head_cols} head columns" if self.head_cols else ""
        return f"{self.height}x{self.width}{head}"


def _neighbour_correlation(image: np.ndarray) -> float:
    def correlation(a: np.ndarray, b: np.ndarray) -> float:
        a = a.ravel() - a.mean()
        b = b.ravel() - b.mean()
        denominator = float(np.sqrt((a * a).sum() * (b * b).sum()))
        return float((a * b).sum() / denominator) if denominator > 0 else 0.0

    horizontal = correlation(image[:, :-1], image[:, 1:])
    vertical = correlation(image[:-1, :], image[1:, :])
    return min(horizontal, vertical)


def score_size(path: Path, height: int, width: int, head_cols: int = 0, *, flip: bool = True) -> SizeProposal:
    """Score one candidate size by the smoothness of the mean firing-rate image of up to 16 MiB of frames."""
    reader = DatReader(path, height, width, head_cols=head_cols, flip=flip)
    try:
        count = max(1, min(reader.num_frames, _SCORE_BYTES // reader.frame_bytes))
        start = (reader.num_frames - count) // 2
        rates = reader.count_spikes(start, start + count).astype(np.float64) / count
        return SizeProposal(height, width, head_cols, reader.num_frames, _neighbour_correlation(rates))
    finally:
        reader.close()


def propose_sizes(path: str | Path, *, flip: bool = True) -> list[SizeProposal]:
    """Return the common sizes that fit the file, best first; an empty list when none fits.

    A trailing partial frame rules a size out, so the file size must be a whole number of frames.
    """
    path = check_input_file(Path(path))
    file_size = path.stat().st_size
    proposals = []
    for height, width, head_cols in COMMON_SIZES:
        frame_bytes = height * (width + head_cols) // 8
        if file_size % frame_bytes == 0:
            proposals.append(score_size(path, height, width, head_cols, flip=flip))

    proposals.sort(key=lambda proposal: proposal.score, reverse=True)
    logger.debug("size proposals for %s: %s", path, [(p.label, round(p.score, 4)) for p in proposals])
    return proposals


def confidence(proposals: list[SizeProposal]) -> float | None:
    """Return the score margin of the best proposal over the runner-up, or None with fewer than two."""
    if len(proposals) < 2:
        return None
    return proposals[0].score - proposals[1].score
