"""Closed-form and equivalence checks of the VRT building blocks."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from spikedeblur.layers.deform_conv import _torchvision_deform_conv2d, modulated_deform_conv2d
from spikedeblur.layers.flow_warp import flow_warp, flow_warp_nearest4
from spikedeblur.layers.spynet import IMAGENET_MEAN, IMAGENET_STD, SpyNet
from spikedeblur.layers.window_attention import (
    SHIFT_MASK_VALUE,
    WindowAttention,
    effective_window,
    relative_position_index,
    shift_mask,
    shifted_window_labels,
    shifted_windows,
    sine_position_encoding,
    window_partition,
    window_reverse,
)


def test_relative_position_index_closed_form():
    window = (2, 3, 4)
    index = relative_position_index(window)
    coords = [(d, h, w) for d in range(2) for h in range(3) for w in range(4)]

    assert index.shape == (24, 24)
    assert index.dtype == torch.int64
    for i, (d1, h1, w1) in enumerate(coords):
        for j, (d2, h2, w2) in enumerate(coords):
            expected = (d1 - d2 + 1) * 5 * 7 + (h1 - h2 + 2) * 7 + (w1 - w2 + 3)
            assert index[i, j] == expected


def test_relative_position_index_covers_table():
    index = relative_position_index((6, 8, 8))
    assert index.min() == 0
    assert index.max() == 11 * 15 * 15 - 1


def test_sine_position_encoding_closed_form():
    height, width, channels = 8, 8, 16
    encoding = sine_position_encoding(height, width, channels)
    features = channels // 2

    assert encoding.shape == (1, height * width, channels)
    for row, col in [(0, 0), (3, 5), (7, 7)]:
        token = row * width + col
        for c in range(channels):
            axis_position = row + 1 if c < features else col + 1
            i = c % features
            angle = axis_position / (8 + 1e-6) * 2 * math.pi / 10000 ** (2 * (i // 2) / features)
            expected = math.sin(angle) if i % 2 == 0 else math.cos(angle)
            assert encoding[0, token, c].item() == pytest.approx(expected, abs=1e-5)


def test_sine_position_encoding_rejects_odd_width():
    with pytest.raises(ValueError, match="divisible by 4"):
        sine_position_encoding(8, 8, 18)


def test_window_partition_round_trip_and_order():
    x = torch.arange(2 * 4 * 6 * 2).float().view(1, 2, 4, 6, 2)
    windows = window_partition(x, (2, 2, 3))

    assert windows.shape == (4, 12, 2)
    # the first window contains d=0..1, h=0..1, w=0..2, flattened d-major, then h, then w
    expected_first = torch.stack([x[0, d, h, w] for d in range(2) for h in range(2) for w in range(3)])
    assert torch.equal(windows[0], expected_first)
    assert torch.equal(window_reverse(windows, (2, 2, 3), (2, 4, 6)), x)


def test_effective_window_shrinks_and_drops_shift():
    window, shift = effective_window((6, 16, 8), (6, 8, 8), (3, 4, 4))
    assert window == (6, 8, 8)
    assert shift == (0, 4, 0)


def test_shift_mask_values_and_regions():
    labels = shifted_window_labels((2, 16, 16), (2, 8, 8), (0, 4, 4))
    mask = shift_mask(labels, torch.float32)

    assert mask.shape == (4, 128, 128)
    assert set(mask.unique().tolist()) <= {0.0, SHIFT_MASK_VALUE}
    # the window at the top-left contains one region only; the bottom-right mixes the most
    assert torch.all(mask[0] == 0)
    assert torch.any(mask[3] == SHIFT_MASK_VALUE)
    assert torch.all(mask.diagonal(dim1=1, dim2=2) == 0)


def test_window_attention_matches_explicit_softmax():
    torch.manual_seed(0)
    attention = WindowAttention(16, (2, 4, 4), 2, mutual=False).eval()
    x = torch.randn(3, 32, 16)

    with torch.no_grad():
        out = attention(x)
        q, k, v = attention.qkv_self(x).view(3, 32, 3, 2, 8).permute(2, 0, 3, 1, 4)
        logits = q @ k.transpose(-1, -2) / math.sqrt(8) + attention.relative_bias(32).unsqueeze(0)
        expected = attention.proj((logits.softmax(-1) @ v).transpose(1, 2).reshape(3, 32, 16))

    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def test_shifted_attention_matches_per_window_masks():
    torch.manual_seed(0)
    attention = WindowAttention(16, (2, 4, 4), 2, mutual=False).eval()
    padded, window, shift = (2, 12, 8), (2, 4, 4), (0, 2, 2)
    x = torch.randn(2 * 6, 32, 16)
    masks = shift_mask(shifted_window_labels(padded, window, shift), torch.float32)

    with torch.no_grad():
        out = attention(x, shifted_windows(padded, window, shift))
        q, k, v = attention.qkv_self(x).view(12, 32, 3, 2, 8).permute(2, 0, 3, 1, 4)
        logits = q @ k.transpose(-1, -2) / math.sqrt(8) + attention.relative_bias(32).unsqueeze(0)
        logits = logits + masks.repeat(2, 1, 1).unsqueeze(1)
        expected = attention.proj((logits.softmax(-1) @ v).transpose(1, 2).reshape(12, 32, 16))

    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def test_shifted_windows_groups_by_pattern():
    groups = shifted_windows((2, 16, 24), (2, 8, 8), (0, 4, 4))
    labels = shifted_window_labels((2, 16, 24), (2, 8, 8), (0, 4, 4))

    # 2 x 3 windows: interior, last column, last row, bottom-right corner
    assert groups.sizes == (2, 2, 1, 1)
    assert torch.equal(groups.order[groups.inverse], torch.arange(6))
    run_start = 0
    for pattern, size in enumerate(groups.sizes):
        for window in groups.order[run_start : run_start + size]:
            assert torch.equal(shift_mask(labels[window : window + 1], torch.float32), shift_mask(groups.labels[pattern : pattern + 1], torch.float32))
        run_start += size


def test_window_attention_chunking_is_exact(monkeypatch):
    torch.manual_seed(0)
    attention = WindowAttention(16, (2, 4, 4), 2, mutual=True).eval()
    attention.position_bias = sine_position_encoding(4, 4, 16)
    x = torch.randn(8, 32, 16)
    groups = shifted_windows((2, 8, 8), (2, 4, 4), (0, 2, 2))

    with torch.no_grad():
        whole = attention(x, groups)
        monkeypatch.setattr("spikedeblur.layers.window_attention.ATTENTION_CHUNK_ELEMENTS", 2 * 32 * 32)
        chunked = attention(x, groups)

    torch.testing.assert_close(chunked, whole, atol=1e-6, rtol=1e-6)


def test_flow_warp_zero_flow_is_identity():
    x = torch.rand(2, 3, 16, 20)
    assert torch.allclose(flow_warp(x, torch.zeros(2, 2, 16, 20)), x, atol=1e-6)


def test_flow_warp_integer_flow_shifts():
    x = torch.rand(1, 3, 16, 20)
    flow = torch.zeros(1, 2, 16, 20)
    flow[:, 0] = 2.0  # sample 2 pixels to the right
    flow[:, 1] = -1.0  # and one row up

    warped = flow_warp(x, flow)

    assert torch.allclose(warped[..., 1:, :18], x[..., :15, 2:], atol=1e-6)
    # outside the map reads zeros (up to the rounding of the normalised grid)
    assert warped[..., 0, :].abs().max() < 1e-6
    assert warped[..., :, 18:].abs().max() < 1e-6


def test_flow_warp_keeps_low_precision_dtype_exact():
    x = torch.rand(1, 4, 64, 200)
    flow = torch.rand(1, 2, 64, 200) * 4

    exact = flow_warp(x, flow)
    half = flow_warp(x.bfloat16(), flow.bfloat16())

    assert half.dtype == torch.bfloat16
    # only the bf16 rounding of input, flow and output remains: no pixel-sized grid errors
    assert (half.float() - exact).abs().max() < 0.1


def test_nearest4_integer_flow_gives_four_equal_copies():
    x = torch.rand(1, 3, 8, 8)
    flow = torch.zeros(1, 2, 8, 8)
    flow[:, 0] = 1.0

    warped = flow_warp_nearest4(x, flow)

    assert warped.shape == (1, 12, 8, 8)
    for corner in range(4):
        assert torch.equal(warped[:, 3 * corner : 3 * corner + 3, :, :7], x[..., 1:])
        assert torch.all(warped[:, 3 * corner : 3 * corner + 3, :, 7] == 0)


def test_nearest4_fractional_flow_order():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    flow = torch.full((1, 2, 4, 4), 0.5)

    warped = flow_warp_nearest4(x, flow)

    # at (0, 0): floor/ceil x = 0/1, floor/ceil y = 0/1
    assert warped[0, :, 0, 0].tolist() == [x[0, 0, 0, 0], x[0, 0, 1, 0], x[0, 0, 0, 1], x[0, 0, 1, 1]]


def test_deform_conv_zero_offset_equals_conv():
    x = torch.randn(2, 8, 10, 12)
    weight = torch.randn(6, 8, 3, 3)
    bias = torch.randn(6)
    offset = torch.zeros(2, 2 * 2 * 9, 10, 12)
    mask = torch.ones(2, 2 * 9, 10, 12)

    out = modulated_deform_conv2d(x, offset, mask, weight, bias, use_torchvision=False)

    torch.testing.assert_close(out, F.conv2d(x, weight, bias, padding=1), atol=1e-4, rtol=1e-4)


def test_deform_conv_integer_offset_and_mask():
    x = torch.randn(1, 4, 10, 12)
    weight = torch.randn(5, 4, 3, 3)
    offset = torch.zeros(1, 18, 10, 12)
    offset[:, 1::2] = 1.0  # every tap reads one pixel to the right (dx slots)
    mask = torch.full((1, 9, 10, 12), 0.5)

    out = modulated_deform_conv2d(x, offset, mask, weight, None, use_torchvision=False)
    shifted = F.pad(x[..., 1:], (0, 1))

    expected = 0.5 * F.conv2d(shifted, weight, padding=1)

    # column 0 differs by construction: its left tap reads x[..., 0], where the padded conv reads zero
    torch.testing.assert_close(out[..., 1:], expected[..., 1:], atol=1e-4, rtol=1e-4)


def test_deform_conv_grouped_weight():
    x = torch.randn(1, 8, 6, 6)
    weight = torch.randn(4, 4, 3, 3)
    offset = torch.zeros(1, 18, 6, 6)
    mask = torch.ones(1, 9, 6, 6)

    out = modulated_deform_conv2d(x, offset, mask, weight, None, use_torchvision=False)

    torch.testing.assert_close(out, F.conv2d(x, weight, padding=1, groups=2), atol=1e-4, rtol=1e-4)


def test_deform_conv_chunks_are_exact(monkeypatch):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, 8, 8, generator=generator)
    weight = torch.randn(5, 4, 3, 3, generator=generator)
    offset = torch.randn(3, 18, 8, 8, generator=generator) * 2
    mask = torch.rand(3, 9, 8, 8, generator=generator)

    whole = modulated_deform_conv2d(x, offset, mask, weight, None, use_torchvision=False)
    monkeypatch.setattr("spikedeblur.layers.deform_conv.COLUMN_CHUNK_ELEMENTS", 4 * 9 * 64)
    chunked = modulated_deform_conv2d(x, offset, mask, weight, None, use_torchvision=False)

    torch.testing.assert_close(chunked, whole, atol=1e-6, rtol=1e-6)


def test_deform_conv_matches_torchvision():
    if _torchvision_deform_conv2d() is None:
        pytest.skip("torchvision.ops.deform_conv2d does not import beside this torch build")
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, 8, 12, 10, generator=generator)
    weight = torch.randn(6, 8, 3, 3, generator=generator)
    bias = torch.randn(6, generator=generator)
    offset = torch.randn(2, 2 * 4 * 9, 12, 10, generator=generator) * 3
    mask = torch.rand(2, 4 * 9, 12, 10, generator=generator)

    ours = modulated_deform_conv2d(x, offset, mask, weight, bias, use_torchvision=False)
    theirs = modulated_deform_conv2d(x, offset, mask, weight, bias, use_torchvision=True)

    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)


def test_spynet_buffers_are_imagenet_constants():
    spynet = SpyNet()
    assert spynet.mean.flatten().tolist() == pytest.approx(IMAGENET_MEAN)
    assert spynet.std.flatten().tolist() == pytest.approx(IMAGENET_STD)
    assert "mean" not in spynet.state_dict()


def test_spynet_returns_four_scales_finest_first():
    torch.manual_seed(0)
    spynet = SpyNet((2, 3, 4, 5)).eval()
    ref, supp = torch.rand(2, 3, 72, 88), torch.rand(2, 3, 72, 88)

    with torch.no_grad():
        flows = spynet(ref, supp)

    assert [tuple(flow.shape) for flow in flows] == [(2, 2, 72, 88), (2, 2, 36, 44), (2, 2, 18, 22), (2, 2, 9, 11)]
    assert all(torch.isfinite(flow).all() for flow in flows)
