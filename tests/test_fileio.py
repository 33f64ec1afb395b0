"""Atomic output, overwrite protection and default output names."""

from __future__ import annotations

import pytest

from spikedeblur.errors import InvalidInputError, OutputExistsError
from spikedeblur import fileio
from spikedeblur.fileio import atomic_output, default_output_path


def test_atomic_output_renames_on_success(tmp_path):
    target = tmp_path / "out.txt"

    with atomic_output(target) as temp:
        temp.write_text("done")
        assert not target.exists()

    assert target.read_text() == "done"
    assert list(tmp_path.iterdir()) == [target]


def test_atomic_output_removes_temp_on_error(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("original")

    with pytest.raises(KeyboardInterrupt):
        with atomic_output(target, overwrite=True) as temp:
            temp.write_text("partial")
            raise KeyboardInterrupt

    assert target.read_text() == "original"
    assert list(tmp_path.iterdir()) == [target]


def test_existing_output_needs_overwrite(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("original")

    with pytest.raises(OutputExistsError, match="--overwrite"):
        with atomic_output(target):
            pass

    assert target.read_text() == "original"


def test_output_equal_to_input_rejected(tmp_path):
    source = tmp_path / "in.mp4"
    source.write_bytes(b"x")

    with pytest.raises(InvalidInputError, match="same file as the input"):
        with atomic_output(source, overwrite=True, inputs=(source,)):
            pass


def test_default_output_path_never_collides(tmp_path):
    source = tmp_path / "clip.mp4"

    first = default_output_path(source, "run")
    first.write_bytes(b"x")
    second = default_output_path(source, "run")

    assert first.name == "clip_run.mp4"
    assert second.name == "clip_run_2.mp4"


def test_atomic_output_uses_umask_mode(tmp_path):
    target = tmp_path / "out.txt"

    with atomic_output(target) as temp:
        temp.write_text("done")

    assert target.stat().st_mode & 0o777 == 0o666 & ~fileio._UMASK


def test_atomic_output_keeps_replaced_file_mode(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("original")
    target.chmod(0o640)

    with atomic_output(target, overwrite=True) as temp:
        temp.write_text("new")

    assert target.stat().st_mode & 0o777 == 0o640
