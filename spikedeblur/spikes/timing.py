"""Map video frames to half-open ranges of spike ticks.

Spike tick ``i`` covers ``[i / rate, (i + 1) / rate)`` seconds on the spike clock, and video time
``t`` sits at ``t + offset_s`` on that clock. A video frame shown at ``time_s`` for ``duration_s``
is exposed during a window centred on its frame interval (the whole interval by default). The
window's ticks are ``[ceil(start * rate), ceil(end * rate))``, so windows of back-to-back frames
with full exposure tile the clock with no gap and no overlap. The sharp ground truth of synthetic
data sets is the instant at the centre of this window.

With ``spikes_per_frame = N`` the clock is ignored and frame ``i`` covers
``[first_tick + i * N, first_tick + (i + 1) * N)``; with a ``frame_ticks`` table frame ``i`` covers
the table's inclusive ``[first, last]`` pair.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from spikedeblur.errors import InvalidInputError
from spikedeblur.spikes.sidecar import SpikeMeta

# Times are converted to ticks with this tolerance (in ticks), so a boundary that should fall exactly
# on a tick is not pushed to the next one by floating-point error in ``time * rate``.
_TICK_TOLERANCE = 1e-6


def time_to_tick(time_s: float, *, rate_hz: float, offset_s: float = 0.0) -> int:
    """Return the first tick that starts at or after video time ``time_s``."""
    return math.ceil((time_s + offset_s) * rate_hz - _TICK_TOLERANCE)


def exposure_interval(
    time_s: float,
    duration_s: float,
    *,
    exposure_s: float | None = None,
    exposure_fraction: float | None = None,
) -> tuple[float, float]:
    """Return the exposure ``(start, end)`` in video seconds, centred on the frame interval."""
    if not duration_s > 0:
        raise InvalidInputError(f"frame duration {duration_s!r} s is invalid; frame times must increase")

    if exposure_s is not None:
        if exposure_s > duration_s * (1 + 1e-9):
            raise InvalidInputError(
                f"exposure {exposure_s:g} s is longer than the frame interval {duration_s:g} s; "
                "give a shorter --exposure or a fraction such as 50%"
            )
        length = exposure_s
    elif exposure_fraction is not None:
        length = duration_s * exposure_fraction
    else:
        return time_s, time_s + duration_s

    start = time_s + (duration_s - length) / 2
    return start, start + length


def frame_window(meta: SpikeMeta, index: int, time_s: float, duration_s: float) -> tuple[int, int]:
    """Return the half-open tick range ``(start, stop)`` of video frame ``index``.

    ``time_s`` and ``duration_s`` (seconds) are only used by the clock mapping. The range may
    extend past either end of the stream; callers check coverage.
    """
    if meta.frame_ticks is not None:
        if not 0 <= index < len(meta.frame_ticks):
            raise InvalidInputError(
                f"video frame {index} has no entry in frame_ticks, which lists {len(meta.frame_ticks)} frames"
            )
        first, last = meta.frame_ticks[index]
        return first, last + 1

    if meta.spikes_per_frame is not None:
        start = meta.first_tick + index * meta.spikes_per_frame
        return start, start + meta.spikes_per_frame

    start_s, end_s = exposure_interval(
        time_s, duration_s, exposure_s=meta.exposure_s, exposure_fraction=meta.exposure_fraction
    )
    return (
        time_to_tick(start_s, rate_hz=meta.rate_hz, offset_s=meta.offset_s),
        time_to_tick(end_s, rate_hz=meta.rate_hz, offset_s=meta.offset_s),
    )


def frame_durations(times_s: Sequence[float], *, last_duration_s: float | None = None) -> np.ndarray:
    """Return each frame's duration as the gap to the next frame time.

    The last frame gets ``last_duration_s``, or the median gap when it is None.

    Raises:
        InvalidInputError: if the times do not strictly increase, or a single frame has no duration.
    """
    times = np.asarray(times_s, dtype=np.float64)
    if times.ndim != 1 or times.size == 0:
        raise InvalidInputError("no video frame times were given")

    gaps = np.diff(times)
    if np.any(gaps <= 0):
        bad = int(np.argmax(gaps <= 0))
        raise InvalidInputError(
            f"video frame times must increase, but frame {bad + 1} is at {times[bad + 1]:g} s after "
            f"{times[bad]:g} s"
        )
    if last_duration_s is None:
        if gaps.size == 0:
            raise InvalidInputError("a single video frame has no duration; give the frame rate")
        last_duration_s = float(np.median(gaps))

    return np.append(gaps, last_duration_s)


def uniform_frame_times(fps: float, num_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(times_s, durations_s)`` of ``num_frames`` frames at a constant ``fps``, starting at 0."""
    if not (isinstance(fps, int | float) and math.isfinite(fps) and fps > 0):
        raise InvalidInputError(f"frame rate {fps!r} is invalid; give a positive number of frames per second")
    if int(num_frames) != num_frames or num_frames < 1:
        raise InvalidInputError(f"frame count {num_frames!r} is invalid; give a positive integer")

    times = np.arange(int(num_frames), dtype=np.float64) / fps
    return times, np.full(int(num_frames), 1.0 / fps)
