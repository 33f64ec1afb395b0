"""Self-ensemble: each variant inverts exactly, symmetric models are unchanged, and the engine uses it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spikedeblur.errors import InvalidInputError
from spikedeblur.inference import InferenceSettings, run_inference
from spikedeblur.inference.ensemble import SELF_ENSEMBLE_SIZES, ensemble_variants, run_self_ensemble
from tests.test_inference_engine import BINS, ListSink, PatternSpikes, PixelModel, make_frames


def random_clip(*, height: int = 16, width: int = 24, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    frames = torch.rand(2, 3, 3, height, width, generator=generator)
    voxels = torch.rand(2, 3, BINS, height, width, generator=generator)
    return frames, voxels


def test_variants_distinct_identity_first():
    variants = ensemble_variants(16)

    assert variants[0] == ensemble_variants(1)[0]
    assert not any((variants[0].flip_width, variants[0].flip_height, variants[0].transpose, variants[0].reverse_time))
    assert len(set(variants)) == 16
    # The first eight are the spatial symmetries of the square, the last eight those played backwards.
    assert not any(variant.reverse_time for variant in variants[:8])
    assert all(variant.reverse_time for variant in variants[8:])


@pytest.mark.parametrize("index", range(16))
def test_variant_inverts_its_transform(index):
    variant = ensemble_variants(16)[index]
    frames, voxels = random_clip()

    moved_frames, moved_voxels = variant.apply(frames, voxels)

    expected_shape = (2, 3, 3, 24, 16) if variant.transpose else (2, 3, 3, 16, 24)
    assert moved_frames.shape == expected_shape
    assert moved_voxels.shape[-2:] == expected_shape[-2:]
    assert torch.equal(variant.invert(moved_frames), frames)
    # Playing backwards reverses the bins inside each exposure too.
    if variant.reverse_time and not variant.transpose and not variant.flip_width and not variant.flip_height:
        assert torch.equal(moved_voxels, voxels.flip(1, 2))


@pytest.mark.parametrize("size", SELF_ENSEMBLE_SIZES)
def test_ensemble_keeps_equivariant_model(size):
    frames, voxels = random_clip(seed=1)

    def per_pixel(frames: torch.Tensor, voxels: torch.Tensor | None) -> torch.Tensor:
        # Depends on each pixel and on the bins only through their mean, so every variant agrees.
        return 0.5 * frames + 0.25 * voxels.mean(dim=2, keepdim=True)

    restored = run_self_ensemble(per_pixel, frames, voxels, size=size)

    torch.testing.assert_close(restored, per_pixel(frames, voxels), rtol=0, atol=1e-6)


def test_ensemble_averages_orientation_bias():
    frames, voxels = random_clip(seed=2)
    width = frames.shape[-1]
    ramp = torch.linspace(0.0, 1.0, width)

    def biased(frames: torch.Tensor, voxels: torch.Tensor | None) -> torch.Tensor:
        # A left-to-right ramp in whatever orientation the model is given.
        return frames + torch.linspace(0.0, 1.0, frames.shape[-1])

    def first_bin(frames: torch.Tensor, voxels: torch.Tensor | None) -> torch.Tensor:
        return frames + voxels[:, :, :1]

    horizontal = run_self_ensemble(biased, frames, voxels, size=2)
    backwards = run_self_ensemble(first_bin, frames, voxels, size=16)

    # A ramp and its mirror image average to a constant 0.5.
    torch.testing.assert_close(horizontal, frames + 0.5 * (ramp + ramp.flip(0)), rtol=0, atol=1e-6)
    torch.testing.assert_close(horizontal, frames + 0.5, rtol=0, atol=1e-6)
    # Half the variants see the exposure backwards, so their "first" bin is the last one.
    torch.testing.assert_close(backwards, frames + 0.5 * (voxels[:, :, :1] + voxels[:, :, -1:]), rtol=0, atol=1e-6)


def test_unsupported_sizes_rejected():
    with pytest.raises(ValueError, match="use one of 1, 2, 4, 8, 16"):
        ensemble_variants(3)
    with pytest.raises(InvalidInputError, match="self-ensemble size 6"):
        InferenceSettings(self_ensemble=6)


class ReversedSpikes(PatternSpikes):
    """The same voxels with the bins of each exposure in reverse order."""

    def voxels(self, index: int, time_s: float, duration_s: float, *, bins: int = 32) -> np.ndarray:
        return np.ascontiguousarray(super().voxels(index, time_s, duration_s, bins=bins)[::-1])


def test_engine_averages_all_variants():
    frames = make_frames(5, 70, 90, seed=3)
    settings = dict(clip_len=3, clip_overlap=1, tile=64, tile_overlap=16)
    plain_model, ensemble_model = PixelModel(), PixelModel()
    outputs = {}
    for name, model, spikes, size in (
        ("plain", plain_model, PatternSpikes(70, 90), 1),
        ("reversed", PixelModel(), ReversedSpikes(70, 90), 1),
        ("ensemble", ensemble_model, PatternSpikes(70, 90), 16),
    ):
        sink = ListSink()
        run_inference(
            frames, model, sink, settings=InferenceSettings(**settings, self_ensemble=size), spikes=spikes, output_dtype=np.float32
        )
        outputs[name] = np.stack(sink.images)

    # The stand-in model works per pixel but reads the first bin, so the eight spatial variants agree
    # with the plain run and the eight played backwards with a run on reversed bins.
    np.testing.assert_allclose(outputs["ensemble"], 0.5 * (outputs["plain"] + outputs["reversed"]), rtol=0, atol=1e-6)
    assert not np.allclose(outputs["ensemble"], outputs["plain"], atol=1e-4)
    assert len(ensemble_model.shapes) == 16 * len(plain_model.shapes)
    # Transposed variants reach the model with height and width swapped.
    assert {shape[-2:] for shape in ensemble_model.shapes} == {
        shape[-2:] for shape in plain_model.shapes
    } | {shape[-2:][::-1] for shape in plain_model.shapes}
