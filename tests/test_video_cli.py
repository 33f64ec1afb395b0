"""The ``transcode`` command, the video part of ``info``, and interrupting a write."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner
from video_clips import make_clip

from spikedeblur.cli import app
from spikedeblur.cli._info_video import show_video_info
from spikedeblur.video import probe

runner = CliRunner()


def run_cli(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_transcode_default_output_name(tmp_path):
    source = make_clip(tmp_path / "clip.mp4", num_frames=5, audio=True)
    result = run_cli("transcode", str(source), "--preset", "ultrafast")

    assert result.exit_code == 0, result.output
    target = tmp_path / "clip_transcode.mp4"
    assert str(target) in result.stdout
    info = probe(target)
    assert info.num_frames == 5
    assert len(info.audio_streams) == 1

    again = run_cli("transcode", str(source), "--preset", "ultrafast")
    assert again.exit_code == 0
    assert (tmp_path / "clip_transcode_2.mp4").exists()


def test_transcode_options_reach_the_encoder(tmp_path):
    source = make_clip(tmp_path / "clip.mp4", num_frames=5, audio=True, width=63, height=47, pix_fmt="yuv444p")
    target = tmp_path / "out.mkv"
    result = run_cli(
        "transcode", str(source), "-o", str(target), "--codec", "libx265", "--crf", "30", "--preset", "ultrafast",
        "-e", "x265-params=log-level=error", "--pixel-format", "yuv420p", "--even-size", "crop", "--no-audio",
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    info = probe(target)
    assert (info.codec, info.width, info.height, info.pix_fmt) == ("hevc", 62, 46, "yuv420p")
    assert info.audio_streams == ()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--crf", "70"], "CRF 70 is out of range"),
        (["-e", "novalue"], "write it as key=value"),
        (["-e", "presett=fast"], "not an option of libx264"),
        (["--codec", "libnothing"], "not available"),
        (["--even-size", "stretch"], "stretch"),
    ],
)
def test_transcode_bad_options_are_usage_errors(tmp_path, args, message):
    source = make_clip(tmp_path / "clip.mp4", num_frames=2)
    result = runner.invoke(app, ["transcode", str(source), *args])

    assert result.exit_code == 2
    assert message in result.output
    assert sorted(path.name for path in tmp_path.iterdir()) == ["clip.mp4"]


def test_transcode_refuses_existing_output(tmp_path):
    source = make_clip(tmp_path / "clip.mp4", num_frames=2)
    target = tmp_path / "out.mp4"
    target.write_bytes(b"mine")
    result = runner.invoke(app, ["transcode", str(source), "-o", str(target)])

    assert result.exit_code == 1
    assert "already exists; pass --overwrite" in result.output
    assert target.read_bytes() == b"mine"


def test_transcode_non_video_is_one_line_error(tmp_path):
    text = tmp_path / "notes.mkv"
    text.write_text("hello\n" * 100)
    result = runner.invoke(app, ["transcode", str(text)])

    assert result.exit_code == 1
    assert "not a readable video or image file" in result.output
    assert "Traceback" not in result.output


def test_transcode_image_folder_to_png_pattern(tmp_path):
    source = make_clip(tmp_path / "clip.mp4", num_frames=3)
    frames = tmp_path / "frames"
    assert run_cli("transcode", str(source), "-o", str(frames / "%03d.png")).exit_code == 0
    assert sorted(path.name for path in frames.iterdir()) == ["000.png", "001.png", "002.png"]

    result = run_cli("transcode", str(frames), "--fps", "10", "--preset", "ultrafast")
    assert result.exit_code == 0, result.output
    info = probe(tmp_path / "frames_transcode.mp4")
    assert info.num_frames == 3
    assert info.fps == 10


def test_info_text_lists_video_facts(tmp_path, capsys):
    source = make_clip(tmp_path / "clip.mkv", num_frames=5, audio=True, rotation=90, subtitles=[(0.0, 0.1, "Hi")])
    show_video_info(source, json_output=False)
    text = capsys.readouterr().out

    assert "64x48" in text
    assert "25 fps" in text
    assert "5 (counted)" in text
    assert "rotation         90 degrees" in text
    assert "aac 48000 Hz mono" in text
    assert "srt" in text
    assert "matrix smpte170m (assumed)" in text


def test_info_json(tmp_path, capsys):
    image = tmp_path / "frame.png"
    import cv2
    import numpy as np

    cv2.imwrite(str(image), np.zeros((10, 12, 3), np.uint16))
    show_video_info(image, json_output=True)
    facts = json.loads(capsys.readouterr().out)

    assert facts["kind"] == "image-sequence"
    assert (facts["width"], facts["height"], facts["frames"], facts["bit_depth"]) == (12, 10, 1, 16)
    assert facts["fps_assumed"] is True


@pytest.mark.slow
def test_sigint_during_transcode_leaves_no_file(tmp_path):
    # Large enough that x264's veryslow preset needs several seconds even on an idle machine, so the
    # signal always lands mid-stream.
    source = make_clip(tmp_path / "long.mp4", num_frames=300, width=640, height=480)
    target = tmp_path / "out.mp4"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "spikedeblur", "transcode", str(source), "-o", str(target), "--preset", "veryslow"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        # A shell that starts this suite in the background gives its children an ignored SIGINT,
        # so Python installs no KeyboardInterrupt handler. Restore the default, as a terminal would.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 60
        while not any(path.name.endswith(".part.mp4") for path in tmp_path.iterdir()):
            assert process.poll() is None, "transcode finished before it could be interrupted"
            assert time.monotonic() < deadline, "the temporary output never appeared"
            time.sleep(0.05)
        time.sleep(0.1)
        assert process.poll() is None, "transcode finished before it could be interrupted"
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()

    assert process.returncode == 130, stderr.decode()
    assert "interrupted" in stderr.decode()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["long.mp4"]
