"""Safetensors checkpoints: round trips, metadata, mismatch reports and official VRT weights."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from spikedeblur.errors import CheckpointError, InputNotFoundError, InvalidInputError, OutputExistsError
from spikedeblur.models.checkpoint import (
    CheckpointMetadata,
    config_differences,
    load_backbone_weights,
    load_checkpoint,
    load_model,
    save_checkpoint,
)
from spikedeblur.models.registry import create_model, get_preset
from spikedeblur.models.vrt import VRT
from spikedeblur.models.vrt_spike import VRTSpike, VRTSpikeConfig

TINY = "vrt-spike-tiny"


def _trained_tiny(seed: int = 0) -> VRTSpike:
    """Return a tiny model whose every parameter, zero-initialised ones included, is random."""
    torch.manual_seed(seed)
    model = create_model(TINY).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0, 0.05)
    return model


def _clip():
    generator = torch.Generator().manual_seed(7)
    return torch.rand(1, 2, 3, 64, 64, generator=generator), torch.rand(1, 2, 32, 64, 64, generator=generator)


def test_round_trip_same_output(tmp_path):
    model = _trained_tiny()
    path = tmp_path / "tiny.safetensors"
    save_checkpoint(model, path, preset=TINY, training_data="procedural scenes, 100 steps", extra={"steps": 100})
    loaded, metadata = load_model(path)
    frames, voxels = _clip()

    with torch.no_grad():
        assert torch.equal(loaded(frames, voxels), model(frames, voxels))
    assert isinstance(loaded, VRTSpike)
    assert not loaded.training
    assert metadata.preset == TINY
    assert metadata.kind == "vrt-spike"
    assert metadata.num_bins == 32
    assert metadata.config == model.config
    assert metadata.training_data == "procedural scenes, 100 steps"
    assert metadata.extra == {"steps": "100"}
    assert metadata.package_version


def test_metadata_is_readable_json(tmp_path):
    path = tmp_path / "tiny.safetensors"
    save_checkpoint(_trained_tiny(), path, preset=TINY)
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        raw = handle.metadata()

    assert raw["preset"] == TINY
    assert raw["num_bins"] == "32"
    assert json.loads(raw["config"])["backbone"]["embed_dims"][0] == 16


def test_load_into_existing_model(tmp_path):
    path = tmp_path / "tiny.safetensors"
    source = _trained_tiny(seed=1)
    save_checkpoint(source, path)
    target = create_model(TINY)
    metadata = load_checkpoint(target, path)

    assert metadata.preset is None
    for name, tensor in source.state_dict().items():
        assert torch.equal(target.state_dict()[name], tensor), name


def test_load_with_dtype(tmp_path):
    path = tmp_path / "tiny.safetensors"
    save_checkpoint(_trained_tiny(), path, preset=TINY)
    model, _ = load_model(path, dtype=torch.bfloat16)

    assert all(p.dtype == torch.bfloat16 for p in model.parameters())


def test_config_mismatch_lists_fields(tmp_path):
    path = tmp_path / "tiny.safetensors"
    save_checkpoint(_trained_tiny(), path, preset=TINY)
    tiny = get_preset(TINY).config
    other = VRTSpikeConfig(
        backbone=tiny.backbone, num_bins=16, spike_channels=8, temporal_heads=2, fusion_heads=2
    )

    with pytest.raises(CheckpointError) as raised:
        load_checkpoint(VRTSpike(other), path)
    message = str(raised.value)
    assert "num_bins: 32 != 16" in message
    assert "spike_channels: 16 != 8" in message
    assert "load_model" in message


def test_config_differences_nested():
    tiny = get_preset(TINY).config
    small = get_preset("vrt-spike-small").config
    differences = config_differences(tiny, small)

    assert any(line.startswith("backbone.embed_dims:") for line in differences)
    assert any(line.startswith("spike_channels:") for line in differences)
    assert config_differences(tiny, tiny) == []
    assert config_differences(tiny, tiny.backbone) == ["model kind: VRTSpikeConfig != VRTConfig"]


def test_expected_preset_mismatch(tmp_path):
    path = tmp_path / "tiny.safetensors"
    save_checkpoint(_trained_tiny(), path, preset=TINY)

    with pytest.raises(CheckpointError, match="does not hold preset 'vrt-spike-small'"):
        load_model(path, preset="vrt-spike-small")


def test_save_rejects_wrong_preset(tmp_path):
    with pytest.raises(InvalidInputError, match="differs from preset 'vrt-spike-small'"):
        save_checkpoint(_trained_tiny(), tmp_path / "x.safetensors", preset="vrt-spike-small")
    assert not (tmp_path / "x.safetensors").exists()


def test_save_keeps_existing_file(tmp_path):
    path = tmp_path / "tiny.safetensors"
    path.write_bytes(b"precious")

    with pytest.raises(OutputExistsError):
        save_checkpoint(_trained_tiny(), path)
    assert path.read_bytes() == b"precious"

    save_checkpoint(_trained_tiny(), path, overwrite=True)
    assert load_model(path)[1].kind == "vrt-spike"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.safetensors"]


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(InputNotFoundError, match="does not exist"):
        load_model(tmp_path / "absent.safetensors")

    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_model(corrupt)

    truncated = tmp_path / "truncated.safetensors"
    save_checkpoint(_trained_tiny(), truncated)
    truncated.write_bytes(truncated.read_bytes()[:5000])
    with pytest.raises(CheckpointError):
        load_model(truncated)


def test_foreign_safetensors_rejected(tmp_path):
    path = tmp_path / "foreign.safetensors"
    save_file({"weight": torch.zeros(2)}, str(path), metadata={"format": "pt"})

    with pytest.raises(CheckpointError, match="no spikedeblur metadata"):
        load_model(path)


def test_missing_and_extra_keys_named(tmp_path):
    model = _trained_tiny()
    metadata = save_checkpoint(model, tmp_path / "tiny.safetensors", preset=TINY).to_strings()
    state = dict(model.state_dict())
    state.pop("spike_encoder.input_projection.0.weight")
    state["fusions.9.proj.weight"] = torch.zeros(1)
    state["fusions.0.proj.bias"] = torch.zeros(3)

    with pytest.raises(CheckpointError) as raised:
        load_model(state, metadata=metadata)
    message = str(raised.value)
    assert "missing keys: spike_encoder.input_projection.0.weight" in message
    assert "unexpected keys: fusions.9.proj.weight" in message
    assert "fusions.0.proj.bias (3,) != (16,)" in message


def test_state_dict_without_metadata():
    with pytest.raises(CheckpointError, match="no spikedeblur metadata"):
        load_model(create_model(TINY).state_dict())


def test_newer_format_version_rejected():
    metadata = CheckpointMetadata(
        kind="vrt-spike", preset=TINY, config=get_preset(TINY).config, package_version="9.9"
    ).to_strings()
    metadata["format_version"] = "2"

    with pytest.raises(CheckpointError, match="format version '2'"):
        load_model(create_model(TINY).state_dict(), metadata=metadata)


def test_backbone_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    backbone = create_model("vrt-tiny").eval()
    path = tmp_path / "backbone.safetensors"
    save_checkpoint(backbone, path, preset="vrt-tiny")
    loaded, metadata = load_model(path)

    assert isinstance(loaded, VRT)
    assert metadata.kind == "vrt"
    assert metadata.num_bins is None
    frames, _ = _clip()
    with torch.no_grad():
        assert torch.equal(loaded(frames), backbone(frames))


def test_save_rejects_other_modules(tmp_path):
    with pytest.raises(InvalidInputError, match="cannot checkpoint a Linear"):
        save_checkpoint(torch.nn.Linear(2, 2), tmp_path / "x.safetensors")


def test_official_vrt_weights_keep_identity(tmp_path):
    vrt_checkpoint = pytest.importorskip("spikedeblur.models.vrt_checkpoint")
    official = vrt_checkpoint.random_vrt_state_dict(get_preset("vrt-tiny").config, seed=0)
    reference = create_model("vrt-tiny").eval()
    vrt_checkpoint.load_vrt_checkpoint(reference, official)
    path = tmp_path / "official.pth"
    torch.save({"params": official}, path)

    model, metadata = load_model(path, preset=TINY)
    frames, voxels = _clip()
    with torch.no_grad():
        expected = reference(frames)
        fused = model(frames, voxels)

    assert metadata.preset == TINY
    assert "official VRT weights" in metadata.training_data
    assert (fused - expected).abs().max() <= 1e-6
    for fusion in model.fusions:
        assert torch.count_nonzero(fusion.proj.weight) == 0
        assert torch.count_nonzero(fusion.mlp[-1].weight) == 0

    # Loading into an existing model changes the backbone only.
    other = create_model(TINY)
    encoder_before = other.spike_encoder.input_projection[0].weight.clone()
    load_backbone_weights(other, path)
    assert torch.equal(other.spike_encoder.input_projection[0].weight, encoder_before)
    with torch.no_grad():
        assert (other(frames, voxels) - expected).abs().max() <= 1e-6

    # load_checkpoint accepts the .pth file too, for training that starts from VRT's weights.
    third = create_model(TINY)
    third_metadata = load_checkpoint(third, path)
    assert third_metadata.preset is None
    assert "official VRT weights from official.pth" in third_metadata.training_data
    with torch.no_grad():
        assert (third(frames, voxels) - expected).abs().max() <= 1e-6


def test_official_vrt_missing_file(tmp_path):
    with pytest.raises(InputNotFoundError, match="does not exist"):
        load_model(tmp_path / "absent.pth")
    with pytest.raises(InputNotFoundError, match="does not exist"):
        load_checkpoint(create_model(TINY), tmp_path / "absent.pth")


def test_official_vrt_wrong_preset(tmp_path):
    vrt_checkpoint = pytest.importorskip("spikedeblur.models.vrt_checkpoint")
    path = tmp_path / "official.pth"
    torch.save({"params": vrt_checkpoint.random_vrt_state_dict(get_preset("vrt-tiny").config, seed=0)}, path)

    with pytest.raises(CheckpointError, match="does not match the VRT configuration"):
        load_model(path, preset="vrt-spike-small")
