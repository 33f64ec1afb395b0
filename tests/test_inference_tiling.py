"""Clip and tile plans, blending weights, reflect padding and inference settings."""

from __future__ import annotations

import pytest
import torch

from spikedeblur.errors import InvalidInputError
from spikedeblur.inference.settings import PRESET_SETTINGS, InferenceSettings, settings_for_preset
from spikedeblur.inference.tiling import (
    EDGE_WEIGHT,
    blend_ramp,
    clip_weights,
    fade_length,
    padded_size,
    plan_tiles,
    reflect_indices,
    window_starts,
)


@pytest.mark.parametrize(
    ("length", "window", "overlap", "expected"),
    [
        (100, 18, 2, [0, 16, 32, 48, 64, 80, 82]),  # VRT's GoPro example
        (720, 192, 20, [0, 172, 344, 516, 528]),
        (10, 5, 0, [0, 5]),
        (10, 4, 0, [0, 4, 6]),
        (3, 8, 2, [0]),
        (8, 8, 2, [0]),
        (9, 8, 7, [0, 1]),
    ],
)
def test_window_starts_cover_axis(length, window, overlap, expected):
    starts = window_starts(length, window, overlap)

    assert starts == expected
    covered = set()
    for start in starts:
        covered.update(range(start, min(start + window, length)))
    assert covered == set(range(length))


def test_window_starts_rejects_overlap_not_below_window():
    with pytest.raises(ValueError, match="overlap"):
        window_starts(10, 4, 4)


@pytest.mark.parametrize("overlap", [1, 2, 5, 16, 20, 64])
def test_blend_ramps_cross_fade_in_middle(overlap):
    falling = blend_ramp(64, overlap=overlap, ramp_start=False, ramp_end=True)[-overlap:]
    rising = blend_ramp(64, overlap=overlap, ramp_start=True, ramp_end=False)[:overlap]
    fade = fade_length(overlap)
    margin = (overlap - fade) // 2
    middle = slice(margin, overlap - margin)

    torch.testing.assert_close(falling, rising.flip(0))
    torch.testing.assert_close(falling[middle] + rising[middle], torch.ones(overlap - 2 * margin))
    assert float(rising.min()) > 0.0
    assert torch.all(rising[1:] >= rising[:-1])
    assert float(rising[0]) == pytest.approx(EDGE_WEIGHT if margin > 0 else rising[0])


def test_fade_length_quarter_of_overlap():
    assert fade_length(2) == 2
    assert fade_length(16) == 4
    assert fade_length(20) == 5
    assert fade_length(64) == 16


def test_blend_ramp_overlap_zero_is_all_ones():
    weights = blend_ramp(16, overlap=0, ramp_start=True, ramp_end=True)

    assert torch.equal(weights, torch.ones(16))


def test_blend_ramp_window_shorter_than_ramps_stays_positive():
    weights = blend_ramp(6, overlap=10, ramp_start=True, ramp_end=True)

    assert weights.shape == (6,)
    assert float(weights.min()) > 0.0
    torch.testing.assert_close(weights, weights.flip(0))


def test_reflect_indices_pads_without_repeating_edge():
    assert reflect_indices(4, 10).tolist() == [0, 1, 2, 3, 2, 1, 0, 1, 2, 3]
    assert reflect_indices(1, 3).tolist() == [0, 0, 0]
    assert reflect_indices(5, 5).tolist() == [0, 1, 2, 3, 4]


def test_padded_size_uses_multiple_and_minimum():
    assert padded_size(50, multiple=8, minimum=64) == 64
    assert padded_size(65, multiple=8, minimum=64) == 72
    assert padded_size(128, multiple=8, minimum=64) == 128


def test_plan_tiles_covers_canvas_with_model_sizes():
    plan = plan_tiles(270, 481, tile=128, overlap=20, multiple=8, minimum=64)

    assert (plan.canvas_height, plan.canvas_width) == (272, 488)
    assert (plan.tile_height, plan.tile_width) == (128, 128)
    assert plan.row_starts == (0, 108, 144)
    assert plan.column_starts[-1] == 488 - 128
    assert len(plan) == len(plan.row_starts) * len(plan.column_starts)


def test_plan_tiles_whole_frame():
    whole = plan_tiles(50, 70, tile=0, overlap=20, multiple=8, minimum=64)
    large = plan_tiles(50, 70, tile=256, overlap=20, multiple=8, minimum=64)

    for plan in (whole, large):
        assert (plan.tile_height, plan.tile_width) == (64, 72)
        assert len(plan) == 1
        only_tile = next(plan.tiles())
        assert torch.equal(plan.weights(only_tile), torch.ones(64, 72))


def test_plan_tiles_weights_ramp_only_interior_edges():
    plan = plan_tiles(128, 128, tile=64, overlap=16, multiple=8, minimum=64)
    tiles = list(plan.tiles())
    top_left = plan.weights(tiles[0])

    assert float(top_left[0, 0]) == 1.0
    assert float(top_left[-1, -1]) == pytest.approx(EDGE_WEIGHT**2)
    assert float(top_left.min()) > 0.0


@pytest.mark.parametrize(
    ("tile", "overlap", "message"),
    [
        (100, 10, "multiple of 8"),
        (32, 10, "at least 64"),
        (64, 64, "smaller than the tile"),
        (-8, 0, "negative"),
        (64, -1, "negative"),
    ],
)
def test_plan_tiles_rejects_sizes_model_cannot_run(tile, overlap, message):
    with pytest.raises(InvalidInputError, match=message):
        plan_tiles(200, 200, tile=tile, overlap=overlap, multiple=8, minimum=64)


def test_clip_weights_ramp_between_clips_only():
    first = clip_weights(0, 8, overlap=2, total_frames=None)
    middle = clip_weights(6, 8, overlap=2, total_frames=None)
    last = clip_weights(12, 8, overlap=2, total_frames=20)

    assert float(first[0]) == 1.0
    assert float(first[-1]) < 1.0
    assert float(middle[0]) < 1.0
    assert float(middle[-1]) < 1.0
    assert float(last[0]) < 1.0
    assert float(last[-1]) == 1.0


def test_settings_reject_invalid_values():
    with pytest.raises(InvalidInputError, match="clip length"):
        InferenceSettings(clip_len=0)
    with pytest.raises(InvalidInputError, match="clip overlap"):
        InferenceSettings(clip_len=4, clip_overlap=4)
    with pytest.raises(InvalidInputError, match="tile overlap"):
        InferenceSettings(tile=64, tile_overlap=64)


def test_settings_for_preset_applies_overrides_and_fits_overlaps():
    defaults = settings_for_preset("vrt-spike")
    short = settings_for_preset("vrt-spike", clip_len=2, tile=64)
    custom = settings_for_preset("not-a-preset", clip_overlap=0)

    assert defaults == PRESET_SETTINGS["vrt-spike"]
    assert (short.clip_len, short.clip_overlap) == (2, 1)
    assert (short.tile, short.tile_overlap) == (64, 20)
    assert custom.clip_overlap == 0
    assert custom.clip_len == PRESET_SETTINGS["vrt-spike"].clip_len


@pytest.mark.parametrize("preset", sorted(PRESET_SETTINGS))
def test_preset_defaults_are_model_sizes(preset):
    settings = PRESET_SETTINGS[preset]

    assert settings.tile % 8 == 0
    assert settings.tile >= 64
    assert 12 <= settings.clip_len <= 18
    assert settings.clip_overlap == 2
