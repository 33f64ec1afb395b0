"""Import of official VRT checkpoints: key layout, strict checks and derived buffers."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
import torch

from spikedeblur.errors import CheckpointError, InputNotFoundError
from spikedeblur.models.vrt import VRT
from spikedeblur.models.vrt_checkpoint import (
    convert_vrt_state_dict,
    load_vrt_checkpoint,
    official_layout,
    random_vrt_state_dict,
)
from spikedeblur.models.vrt_config import get_vrt_config

DATA = Path(__file__).parent / "data"


def read_key_list(path: Path) -> dict[str, tuple[tuple[int, ...], bool]]:
    """Parse lines ``name [d0, d1, ...] f|i64`` into name -> (shape, is_float)."""
    keys = {}
    with gzip.open(path, "rt") as handle:
        for line in handle:
            name, rest = line.split(" ", 1)
            shape, kind = rest.rsplit(" ", 1)
            dims = shape.strip("[] ").split(",")
            keys[name] = (tuple(int(d) for d in dims if d.strip()), kind.strip() == "f")
    return keys


@pytest.fixture(scope="module")
def tiny_config():
    return get_vrt_config("vrt-tiny", flow_alignment=True)


@pytest.fixture(scope="module")
def tiny_state(tiny_config):
    return random_vrt_state_dict(tiny_config, seed=0)


def test_deblur_layout_equals_released_key_list():
    expected = read_key_list(DATA / "vrt_deblur_keys.txt.gz")
    layout = official_layout(get_vrt_config("vrt-deblur"))

    assert len(expected) == 1526
    assert sorted(set(expected) - set(layout)) == []
    assert sorted(set(layout) - set(expected)) == []
    for name, (shape, is_float) in expected.items():
        assert tuple(layout[name][0]) == shape, name
        assert layout[name][1].is_floating_point == is_float, name


def test_denoise_layout_has_noise_channel():
    layout = official_layout(get_vrt_config("vrt-denoise"))
    assert tuple(layout["conv_first.weight"][0]) == (96, 28, 1, 3, 3)


@pytest.mark.slow
def test_deblur_random_checkpoint_imports():
    config = get_vrt_config("vrt-deblur")
    state = random_vrt_state_dict(config, seed=0)

    weights = convert_vrt_state_dict({"params": state}, config)

    assert len(state) == 1526
    assert not any(key.endswith("relative_position_index") for key in weights)
    VRT(config, device="meta").load_state_dict(weights, strict=True, assign=True)


def test_import_accepts_wrapped_bare_and_prefixed(tiny_config, tiny_state):
    for checkpoint in (
        {"params": tiny_state},
        dict(tiny_state),
        {f"module.{key}": value for key, value in tiny_state.items()},
    ):
        model = VRT(tiny_config)
        load_vrt_checkpoint(model, checkpoint)
        assert torch.equal(model.conv_first.weight, tiny_state["conv_first.weight"])


def test_import_from_file(tmp_path, tiny_config, tiny_state):
    path = tmp_path / "vrt.pth"
    torch.save({"params": tiny_state}, path)
    model = VRT(tiny_config)

    load_vrt_checkpoint(model, path)

    last_offset = "stage1.pa_deform.conv_offset.6.weight"
    assert torch.equal(model.state_dict()[last_offset], tiny_state[last_offset])


def test_import_rejects_missing_key(tiny_config, tiny_state):
    state = dict(tiny_state)
    del state["stage3.linear1.weight"]
    with pytest.raises(CheckpointError, match=r"1 missing keys \(stage3\.linear1\.weight\)"):
        convert_vrt_state_dict(state, tiny_config)


def test_import_rejects_unexpected_key(tiny_config, tiny_state):
    state = dict(tiny_state, **{"upsample.0.weight": torch.zeros(3)})
    with pytest.raises(CheckpointError, match=r"1 unexpected keys \(upsample\.0\.weight\)"):
        convert_vrt_state_dict(state, tiny_config)


def test_import_rejects_misshaped_key(tiny_config, tiny_state):
    state = dict(tiny_state, **{"conv_last.bias": torch.zeros(4)})
    with pytest.raises(CheckpointError, match=r"conv_last\.bias \(4,\) != \(3,\)"):
        convert_vrt_state_dict(state, tiny_config)


def test_import_names_all_problems_in_one_error(tiny_config, tiny_state):
    state = dict(tiny_state, extra=torch.zeros(1), **{"conv_last.bias": torch.zeros(4)})
    del state["norm.weight"]
    with pytest.raises(CheckpointError) as error:
        convert_vrt_state_dict(state, tiny_config)
    message = str(error.value)
    assert "norm.weight" in message
    assert "extra" in message
    assert "conv_last.bias" in message
    assert "\n" not in message


def test_import_rejects_wrong_derived_buffer(tiny_config, tiny_state):
    key = "stage2.residual_group2.blocks.0.attn.relative_position_index"
    state = dict(tiny_state, **{key: tiny_state[key].flip(0)})
    with pytest.raises(CheckpointError, match=key.replace(".", r"\.")):
        convert_vrt_state_dict(state, tiny_config)


def test_import_rejects_other_preset(tiny_state):
    with pytest.raises(CheckpointError, match="shape mismatches.*vrt-deblur for 005-007"):
        convert_vrt_state_dict(tiny_state, get_vrt_config("vrt-tiny", flow_alignment=True, deformable_groups=4))


def test_derived_buffers_equal_closed_forms(tiny_state):
    assert tiny_state["spynet.mean"].flatten().tolist() == pytest.approx([0.485, 0.456, 0.406])
    assert tiny_state["spynet.std"].flatten().tolist() == pytest.approx([0.229, 0.224, 0.225])
    index = tiny_state["stage1.residual_group1.blocks.0.attn.relative_position_index"]
    assert index.shape == (128, 128)
    # token 0 is (d, h, w) = (0, 0, 0) and token 127 is (1, 7, 7): offset (-1, -7, -7) -> (0, 0, 0)
    assert index[0, 127] == 0
    assert index[127, 0] == 2 * 15 * 15 + 14 * 15 + 14


def test_load_missing_file_and_corrupt_file(tmp_path, tiny_config):
    model = VRT(tiny_config)
    with pytest.raises(InputNotFoundError, match="does not exist"):
        load_vrt_checkpoint(model, tmp_path / "absent.pth")

    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        load_vrt_checkpoint(model, corrupt)


class _Payload:
    """A pickled object that weights-only loading must refuse."""


def test_load_refuses_pickled_objects(tmp_path, tiny_config):
    path = tmp_path / "object.pth"
    torch.save({"params": _Payload()}, path)
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        load_vrt_checkpoint(VRT(tiny_config), path)


def test_load_rejects_non_tensor_entries(tiny_config):
    with pytest.raises(CheckpointError, match="'conv_first.weight' is a str"):
        load_vrt_checkpoint(VRT(tiny_config), {"params": {"conv_first.weight": "x"}})


def test_random_state_dict_is_seeded_and_nonzero(tiny_config, tiny_state):
    again = random_vrt_state_dict(tiny_config, seed=0)
    other = random_vrt_state_dict(tiny_config, seed=1)
    key = "stage1.pa_deform.conv_offset.6.weight"

    assert all(torch.equal(tiny_state[k], again[k]) for k in tiny_state)
    assert not torch.equal(tiny_state[key], other[key])
    assert tiny_state[key].abs().min() > 0
