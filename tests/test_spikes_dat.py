"""Tests for the .dat reader and writer: bit order, flip, round trips, truncation, head columns."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from spikedeblur.errors import InputNotFoundError, InvalidInputError, OutputExistsError
from spikedeblur.spikes import DatReader, DatWriter, SpikeMeta, read_sidecar, sidecar_path, write_dat


def _one_pixel_file(tmp_path, height, width, byte_index, value, name="one.dat"):
    data = np.zeros(height * width // 8, dtype=np.uint8)
    data[byte_index] = value
    path = tmp_path / name
    path.write_bytes(data.tobytes())
    return path


def test_bit0_of_byte0_is_bottom_left(tmp_path):
    path = _one_pixel_file(tmp_path, 250, 400, 0, 0x01)

    frames = DatReader(path, 250, 400).read(0, 1)

    assert frames.shape == (1, 250, 400)
    assert frames.sum() == 1
    assert frames[0, 249, 0] == 1


def test_top_row_column1_bit_position(tmp_path):
    height, width = 250, 400
    byte_index = (height - 1) * width // 8
    assert byte_index == 12450
    path = _one_pixel_file(tmp_path, height, width, byte_index, 0x02)

    frames = DatReader(path, height, width).read(0, 1)

    assert frames.sum() == 1
    assert frames[0, 0, 1] == 1


def test_no_flip_keeps_storage_order(tmp_path):
    path = _one_pixel_file(tmp_path, 4, 8, 0, 0x80)

    frames = DatReader(path, 4, 8, flip=False).read(0, 1)

    assert frames[0, 0, 7] == 1
    assert frames.sum() == 1


def test_writer_one_pixel_bytes(tmp_path):
    frame = np.zeros((1, 250, 400), dtype=np.uint8)
    frame[0, 249, 0] = 1
    frame[0, 0, 1] = 1

    raw = np.fromfile(write_dat(tmp_path / "w.dat", frame), dtype=np.uint8)

    assert raw.size == 12500
    assert raw[0] == 0x01
    assert raw[12450] == 0x02
    assert np.count_nonzero(raw) == 2


@pytest.mark.parametrize("flip", [True, False])
def test_round_trip_random_frames(tmp_path, flip):
    rng = np.random.default_rng(0)
    frames = (rng.random((37, 24, 40)) < 0.3).astype(np.uint8)
    path = write_dat(tmp_path / "r.dat", frames, flip=flip)

    reader = DatReader(path, 24, 40, flip=flip)

    assert len(reader) == 37
    assert np.array_equal(reader.read(0, 37), frames)
    assert np.array_equal(reader.read(5, 9), frames[5:9])
    assert reader.read(3, 4, dtype=bool).dtype == np.bool_
    assert np.array_equal(reader.count_spikes(2, 30), frames[2:30].sum(axis=0))


def test_count_spikes_beyond_uint8_chunk(tmp_path):
    frames = np.ones((600, 8, 8), dtype=np.uint8)
    frames[::3, 0, 0] = 0
    path = write_dat(tmp_path / "many.dat", frames)

    counts = DatReader(path, 8, 8).count_spikes(0, 600)

    assert counts.dtype == np.uint32
    assert counts[0, 0] == 400
    assert counts[7, 7] == 600


def test_writer_streams_batches(tmp_path):
    rng = np.random.default_rng(1)
    frames = (rng.random((10, 16, 16)) < 0.5).astype(bool)
    path = tmp_path / "s.dat"

    with DatWriter(path, 16, 16) as writer:
        for start in range(0, 10, 3):
            writer.write(frames[start : start + 3])
        assert not path.exists()

    assert writer.num_frames == 10
    assert np.array_equal(DatReader(path, 16, 16).read(0, 10, dtype=bool), frames)


def test_writer_error_leaves_no_file(tmp_path):
    path = tmp_path / "partial.dat"

    with pytest.raises(RuntimeError, match="simulated crash"):
        with DatWriter(path, 8, 8) as writer:
            writer.write(np.zeros((2, 8, 8), np.uint8))
            raise RuntimeError("simulated crash")

    assert list(tmp_path.iterdir()) == []


def test_writer_rejects_bad_frames(tmp_path):
    with DatWriter(tmp_path / "bad.dat", 8, 8) as writer:
        with pytest.raises(InvalidInputError, match="do not match"):
            writer.write(np.zeros((1, 8, 16), np.uint8))
        with pytest.raises(InvalidInputError, match="other than 0 and 1"):
            writer.write(np.full((1, 8, 8), 2, np.uint8))
        with pytest.raises(InvalidInputError, match="not binary"):
            writer.write(np.zeros((1, 8, 8), np.float32))
        writer.write(np.zeros((1, 8, 8), np.uint8))


def test_writer_without_frames_saves_nothing(tmp_path):
    with pytest.raises(InvalidInputError, match="no spike frames"):
        with DatWriter(tmp_path / "empty.dat", 8, 8):
            pass

    assert list(tmp_path.iterdir()) == []


def test_writer_refuses_overwrite(tmp_path):
    path = tmp_path / "x.dat"
    path.write_bytes(b"keep")

    with pytest.raises(OutputExistsError):
        write_dat(path, np.zeros((1, 8, 8), np.uint8))

    assert path.read_bytes() == b"keep"
    write_dat(path, np.ones((1, 8, 8), np.uint8), overwrite=True)
    assert path.read_bytes() == b"\xff" * 8


def test_trailing_partial_frame_warns(tmp_path, caplog):
    frames = np.ones((3, 8, 16), np.uint8)
    path = write_dat(tmp_path / "t.dat", frames)
    path.write_bytes(path.read_bytes()[:-5])

    with caplog.at_level(logging.WARNING, logger="spikedeblur"):
        reader = DatReader(path, 8, 16)

    assert len(reader) == 2
    assert reader.trailing_bytes == 11
    assert "11 bytes" in caplog.text


def test_trailing_partial_frame_strict_raises(tmp_path):
    path = write_dat(tmp_path / "t.dat", np.ones((3, 8, 16), np.uint8))
    path.write_bytes(path.read_bytes()[:-5])

    with pytest.raises(InvalidInputError, match="11 bytes"):
        DatReader(path, 8, 16, strict=True)


def test_head_columns_are_dropped(tmp_path):
    height, stored_width = 4, 24
    image = np.zeros((height, stored_width), np.uint8)
    image[1, 3] = 1
    image[2, 20] = 1  # a head column: must disappear
    path = write_dat(tmp_path / "h.dat", image[None])

    reader = DatReader(path, height, 16, head_cols=8)
    frames = reader.read(0, 1)

    assert reader.width == 16
    assert frames.shape == (1, 4, 16)
    assert frames.sum() == 1
    assert frames[0, 1, 3] == 1
    assert reader.count_spikes(0, 1).sum() == 1


@pytest.mark.parametrize(
    ("height", "width", "head", "match"),
    [
        (5, 7, 0, "not a multiple of 8"),
        (0, 8, 0, "height 0"),
        (8, -8, 0, "width -8"),
        (8, 8, -1, "head column count -1"),
    ],
)
def test_impossible_sizes_raise(tmp_path, height, width, head, match):
    path = tmp_path / "a.dat"
    path.write_bytes(b"\0" * 64)

    with pytest.raises(InvalidInputError, match=match):
        DatReader(path, height, width, head_cols=head)


def test_bad_paths_raise(tmp_path):
    with pytest.raises(InputNotFoundError, match="not found"):
        DatReader(tmp_path / "missing.dat", 8, 8)
    with pytest.raises(InvalidInputError, match="is a directory"):
        DatReader(tmp_path, 8, 8)
    (tmp_path / "empty.dat").write_bytes(b"")
    with pytest.raises(InvalidInputError, match="is empty"):
        DatReader(tmp_path / "empty.dat", 8, 8)
    (tmp_path / "short.dat").write_bytes(b"\0" * 7)
    with pytest.raises(InvalidInputError, match="less than one 8x8 frame"):
        DatReader(tmp_path / "short.dat", 8, 8)


def test_read_out_of_range_raises(tmp_path):
    reader = DatReader(write_dat(tmp_path / "o.dat", np.zeros((4, 8, 8), np.uint8)), 8, 8)

    with pytest.raises(InvalidInputError, match=r"\[2, 9\) is outside"):
        reader.read(2, 9)
    with pytest.raises(InvalidInputError, match="is outside"):
        reader.read(-1, 2)


def test_writer_writes_sidecar(tmp_path):
    meta = SpikeMeta(rate_hz=40000.0, spikes_per_frame=8, threshold=2.0)

    path = write_dat(tmp_path / "m.dat", np.zeros((2, 8, 16), np.uint8), flip=False, meta=meta)

    stored = read_sidecar(path)
    assert stored == meta.replace(height=8, width=16, flip=False)
    assert json.loads(sidecar_path(path).read_text())["format"] == "spikedeblur.spike-meta"
