"""PSNR/SSIM against scikit-image (test-only dependency) and sequence evaluation in the library."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from spikedeblur.errors import InvalidInputError
from spikedeblur.evaluation import (
    EvaluationResult,
    evaluate_sequence,
    evaluate_sequences,
    psnr,
    rgb_to_y,
    score_frame,
    ssim,
    to_float255,
)

skimage_metrics = pytest.importorskip("skimage.metrics")


def _image_pair(seed: int, height: int, width: int, noise: int = 20) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    clean = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    noisy = np.clip(clean.astype(np.int16) + rng.integers(-noise, noise + 1, clean.shape), 0, 255).astype(np.uint8)
    return clean, noisy


def _skimage_ssim(a: np.ndarray, b: np.ndarray, **kwargs) -> float:
    return skimage_metrics.structural_similarity(
        a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255, **kwargs
    )


@pytest.mark.parametrize(("height", "width"), [(11, 11), (64, 64), (37, 53), (120, 97)])
def test_ssim_rgb_matches_skimage(height, width):
    a, b = _image_pair(seed=height, height=height, width=width)

    expected = _skimage_ssim(a, b, channel_axis=2)

    assert ssim(a, b) == pytest.approx(expected, abs=1e-9)


def test_ssim_y_matches_skimage_on_luma():
    a, b = _image_pair(seed=1, height=48, width=80)

    expected = _skimage_ssim(rgb_to_y(a.astype(np.float64)), rgb_to_y(b.astype(np.float64)))

    assert ssim(a, b, y_channel=True) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("y_channel", [False, True])
def test_psnr_matches_skimage(y_channel):
    a, b = _image_pair(seed=2, height=40, width=30)
    if y_channel:
        expected = skimage_metrics.peak_signal_noise_ratio(
            rgb_to_y(a.astype(np.float64)), rgb_to_y(b.astype(np.float64)), data_range=255
        )
    else:
        expected = skimage_metrics.peak_signal_noise_ratio(a, b, data_range=255)

    assert psnr(a, b, y_channel=y_channel) == pytest.approx(expected, abs=1e-9)


def test_bt601_luma_of_reference_colours():
    colours = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255]]], dtype=np.float64)

    luma = rgb_to_y(colours)[0]

    assert luma == pytest.approx([16.0, 235.0, 16 + 65.481, 16 + 128.553, 16 + 24.966])


def test_identical_images_score_perfectly():
    a, _ = _image_pair(seed=3, height=20, width=20)

    assert math.isinf(psnr(a, a))
    assert ssim(a, a) == pytest.approx(1.0)


def test_crop_border_equals_manual_crop():
    a, b = _image_pair(seed=4, height=50, width=60)

    assert psnr(a, b, crop_border=4) == pytest.approx(psnr(a[4:-4, 4:-4], b[4:-4, 4:-4]))
    assert ssim(a, b, crop_border=4) == pytest.approx(ssim(a[4:-4, 4:-4], b[4:-4, 4:-4]))


def test_float_input_is_quantised_to_8_bit():
    a, b = _image_pair(seed=5, height=24, width=24)
    a_float = a.astype(np.float32) / 255 + 0.001  # shifts of under half a level vanish in rounding

    assert psnr(a_float, b) == pytest.approx(psnr(a, b))
    assert ssim(a_float, b) == pytest.approx(ssim(a, b))


def test_uint16_input_scores_like_uint8():
    a, b = _image_pair(seed=6, height=24, width=24)

    assert psnr(a.astype(np.uint16) * 257, b.astype(np.uint16) * 257) == pytest.approx(psnr(a, b))
    assert ssim(a.astype(np.uint16) * 257, b.astype(np.uint16) * 257) == pytest.approx(ssim(a, b))


def test_to_float255_rejects_integer_types():
    with pytest.raises(InvalidInputError, match="int32"):
        to_float255(np.zeros((2, 2, 3), dtype=np.int32))


@pytest.mark.parametrize(
    ("a_shape", "b_shape", "kwargs", "message"),
    [
        ((20, 20, 3), (20, 21, 3), {}, "differ in shape"),
        ((20, 20, 4), (20, 20, 4), {}, "is not"),
        ((20, 20, 3), (20, 20, 3), {"crop_border": 10}, "leaves nothing"),
        ((20, 20, 3), (20, 20, 3), {"crop_border": -1}, "negative"),
        ((10, 40, 3), (10, 40, 3), {}, "at least 11x11"),
    ],
)
def test_invalid_inputs_rejected(a_shape, b_shape, kwargs, message):
    with pytest.raises(InvalidInputError, match=message):
        ssim(np.zeros(a_shape, np.uint8), np.zeros(b_shape, np.uint8), **kwargs)


def test_tensor_sequences_match_numpy_frames():
    generator = torch.Generator().manual_seed(0)
    truth = torch.rand(2, 3, 3, 24, 32, generator=generator)
    prediction = (truth + 0.05 * torch.randn(truth.shape, generator=generator)).clamp(0, 1)

    from_tensor = evaluate_sequences(prediction, truth)
    first_frame = score_frame(
        prediction[0, 0].permute(1, 2, 0).numpy(), truth[0, 0].permute(1, 2, 0).numpy()
    )

    assert [s.name for s in from_tensor.sequences] == ["0", "1"]
    assert len(from_tensor.frames) == 6
    assert from_tensor.sequences[0].frames[0].prediction == first_frame


def test_summary_is_mean_of_sequence_means():
    long_pair = [_image_pair(seed=10 + i, height=16, width=16, noise=5) for i in range(4)]
    short_pair = [_image_pair(seed=20, height=16, width=16, noise=40)]

    result = evaluate_sequences(
        [[b for _, b in long_pair], [b for _, b in short_pair]],
        [[a for a, _ in long_pair], [a for a, _ in short_pair]],
        names=["long", "short"],
    )

    expected_psnr = (np.mean([psnr(b, a) for a, b in long_pair]) + psnr(short_pair[0][1], short_pair[0][0])) / 2
    assert isinstance(result, EvaluationResult)
    assert result.mean.psnr == pytest.approx(expected_psnr)
    assert result.baseline_mean is None


def test_baseline_scored_against_ground_truth():
    truth, blurry = _image_pair(seed=30, height=16, width=16, noise=30)
    _, prediction = _image_pair(seed=30, height=16, width=16, noise=3)

    sequence = evaluate_sequence([prediction], [truth], baselines=[blurry])

    assert sequence.baseline_mean.psnr == pytest.approx(psnr(blurry, truth))
    assert sequence.mean.psnr > sequence.baseline_mean.psnr


def test_frame_count_mismatch_names_both_counts():
    frames = [np.zeros((16, 16, 3), np.uint8)] * 5

    with pytest.raises(InvalidInputError, match="prediction has 3 frames but the ground truth has 5"):
        evaluate_sequence(frames[:3], frames)
    with pytest.raises(InvalidInputError, match="prediction has 5 frames but the ground truth has 2"):
        evaluate_sequence(frames, frames[:2])


def test_baseline_count_mismatch_is_rejected():
    frames = [np.zeros((16, 16, 3), np.uint8)] * 4

    with pytest.raises(InvalidInputError, match="blurry input ended after 2 frames"):
        evaluate_sequence(frames, frames, baselines=frames[:2])
    with pytest.raises(InvalidInputError, match="blurry input has 6 frames but the ground truth has 4"):
        evaluate_sequence(frames, frames, baselines=frames + frames[:2])


def test_frame_size_mismatch_names_frame_and_sizes():
    truth = [np.zeros((16, 16, 3), np.uint8)] * 2
    prediction = [truth[0], np.zeros((16, 20, 3), np.uint8)]

    with pytest.raises(InvalidInputError, match="frame 1: the prediction is 20x16 but the ground truth is 16x16"):
        evaluate_sequence(prediction, truth)


def test_even_size_rounding_is_tolerated():
    truth, prediction = _image_pair(seed=40, height=33, width=45)
    padded = np.pad(prediction, ((0, 1), (0, 1), (0, 0)), mode="edge")
    cropped = prediction[:32, :44]

    from_padded = evaluate_sequence([padded], [truth])
    from_cropped = evaluate_sequence([cropped], [truth])

    assert from_padded.mean.psnr == pytest.approx(psnr(prediction, truth))
    assert from_cropped.mean.psnr == pytest.approx(psnr(cropped, truth[:32, :44]))


def test_one_pixel_on_even_size_is_rejected():
    truth = [np.zeros((32, 32, 3), np.uint8)]

    with pytest.raises(InvalidInputError, match="prediction is 33x32"):
        evaluate_sequence([np.zeros((32, 33, 3), np.uint8)], truth)


def test_empty_sequence_is_rejected():
    with pytest.raises(InvalidInputError, match="no frames"):
        evaluate_sequence([], [])
