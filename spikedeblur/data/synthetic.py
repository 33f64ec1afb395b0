"""Procedural scenes: textured layers that move, occlude one another and shake, rendered at any instant.

A scene is a stack of layers drawn back to front: an opaque background larger than the frame and
several foreground layers, each a textured shape with a soft-edged alpha mask. Every layer follows its
own smooth trajectory (translation with acceleration, rotation, zoom) and the whole stack moves with a
camera shake made of a few random sinusoids. Because :meth:`ProceduralScene.render` accepts a continuous
time, a caller can render every spike tick of an exposure, so the blurry frame, the spike stream and the
sharp ground truth all come from the same exact scene.

Time is measured in output-frame intervals: ``time = 2.5`` is the middle of the third frame's interval,
and speeds are in pixels per frame interval (that is, the blur length of a full-duty-cycle exposure).
Everything is drawn from a ``numpy.random.Generator`` seeded by the caller, so a seed gives the same
scene on every machine that has the same NumPy and OpenCV versions.
"""

from __future__ import annotations

import math
import string
from dataclasses import dataclass, field

import cv2
import numpy as np

from spikedeblur.errors import InvalidInputError

_HERSHEY_FONTS = (
    cv2.FONT_HERSHEY_SIMPLEX,
    cv2.FONT_HERSHEY_DUPLEX,
    cv2.FONT_HERSHEY_COMPLEX,
    cv2.FONT_HERSHEY_TRIPLEX,
    cv2.FONT_HERSHEY_PLAIN,
    cv2.FONT_HERSHEY_SCRIPT_SIMPLEX,
)
_TEXT_CHARACTERS = string.ascii_letters + string.digits


