"""Behaviour of the VRT backbone on the tiny preset: shapes, input rules, gradients, precision."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from spikedeblur.errors import InvalidInputError
from spikedeblur.models.vrt import VRT, build_vrt
from spikedeblur.models.vrt_checkpoint import load_vrt_checkpoint, random_vrt_state_dict
from spikedeblur.models.vrt_config import VRT_PRESETS, VRTConfig, get_vrt_config

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def tiny_aligned() -> VRT:
    torch.manual_seed(0)
    return build_vrt("vrt-tiny", flow_alignment=True).eval()


def test_presets_validate_and_deblur_matches_release():
    deblur = VRT_PRESETS["vrt-deblur"]

    assert set(VRT_PRESETS) == {"vrt-deblur", "vrt-denoise", "vrt-small", "vrt-tiny"}
    assert deblur.input_channels == 27
    assert VRT_PRESETS["vrt-denoise"].input_channels == 28
    assert sum(p.numel() for p in VRT(deblur, device="meta").parameters()) == 18_320_007


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"embed_dims": (16,) * 6 + (20,) + (24,) * 2}, "share one width"),
        ({"num_heads": (3,) * 9}, "not divisible by num_heads"),
        ({"deformable_groups": 3, "flow_alignment": True}, "must divide the stage width"),
        ({"depths": (1,) * 7 + (1,) * 2}, "depth"),
        ({"independent_reconstruction": (2,)}, "stage-8 groups"),
        ({"window_size": (6, 8)}, "window_size"),
    ],
)
def test_config_rejects_invalid_values(overrides, message):
    with pytest.raises(ValueError, match=message):
        get_vrt_config("vrt-tiny", **overrides)


def test_config_is_frozen_and_rejects_unknown_fields():
    config = get_vrt_config("vrt-tiny")
    with pytest.raises(AttributeError):
        config.depths = (1,)  # type: ignore[misc]
    with pytest.raises(ValueError, match="unknown VRTConfig field"):
        config.replace(depth=3)
    with pytest.raises(ValueError, match="unknown VRT preset"):
        get_vrt_config("vrt-huge")


def test_stage_shapes_keep_frames(tiny_aligned):
    frames = torch.rand(1, 3, 3, 64, 96)

    with torch.no_grad():
        context = tiny_aligned.prepare(frames)
        skips = []
        x = context.stem
        for index in range(4):
            x = tiny_aligned.encoder_stage(index, x, context)
            skips.append(x)
        out = tiny_aligned.decode(skips, context)

    width = tiny_aligned.embed_dims[0]
    assert context.stem.shape == (1, width, 3, 64, 96)
    assert [tuple(f.shape) for f in context.flows_backward] == [(1, 2, 2, 64 >> i, 96 >> i) for i in range(4)]
    assert [tuple(s.shape) for s in skips] == [(1, width, 3, 64 >> i, 96 >> i) for i in range(4)]
    assert out.shape == frames.shape


def test_decoder_stages_double_back():
    model = build_vrt("vrt-tiny").eval()
    shapes = []
    hooks = [stage.register_forward_hook(lambda _m, _a, out: shapes.append(tuple(out.shape))) for stage in model.stages]

    with torch.no_grad():
        model(torch.rand(1, 2, 3, 64, 64))
    for hook in hooks:
        hook.remove()

    assert [s[3:] for s in shapes] == [(64, 64), (32, 32), (16, 16), (8, 8), (16, 16), (32, 32), (64, 64)]
    assert all(s[2] == 2 for s in shapes)


def test_forward_equals_explicit_steps(tiny_aligned):
    frames = torch.rand(1, 2, 3, 64, 64)

    with torch.no_grad():
        context = tiny_aligned.prepare(frames)
        skips = [context.stem]
        for index in range(4):
            skips.append(tiny_aligned.encoder_stage(index, skips[-1], context))
        stepwise = tiny_aligned.decode(skips[1:], context)
        whole = tiny_aligned(frames)

    assert torch.equal(stepwise, whole)


def test_matches_reference_expected_output():
    expected_file = DATA / "vrt_tiny_expected.safetensors"
    from safetensors import safe_open

    with safe_open(str(expected_file), framework="pt") as handle:
        expected = handle.get_tensor("output")
        metadata = handle.metadata()
    config = get_vrt_config(metadata["preset"], flow_alignment=True)
    model = VRT(config).eval()
    load_vrt_checkpoint(model, {"params": random_vrt_state_dict(config, seed=int(metadata["seed"]))})
    generator = torch.Generator().manual_seed(int(metadata["input_seed"]))
    frames = torch.rand(1, 6, 3, 64, 64, generator=generator)
    stride = int(metadata["stride"])

    with torch.no_grad():
        out = model(frames)

    torch.testing.assert_close(out[..., ::stride, ::stride], expected, atol=1e-4, rtol=0)


@pytest.mark.slow
def test_batch_equals_items_one_by_one(tiny_aligned):
    frames = torch.rand(2, 3, 3, 64, 72)

    with torch.no_grad():
        batched = tiny_aligned(frames)
        first = tiny_aligned(frames[:1])
        second = tiny_aligned(frames[1:])

    torch.testing.assert_close(batched[:1], first, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(batched[1:], second, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        ((1, 4, 3, 64, 60), "not a multiple of 8"),
        ((1, 4, 3, 56, 64), "below the minimum 64x64"),
        ((1, 1, 3, 64, 64), "at least 2 frames"),
        ((1, 4, 1, 64, 64), r"\(B, T, 3, H, W\)"),
        ((4, 3, 64, 64), r"\(B, T, 3, H, W\)"),
    ],
)
def test_prepare_rejects_bad_sizes(tiny_aligned, shape, message):
    with pytest.raises(InvalidInputError, match=message):
        tiny_aligned.prepare(torch.rand(shape))


def test_noise_map_rules():
    denoise = VRT(get_vrt_config("vrt-tiny", noise_map=True)).eval()
    plain = build_vrt("vrt-tiny").eval()
    frames = torch.rand(1, 2, 3, 64, 64)

    with pytest.raises(InvalidInputError, match="pass noise_map"):
        denoise.prepare(frames)
    with pytest.raises(InvalidInputError, match="no noise map input"):
        plain.prepare(frames, torch.zeros(1, 2, 1, 64, 64))
    with pytest.raises(InvalidInputError, match="noise_map must have shape"):
        denoise.prepare(frames, torch.zeros(1, 2, 64, 64))
    with torch.no_grad():
        assert denoise(frames, torch.full((1, 2, 1, 64, 64), 0.1)).shape == frames.shape


def test_encoder_and_decode_reject_bad_arguments(tiny_aligned):
    context = tiny_aligned.prepare(torch.rand(1, 2, 3, 64, 64))
    with pytest.raises(ValueError, match="encoder stage index"):
        tiny_aligned.encoder_stage(4, context.stem, context)
    with pytest.raises(ValueError, match="4 encoder stages"):
        tiny_aligned.decode([context.stem], context)


@pytest.mark.slow
def test_gradients_reach_every_parameter():
    config = get_vrt_config("vrt-tiny", flow_alignment=True)
    model = VRT(config)
    # random, non-zero weights everywhere, so every path (deformable offsets included) carries gradient
    load_vrt_checkpoint(model, random_vrt_state_dict(config, seed=3))
    frames = torch.rand(1, 2, 3, 64, 64)

    model(frames).square().mean().backward()

    missing = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


@pytest.mark.slow
def test_grad_checkpointing_gives_same_gradients():
    torch.manual_seed(0)
    model = build_vrt("vrt-tiny")
    frames = torch.rand(1, 2, 3, 64, 64)

    model(frames).square().mean().backward()
    plain = {name: p.grad.clone() for name, p in model.named_parameters()}
    model.zero_grad()
    model.set_grad_checkpointing(True)
    model(frames).square().mean().backward()

    for name, p in model.named_parameters():
        torch.testing.assert_close(p.grad, plain[name], atol=1e-6, rtol=1e-5, msg=name)


def test_bf16_autocast_is_finite_and_close(tiny_aligned):
    frames = torch.rand(1, 2, 3, 64, 64)

    with torch.no_grad():
        exact = tiny_aligned(frames)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = tiny_aligned(frames)

    assert torch.isfinite(low).all()
    assert (low.float() - exact).abs().mean() < 0.05


def test_bf16_weights_run():
    model = build_vrt("vrt-tiny", dtype=torch.bfloat16).eval()
    with torch.no_grad():
        out = model(torch.rand(1, 2, 3, 64, 64, dtype=torch.bfloat16))
    assert out.dtype == torch.bfloat16
    assert torch.isfinite(out).all()


def test_config_type_is_exported():
    assert isinstance(build_vrt("vrt-small", device="meta").config, VRTConfig)
