"""Reading generated clips: frame counts, timestamps, colour, bit depth, rotation, broken files."""

from __future__ import annotations

import logging
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from video_clips import make_clip

from spikedeblur.errors import InputNotFoundError, InvalidInputError
from spikedeblur.video import VideoReader, probe


def packet_timestamps(path: Path) -> list[int]:
    """Return the sorted presentation timestamps of the first video stream's packets."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return sorted(packet.pts for packet in container.demux(stream) if packet.size)


def read_all(path: Path, **kwargs):
    with VideoReader(path, **kwargs) as reader:
        return reader.info, list(reader)


def test_bframes_clip_yields_all_25_frames(tmp_path):
    clip = make_clip(tmp_path / "b.mp4", num_frames=25, bframes=3)
    info, frames = read_all(clip)

    assert info.num_frames == 25
    assert info.num_frames_exact
    assert len(frames) == 25
    assert [frame.index for frame in frames] == list(range(25))
    assert [frame.pts for frame in frames] == packet_timestamps(clip)
    assert frames[0].image.shape == (48, 64, 3)
    assert frames[0].image.dtype == np.uint8


def test_bframes_clip_has_reordered_packets(tmp_path):
    clip = make_clip(tmp_path / "b.mp4", num_frames=25, bframes=3)
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        decode_order = [packet.pts for packet in container.demux(stream) if packet.size]
    assert decode_order != sorted(decode_order), "the clip must contain B-frames for this test to mean anything"


def test_vfr_timestamps_pass_through(tmp_path):
    pts = [0, 40, 80, 100, 180, 190, 300, 310, 400, 500, 520, 700]
    clip = make_clip(tmp_path / "vfr.mkv", num_frames=len(pts), time_base=Fraction(1, 1000), pts=pts)
    info, frames = read_all(clip)

    assert info.time_base == Fraction(1, 1000)
    assert [frame.pts for frame in frames] == pts
    assert [frame.time for frame in frames] == pytest.approx([p / 1000 for p in pts])


def test_frame_times_include_start_offset(tmp_path, caplog):
    pts = [1000 + 40 * i for i in range(5)]
    clip = make_clip(tmp_path / "late.mkv", num_frames=5, time_base=Fraction(1, 1000), pts=pts, audio=True)
    with caplog.at_level(logging.WARNING, logger="spikedeblur"):
        info, frames = read_all(clip)

    assert info.start_pts == 1000
    assert info.expected_frames == 5
    assert frames[0].time == pytest.approx(1.0)
    assert "ended early" not in caplog.text


def test_probe_reports_streams_and_size(tmp_path):
    clip = make_clip(tmp_path / "a.mp4", num_frames=10, audio=True, width=80, height=64)
    info = probe(clip)

    assert (info.width, info.height) == (80, 64)
    assert info.fps == 25
    assert info.duration_s == pytest.approx(0.4)
    assert info.codec == "h264"
    assert info.bit_depth == 8
    assert len(info.audio_streams) == 1
    assert info.audio_streams[0].codec == "aac"
    assert info.audio_streams[0].sample_rate == 48000
    assert info.subtitle_streams == ()


def test_rotation_is_reported_not_applied(tmp_path):
    clip = make_clip(tmp_path / "rot.mp4", num_frames=3, width=64, height=32, rotation=90)
    info, frames = read_all(clip)

    assert info.rotation == 90
    assert (info.width, info.height) == (64, 32)
    assert frames[0].image.shape == (32, 64, 3)


def test_odd_size_is_read_at_its_size(tmp_path):
    clip = make_clip(tmp_path / "odd.mp4", num_frames=3, width=63, height=47, pix_fmt="yuv444p")
    info, frames = read_all(clip)

    assert (info.width, info.height) == (63, 47)
    assert frames[0].image.shape == (47, 63, 3)


# --- colour: YUV planes are computed here from the standard equations, independent of swscale ---

PATCH_COLOURS = np.array(
    [[200, 30, 40], [30, 180, 60], [40, 50, 210], [250, 250, 250], [16, 16, 16], [128, 128, 128], [230, 200, 20], [90, 20, 160]],
    dtype=np.float64,
)
KR_KB = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722)}


def rgb_to_yuv(rgb: np.ndarray, matrix: str, full_range: bool) -> np.ndarray:
    kr, kb = KR_KB[matrix]
    kg = 1 - kr - kb
    r, g, b = (rgb[..., i] / 255.0 for i in range(3))
    y = kr * r + kg * g + kb * b
    u = (b - y) / (2 * (1 - kb))
    v = (r - y) / (2 * (1 - kr))
    if full_range:
        return np.stack([y * 255, u * 255 + 128, v * 255 + 128], axis=-1)
    return np.stack([16 + y * 219, 128 + u * 224, 128 + v * 224], axis=-1)


def write_patch_clip(path: Path, *, matrix: str, full_range: bool, tagged: bool, width: int, height: int):
    """Write 2 frames of 16x16 colour patches as yuv420p; return the path and (row, column, RGB) truths."""
    patch = 16
    columns = width // patch
    yuv = np.zeros((height, width, 3))
    truth = []
    for number, colour in enumerate(PATCH_COLOURS):
        top, left = (number // columns) * patch, (number % columns) * patch
        yuv[top : top + patch, left : left + patch] = rgb_to_yuv(colour, matrix, full_range)
        truth.append((top + patch // 2, left + patch // 2, colour))
    planes = np.concatenate(
        [
            yuv[:, :, 0],
            yuv[::2, ::2, 1].reshape(height // 4, width),
            yuv[::2, ::2, 2].reshape(height // 4, width),
        ]
    )
    planes = planes.round().clip(0, 255).astype(np.uint8)

    container = av.open(str(path), mode="w")
    stream = container.add_stream("libx264", rate=25, options={"qp": "0", "preset": "ultrafast"})
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    if tagged:
        stream.codec_context.colorspace = {"bt601": 6, "bt709": 1}[matrix]
        stream.codec_context.color_range = 2 if full_range else 1
    for index in range(2):
        frame = av.VideoFrame.from_ndarray(planes, format="yuv420p")
        frame.pts = index
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))
    container.close()
    return path, truth


@pytest.mark.parametrize(
    ("matrix", "full_range", "width", "height"),
    [
        ("bt601", False, 64, 48),
        ("bt601", True, 64, 48),
        ("bt709", False, 64, 48),
        ("bt709", True, 64, 48),
        (None, None, 64, 48),  # untagged SD: BT.601 limited is assumed
        (None, None, 1280, 720),  # untagged HD: BT.709 limited is assumed
    ],
)
def test_colour_patches_decode_within_3_levels(tmp_path, matrix, full_range, width, height):
    tagged = matrix is not None
    if not tagged:
        # Players assume BT.709 for HD and BT.601 below, limited range; the reader must do the same.
        matrix = "bt709" if height >= 720 else "bt601"
        full_range = False
    path, truth = write_patch_clip(
        tmp_path / "patches.mp4", matrix=matrix, full_range=full_range, tagged=tagged, width=width, height=height
    )
    _, frames = read_all(path)

    for row, column, colour in truth:
        decoded = frames[0].image[row, column].astype(int)
        assert np.abs(decoded - colour).max() <= 3, f"patch {colour} decoded as {decoded}"


def test_untagged_colour_guess_is_logged(tmp_path, caplog):
    clip = make_clip(tmp_path / "plain.mp4", num_frames=2)
    with caplog.at_level(logging.INFO, logger="spikedeblur"):
        VideoReader(clip).close()
    assert "assuming matrix smpte170m and range tv" in caplog.text


def test_10bit_source_yields_uint16(tmp_path):
    image = np.zeros((48, 64, 3), dtype=np.uint16)
    image[:, :32] = (40000, 20000, 10000)
    image[:, 32:] = (1000, 30000, 60000)
    clip = make_clip(tmp_path / "deep.mkv", num_frames=3, pix_fmt="yuv420p10le", frames=[image] * 3)
    info, frames = read_all(clip)

    assert info.bit_depth == 10
    assert frames[0].image.dtype == np.uint16
    # 10-bit limited range quantises to about 64 of 65535 per level; allow 3 levels.
    error = np.abs(frames[0].image[8:40, 4:28].astype(int) - image[8:40, 4:28].astype(int)).max()
    assert error <= 3 * 64


# --- broken inputs ---


def test_truncated_mkv_yields_frames_before_cut(tmp_path, caplog):
    clip = make_clip(tmp_path / "full.mkv", num_frames=25)
    data = clip.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: int(len(data) * 0.6)])

    with caplog.at_level(logging.WARNING, logger="spikedeblur"):
        info, frames = read_all(cut)

    assert 5 < len(frames) < 25
    assert f"input ended early: {len(frames)} of 25 frames" in caplog.text
    assert [frame.pts for frame in frames] == [40 * i for i in range(len(frames))]


def test_truncated_faststart_mp4_warns(tmp_path, caplog):
    path = tmp_path / "fast.mp4"
    container = av.open(str(path), mode="w", options={"movflags": "faststart"})
    stream = container.add_stream("libx264", rate=25, options={"preset": "ultrafast"})
    stream.width, stream.height = 64, 48
    for index in range(25):
        frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), index * 10, np.uint8), format="rgb24")
        frame.pts = index
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))
    container.close()
    data = path.read_bytes()
    assert data.find(b"moov") < data.find(b"mdat"), "faststart puts the index first"
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.7)])

    with caplog.at_level(logging.WARNING, logger="spikedeblur"):
        _, frames = read_all(cut)

    assert 5 < len(frames) < 25
    assert f"input ended early: {len(frames)} of 25 frames" in caplog.text


def test_mp4_without_moov_gets_clear_error(tmp_path):
    clip = make_clip(tmp_path / "full.mp4", num_frames=25)
    data = clip.read_bytes()
    moov = data.find(b"moov")
    assert moov > data.find(b"mdat"), "the generated MP4 must have its index at the end"
    cut = tmp_path / "unfinished.mp4"
    cut.write_bytes(data[: moov - 4])

    with pytest.raises(InvalidInputError, match="index \\(moov box\\) was never written"):
        probe(cut)


def test_non_video_file_gets_clear_error(tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("these are not video frames\n" * 50)
    with pytest.raises(InvalidInputError, match="not a readable video or image file"):
        VideoReader(text)


def test_audio_only_file_is_rejected(tmp_path):
    path = tmp_path / "sound.m4a"
    container = av.open(str(path), mode="w")
    stream = container.add_stream("aac", rate=48000, layout="mono")
    frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
    frame.sample_rate = 48000
    frame.pts = 0
    container.mux(stream.encode(frame))
    container.mux(stream.encode(None))
    container.close()

    with pytest.raises(InvalidInputError, match="has no video stream"):
        probe(path)


def test_missing_input_is_not_found(tmp_path):
    with pytest.raises(InputNotFoundError, match="does not exist"):
        probe(tmp_path / "absent.mp4")


# --- images ---


def test_image_folder_natural_order_and_16bit(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for number in (10, 2, 1):
        image = np.full((20, 30, 3), number * 1000, dtype=np.uint16)
        cv2.imwrite(str(folder / f"frame{number}.png"), image)
    (folder / "notes.txt").write_text("not an image")
    info, frames = read_all(folder, image_fps=10)

    assert info.is_image_sequence
    assert info.num_frames == 3
    assert info.bit_depth == 16
    assert info.fps == 10
    assert [int(frame.image[0, 0, 0]) for frame in frames] == [1000, 2000, 10000]
    assert [frame.time for frame in frames] == pytest.approx([0.0, 0.1, 0.2])


def test_image_folder_rejects_size_change(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    cv2.imwrite(str(folder / "1.png"), np.zeros((20, 30, 3), np.uint8))
    cv2.imwrite(str(folder / "2.png"), np.zeros((22, 30, 3), np.uint8))
    with pytest.raises(InvalidInputError, match="same size"):
        read_all(folder)


def test_single_grayscale_jpeg(tmp_path):
    path = tmp_path / "one.jpg"
    cv2.imwrite(str(path), np.full((16, 24), 77, np.uint8))
    info, frames = read_all(path)

    assert info.num_frames == 1
    assert frames[0].image.shape == (16, 24, 3)
    assert abs(int(frames[0].image[8, 8, 1]) - 77) <= 2


def test_empty_folder_is_rejected(tmp_path):
    with pytest.raises(InvalidInputError, match="contains no image files"):
        probe(tmp_path)


def test_alpha_channel_dropped_with_warning(tmp_path, caplog):
    folder = tmp_path / "frames"
    folder.mkdir()
    for number in range(2):
        rgba = np.zeros((8, 8, 4), np.uint8)
        rgba[..., 2] = 200  # red in OpenCV's BGRA order
        rgba[..., 3] = 10
        cv2.imwrite(str(folder / f"{number}.png"), rgba)
    with caplog.at_level(logging.WARNING, logger="spikedeblur"):
        _, frames = read_all(folder)

    assert frames[0].image.shape == (8, 8, 3)
    assert frames[0].image[0, 0].tolist() == [200, 0, 0]
    assert caplog.text.count("dropping the alpha channel") == 1


def test_early_stop_with_pyav_logging_does_not_hang(tmp_path):
    clip = make_clip(tmp_path / "b.mp4", num_frames=40, width=320, height=240)
    # Without drain_decoder this plain loop hung when closing the container after a few attempts.
    script = f"""
import av, av.logging
from spikedeblur.video.reader import VideoReader, drain_decoder
av.logging.set_level(av.logging.VERBOSE)
for attempt in range(6):
    with av.open({str(clip)!r}) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for index, frame in enumerate(container.decode(stream)):
            if index == 2 + attempt:
                break
        drain_decoder(stream)
    with VideoReader({str(clip)!r}, prefetch=1) as reader:
        for frame in reader:
            if frame.index == attempt:
                break
print("done")
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)

    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("done")
