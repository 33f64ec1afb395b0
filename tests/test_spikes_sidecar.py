"""Tests for the NAME.dat.json sidecar and the spatial mapping it stores."""

from __future__ import annotations

import json

import numpy as np
import pytest

from spikedeblur.errors import InvalidInputError
from spikedeblur.spikes import SpatialMapping, SpikeMeta, map_to_video, read_sidecar, sidecar_path, write_sidecar


def test_sidecar_round_trip(tmp_path):
    meta = SpikeMeta(
        height=250,
        width=400,
        rate_hz=40000.0,
        flip=False,
        head_cols=16,
        offset_s=0.125,
        exposure_fraction=0.5,
        frame_ticks=((0, 9), (10, 19)),
        spatial=SpatialMapping(kind="scale_offset", scale=(2.0, 2.0), offset=(-3.0, 4.0)),
        threshold=2.0,
        gain=1.0,
    )
    dat = tmp_path / "cam.dat"

    written = write_sidecar(dat, meta)

    assert written == tmp_path / "cam.dat.json"
    assert read_sidecar(dat) == meta


def test_sidecar_missing_returns_none(tmp_path):
    assert read_sidecar(tmp_path / "none.dat") is None


def test_sidecar_homography_round_trip(tmp_path):
    matrix = ((2.0, 0.0, 1.0), (0.0, 2.0, -1.0), (0.0, 0.0, 1.0))
    meta = SpikeMeta(height=8, width=8, spatial=SpatialMapping(kind="homography", matrix=matrix))

    write_sidecar(tmp_path / "h.dat", meta)

    assert read_sidecar(tmp_path / "h.dat").spatial.matrix == matrix


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("{not json", "not valid JSON"),
        ('{"height": 250}', "both height and width"),
        ('{"height": 250, "width": 400, "colour": 1}', "unknown keys"),
        ('{"offset_s": -0.5}', "offset -0.5"),
        ('{"rate_hz": 0}', "rate_hz 0"),
        ('{"exposure_fraction": 1.5}', "exposure fraction 1.5"),
        ('{"exposure_s": 0.01, "exposure_fraction": 0.5}', "either in seconds"),
        ('{"frame_ticks": [[5, 2]]}', "frame_ticks entry 0"),
        ('{"spatial": {"kind": "warp"}}', "kind 'warp' is unknown"),
        ('{"spatial": {"kind": "homography"}}', "needs a 3x3"),
        ('{"version": 7}', "version 7"),
        ('[1, 2]', "not a JSON object"),
    ],
)
def test_bad_sidecar_raises(tmp_path, content, match):
    (tmp_path / "bad.dat.json").write_text(content)

    with pytest.raises(InvalidInputError, match=match):
        read_sidecar(tmp_path / "bad.dat")


def test_sidecar_path_appends_json(tmp_path):
    assert sidecar_path(tmp_path / "a.b.dat").name == "a.b.dat.json"


def test_meta_json_has_format_tag():
    data = SpikeMeta(height=4, width=8).to_json()

    assert data["format"] == "spikedeblur.spike-meta"
    assert json.loads(json.dumps(data))["spatial"] == {"kind": "stretch"}


def test_stretch_rejects_aspect_mismatch():
    images = np.zeros((2, 250, 400), np.float32)

    with pytest.raises(InvalidInputError, match="aspect ratio"):
        map_to_video(images, SpatialMapping(), (720, 1280))


def test_stretch_area_average_preserves_mean():
    rng = np.random.default_rng(0)
    images = rng.random((3, 360, 640)).astype(np.float32)

    mapped = map_to_video(images, SpatialMapping(), (180, 320))

    assert mapped.shape == (3, 180, 320)
    assert np.allclose(mapped[1, 0, 0], images[1, :2, :2].mean(), atol=1e-6)
    assert np.allclose(mapped.mean(), images.mean(), atol=1e-5)


def test_scale_offset_crops_and_pads():
    images = np.zeros((1, 4, 4), np.float32)
    images[0, 0, 0] = 1.0
    images[0, 3, 1] = 0.5
    mapping = SpatialMapping(kind="scale_offset", offset=(1.0, -2.0))

    mapped = map_to_video(images, mapping, (6, 10))

    assert mapped.shape == (1, 6, 10)
    assert mapped[0, 1, 2] == 0.5  # row 3 - 2, column 1 + 1
    assert mapped[0].sum() == 0.5  # row 0 moves to row -2 and is cropped


def test_scale_offset_shrinks_by_area():
    images = np.arange(16, dtype=np.float32).reshape(1, 4, 4)
    mapping = SpatialMapping(kind="scale_offset", scale=(0.5, 0.5), offset=(2.0, 0.0))

    mapped = map_to_video(images, mapping, (2, 4))

    assert mapped[0, 0, 2] == pytest.approx(images[0, :2, :2].mean())
    assert np.array_equal(mapped[0, :, :2], np.zeros((2, 2)))


def test_homography_translation_matches_shift():
    images = np.zeros((2, 5, 5), np.float32)
    images[:, 2, 2] = 1.0
    matrix = ((1.0, 0.0, 3.0), (0.0, 1.0, 1.0), (0.0, 0.0, 1.0))

    mapped = map_to_video(images, SpatialMapping(kind="homography", matrix=matrix), (8, 8))

    assert mapped.shape == (2, 8, 8)
    assert mapped[1, 3, 5] == pytest.approx(1.0)
    assert mapped.sum() == pytest.approx(2.0)