@dataclass(frozen=True)
class SceneConfig:
    """Size and motion ranges of a procedural scene.

    Attributes:
        height, width: frame size in pixels.
        num_layers: layers including the background; at least 3.
        max_speed: largest layer speed in pixels per frame interval.
        max_rotation: largest rotation speed in degrees per frame interval.
        max_zoom: largest relative scale change per frame interval (0.02 = 2 %).
        shake_amplitude: peak camera-shake offset in pixels.
        shake_frequency: highest camera-shake frequency in cycles per frame interval.
        text_density: expected number of text strokes per 64x64 pixels of texture.
    """

    height: int = 128
    width: int = 128
    num_layers: int = 4
    max_speed: float = 12.0
    max_rotation: float = 3.0
    max_zoom: float = 0.02
    shake_amplitude: float = 3.0
    shake_frequency: float = 0.35
    text_density: float = 1.5

    def __post_init__(self) -> None:
        if self.height < 16 or self.width < 16:
            raise InvalidInputError(
                f"scene size {self.height}x{self.width} is too small; use at least 16x16 pixels"
            )
        if self.num_layers < 3:
            raise InvalidInputError(f"num_layers={self.num_layers} is too few; a scene needs at least 3 layers")
        for name in ("max_speed", "max_rotation", "max_zoom", "shake_amplitude", "shake_frequency", "text_density"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise InvalidInputError(f"{name}={value} is invalid; use a finite value >= 0")
        if self.max_zoom >= 0.5:
            raise InvalidInputError(f"max_zoom={self.max_zoom} is too large; use a value below 0.5 per frame")


SCENE_PRESETS: dict[str, SceneConfig] = {
    "train": SceneConfig(height=96, width=96, num_layers=4, max_speed=10.0),
    "demo": SceneConfig(height=192, width=256, num_layers=5, max_speed=14.0),
    "test": SceneConfig(height=64, width=64, num_layers=3, max_speed=8.0),
}


@dataclass(frozen=True)
class _Trajectory:
    """Smooth motion of one layer: position, rotation and scale as functions of time."""

    centre: tuple[float, float]
    velocity: tuple[float, float]
    acceleration: tuple[float, float]
    angle_deg: float
    angular_velocity_deg: float
    scale: float
    zoom_rate: float

    def affine(self, time: float, anchor: tuple[float, float]) -> np.ndarray:
        """Return the 2x3 matrix that maps layer pixels (rotating about ``anchor``) to frame pixels."""
        x = self.centre[0] + self.velocity[0] * time + 0.5 * self.acceleration[0] * time * time
        y = self.centre[1] + self.velocity[1] * time + 0.5 * self.acceleration[1] * time * time
        angle = self.angle_deg + self.angular_velocity_deg * time
        scale = self.scale * math.exp(self.zoom_rate * time)

        matrix = cv2.getRotationMatrix2D(anchor, angle, scale)
        matrix[0, 2] += x - anchor[0]
        matrix[1, 2] += y - anchor[1]
        return matrix


@dataclass
class _Layer:
    texture: np.ndarray  # (h, w, 4) float32: RGB in [0, 1] and alpha in [0, 1]
    trajectory: _Trajectory
    opaque: bool
    anchor: tuple[float, float] = field(init=False)

    def __post_init__(self) -> None:
        height, width = self.texture.shape[:2]
        self.anchor = ((width - 1) / 2.0, (height - 1) / 2.0)


def _fractal_noise(rng: np.random.Generator, height: int, width: int, *, octaves: int = 5) -> np.ndarray:
    """Return (height, width) float32 noise in [0, 1] with energy at several scales (1/f-like)."""
    total = np.zeros((height, width), np.float32)
    amplitude = 1.0
    for octave in range(octaves):
        cells_y = max(2, int(math.ceil(height / 2 ** (octaves - octave + 1))))
        cells_x = max(2, int(math.ceil(width / 2 ** (octaves - octave + 1))))
        coarse = rng.standard_normal((cells_y, cells_x)).astype(np.float32)
        total += amplitude * cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
        amplitude *= 0.6

    low, high = np.percentile(total, (1, 99))
    return np.clip((total - low) / max(high - low, 1e-6), 0.0, 1.0)


def _random_colour(rng: np.random.Generator) -> np.ndarray:
    """Return an RGB colour in [0, 1] with a random hue, saturation and brightness."""
    hsv = np.array([[[rng.uniform(0, 180), rng.uniform(40, 255), rng.uniform(50, 255)]]], np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32) / 255.0


def _coloured_noise(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Map fractal noise through a random three-colour palette and modulate it by a second noise."""
    value = _fractal_noise(rng, height, width)
    palette = np.stack([_random_colour(rng) for _ in range(3)])

    low_half = np.clip(value * 2.0, 0.0, 1.0)[..., None]
    high_half = np.clip(value * 2.0 - 1.0, 0.0, 1.0)[..., None]
    image = palette[0] * (1 - low_half) + palette[1] * low_half
    image = image * (1 - high_half) + palette[2] * high_half

    shading = 0.6 + 0.4 * _fractal_noise(rng, height, width, octaves=3)[..., None]
    return (image * shading).astype(np.float32)


def _draw_edges(rng: np.random.Generator, image: np.ndarray) -> None:
    """Draw hard-edged stripes, rectangles and lines with random colours onto ``image`` in place."""
    height, width = image.shape[:2]
    count = int(rng.integers(2, 6))
    for _ in range(count):
        colour = tuple(float(c) for c in _random_colour(rng))
        kind = rng.integers(0, 3)
        if kind == 0:
            x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
            x1 = x0 + int(rng.integers(4, max(5, width // 2)))
            y1 = y0 + int(rng.integers(4, max(5, height // 2)))
            cv2.rectangle(image, (x0, y0), (x1, y1), colour, thickness=-1 if rng.random() < 0.5 else 2)
        elif kind == 1:
            period = int(rng.integers(6, 20))
            thickness = int(rng.integers(1, max(2, period // 2)))
            angle = rng.uniform(0, math.pi)
            direction = np.array([math.cos(angle), math.sin(angle)])
            normal = np.array([-direction[1], direction[0]])
            reach = float(height + width)
            for offset in range(-int(reach), int(reach), period):
                centre = np.array([width / 2, height / 2]) + normal * offset
                start = centre - direction * reach
                end = centre + direction * reach
                cv2.line(image, tuple(int(v) for v in start), tuple(int(v) for v in end), colour, thickness)
        else:
            points = rng.integers(0, [width, height], size=(int(rng.integers(3, 7)), 2)).astype(np.int32)
            cv2.polylines(image, [points], isClosed=False, color=colour, thickness=int(rng.integers(1, 4)))


def _draw_text(rng: np.random.Generator, image: np.ndarray, density: float) -> None:
    """Draw short random strings in Hershey fonts: thin strokes with sharp corners, like printed text."""
    height, width = image.shape[:2]
    count = int(rng.poisson(density * height * width / (64 * 64)))
    for _ in range(count):
        length = int(rng.integers(2, 8))
        text = "".join(rng.choice(list(_TEXT_CHARACTERS), size=length))
        font = _HERSHEY_FONTS[int(rng.integers(0, len(_HERSHEY_FONTS)))]
        scale = float(rng.uniform(0.3, 1.2))
        thickness = int(rng.integers(1, 3))
        origin = (int(rng.integers(-10, width)), int(rng.integers(8, height + 10)))
        brightness = 0.05 if rng.random() < 0.5 else 0.95
        colour = brightness * 0.7 + 0.3 * _random_colour(rng)

        # OpenCV anti-aliases text only on 8-bit images, so draw the strokes as an 8-bit coverage mask.
        coverage = np.zeros((height, width), np.uint8)
        cv2.putText(coverage, text, origin, font, scale, 255, thickness, lineType=cv2.LINE_AA)
        alpha = coverage.astype(np.float32)[..., None] / 255.0
        image *= 1.0 - alpha
        image += alpha * colour


def _make_texture(rng: np.random.Generator, height: int, width: int, text_density: float) -> np.ndarray:
    """Return an (height, width, 3) float32 RGB texture in [0, 1]: noise, edges and text strokes."""
    image = np.ascontiguousarray(_coloured_noise(rng, height, width))
    _draw_edges(rng, image)
    _draw_text(rng, image, text_density)
    return np.clip(image, 0.0, 1.0)


def _make_mask(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Return an (height, width) float32 alpha mask in [0, 1]: an ellipse, polygon or rounded box."""
    # Drawn as 8 bit because OpenCV anti-aliases (LINE_AA) only 8-bit images.
    mask = np.zeros((height, width), np.uint8)
    centre = (width // 2, height // 2)
    kind = rng.integers(0, 3)
    if kind == 0:
        axes = (max(3, int(width * rng.uniform(0.3, 0.48))), max(3, int(height * rng.uniform(0.3, 0.48))))
        cv2.ellipse(mask, centre, axes, float(rng.uniform(0, 180)), 0, 360, 255, thickness=-1, lineType=cv2.LINE_AA)
    elif kind == 1:
        corners = int(rng.integers(3, 9))
        angles = np.sort(rng.uniform(0, 2 * math.pi, corners))
        radii = rng.uniform(0.25, 0.48, corners)
        points = np.stack(
            [centre[0] + radii * width * np.cos(angles), centre[1] + radii * height * np.sin(angles)], axis=1
        )
        cv2.fillPoly(mask, [points.astype(np.int32)], 255, lineType=cv2.LINE_AA)
    else:
        margin_x, margin_y = int(width * rng.uniform(0.05, 0.2)), int(height * rng.uniform(0.05, 0.2))
        cv2.rectangle(mask, (margin_x, margin_y), (width - margin_x, height - margin_y), 255, thickness=-1)
        # Blurring and re-sharpening the box rounds its corners.
        rounded = cv2.GaussianBlur(mask.astype(np.float32) / 255.0, (0, 0), sigmaX=max(1.0, 0.04 * min(height, width)))
        mask = (np.clip((rounded - 0.5) * 4.0 + 0.5, 0.0, 1.0) * 255).astype(np.uint8)

    # Half a pixel of softening keeps occlusion boundaries anti-aliased after warping.
    return cv2.GaussianBlur(mask.astype(np.float32) / 255.0, (0, 0), sigmaX=0.6)


class ProceduralScene:
    """A random layered scene that renders sharp RGB frames at any continuous time.

    ``render(time)`` returns a (H, W, 3) float32 image with values in [0, 1] (display-referred, like an
    8-bit video frame divided by 255). The scene is fixed by ``config`` and ``seed``.
    """

    def __init__(self, config: SceneConfig | None = None, *, seed: int) -> None:
        self.config = config or SceneConfig()
        self.seed = int(seed)
        rng = np.random.default_rng(self.seed)

        self._layers = [self._make_background(rng)]
        for depth in range(1, self.config.num_layers):
            self._layers.append(self._make_foreground(rng, depth))
        self._shake = self._make_shake(rng)

    @property
    def height(self) -> int:
        return self.config.height

    @property
    def width(self) -> int:
        return self.config.width

    def _make_background(self, rng: np.random.Generator) -> _Layer:
        config = self.config
        # A margin around the frame keeps shake and drift inside real texture for a few frames; beyond
        # it the texture is mirrored (BORDER_REFLECT101), which stays seamless but repeats.
        margin = int(config.max_speed * 4 + config.shake_amplitude * 2 + 16)
        height, width = config.height + 2 * margin, config.width + 2 * margin
        rgb = _make_texture(rng, height, width, config.text_density)
        texture = np.concatenate([rgb, np.ones((height, width, 1), np.float32)], axis=2)

        speed = rng.uniform(0.0, 0.5) * config.max_speed
        heading = rng.uniform(0, 2 * math.pi)
        trajectory = _Trajectory(
            centre=((config.width - 1) / 2.0, (config.height - 1) / 2.0),
            velocity=(speed * math.cos(heading), speed * math.sin(heading)),
            acceleration=(0.0, 0.0),
            angle_deg=0.0,
            angular_velocity_deg=rng.uniform(-0.3, 0.3) * config.max_rotation,
            scale=1.0,
            zoom_rate=rng.uniform(-0.3, 0.3) * config.max_zoom,
        )
        return _Layer(texture, trajectory, opaque=True)

    def _make_foreground(self, rng: np.random.Generator, depth: int) -> _Layer:
        config = self.config
        short_side = min(config.height, config.width)
        # Later (nearer) layers are smaller on average, so they rarely hide the whole scene.
        size_fraction = rng.uniform(0.3, 0.75) / (1.0 + 0.25 * (depth - 1))
        height = max(12, int(short_side * size_fraction * rng.uniform(0.7, 1.3)))
        width = max(12, int(short_side * size_fraction * rng.uniform(0.7, 1.3)))

        rgb = _make_texture(rng, height, width, config.text_density)
        alpha = _make_mask(rng, height, width)
        texture = np.concatenate([rgb, alpha[..., None]], axis=2)

        speed = rng.uniform(0.3, 1.0) * config.max_speed
        heading = rng.uniform(0, 2 * math.pi)
        trajectory = _Trajectory(
            centre=(rng.uniform(0.2, 0.8) * config.width, rng.uniform(0.2, 0.8) * config.height),
            velocity=(speed * math.cos(heading), speed * math.sin(heading)),
            acceleration=tuple(rng.uniform(-0.05, 0.05, 2) * config.max_speed),
            angle_deg=rng.uniform(0, 360),
            angular_velocity_deg=rng.uniform(-1, 1) * config.max_rotation,
            scale=1.0,
            zoom_rate=rng.uniform(-1, 1) * config.max_zoom,
        )
        return _Layer(texture, trajectory, opaque=False)

    def _make_shake(self, rng: np.random.Generator) -> np.ndarray:
        """Return (3, 4) rows of (amplitude_x, amplitude_y, frequency, phase) for three sinusoids."""
        config = self.config
        components = np.zeros((3, 4))
        for row in range(3):
            amplitude = config.shake_amplitude / (row + 1)
            components[row] = (
                rng.uniform(-1, 1) * amplitude,
                rng.uniform(-1, 1) * amplitude,
                rng.uniform(0.3, 1.0) * config.shake_frequency * (row + 1) / 3,
                rng.uniform(0, 2 * math.pi),
            )
        return components

    def camera_offset(self, time: float) -> tuple[float, float]:
        """Return the camera-shake offset (dx, dy) in pixels at ``time``."""
        phases = 2 * math.pi * self._shake[:, 2] * time + self._shake[:, 3]
        return float(np.sum(self._shake[:, 0] * np.sin(phases))), float(np.sum(self._shake[:, 1] * np.cos(phases)))

    def render(self, time: float) -> np.ndarray:
        """Render the sharp frame at ``time`` (in frame intervals) as (H, W, 3) float32 RGB in [0, 1]."""
        size = (self.config.width, self.config.height)
        shake_x, shake_y = self.camera_offset(time)
        frame = np.zeros((self.config.height, self.config.width, 3), np.float32)

        for layer in self._layers:
            matrix = layer.trajectory.affine(time, layer.anchor)
            matrix[0, 2] += shake_x
            matrix[1, 2] += shake_y

            if layer.opaque:
                warped = cv2.warpAffine(
                    layer.texture, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101
                )
                frame[:] = warped[..., :3]
                continue

            warped = cv2.warpAffine(
                layer.texture, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
            )
            alpha = warped[..., 3:4]
            frame *= 1.0 - alpha
            frame += warped[..., :3] * alpha

        return np.clip(frame, 0.0, 1.0, out=frame)

    def render_times(self, times: np.ndarray | list[float]) -> np.ndarray:
        """Render several instants at once; returns (N, H, W, 3) float32 RGB in [0, 1]."""
        return np.stack([self.render(float(time)) for time in times])
