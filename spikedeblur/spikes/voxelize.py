"""Turn a window of spike ticks into K time bins of firing rates, and TFP/TFI reconstructions.

A window of ``N >= K`` ticks is cut by integer split: bin ``k`` contains ticks
``[floor(k * N / K), floor((k + 1) * N / K))``, so every tick lands in exactly one bin and bin
lengths differ by at most one. A bin's value is its spike count divided by its length, a firing
rate in [0, 1]. Rates put a 20 kHz camera (many ticks per bin) and a synthetic data set (one to
three ticks per bin) on one scale; intensity is about ``threshold / gain * rate``.

A window of ``0 < N < K`` ticks is treated as a piecewise-constant signal: bin ``k`` covers the
continuous tick interval ``[k * N / K, (k + 1) * N / K)`` and takes the length-weighted mean of the
ticks it overlaps, so neighbouring bins may repeat a tick. An empty window gives all-zero bins.
In both cases ``sum_k rate_k * length_k`` equals the window's spike count, where ``length_k`` is
the integer bin length for ``N >= K`` and ``N / K`` otherwise.
"""

from __future__ import annotations

import numpy as np
from einops import rearrange

from spikedeblur.errors import InvalidInputError
from spikedeblur.spikes.dat import DatReader


def check_bins(bins: int) -> int:
    """Return ``bins`` as an int, raising :class:`InvalidInputError` unless it is at least 1."""
    if isinstance(bins, bool) or int(bins) != bins or bins < 1:
        raise InvalidInputError(f"bin count {bins!r} is invalid; give an integer K >= 1 (default 32)")
    return int(bins)


def bin_edges(num_ticks: int, bins: int) -> np.ndarray:
    """Return the ``bins + 1`` integer edges ``floor(k * num_ticks / bins)`` of an integer split."""
    bins = check_bins(bins)
    return (np.arange(bins + 1, dtype=np.int64) * int(num_ticks)) // bins


def _fractional_weights(num_ticks: int, bins: int) -> np.ndarray:
    """Return ``(K, N)`` weights: the share of bin ``k``'s continuous interval covered by tick ``n``."""
    bin_starts = np.arange(bins)[:, None] * num_ticks / bins
    bin_ends = bin_starts + num_ticks / bins
    tick_starts = np.arange(num_ticks)[None, :]
    overlap = np.clip(np.minimum(bin_ends, tick_starts + 1) - np.maximum(bin_starts, tick_starts), 0.0, None)
    return overlap / (num_ticks / bins)


def voxelize(spikes: np.ndarray, bins: int = 32) -> np.ndarray:
    """Cut decoded spikes into ``bins`` firing-rate bins (see the module docstring for short windows).

    Args:
        spikes: ``(N, H, W)`` 0/1 spikes, uint8 or bool; ``N`` may be 0.
        bins: number of bins ``K >= 1``.

    Returns:
        ``(K, H, W)`` float32 firing rates in [0, 1].
    """
    bins = check_bins(bins)
    spikes = np.asarray(spikes)
    if spikes.ndim != 3:
        raise InvalidInputError(f"spikes of shape {spikes.shape} are not (N, H, W)")

    num_ticks, height, width = spikes.shape
    if num_ticks == 0:
        return np.zeros((bins, height, width), dtype=np.float32)

    if num_ticks < bins:
        weights = _fractional_weights(num_ticks, bins).astype(np.float32)
        flat = rearrange(spikes.astype(np.float32), "n h w -> n (h w)")
        return rearrange(weights @ flat, "k (h w) -> k h w", h=height)

    edges = bin_edges(num_ticks, bins)
    counts = np.add.reduceat(spikes, edges[:-1], axis=0, dtype=np.uint32)
    lengths = np.diff(edges).astype(np.float32)
    return counts.astype(np.float32) / lengths[:, None, None]


def voxelize_dat(reader: DatReader, start: int, stop: int, bins: int = 32) -> np.ndarray:
    """Voxelize ticks ``[start, stop)`` of a ``.dat`` stream without decoding the window at once.

    Same result as ``voxelize(reader.read(start, stop), bins)``.

    Returns:
        ``(K, H, W)`` float32 firing rates in [0, 1].
    """
    bins = check_bins(bins)
    num_ticks = stop - start
    if num_ticks < bins:
        return voxelize(reader.read(start, stop), bins)

    return reader.bin_rates(bin_edges(num_ticks, bins) + start)


def tfp(spikes: np.ndarray) -> np.ndarray:
    """Reconstruct texture from playback: the mean firing rate of each pixel over the window.

    Args:
        spikes: ``(N, H, W)`` 0/1 spikes with ``N >= 1``.

    Returns:
        ``(H, W)`` float32 rates in [0, 1]; intensity is about ``threshold / gain * rate``.
    """
    spikes = np.asarray(spikes)
    if spikes.ndim != 3 or spikes.shape[0] == 0:
        raise InvalidInputError(f"spikes of shape {spikes.shape} are not a non-empty (N, H, W) window")
    return (spikes.sum(axis=0, dtype=np.uint32) / np.float32(spikes.shape[0])).astype(np.float32)


def tfi(spikes: np.ndarray, *, index: int | None = None) -> np.ndarray:
    """Reconstruct texture from interval: the inverse inter-spike interval around tick ``index``.

    For each pixel, ``prev`` is the last spike at or before ``index`` and ``next`` the first spike
    after it, and the value is ``1 / (next - prev)``. A side with no spike in the window is replaced
    by the tick just outside the window (``-1`` or ``N``). So a silent pixel gets ``1 / (N + 1)``,
    and dark pixels are biased darker when ``index`` is near an edge of the window.

    Args:
        spikes: ``(N, H, W)`` 0/1 spikes with ``N >= 1``.
        index: reference tick in ``[0, N)``; the centre tick ``N // 2`` when None.

    Returns:
        ``(H, W)`` float32 rates in (0, 1].
    """
    spikes = np.asarray(spikes)
    if spikes.ndim != 3 or spikes.shape[0] == 0:
        raise InvalidInputError(f"spikes of shape {spikes.shape} are not a non-empty (N, H, W) window")
    num_ticks = spikes.shape[0]
    index = num_ticks // 2 if index is None else int(index)
    if not 0 <= index < num_ticks:
        raise InvalidInputError(f"TFI reference tick {index} is outside the window of {num_ticks} ticks")

    fired = spikes.astype(bool, copy=False)
    before = fired[index::-1]
    previous = np.where(before.any(axis=0), index - np.argmax(before, axis=0), -1)

    after = fired[index + 1 :]
    if after.shape[0]:
        following = np.where(after.any(axis=0), index + 1 + np.argmax(after, axis=0), num_ticks)
    else:
        following = np.full(spikes.shape[1:], num_ticks)

    return (1.0 / (following - previous)).astype(np.float32)
