"""Integrate-and-fire simulator, blur synthesis and exposure timing."""

from __future__ import annotations

import numpy as np
import pytest

from spikedeblur.data.simulate import (
    ExposureConfig,
    FrameSimulator,
    IntegrateAndFire,
    SpikeSimulationConfig,
    blur_frames,
    centre_frame,
    exposure_centre_time,
    linear_to_srgb,
    rgb_to_luma,
    simulate_frames,
    simulate_scene,
    spike_size,
    srgb_to_linear,
    upsample_frames,
)
from spikedeblur.data.synthetic import SCENE_PRESETS, ProceduralScene
from spikedeblur.errors import InvalidInputError


@pytest.mark.parametrize(("intensity", "gain", "threshold"), [(0.2, 1.0, 2.0), (0.8, 1.0, 2.0), (0.5, 1.5, 1.0)])
def test_firing_rate_matches_gain_intensity_over_threshold(intensity, gain, threshold):
    neuron = IntegrateAndFire(16, 16, SpikeSimulationConfig(threshold=threshold, gain=gain, seed=1))
    ticks = 2000

    spikes = neuron.run(np.full((ticks, 16, 16), intensity, np.float32))

    expected = gain * intensity / threshold
    per_pixel = spikes.mean(axis=0)
    assert abs(per_pixel.mean() - expected) < 0.002
    # Reset by subtraction makes each pixel's count exact to within one spike.
    assert np.abs(per_pixel - expected).max() <= 1.0 / ticks + 1e-9


def test_firing_rate_saturates_at_one_spike_per_tick():
    neuron = IntegrateAndFire(8, 8, SpikeSimulationConfig(threshold=0.5, gain=1.0))

    spikes = neuron.run(np.ones((50, 8, 8), np.float32))

    assert spikes[1:].min() == 1
    assert neuron.potential.max() < 0.5


def test_reset_by_subtraction_keeps_residual_charge():
    config = SpikeSimulationConfig(threshold=1.0, gain=1.0, random_initial_potential=False)
    neuron = IntegrateAndFire(8, 8, config)
    intensity = np.full((8, 8), 0.75, np.float32)

    fired = [int(neuron.step(intensity)[0, 0]) for _ in range(4)]
    potentials_after = neuron.potential[0, 0]

    # 0.75 -> 1.5 fires and keeps 0.5 -> 1.25 fires and keeps 0.25 -> 1.0 fires and keeps 0.0.
    assert fired == [0, 1, 1, 1]
    assert potentials_after == pytest.approx(0.0, abs=1e-6)
    neuron.step(intensity)
    assert neuron.potential[0, 0] == pytest.approx(0.75, abs=1e-6)


def test_random_initial_potential_spreads_first_spikes():
    neuron = IntegrateAndFire(32, 32, SpikeSimulationConfig(threshold=2.0, seed=3))

    assert 0.0 <= neuron.potential.min()
    assert neuron.potential.max() < 2.0
    assert neuron.potential.std() > 0.4


def test_simulator_same_seed_same_spikes():
    intensities = np.random.default_rng(0).random((20, 8, 8), dtype=np.float32)
    first = IntegrateAndFire(8, 8, SpikeSimulationConfig(seed=5)).run(intensities)
    second = IntegrateAndFire(8, 8, SpikeSimulationConfig(seed=5)).run(intensities)

    np.testing.assert_array_equal(first, second)


def test_noise_adds_spurious_spikes_in_the_dark():
    neuron = IntegrateAndFire(32, 32, SpikeSimulationConfig(noise_rate=0.01, seed=2))

    spikes = neuron.run(np.zeros((200, 32, 32), np.float32))

    assert abs(spikes.mean() - 0.01) < 0.002


def test_threshold_mismatch_varies_pixel_rates():
    config = SpikeSimulationConfig(threshold=2.0, threshold_mismatch=0.1, seed=4)
    neuron = IntegrateAndFire(16, 16, config)

    rates = neuron.run(np.full((400, 16, 16), 0.5, np.float32)).mean(axis=0)

    assert rates.std() > 0.01
    assert abs(rates.mean() - 0.25) < 0.02


@pytest.mark.parametrize(
    "overrides",
    [{"threshold": 0.0}, {"gain": -1.0}, {"noise_rate": 1.5}, {"threshold_mismatch": 0.7}, {"threshold": float("inf")}],
)
def test_spike_config_rejects_bad_values(overrides):
    with pytest.raises(InvalidInputError):
        SpikeSimulationConfig(**overrides)


def test_intensity_map_of_wrong_shape_is_rejected():
    neuron = IntegrateAndFire(8, 8)

    with pytest.raises(InvalidInputError, match="8x8"):
        neuron.step(np.zeros((8, 16), np.float32))


def test_luma_uses_bt601_weights():
    pixel = np.array([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]], np.float32)

    np.testing.assert_allclose(rgb_to_luma(pixel)[0], [0.299, 0.587, 0.114], rtol=1e-6)


def _ramp_frames(count: int, height: int = 16, width: int = 16) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.random((height, width, 3), dtype=np.float32) for _ in range(count)]


def test_blurry_frame_is_mean_of_its_sharp_frames():
    frames = _ramp_frames(12)
    exposure = ExposureConfig(ticks_per_frame=6, spike_scale=1.0)

    results = list(simulate_frames(frames, exposure=exposure))

    assert len(results) == 2
    np.testing.assert_allclose(results[0].blurry, np.mean(frames[:6], axis=0), atol=1e-6)
    np.testing.assert_allclose(results[1].blurry, np.mean(frames[6:], axis=0), atol=1e-6)


