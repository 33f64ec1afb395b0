"""Spike encoder, temporal self-attention and cross-attention fusion, tested on their own."""

from __future__ import annotations

import pytest
import torch

from spikedeblur.errors import InvalidInputError
from spikedeblur.layers.cross_attention import CrossAttentionFusion, validate_window
from spikedeblur.layers.spike_encoder import ResidualBlock3D, SpikeEncoder3D, relative_rates
from spikedeblur.layers.temporal_attention import SpikeTemporalSA, sinusoidal_position_encoding

SHAPES = [(2, 64, 64), (6, 64, 96), (7, 128, 72)]


def _break_identity(fusion: CrossAttentionFusion, *, seed: int = 0) -> None:
    """Give the zero-initialised layers small random weights so the fusion depends on its context."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in (fusion.proj, fusion.mlp[-1]):
            layer.weight.copy_(torch.randn(layer.weight.shape, generator=generator) * 0.05)
            layer.bias.copy_(torch.randn(layer.bias.shape, generator=generator) * 0.05)


def _fusion_pair(window_a, window_b, *, dim=16, context_dim=8, heads=2):
    torch.manual_seed(0)
    first = CrossAttentionFusion(dim, context_dim=context_dim, num_heads=heads, window=window_a)
    _break_identity(first)
    second = CrossAttentionFusion(dim, context_dim=context_dim, num_heads=heads, window=window_b)
    second.load_state_dict(first.state_dict())
    return first, second


@pytest.mark.parametrize("frames,height,width", SHAPES)
def test_encoder_scales_keep_time(frames, height, width):
    encoder = SpikeEncoder3D(num_bins=4, channels=8)
    with torch.no_grad():
        features = encoder(torch.rand(1, frames, 4, height, width))

    assert len(features) == 4
    for index, feature in enumerate(features):
        assert tuple(feature.shape) == (1, 8, frames, height >> index, width >> index)
        assert torch.isfinite(feature).all()


def test_encoder_receptive_field_in_time():
    # Input projection + 2 residual blocks = 5 stacked 3×3×3 convolutions at scale 1: 11 frames.
    torch.manual_seed(0)
    encoder = SpikeEncoder3D(num_bins=2, channels=4, num_scales=1)
    voxels = torch.zeros(1, 15, 2, 16, 16, requires_grad=True)
    encoder(voxels)[0][0, :, 7, 8, 8].sum().backward()

    touched = voxels.grad.abs().sum(dim=(0, 2, 3, 4)) > 0
    assert touched[2:13].all()
    assert not touched[:2].any()
    assert not touched[13:].any()


def test_encoder_rejects_wrong_bins():
    encoder = SpikeEncoder3D(num_bins=4, channels=8)
    with pytest.raises(InvalidInputError, match="expected"):
        encoder(torch.rand(1, 2, 5, 16, 16))


def test_encoder_rejects_bad_sizes():
    with pytest.raises(InvalidInputError, match="num_bins"):
        SpikeEncoder3D(num_bins=0, channels=8)
    with pytest.raises(InvalidInputError, match="channels"):
        SpikeEncoder3D(num_bins=4, channels=-1)


def test_residual_block_adds_input():
    block = ResidualBlock3D(4)
    with torch.no_grad():
        block.conv2.weight.zero_()
        block.conv2.bias.zero_()
    x = torch.randn(1, 4, 3, 8, 8)

    assert torch.equal(block(x), torch.relu(x))


def test_position_encoding_any_length():
    short = sinusoidal_position_encoding(3, 6)
    long = sinusoidal_position_encoding(50, 6)

    assert tuple(long.shape) == (50, 6)
    assert torch.allclose(long[:3], short)
    assert torch.allclose(long[:, 0], torch.sin(torch.arange(50.0)))
    assert torch.allclose(long[:, 1], torch.cos(torch.arange(50.0)))
    assert tuple(sinusoidal_position_encoding(4, 5).shape) == (4, 5)


@pytest.mark.parametrize("frames,height,width", SHAPES)
def test_temporal_sa_keeps_shape(frames, height, width):
    block = SpikeTemporalSA(8, num_heads=2)
    x = torch.randn(1, 8, frames, height // 4, width // 4)
    with torch.no_grad():
        y = block(x)

    assert y.shape == x.shape
    assert torch.isfinite(y).all()


def trained_temporal_sa(dim: int, num_heads: int) -> SpikeTemporalSA:
    """A SpikeTemporalSA whose zero-initialised output layers hold random weights, as after training."""
    block = SpikeTemporalSA(dim, num_heads=num_heads)
    with torch.no_grad():
        for layer in (block.proj, block.mlp[-1]):
            layer.weight.normal_(0.0, 0.3)
            layer.bias.normal_(0.0, 0.3)
    return block


def test_temporal_sa_is_identity_at_init():
    block = SpikeTemporalSA(8, num_heads=2)
    x = torch.randn(1, 8, 4, 3, 3)
    with torch.no_grad():
        assert torch.equal(block(x), x)


def test_temporal_sa_values_carry_no_position_encoding():
    # Identical tokens at every frame: queries and keys differ by position, values do not, so any
    # attention pattern returns the same vector, and the output must not vary along T.
    block = trained_temporal_sa(8, num_heads=2)
    x = torch.randn(1, 8, 1, 2, 2).expand(1, 8, 5, 2, 2).contiguous()
    with torch.no_grad():
        y = block(x)
    assert torch.allclose(y, y[:, :, :1].expand_as(y), atol=1e-6)


def test_temporal_sa_mixes_only_time():
    torch.manual_seed(0)
    block = trained_temporal_sa(8, num_heads=2)
    x = torch.randn(1, 8, 5, 6, 6, requires_grad=True)
    block(x)[0, :, 2, 3, 3].sum().backward()

    per_pixel = x.grad.abs().sum(dim=(0, 1, 2))
    assert per_pixel[3, 3] > 0
    per_pixel[3, 3] = 0
    assert torch.count_nonzero(per_pixel) == 0
    assert (x.grad[0, :, :, 3, 3].abs().sum(dim=0) > 0).all()


def test_temporal_sa_sees_frame_order():
    # Without a position encoding, attention along T would be permutation-equivariant.
    torch.manual_seed(0)
    block = trained_temporal_sa(8, num_heads=2)
    x = torch.randn(1, 8, 4, 2, 2)
    order = torch.tensor([2, 0, 3, 1])
    with torch.no_grad():
        permuted_output = block(x[:, :, order])
        output_permuted = block(x)[:, :, order]

    assert not torch.allclose(permuted_output, output_permuted, atol=1e-4)


def test_temporal_sa_rejects_bad_heads():
    with pytest.raises(InvalidInputError, match="num_heads=5"):
        SpikeTemporalSA(8, num_heads=5)


@pytest.mark.parametrize("window", [1, 8, "global"])
def test_fusion_identity_at_init(window):
    fusion = CrossAttentionFusion(16, context_dim=8, num_heads=2, window=window)
    x = torch.randn(1, 16, 3, 24, 20)
    context = torch.randn(1, 8, 3, 24, 20) * 100

    with torch.no_grad():
        assert torch.equal(fusion(x, context), x)


@pytest.mark.parametrize("window", [1, 8, "global"])
@pytest.mark.parametrize("frames", [2, 6, 7])
@pytest.mark.parametrize("height,width", [(64, 64), (64, 96), (128, 72)])
def test_fusion_shapes(window, frames, height, width):
    # Full resolution for w = 1 and w = 8; the global window runs on the coarsest scale only.
    scale = 8 if window == "global" else 1
    fusion = CrossAttentionFusion(16, context_dim=8, num_heads=2, window=window)
    _break_identity(fusion)
    x = torch.randn(1, 16, frames, height // scale, width // scale)
    with torch.no_grad():
        y = fusion(x, torch.randn(1, 8, frames, height // scale, width // scale))

    assert y.shape == x.shape
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("height,width,window", [(16, 16, 16), (16, 24, 24), (12, 20, 32)])
def test_fusion_full_window_equals_global(height, width, window):
    windowed, global_fusion = _fusion_pair(window, "global")
    x = torch.randn(2, 16, 3, height, width)
    context = torch.randn(2, 8, 3, height, width)
    with torch.no_grad():
        expected = global_fusion(x, context)
        actual = windowed(x, context)

    assert (actual - expected).abs().max() <= 1e-5


def test_fusion_padding_matches_cropped_windows():
    # 12×12 with w = 8 pads to 16×16; the top-left window holds only true pixels and must equal an
    # unpadded 8×8 run, and the padded windows must ignore the zero padding.
    windowed, reference = _fusion_pair(8, 8)
    x = torch.randn(1, 16, 2, 12, 12)
    context = torch.randn(1, 8, 2, 12, 12)
    with torch.no_grad():
        padded = windowed(x, context)
        top_left = reference(x[..., :8, :8], context[..., :8, :8])
        bottom_right = reference(
            torch.nn.functional.pad(x[..., 8:, 8:], (0, 4, 0, 4)),
            torch.nn.functional.pad(context[..., 8:, 8:], (0, 4, 0, 4)),
        )

    assert (padded[..., :8, :8] - top_left).abs().max() <= 1e-5
    # An unmasked zero-padded run attends to padding too, so it must differ from the masked result.
    assert (padded[..., 8:, 8:] - bottom_right[..., :4, :4]).abs().max() > 1e-4


def test_fusion_per_pixel_permutation_equivariant():
    fusion, _ = _fusion_pair(1, 1)
    b, t, h, w = 1, 4, 8, 12
    x = torch.randn(b, 16, t, h, w)
    context = torch.randn(b, 8, t, h, w)
    order = torch.randperm(h * w, generator=torch.Generator().manual_seed(1))

    def permute(tensor):
        return tensor.flatten(3)[..., order].reshape(tensor.shape)

    with torch.no_grad():
        permuted_output = fusion(permute(x), permute(context))
        output_permuted = permute(fusion(x, context))

    assert (permuted_output - output_permuted).abs().max() <= 1e-6


def test_fusion_windows_are_independent():
    fusion, _ = _fusion_pair(8, 8)
    x = torch.randn(1, 16, 2, 16, 16)
    context = torch.randn(1, 8, 2, 16, 16)
    changed = context.clone()
    # random, because the context LayerNorm removes a constant shift
    changed[..., 8:, 8:] += torch.randn(1, 8, 2, 8, 8)
    with torch.no_grad():
        before = fusion(x, context)
        after = fusion(x, changed)

    assert torch.equal(before[..., :8, :], after[..., :8, :])
    assert (before[..., 8:, 8:] - after[..., 8:, 8:]).abs().max() > 1e-4


@pytest.mark.parametrize("window", [1, 8, "global"])
def test_fusion_bf16_autocast_finite(window):
    fusion = CrossAttentionFusion(16, context_dim=8, num_heads=2, window=window)
    _break_identity(fusion)
    temporal = trained_temporal_sa(8, num_heads=2)
    x = torch.randn(1, 16, 3, 12, 20)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        y = fusion(x, temporal(torch.randn(1, 8, 3, 12, 20)))

    assert torch.isfinite(y).all()


def test_fusion_rejects_mismatched_grids():
    fusion = CrossAttentionFusion(16, context_dim=8, num_heads=2, window=8)
    with pytest.raises(InvalidInputError, match="grid"):
        fusion(torch.randn(1, 16, 3, 16, 16), torch.randn(1, 8, 3, 8, 8))
    with pytest.raises(InvalidInputError, match="expected"):
        fusion(torch.randn(1, 16, 3, 16, 16), torch.randn(1, 9, 3, 16, 16))


@pytest.mark.parametrize("window", [0, -3, 2.5, "local", True, None])
def test_window_validation(window):
    with pytest.raises(InvalidInputError, match="window"):
        validate_window(window)


def test_fusion_trained_passes_own_pixel():
    # With the output layers set to the identity, the locality bias makes each query read mostly
    # the spike feature at its own pixel and frame, so pixel detail survives a w = 8 window.
    fusion = CrossAttentionFusion(8, context_dim=8, num_heads=2, window=8)
    with torch.no_grad():
        fusion.to_query.weight.zero_()
        fusion.to_query.bias.zero_()
        fusion.to_key_value.weight.copy_(torch.cat([torch.zeros(8, 8), torch.eye(8)]))
        fusion.to_key_value.bias.zero_()
        fusion.norm_context.weight.fill_(1.0)
        fusion.proj.weight.copy_(torch.eye(8))
    x = torch.zeros(1, 8, 3, 8, 8)
    context = torch.randn(1, 8, 3, 8, 8)

    with torch.no_grad():
        output = fusion(x, context)

    normalized = torch.nn.functional.layer_norm(context.movedim(1, -1), (8,)).movedim(-1, 1)
    correlation = torch.corrcoef(torch.stack([output.flatten(), normalized.flatten()]))[0, 1]
    assert correlation > 0.8


def test_relative_rates_cancel_the_threshold():
    # The same light seen with two thresholds: rates differ by the threshold ratio, relative rates do not.
    rates = torch.rand(1, 2, 8, 4, 4) * 0.4 + 0.1
    assert torch.allclose(relative_rates(rates, floor=0.0), relative_rates(rates / 3.0, floor=0.0), atol=1e-6)
    assert torch.allclose(relative_rates(rates, floor=0.0).mean(dim=2), torch.ones(1, 2, 4, 4), atol=1e-6)
    assert torch.equal(relative_rates(torch.zeros(1, 1, 8, 2, 2)), torch.zeros(1, 1, 8, 2, 2))


def test_encoder_with_relative_rates_takes_twice_the_bins():
    encoder = SpikeEncoder3D(num_bins=4, channels=8, num_scales=2, relative_rates=True)
    assert encoder.input_projection[0].in_channels == 8
    features = encoder(torch.rand(1, 3, 4, 8, 8))
    assert [tuple(f.shape) for f in features] == [(1, 8, 3, 8, 8), (1, 8, 3, 4, 4)]
