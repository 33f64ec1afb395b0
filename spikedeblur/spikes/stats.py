"""Per-pixel firing statistics of a spike stream, as shown by ``spikedeblur info``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spikedeblur.spikes.dat import DatReader

PERCENTILES = (1, 5, 50, 95, 99)

# A dead pixel never fires although the median of its 3x3 neighbourhood fires at least this often.
DEAD_NEIGHBOUR_RATE = 0.05

# A hot pixel fires this much more often (in spikes per tick) than the median of its 3x3 neighbourhood.
HOT_RATE_EXCESS = 0.5


@dataclass(frozen=True)
class FiringStats:
    """Summary of per-pixel firing rates (spikes per tick, in [0, 1])."""

    ticks: int
    mean_rate: float
    percentiles: dict[int, float]
    dead_pixels: int
    hot_pixels: int

    def to_json(self) -> dict[str, object]:
        """Return a JSON-ready dictionary."""
        return {
            "ticks": self.ticks,
            "mean_rate": self.mean_rate,
            "rate_percentiles": {str(key): value for key, value in self.percentiles.items()},
            "dead_pixels": self.dead_pixels,
            "hot_pixels": self.hot_pixels,
        }


def firing_stats(counts: np.ndarray, ticks: int) -> FiringStats:
    """Summarize ``(H, W)`` per-pixel spike counts over ``ticks`` ticks.

    Dead and hot pixels are judged against the median of their 3x3 neighbourhood, so dark or bright
    image regions are not counted. A bright line one pixel wide also counts as hot.
    """
    import cv2

    rates = counts.astype(np.float32) / max(ticks, 1)
    neighbour_median = cv2.medianBlur(rates, 3)

    dead = (counts == 0) & (neighbour_median >= DEAD_NEIGHBOUR_RATE)
    hot = rates - neighbour_median > HOT_RATE_EXCESS
    values = np.percentile(rates, PERCENTILES)
    return FiringStats(
        ticks=int(ticks),
        mean_rate=float(rates.mean()),
        percentiles={p: float(v) for p, v in zip(PERCENTILES, values, strict=True)},
        dead_pixels=int(dead.sum()),
        hot_pixels=int(hot.sum()),
    )


def stream_stats(reader: DatReader) -> FiringStats:
    """Compute :class:`FiringStats` over every frame of ``reader``, decoding one chunk at a time."""
    return firing_stats(reader.count_spikes(0, reader.num_frames), reader.num_frames)

