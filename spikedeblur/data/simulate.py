"""Simulate a spike camera and a blurry RGB camera from sharp frames.

The model of the spike camera is integrate-and-fire: every pixel adds ``gain * I`` to its accumulator
at each spike tick, where ``I`` is the BT.601 luma of the sharp frame in display space (the gamma-encoded
values of an ordinary 8-bit video divided by 255, as the public spike data sets do with
``cv2.COLOR_BGR2GRAY``). When the accumulator reaches ``threshold`` the pixel fires one spike and the
threshold is subtracted, so the residual charge carries over (reset by subtraction, which keeps rates
unbiased). Accumulators start at a random potential in [0, threshold). The steady firing probability per
tick is therefore ``gain * I / threshold``, capped at one spike per tick.

One sharp frame is one spike tick. A blurry frame is the mean of the ``exposure_ticks`` sharp frames of
its exposure window, and its ground truth is the sharp image at the centre of that window.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from spikedeblur.data.synthetic import ProceduralScene
from spikedeblur.errors import InvalidInputError

logger = logging.getLogger(__name__)

# BT.601 luma weights for R, G, B.
_LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], np.float32)


@dataclass(frozen=True)
class SpikeSimulationConfig:
    """Integrate-and-fire parameters.

    Attributes:
        threshold: firing threshold θ in intensity units; 2.0 gives at most one spike every two ticks
            for a white pixel, the default of the spikezoo and SpkDeblurNet simulators.
        gain: charge added per tick per unit intensity.
        noise_rate: probability per pixel and tick of a spurious spike (dark-current noise), OR-ed in.
        threshold_mismatch: relative standard deviation of a fixed per-pixel threshold (fixed-pattern noise).
        random_initial_potential: start each accumulator at U[0, θ) instead of 0, so that pixels do not
            fire in lock-step on the first ticks.
        seed: seed of the initial potentials, noise and mismatch.
    """

    threshold: float = 2.0
    gain: float = 1.0
    noise_rate: float = 0.0
    threshold_mismatch: float = 0.0
    random_initial_potential: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.threshold) and self.threshold > 0):
            raise InvalidInputError(f"spike threshold {self.threshold} is invalid; use a positive number such as 2.0")
        if not (math.isfinite(self.gain) and self.gain > 0):
            raise InvalidInputError(f"spike gain {self.gain} is invalid; use a positive number such as 1.0")
        if not 0.0 <= self.noise_rate < 1.0:
            raise InvalidInputError(f"noise rate {self.noise_rate} is invalid; use a probability in [0, 1)")
        if not 0.0 <= self.threshold_mismatch < 0.5:
            raise InvalidInputError(
                f"threshold mismatch {self.threshold_mismatch} is invalid; use a relative spread in [0, 0.5)"
            )


def rgb_to_luma(image: np.ndarray) -> np.ndarray:
    """Convert (..., 3) RGB in [0, 1] to (...) float32 BT.601 luma, in the same (display) space."""
    return np.tensordot(image.astype(np.float32, copy=False), _LUMA_WEIGHTS, axes=([-1], [0]))


class IntegrateAndFire:
    """Stateful integrate-and-fire spike generator for one (height, width) pixel array.

    Call :meth:`step` once per tick with a (H, W) intensity map in [0, 1]; it returns (H, W) uint8
    spikes (0 or 1). :attr:`potential` is each pixel's accumulated charge, kept in [0, θ).
    """

    def __init__(self, height: int, width: int, config: SpikeSimulationConfig | None = None) -> None:
        self.config = config or SpikeSimulationConfig()
        self.height = int(height)
        self.width = int(width)
        self._rng = np.random.default_rng(self.config.seed)
        threshold = self.config.threshold

        if self.config.threshold_mismatch > 0:
            spread = self._rng.normal(1.0, self.config.threshold_mismatch, (self.height, self.width))
            self.threshold = (threshold * np.clip(spread, 0.25, None)).astype(np.float32)
        else:
            self.threshold = np.full((self.height, self.width), threshold, np.float32)

        if self.config.random_initial_potential:
            self.potential = (self._rng.random((self.height, self.width), dtype=np.float32) * self.threshold).astype(
                np.float32
            )
        else:
            self.potential = np.zeros((self.height, self.width), np.float32)

    def step(self, intensity: np.ndarray) -> np.ndarray:
        """Integrate one tick of ``intensity`` (H, W) in [0, 1]; return (H, W) uint8 spikes."""
        if intensity.shape != (self.height, self.width):
            raise InvalidInputError(
                f"intensity map of shape {intensity.shape} does not match the simulator's "
                f"{self.height}x{self.width} pixels"
            )

        self.potential += self.config.gain * np.clip(intensity, 0.0, 1.0).astype(np.float32, copy=False)
        fired = self.potential >= self.threshold
        self.potential -= fired * self.threshold

        # At most one spike per tick: a pixel brighter than θ/gain saturates, and its surplus charge is
        # dropped so the potential stays below θ instead of growing without bound.
        np.minimum(self.potential, np.nextafter(self.threshold, 0), out=self.potential)

        spikes = fired.astype(np.uint8)
        if self.config.noise_rate > 0:
            spikes |= (self._rng.random((self.height, self.width)) < self.config.noise_rate).astype(np.uint8)
        return spikes

    def run(self, intensities: np.ndarray) -> np.ndarray:
        """Integrate (N, H, W) intensities tick by tick; return (N, H, W) uint8 spikes."""
        return np.stack([self.step(intensity) for intensity in intensities])


def srgb_to_linear(image: np.ndarray) -> np.ndarray:
    """Decode sRGB-encoded values in [0, 1] to linear light (IEC 61966-2-1 transfer function)."""
    image = np.clip(image, 0.0, 1.0)
    return np.where(image <= 0.04045, image / 12.92, ((image + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb(image: np.ndarray) -> np.ndarray:
    """Encode linear-light values in [0, 1] with the sRGB transfer function."""
    image = np.clip(image, 0.0, 1.0)
    return np.where(image <= 0.0031308, image * 12.92, 1.055 * image ** (1 / 2.4) - 0.055).astype(np.float32)


def blur_frames(frames: np.ndarray, *, linear_light: bool = False) -> np.ndarray:
    """Average (N, H, W, 3) sharp frames in [0, 1] into one blurry (H, W, 3) float32 frame.

    With ``linear_light`` the frames are decoded from sRGB, averaged, and encoded again, which is how
    light adds up on a sensor; without it the display values are averaged as most data sets do.
    """
    if linear_light:
        return linear_to_srgb(srgb_to_linear(frames).mean(axis=0))
    return frames.astype(np.float32, copy=False).mean(axis=0)


def centre_frame(frames: np.ndarray) -> np.ndarray:
    """Return the sharp image at the centre of an (N, H, W, 3) exposure window.

    For odd N this is the middle frame. For even N the centre instant falls between the two middle
    ticks, so their mean is returned (exact only for motion that is linear across one tick).
    """
    count = frames.shape[0]
    if count % 2 == 1:
        return frames[count // 2].astype(np.float32, copy=False)
    return frames[count // 2 - 1 : count // 2 + 1].astype(np.float32).mean(axis=0)


def spike_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """Return the (height, width) of a spike array at ``scale`` times the RGB size.

    Raises InvalidInputError when the size is below 8 pixels or when height * width is not a multiple
    of 8, because a ``.dat`` frame packs 8 pixels per byte.
    """
    if not (math.isfinite(scale) and 0 < scale <= 1):
        raise InvalidInputError(f"spike scale {scale} is invalid; use a fraction in (0, 1], such as 0.5")

    spike_height = max(1, round(height * scale))
    spike_width = max(1, round(width * scale))
    if spike_height < 8 or spike_width < 8:
        raise InvalidInputError(
            f"spike scale {scale} of a {width}x{height} frame gives {spike_width}x{spike_height} spikes; "
            "use a larger scale or larger frames"
        )
    if (spike_height * spike_width) % 8 != 0:
        raise InvalidInputError(
            f"spike scale {scale} of a {width}x{height} frame gives {spike_width}x{spike_height} spikes, whose "
            "pixel count is not a multiple of 8 as .dat files need; choose a scale that gives an even width"
        )
    return spike_height, spike_width


@dataclass(frozen=True)
class ExposureConfig:
    """How spike ticks map to blurry frames.

    Attributes:
        ticks_per_frame: spike ticks (sharp frames) between the starts of two blurry frames.
        exposure_ticks: ticks averaged into each blurry frame, centred in the frame interval;
            ``None`` means all of them (a 100 % duty cycle). Smaller values leave gaps before and
            after the exposure where the RGB camera is not exposing but the spike camera keeps
            ticking.
        spike_scale: spike resolution as a fraction of the RGB size.
        linear_light: average the blur in linear light instead of display values.
    """

    ticks_per_frame: int = 32
    exposure_ticks: int | None = None
    spike_scale: float = 0.5
    linear_light: bool = False

    def __post_init__(self) -> None:
        if self.ticks_per_frame < 1:
            raise InvalidInputError(f"ticks per frame {self.ticks_per_frame} is invalid; use 1 or more")
        if self.exposure_ticks is not None and not 1 <= self.exposure_ticks <= self.ticks_per_frame:
            raise InvalidInputError(
                f"exposure of {self.exposure_ticks} ticks is invalid; use 1 to ticks_per_frame "
                f"({self.ticks_per_frame})"
            )
        if not (math.isfinite(self.spike_scale) and 0 < self.spike_scale <= 1):
            raise InvalidInputError(f"spike scale {self.spike_scale} is invalid; use a fraction in (0, 1]")

    @property
    def exposure(self) -> int:
        """Ticks averaged into each blurry frame."""
        return self.ticks_per_frame if self.exposure_ticks is None else self.exposure_ticks

    @property
    def exposure_start(self) -> int:
        """First exposed tick within a frame interval (the exposure is centred, rounded down)."""
        return (self.ticks_per_frame - self.exposure) // 2

    def frame_ticks(self, frame_index: int) -> tuple[int, int]:
        """Return the first and last exposed ticks (inclusive) of frame ``frame_index`` in the stream."""
        first = frame_index * self.ticks_per_frame + self.exposure_start
        return first, first + self.exposure - 1


@dataclass
class SimulatedFrame:
    """One blurry frame with its ground truth and the spikes of its whole frame interval.

    ``blurry`` and ``sharp`` are (H, W, 3) float32 RGB in [0, 1]; ``spikes`` is (ticks_per_frame, h, w)
    uint8 in {0, 1}, of which ``exposure`` ticks from ``exposure_start`` cover the blurry frame's exposure.
    """

    index: int
    blurry: np.ndarray
    sharp: np.ndarray
    spikes: np.ndarray


class FrameSimulator:
    """Turn a stream of sharp frames (one per spike tick) into blurry frames, ground truths and spikes.

    Feed frames with :meth:`push`; every ``ticks_per_frame`` frames it returns a :class:`SimulatedFrame`.
    Only one frame interval is held in memory, so arbitrarily long inputs stream through.
    """

    def __init__(
        self,
        height: int,
        width: int,
        *,
        exposure: ExposureConfig | None = None,
        spikes: SpikeSimulationConfig | None = None,
    ) -> None:
        self.exposure = exposure or ExposureConfig()
        self.height = int(height)
        self.width = int(width)
        self.spike_height, self.spike_width = spike_size(self.height, self.width, self.exposure.spike_scale)
        self._neuron = IntegrateAndFire(self.spike_height, self.spike_width, spikes)
        self._window: list[np.ndarray] = []
        self._spikes: list[np.ndarray] = []
        self._exact_sharp: np.ndarray | None = None
        self._frame_index = 0

    def _spike_intensity(self, frame: np.ndarray) -> np.ndarray:
        luma = rgb_to_luma(frame)
        if (self.spike_height, self.spike_width) == (self.height, self.width):
            return luma
        # Area interpolation averages the light that falls on each larger spike pixel.
        return cv2.resize(luma, (self.spike_width, self.spike_height), interpolation=cv2.INTER_AREA)

    def push(self, frame: np.ndarray, *, sharp: np.ndarray | None = None) -> SimulatedFrame | None:
        """Add one tick's sharp (H, W, 3) float32 frame in [0, 1].

        ``sharp`` optionally gives the exact ground truth of the current blurry frame (a renderer
        that can sample the exposure centre passes it with any tick of the window); otherwise the
        centre of the window is taken from the ticks.
        """
        if frame.shape != (self.height, self.width, 3):
            raise InvalidInputError(
                f"sharp frame of shape {frame.shape} does not match the simulator's {self.height}x{self.width}x3"
            )

        tick = len(self._spikes)
        first_exposed = self.exposure.exposure_start
        if first_exposed <= tick < first_exposed + self.exposure.exposure:
            self._window.append(frame.astype(np.float32, copy=False))
        if sharp is not None:
            self._exact_sharp = sharp.astype(np.float32, copy=False)
        self._spikes.append(self._neuron.step(self._spike_intensity(frame)))

        if len(self._spikes) < self.exposure.ticks_per_frame:
            return None
        return self._finish_frame()

    def _finish_frame(self) -> SimulatedFrame:
        window = np.stack(self._window)
        blurry = blur_frames(window, linear_light=self.exposure.linear_light)
        sharp = self._exact_sharp if self._exact_sharp is not None else centre_frame(window)
        result = SimulatedFrame(self._frame_index, blurry, sharp, np.stack(self._spikes))

        self._window = []
        self._spikes = []
        self._exact_sharp = None
        self._frame_index += 1
        return result

    @property
    def pending_ticks(self) -> int:
        """Ticks pushed since the last completed frame; they are dropped if the input ends here."""
        return len(self._spikes)


def simulate_frames(
    frames: Iterable[np.ndarray],
    *,
    exposure: ExposureConfig | None = None,
    spikes: SpikeSimulationConfig | None = None,
) -> Iterator[SimulatedFrame]:
    """Stream sharp (H, W, 3) float32 frames in [0, 1], one per tick, into :class:`SimulatedFrame` items.

    A trailing partial frame interval is dropped, with a log message that states how many ticks.
    """
    simulator: FrameSimulator | None = None
    for frame in frames:
        if simulator is None:
            simulator = FrameSimulator(frame.shape[0], frame.shape[1], exposure=exposure, spikes=spikes)
        result = simulator.push(frame)
        if result is not None:
            yield result

    if simulator is not None and simulator.pending_ticks:
        logger.info(
            "dropped the last %d spike ticks (sharp frames after any upsampling): they do not fill a whole "
            "blurry frame of %d ticks",
            simulator.pending_ticks,
            simulator.exposure.ticks_per_frame,
        )


def upsample_frames(frames: Iterable[np.ndarray], factor: int) -> Iterator[np.ndarray]:
    """Insert ``factor - 1`` linear blends between consecutive frames (temporal upsampling).

    Yields float32 frames: for each pair (a, b), ``a, (1 - 1/f) a + (1/f) b, ...``, and the last input
    frame at the end, so N inputs give (N - 1) * factor + 1 outputs.

    Blending is not motion interpolation. A moving edge becomes two fading copies, not an edge at an
    intermediate position, so spikes simulated from blended frames show double edges where a real
    camera would see one moving edge, and fast motion (more than a few pixels per source frame) gives
    visibly wrong spikes. Use a high-frame-rate source or an optical-flow interpolator for data sets
    where the spike timing within a frame matters.
    """
    if factor < 1:
        raise InvalidInputError(f"upsampling factor {factor} is invalid; use 1 or more")

    previous: np.ndarray | None = None
    for frame in frames:
        current = frame.astype(np.float32, copy=False)
        if previous is not None:
            for step in range(factor):
                weight = step / factor
                yield previous if step == 0 else (1.0 - weight) * previous + weight * current
        previous = current

    if previous is not None:
        yield previous


def tick_times(frame_index: int, exposure: ExposureConfig) -> np.ndarray:
    """Return the scene times (in frame intervals) sampled by the ticks of one frame interval.

    Tick k of frame i integrates light over [i + k/S, i + (k + 1)/S) for S ticks per frame, and is
    rendered at the middle of that interval.
    """
    ticks = exposure.ticks_per_frame
    return frame_index + (np.arange(ticks, dtype=np.float64) + 0.5) / ticks


def exposure_centre_time(frame_index: int, exposure: ExposureConfig) -> float:
    """Return the scene time at the centre of frame ``frame_index``'s exposure window."""
    return frame_index + (exposure.exposure_start + exposure.exposure / 2.0) / exposure.ticks_per_frame


def simulate_scene(
    scene: ProceduralScene,
    num_frames: int,
    *,
    exposure: ExposureConfig | None = None,
    spikes: SpikeSimulationConfig | None = None,
    start_frame: int = 0,
) -> Iterator[SimulatedFrame]:
    """Render a procedural scene tick by tick and simulate ``num_frames`` blurry frames from it.

    The ground truth of each frame is rendered exactly at the centre of its exposure window, so it
    is sharp for any number of ticks, odd or even.
    """
    exposure = exposure or ExposureConfig()
    simulator = FrameSimulator(scene.height, scene.width, exposure=exposure, spikes=spikes)

    for frame_index in range(start_frame, start_frame + num_frames):
        sharp = scene.render(exposure_centre_time(frame_index, exposure))
        result = None
        for tick, time in enumerate(tick_times(frame_index, exposure)):
            result = simulator.push(scene.render(float(time)), sharp=sharp if tick == 0 else None)
        assert result is not None  # the loop pushed exactly ticks_per_frame frames
        yield result
