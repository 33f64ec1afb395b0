"""The VRT+Spike model: identity at initialisation, gradients, shapes, precision and presets."""

from __future__ import annotations

import pytest
import torch

from spikedeblur.errors import InvalidInputError
from spikedeblur.models.memory import measure_forward_memory
from spikedeblur.models.registry import (
    ModelPreset,
    count_parameters,
    create_model,
    estimate_memory,
    get_preset,
    list_presets,
    preset_names,
    register_preset,
)
from spikedeblur.models.vrt import VRT
from spikedeblur.models.vrt_config import VRT_PRESETS
from spikedeblur.models.vrt_spike import VRTSpike, VRTSpikeConfig

TINY = "vrt-spike-tiny"


def _clip(frames=2, height=64, width=64, bins=32, *, seed=0):
    generator = torch.Generator().manual_seed(seed)
    rgb = torch.rand(1, frames, 3, height, width, generator=generator)
    voxels = torch.rand(1, frames, bins, height, width, generator=generator)
    return rgb, voxels


def _randomise(module: torch.nn.Module, *, seed: int) -> None:
    """Overwrite every floating-point parameter with small random values, zero-initialised ones too."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.05)


def _charbonnier(output, target):
    return torch.sqrt((output - target) ** 2 + 1e-6).mean()


def test_identity_with_given_backbone_weights():
    torch.manual_seed(0)
    reference = VRT(VRT_PRESETS["vrt-tiny"]).eval()
    _randomise(reference, seed=1)
    model = create_model(TINY).eval()
    model.backbone.load_state_dict(reference.state_dict())
    frames, voxels = _clip()

    with torch.no_grad():
        expected = reference(frames)
        with_spikes = model(frames, voxels)
        with_loud_spikes = model(frames, voxels * 50 - 10)
        without_spikes = model(frames, None)

    assert (with_spikes - expected).abs().max() <= 1e-6
    assert (with_loud_spikes - expected).abs().max() <= 1e-6
    assert torch.equal(without_spikes, expected)


@pytest.mark.slow
def test_full_preset_identity_small_input():
    model = create_model("vrt-spike").eval()
    assert model.config.spike_channels == 96
    assert model.num_bins == 32
    frames, voxels = _clip()

    with torch.no_grad():
        fused = model(frames, voxels)
        plain = model.backbone(frames)

    assert fused.shape == frames.shape
    assert (fused - plain).abs().max() <= 1e-6


def test_spike_branch_gradients_after_one_step():
    torch.manual_seed(0)
    model = create_model(TINY).train()
    frames, voxels = _clip(seed=3)
    target = frames.flip(-1)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    # Zero-initialised output layers open one after another: the first step moves the fusions',
    # the second the temporal attentions', and from then on every spike parameter gets a gradient.
    for _ in range(2):
        _charbonnier(model(frames, voxels), target).backward()
        optimizer.step()
        optimizer.zero_grad()

    loss = _charbonnier(model(frames, voxels), target)
    assert loss > 0
    loss.backward()
    named = dict(model.named_parameters())
    spike_names = [name for name, p in named.items() if any(p is q for q in model.spike_branch_parameters())]
    assert len(spike_names) == len(model.spike_branch_parameters())
    assert any(name.startswith("spike_encoder.") for name in spike_names)
    for name in spike_names:
        gradient = named[name].grad
        assert gradient is not None, name
        assert torch.isfinite(gradient).all(), name
        assert gradient.abs().sum() > 0, name

    with torch.no_grad():
        assert (model(frames, voxels) - model(frames, torch.zeros_like(voxels))).abs().max() > 1e-6


@pytest.mark.parametrize(
    "frames,height,width",
    [(2, 64, 64), (6, 64, 96), (7, 128, 72)],
)
def test_shapes_hold(frames, height, width):
    torch.manual_seed(0)
    model = create_model(TINY).eval()
    for fusion in model.fusions:
        _randomise(fusion, seed=2)
    rgb, voxels = _clip(frames, height, width)

    with torch.no_grad():
        output = model(rgb, voxels)

    assert output.shape == rgb.shape
    assert torch.isfinite(output).all()


def test_bf16_autocast_has_no_nan():
    torch.manual_seed(0)
    model = create_model(TINY).eval()
    for fusion in model.fusions:
        _randomise(fusion, seed=2)
    frames, voxels = _clip(frames=3, width=96)

    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        output = model(frames, voxels)

    assert output.shape == frames.shape
    assert torch.isfinite(output).all()


def test_grad_checkpointing_same_gradients():
    torch.manual_seed(0)
    model = create_model(TINY).train()
    for fusion in model.fusions:
        _randomise(fusion, seed=2)
    frames, voxels = _clip(seed=4)

    def gradients():
        model.zero_grad()
        model(frames, voxels).square().mean().backward()
        return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}

    plain = gradients()
    model.set_grad_checkpointing(True)
    checkpointed = gradients()

    assert model.backbone.grad_checkpointing
    assert plain.keys() == checkpointed.keys()
    for name, gradient in plain.items():
        assert torch.allclose(gradient, checkpointed[name], atol=1e-6), name


def test_rejects_wrong_spike_shape():
    model = create_model(TINY)
    frames, voxels = _clip()
    with pytest.raises(InvalidInputError, match="expected"):
        model(frames, voxels[:, :, :16])
    with pytest.raises(InvalidInputError, match="expected"):
        model(frames, voxels[..., :32])


def test_rejects_bad_frame_size():
    model = create_model(TINY)
    frames, voxels = _clip(height=60, width=60)
    with pytest.raises(InvalidInputError, match="multiple of 8"):
        model(frames, voxels)


def test_engine_attributes():
    model = create_model(TINY)

    assert model.size_multiple == 8
    assert model.min_size == 64
    assert model.min_frames == 2
    assert model.num_bins == 32


def test_config_validation():
    backbone = VRT_PRESETS["vrt-tiny"]
    with pytest.raises(InvalidInputError, match="fusion_heads=3"):
        VRTSpikeConfig(backbone=backbone, spike_channels=16, temporal_heads=2, fusion_heads=3)
    with pytest.raises(InvalidInputError, match="temporal_heads=5"):
        VRTSpikeConfig(backbone=backbone, spike_channels=16, temporal_heads=5, fusion_heads=2)
    with pytest.raises(InvalidInputError, match="one per encoder stage"):
        VRTSpikeConfig(backbone=backbone, spike_channels=16, temporal_heads=2, fusion_heads=2, fusion_windows=(8, 8))
    with pytest.raises(InvalidInputError, match="window"):
        VRTSpikeConfig(
            backbone=backbone, spike_channels=16, temporal_heads=2, fusion_heads=2, fusion_windows=(8, 8, 8, 0)
        )
    with pytest.raises(InvalidInputError, match="num_bins"):
        VRTSpikeConfig(backbone=backbone, num_bins=0, spike_channels=16, temporal_heads=2, fusion_heads=2)


def test_config_dict_round_trip():
    config = VRTSpikeConfig(
        backbone=VRT_PRESETS["vrt-small"],
        num_bins=16,
        spike_channels=24,
        temporal_heads=4,
        fusion_heads=4,
        fusion_windows=(1, 8, 8, "global"),
    )
    data = config.to_dict()

    assert VRTSpikeConfig.from_dict(data) == config
    with pytest.raises(InvalidInputError, match="invalid VRTSpikeConfig"):
        VRTSpikeConfig.from_dict({**data, "colour": 3})


def test_spike_channels_may_differ_from_backbone():
    config = VRTSpikeConfig(backbone=VRT_PRESETS["vrt-tiny"], spike_channels=8, temporal_heads=2, fusion_heads=2)
    model = VRTSpike(config).eval()
    frames, voxels = _clip()
    with torch.no_grad():
        output = model(frames, voxels)

    assert output.shape == frames.shape


def test_registry_lists_presets():
    rows = {row.name: row for row in list_presets()}

    for name in ("vrt-spike", "vrt-spike-small", "vrt-spike-tiny", "vrt-deblur", "vrt-small", "vrt-tiny"):
        assert name in rows
    assert rows["vrt-spike"].kind == "vrt-spike"
    assert rows["vrt-spike"].num_bins == 32
    assert rows["vrt-deblur"].kind == "vrt"
    assert rows["vrt-deblur"].num_bins is None
    assert rows["vrt-spike"].parameters > rows["vrt-deblur"].parameters
    assert rows[TINY].parameters == sum(p.numel() for p in create_model(TINY).parameters())


def test_full_preset_uses_deblur_backbone():
    config = get_preset("vrt-spike").config

    assert config.backbone == VRT_PRESETS["vrt-deblur"]
    assert config.spike_channels == 96
    assert config.num_bins == 32
    assert isinstance(create_model("vrt-deblur", device="meta"), VRT)


def test_registry_rejects_unknown_and_duplicates():
    with pytest.raises(InvalidInputError, match="unknown model preset 'vrt-huge'"):
        create_model("vrt-huge")
    with pytest.raises(ValueError, match="already registered"):
        register_preset(ModelPreset(TINY, "again", get_preset(TINY).config))
    assert preset_names().count(TINY) == 1


def test_create_model_device_and_dtype():
    model = create_model(TINY, dtype=torch.float64)

    assert all(p.dtype == torch.float64 for p in model.parameters())
    assert count_parameters("vrt-spike") == sum(p.numel() for p in create_model("vrt-spike", device="meta").parameters())


def test_memory_estimate_matches_cpu_run():
    estimate = estimate_memory(TINY, frames=2, height=64, width=64)
    model = create_model(TINY).eval()
    frames, voxels = _clip()
    measured = measure_forward_memory(model, frames, voxels)

    assert estimate.parameter_bytes == measured.parameter_bytes
    assert estimate.input_bytes == measured.input_bytes
    assert abs(estimate.peak_activation_bytes - measured.peak_activation_bytes) <= 0.05 * measured.peak_activation_bytes


def test_memory_estimate_grows_with_spikes():
    with_spikes = estimate_memory(TINY, frames=2, height=64, width=64)
    without = estimate_memory(TINY, frames=2, height=64, width=64, with_spikes=False)
    larger = estimate_memory(TINY, frames=4, height=128, width=128)

    assert with_spikes.total_bytes > without.total_bytes
    assert larger.peak_activation_bytes > with_spikes.peak_activation_bytes
