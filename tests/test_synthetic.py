"""Procedural scenes: determinism, textures, layers and motion."""

from __future__ import annotations

import numpy as np
import pytest

from spikedeblur.data.synthetic import SCENE_PRESETS, ProceduralScene, SceneConfig
from spikedeblur.errors import InvalidInputError


def test_scene_same_seed_same_frames():
    first = ProceduralScene(SCENE_PRESETS["test"], seed=11).render(0.7)
    second = ProceduralScene(SCENE_PRESETS["test"], seed=11).render(0.7)

    np.testing.assert_array_equal(first, second)


def test_scene_different_seeds_differ():
    first = ProceduralScene(SCENE_PRESETS["test"], seed=1).render(0.0)
    second = ProceduralScene(SCENE_PRESETS["test"], seed=2).render(0.0)

    assert np.abs(first - second).mean() > 0.05


def test_scene_frame_shape_and_range():
    config = SceneConfig(height=48, width=80, num_layers=3)
    frame = ProceduralScene(config, seed=0).render(1.5)

    assert frame.shape == (48, 80, 3)
    assert frame.dtype == np.float32
    assert frame.min() >= 0.0
    assert frame.max() <= 1.0


def test_scene_is_textured_and_coloured():
    frame = ProceduralScene(SCENE_PRESETS["train"], seed=5).render(0.0)

    gradient = np.abs(np.diff(frame, axis=1)).mean()
    channel_spread = np.abs(frame[..., 0] - frame[..., 2]).mean()
    assert gradient > 0.01
    assert channel_spread > 0.02
    assert frame.std() > 0.08


def test_scene_moves_over_time():
    scene = ProceduralScene(SCENE_PRESETS["test"], seed=3)

    small_step = np.abs(scene.render(0.0) - scene.render(0.01)).mean()
    large_step = np.abs(scene.render(0.0) - scene.render(1.0)).mean()
    assert large_step > 0.02
    assert small_step < large_step


def test_scene_motion_is_continuous():
    scene = ProceduralScene(SCENE_PRESETS["test"], seed=4)
    times = np.linspace(0.0, 1.0, 9)
    frames = scene.render_times(times)

    steps = np.abs(np.diff(frames, axis=0)).mean(axis=(1, 2, 3))
    assert steps.max() < 4 * np.median(steps) + 1e-3


def test_scene_has_independent_layer_motion():
    # Independent motions cannot be undone by one global shift: after aligning the whole frame by
    # the best integer translation, a residual remains.
    scene = ProceduralScene(SceneConfig(height=64, width=64, num_layers=4, shake_amplitude=0.0), seed=9)
    start, end = scene.render(0.0), scene.render(1.0)

    best = min(
        np.abs(np.roll(start, (dy, dx), axis=(0, 1))[8:-8, 8:-8] - end[8:-8, 8:-8]).mean()
        for dy in range(-8, 9)
        for dx in range(-8, 9)
    )
    assert best > 0.01


def test_scene_camera_shake_changes_offset():
    scene = ProceduralScene(SceneConfig(shake_amplitude=4.0), seed=2)
    offsets = np.array([scene.camera_offset(time) for time in np.linspace(0, 5, 11)])

    assert np.ptp(offsets, axis=0).max() > 0.5


def test_scene_without_shake_has_zero_offset():
    scene = ProceduralScene(SceneConfig(shake_amplitude=0.0), seed=2)

    assert scene.camera_offset(3.3) == (0.0, 0.0)


@pytest.mark.parametrize(
    "overrides",
    [{"num_layers": 2}, {"height": 8}, {"max_speed": -1.0}, {"max_zoom": 0.9}, {"shake_amplitude": float("nan")}],
)
def test_scene_config_rejects_bad_values(overrides):
    with pytest.raises(InvalidInputError):
        SceneConfig(**overrides)