def test_blurry_frame_averages_only_exposure_ticks():
    frames = _ramp_frames(8)
    exposure = ExposureConfig(ticks_per_frame=8, exposure_ticks=5, spike_scale=1.0)

    result = next(simulate_frames(frames, exposure=exposure))

    # The 5 exposed ticks are centred in the 8-tick interval: ticks 1 to 5.
    np.testing.assert_allclose(result.blurry, np.mean(frames[1:6], axis=0), atol=1e-6)
    np.testing.assert_array_equal(result.sharp, frames[3])
    assert exposure.frame_ticks(2) == (17, 21)
    assert result.spikes.shape == (8, 16, 16)


def test_ground_truth_is_window_centre_for_odd_window():
    frames = _ramp_frames(14)
    exposure = ExposureConfig(ticks_per_frame=7, spike_scale=1.0)

    results = list(simulate_frames(frames, exposure=exposure))

    np.testing.assert_array_equal(results[0].sharp, frames[3])
    np.testing.assert_array_equal(results[1].sharp, frames[10])


def test_ground_truth_for_even_window_averages_middle_ticks():
    frames = np.stack(_ramp_frames(4))

    np.testing.assert_allclose(centre_frame(frames), (frames[1] + frames[2]) / 2, atol=1e-6)


def test_procedural_ground_truth_rendered_at_exposure_centre():
    scene = ProceduralScene(SCENE_PRESETS["test"], seed=8)
    exposure = ExposureConfig(ticks_per_frame=8, exposure_ticks=6, spike_scale=0.5)

    results = list(simulate_scene(scene, 2, exposure=exposure))

    assert exposure_centre_time(1, exposure) == pytest.approx(1.5)
    np.testing.assert_array_equal(results[1].sharp, scene.render(1.5))
    ticks = scene.render_times(1 + (np.arange(1, 7) + 0.5) / 8)
    np.testing.assert_allclose(results[1].blurry, ticks.mean(axis=0), atol=1e-6)
    assert results[1].spikes.shape == (8, 32, 32)


def test_spikes_follow_scene_brightness():
    scene = ProceduralScene(SCENE_PRESETS["test"], seed=6)
    exposure = ExposureConfig(ticks_per_frame=64, spike_scale=1.0)

    result = next(simulate_scene(scene, 1, exposure=exposure, spikes=SpikeSimulationConfig(threshold=1.0)))

    rate = result.spikes.mean(axis=0)
    correlation = np.corrcoef(rate.ravel(), rgb_to_luma(result.blurry).ravel())[0, 1]
    assert correlation > 0.95


def test_partial_last_interval_is_dropped(caplog):
    exposure = ExposureConfig(ticks_per_frame=4, spike_scale=1.0)

    with caplog.at_level("INFO", logger="spikedeblur.data.simulate"):
        results = list(simulate_frames(_ramp_frames(10), exposure=exposure))

    assert len(results) == 2
    assert "dropped the last 2 spike ticks" in caplog.text


def test_frame_of_wrong_size_is_rejected():
    simulator = FrameSimulator(16, 16, exposure=ExposureConfig(spike_scale=1.0))

    with pytest.raises(InvalidInputError, match="16x16x3"):
        simulator.push(np.zeros((16, 8, 3), np.float32))


def test_linear_light_blur_is_brighter_than_display_blur():
    black = np.zeros((1, 4, 4, 3), np.float32)
    white = np.ones((1, 4, 4, 3), np.float32)
    frames = np.concatenate([black, white])

    display = blur_frames(frames)
    linear = blur_frames(frames, linear_light=True)

    assert display.mean() == pytest.approx(0.5)
    assert linear.mean() == pytest.approx(float(linear_to_srgb(np.array(0.5))), abs=1e-6)
    assert linear.mean() > 0.7


def test_srgb_round_trip():
    values = np.linspace(0, 1, 101, dtype=np.float32)

    np.testing.assert_allclose(linear_to_srgb(srgb_to_linear(values)), values, atol=1e-5)


def test_spike_size_is_fraction_of_rgb_size():
    assert spike_size(272, 640, 0.5) == (136, 320)
    assert spike_size(128, 128, 1.0) == (128, 128)


@pytest.mark.parametrize(("height", "width", "scale"), [(64, 64, 0.0), (64, 64, 1.5), (20, 20, 0.25), (18, 18, 0.5)])
def test_spike_size_rejects_bad_scales(height, width, scale):
    with pytest.raises(InvalidInputError):
        spike_size(height, width, scale)


def test_upsampling_blends_between_frames():
    frames = [np.full((2, 2, 3), value, np.float32) for value in (0.0, 1.0, 0.5)]

    upsampled = list(upsample_frames(frames, 4))

    values = [float(frame[0, 0, 0]) for frame in upsampled]
    assert values == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0, 0.875, 0.75, 0.625, 0.5])


def test_upsampling_factor_one_is_identity():
    frames = _ramp_frames(3)

    upsampled = list(upsample_frames(frames, 1))

    assert len(upsampled) == 3
    np.testing.assert_array_equal(upsampled[1], frames[1])


@pytest.mark.parametrize("overrides", [{"ticks_per_frame": 0}, {"exposure_ticks": 9}, {"exposure_ticks": 0}])
def test_exposure_config_rejects_bad_values(overrides):
    with pytest.raises(InvalidInputError):
        ExposureConfig(**{"ticks_per_frame": 8, **overrides})
