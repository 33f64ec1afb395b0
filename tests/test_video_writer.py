"""Writing video: frame counts, timestamps, copied streams, sizes, colour, safety of the output."""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from video_clips import make_clip, moving_pattern

from spikedeblur.errors import InvalidInputError, OutputExistsError
from spikedeblur.video import EncodeOptions, VideoReader, VideoWriter, open_video_writer, probe

FAST = EncodeOptions(preset="ultrafast")


def transcode(source: Path, target: Path, options: EncodeOptions = FAST, **writer_kwargs) -> None:
    with VideoReader(source) as reader:
        with open_video_writer(
            target, source=reader.info, options=options, copy_streams_from=source, **writer_kwargs
        ) as writer:
            for frame in reader:
                writer.write(frame.image, pts=frame.pts)


def frame_times(path: Path) -> list[Fraction]:
    """Return every decoded video frame's time in seconds as an exact fraction."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return [frame.pts * stream.time_base for frame in container.decode(stream)]


def packets_of(path: Path, kind: str) -> list[tuple[bytes, Fraction | None]]:
    """Return the payload and time of every packet of the first stream of ``kind``."""
    with av.open(str(path)) as container:
        stream = next(s for s in container.streams if s.type == kind)
        return [
            (bytes(packet), packet.pts * stream.time_base if packet.pts is not None else None)
            for packet in container.demux(stream)
            if packet.size
        ]


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".mov"])
def test_bframes_clip_keeps_count_and_timestamps(tmp_path, suffix):
    source = make_clip(tmp_path / "b.mp4", num_frames=25, bframes=3)
    target = tmp_path / f"out{suffix}"
    transcode(source, target)

    assert frame_times(target) == frame_times(source)
    assert len(frame_times(target)) == 25
    assert probe(target).num_frames == 25


@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
def test_vfr_timestamps_equal_input(tmp_path, suffix):
    pts = [0, 40, 80, 100, 180, 190, 300, 310, 400, 500, 520, 700]
    source = make_clip(tmp_path / "vfr.mkv", num_frames=len(pts), time_base=Fraction(1, 1000), pts=pts)
    target = tmp_path / f"out{suffix}"
    transcode(source, target)

    assert frame_times(target) == [Fraction(p, 1000) for p in pts]


def test_audio_packets_copied_byte_identical(tmp_path):
    source = make_clip(tmp_path / "a.mp4", num_frames=25, audio=True, audio_start_s=0.12)
    target = tmp_path / "out.mkv"
    transcode(source, target)

    source_audio = packets_of(source, "audio")
    target_audio = packets_of(target, "audio")
    assert len(source_audio) > 20
    assert [payload for payload, _ in target_audio] == [payload for payload, _ in source_audio]
    # Matroska stores times in milliseconds; the 0.12 s start offset (less AAC priming) is kept.
    assert [float(time) for _, time in target_audio] == pytest.approx([float(t) for _, t in source_audio], abs=0.001)
    assert float(source_audio[0][1]) > 0.09
    assert frame_times(target) == frame_times(source)


def test_no_audio_drops_audio(tmp_path):
    source = make_clip(tmp_path / "a.mp4", num_frames=5, audio=True)
    target = tmp_path / "out.mp4"
    transcode(source, target, options=EncodeOptions(preset="ultrafast", copy_audio=False))

    assert probe(target).audio_streams == ()


def test_subtitles_copied_into_mkv(tmp_path):
    cues = [(0.1, 0.5, "Hello"), (0.6, 0.9, "World")]
    source = make_clip(tmp_path / "s.mkv", num_frames=25, subtitles=cues)
    target = tmp_path / "out.mkv"
    transcode(source, target)

    assert packets_of(target, "subtitle") == packets_of(source, "subtitle")
    assert [(text, time) for text, time in packets_of(target, "subtitle")] == [
        (b"Hello", Fraction(1, 10)),
        (b"World", Fraction(3, 5)),
    ]


def test_subtitles_converted_to_mov_text_for_mp4(tmp_path):
    source = make_clip(tmp_path / "s.mkv", num_frames=25, subtitles=[(0.1, 0.5, "Hello"), (0.6, 0.9, "World")])
    target = tmp_path / "out.mp4"
    transcode(source, target)

    info = probe(target)
    assert [stream.codec for stream in info.subtitle_streams] == ["mov_text"]
    texts = [payload for payload, _ in packets_of(target, "subtitle") if len(payload) > 2]
    assert [payload[2:] for payload in texts] == [b"Hello", b"World"]


def test_unsupported_subtitles_skipped_with_warning(tmp_path, caplog):
    source = make_clip(tmp_path / "s.mkv", num_frames=5, subtitles=[(0.1, 0.15, "Hello")])
    target = tmp_path / "out.avi"
    with caplog.at_level(logging.WARNING, logger="spikedeblur"):
        transcode(source, target)

    assert "skipping subtitle stream 1 (srt): the avi container cannot hold it" in caplog.text
    assert probe(target).num_frames == 5


@pytest.mark.parametrize(("policy", "size"), [("pad", (64, 48)), ("crop", (62, 46))])
def test_odd_size_made_even_for_420(tmp_path, caplog, policy, size):
    source = make_clip(tmp_path / "odd.mp4", num_frames=5, width=63, height=47, pix_fmt="yuv444p")
    target = tmp_path / "out.mp4"
    options = EncodeOptions(preset="ultrafast", pixel_format="yuv420p", even_size=policy)
    with caplog.at_level(logging.INFO, logger="spikedeblur"):
        transcode(source, target, options=options)

    info = probe(target)
    assert (info.width, info.height) == size
    assert info.num_frames == 5
    assert f"to {size[0]}x{size[1]}" in caplog.text


def test_odd_size_kept_when_chroma_is_full(tmp_path):
    source = make_clip(tmp_path / "odd.mp4", num_frames=5, width=63, height=47, pix_fmt="yuv444p")
    target = tmp_path / "out.mp4"
    transcode(source, target)

    info = probe(target)
    assert (info.width, info.height, info.pix_fmt) == (63, 47, "yuv444p")


def test_rotation_carried_not_applied(tmp_path):
    source = make_clip(tmp_path / "rot.mp4", num_frames=3, width=64, height=32, rotation=90)
    target = tmp_path / "out.mp4"
    transcode(source, target)

    info = probe(target)
    assert info.rotation == 90
    assert (info.width, info.height) == (64, 32)


def test_10bit_stays_10bit(tmp_path):
    image = np.zeros((48, 64, 3), dtype=np.uint16)
    image[:, :32] = (40000, 20000, 10000)
    image[:, 32:] = (1000, 30000, 60000)
    source = make_clip(tmp_path / "deep.mkv", num_frames=3, pix_fmt="yuv420p10le", frames=[image] * 3)
    target = tmp_path / "out.mkv"
    transcode(source, target)

    info = probe(target)
    assert info.pix_fmt == "yuv420p10le"
    with VideoReader(target) as reader:
        decoded = next(iter(reader)).image
    assert decoded.dtype == np.uint16
    # Away from the colour edge, where 4:2:0 chroma blends the two halves, CRF 18 stays within a few
    # 10-bit levels (64 units of 65535 each).
    error = np.abs(decoded[8:40, 4:24].astype(int) - image[8:40, 4:24].astype(int))
    assert error.mean() < 2 * 64
    assert error.max() < 8 * 64


@pytest.mark.parametrize(("space", "color_range"), [(1, 2), (6, 1)])
def test_colour_tags_written_and_colours_kept(tmp_path, space, color_range):
    source = make_clip(tmp_path / "tagged.mp4", num_frames=3, colorspace=space, color_range=color_range)
    target = tmp_path / "out.mp4"
    transcode(source, target, options=EncodeOptions(preset="ultrafast", crf=0))

    info = probe(target)
    assert (info.color.space, info.color.range) == (space, color_range)
    with VideoReader(source) as first, VideoReader(target) as second:
        before = next(iter(first)).image.astype(int)
        after = next(iter(second)).image.astype(int)
    # Lossless YUV still requantises RGB and resamples 4:2:0 chroma once more; a wrong matrix or
    # range would move colours by 10 levels or more.
    assert np.abs(before - after).mean() < 3


def test_untagged_source_output_tagged_with_assumed_matrix(tmp_path):
    source = make_clip(tmp_path / "plain.mp4", num_frames=2)
    target = tmp_path / "out.mp4"
    transcode(source, target)

    info = probe(target)
    assert info.color.names()["space"] == "smpte170m"
    assert info.color.names()["range"] == "tv"


@pytest.mark.parametrize(
    ("codec", "suffix", "pix_fmt"),
    [("libx265", ".mp4", "yuv420p"), ("libsvtav1", ".mkv", "yuv420p"), ("ffv1", ".mkv", "yuv420p"), ("prores_ks", ".mov", "yuv422p10le")],
)
def test_other_encoders_keep_frame_count(tmp_path, codec, suffix, pix_fmt):
    source = make_clip(tmp_path / "src.mp4", num_frames=6, width=64, height=64)
    target = tmp_path / f"out{suffix}"
    options = EncodeOptions(codec=codec, encoder_options={"preset": "12"} if codec == "libsvtav1" else {})
    transcode(source, target, options=options)

    info = probe(target)
    assert info.num_frames == 6
    assert info.pix_fmt == pix_fmt
    assert frame_times(target) == frame_times(source)


def test_float_frames_without_source(tmp_path):
    target = tmp_path / "out.mkv"
    with VideoWriter(target, source=None, options=FAST) as writer:
        for index in range(4):
            writer.write(moving_pattern(index, 32, 16).astype(np.float32) / 255.0)

    info = probe(target)
    assert (info.width, info.height, info.num_frames) == (32, 16, 4)
    assert frame_times(target) == [Fraction(i, 25) for i in range(4)]


def test_time_argument_converted_to_pts(tmp_path):
    target = tmp_path / "out.mkv"
    times = [0.0, 0.1, 0.25, 0.3]
    with VideoWriter(target, source=None, options=FAST) as writer:
        for index, time in enumerate(times):
            writer.write(moving_pattern(index, 32, 16), time=time)

    assert [float(t) for t in frame_times(target)] == pytest.approx(times, abs=0.001)


# --- guards ---


def test_repeated_timestamp_rejected(tmp_path):
    target = tmp_path / "out.mp4"
    image = moving_pattern(0, 32, 16)
    with pytest.raises(InvalidInputError, match="timestamps must increase strictly"):
        with VideoWriter(target, source=None, options=FAST) as writer:
            writer.write(image, pts=0)
            writer.write(image, pts=0)
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_wrong_frame_size_rejected(tmp_path):
    source = make_clip(tmp_path / "src.mp4", num_frames=2)
    with pytest.raises(InvalidInputError, match="but the output is 64x48"):
        with VideoWriter(tmp_path / "out.mp4", source=probe(source), options=FAST) as writer:
            writer.write(np.zeros((40, 64, 3), np.uint8))
    assert not (tmp_path / "out.mp4").exists()


def test_exception_mid_stream_leaves_no_file(tmp_path):
    source = make_clip(tmp_path / "src.mp4", num_frames=10)
    target = tmp_path / "out.mp4"
    target.write_bytes(b"precious earlier result")

    with pytest.raises(RuntimeError, match="model failed"):
        with VideoReader(source) as reader, VideoWriter(target, source=reader.info, options=FAST, overwrite=True) as writer:
            for frame in reader:
                writer.write(frame.image, pts=frame.pts)
                if frame.index == 5:
                    raise RuntimeError("model failed")

    assert target.read_bytes() == b"precious earlier result"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["out.mp4", "src.mp4"]


def test_existing_output_not_overwritten(tmp_path):
    source = make_clip(tmp_path / "src.mp4", num_frames=2)
    target = tmp_path / "out.mp4"
    target.write_bytes(b"keep me")
    with pytest.raises(OutputExistsError, match="--overwrite"):
        transcode(source, target)
    assert target.read_bytes() == b"keep me"


def test_writing_onto_input_rejected(tmp_path):
    source = make_clip(tmp_path / "src.mp4", num_frames=2)
    before = source.read_bytes()
    with pytest.raises(InvalidInputError, match="same file as the input"):
        transcode(source, source, overwrite=True, inputs=(source,))
    assert source.read_bytes() == before


def test_unknown_encoder_lists_available(tmp_path):
    with pytest.raises(InvalidInputError, match="not available.*available: libx264"):
        VideoWriter(tmp_path / "out.mp4", source=None, options=EncodeOptions(codec="libnothing"))


def test_invalid_encoder_option_rejected_before_frames(tmp_path):
    source = probe(make_clip(tmp_path / "src.mp4", num_frames=2))
    options = EncodeOptions(preset="no-such-preset")
    with pytest.raises(InvalidInputError, match="rejected its settings"):
        with VideoWriter(tmp_path / "out.mp4", source=source, options=options):
            pass
    assert not (tmp_path / "out.mp4").exists()


def test_encode_options_validate():
    with pytest.raises(InvalidInputError, match="CRF 60 is out of range for libx264"):
        EncodeOptions(crf=60)
    with pytest.raises(InvalidInputError, match="takes no CRF"):
        EncodeOptions(codec="ffv1", crf=10)
    with pytest.raises(InvalidInputError, match="pad or crop"):
        EncodeOptions(even_size="stretch")
    assert EncodeOptions().codec_options() == {"crf": "18", "preset": "medium"}
    assert EncodeOptions(encoder_options={"tune": "film", "crf": "20"}).codec_options()["crf"] == "20"


# --- PNG sequences ---


def test_png_folder_output(tmp_path):
    source = make_clip(tmp_path / "src.mp4", num_frames=4)
    folder = tmp_path / "frames"
    transcode(source, folder)

    names = sorted(path.name for path in folder.iterdir())
    assert names == ["000000.png", "000001.png", "000002.png", "000003.png"]
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith(".")] == []
    with VideoReader(source) as reader:
        first = next(iter(reader)).image
    saved = cv2.cvtColor(cv2.imread(str(folder / "000000.png")), cv2.COLOR_BGR2RGB)
    assert np.array_equal(saved, first)


def test_png_pattern_output_16bit_for_deep_source(tmp_path):
    image = np.full((32, 32, 3), 30000, dtype=np.uint16)
    source = make_clip(tmp_path / "deep.mkv", num_frames=2, width=32, height=32, pix_fmt="yuv420p10le", frames=[image] * 2)
    transcode(source, tmp_path / "out" / "f_%04d.png")

    saved = cv2.imread(str(tmp_path / "out" / "f_0001.png"), cv2.IMREAD_UNCHANGED)
    assert saved.dtype == np.uint16
    assert abs(int(saved[16, 16, 0]) - 30000) < 300


def test_png_folder_refuses_existing_frames_then_overwrites(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for index in range(6):
        (folder / f"{index:06d}.png").write_bytes(b"old")
    (folder / "notes.txt").write_text("mine")
    source = make_clip(tmp_path / "src.mp4", num_frames=3)

    with pytest.raises(OutputExistsError, match="--overwrite"):
        transcode(source, folder)
    assert (folder / "000000.png").read_bytes() == b"old"

    transcode(source, folder, overwrite=True)
    assert sorted(path.name for path in folder.iterdir()) == ["000000.png", "000001.png", "000002.png", "notes.txt"]


def test_png_exception_leaves_target_untouched(tmp_path):
    folder = tmp_path / "frames"
    with pytest.raises(RuntimeError, match="stop"):
        with open_video_writer(folder, source=None) as writer:
            writer.write(moving_pattern(0, 16, 16))
            raise RuntimeError("stop")
    assert list(tmp_path.iterdir()) == []


def test_unknown_encoder_option_name_rejected(tmp_path):
    options = EncodeOptions(encoder_options={"tunee": "film"})
    with pytest.raises(InvalidInputError, match="'tunee' is not an option of libx264; did you mean tune"):
        VideoWriter(tmp_path / "out.mp4", source=None, options=options)


def test_png_output_warns_that_rotation_is_lost(tmp_path, caplog):
    source = make_clip(tmp_path / "rot.mp4", num_frames=2, rotation=90)
    with caplog.at_level(logging.WARNING, logger="spikedeblur"):
        transcode(source, tmp_path / "frames")

    assert "cannot store the 90 degree rotation tag" in caplog.text
    assert len(list((tmp_path / "frames").iterdir())) == 2


def test_codec_container_mismatch_rejected(tmp_path):
    source = make_clip(tmp_path / "src.mp4", num_frames=2)
    with pytest.raises(InvalidInputError, match="webm container of out.webm cannot hold libx264"):
        transcode(source, tmp_path / "out.webm")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["src.mp4"]


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".mov"])
def test_start_offset_kept(tmp_path, suffix):
    pts = [1000 + 40 * i for i in range(5)]
    source = make_clip(tmp_path / "late.mkv", num_frames=5, time_base=Fraction(1, 1000), pts=pts, audio=True)
    target = tmp_path / f"out{suffix}"
    transcode(source, target)

    assert frame_times(target) == [Fraction(p, 1000) for p in pts]
    assert len(packets_of(target, "audio")) == len(packets_of(source, "audio"))


@pytest.mark.parametrize("with_source", [True, False])
def test_writer_without_frames_keeps_no_file(tmp_path, with_source):
    source = probe(make_clip(tmp_path / "src.mp4", num_frames=2)) if with_source else None
    target = tmp_path / "out.mp4"
    with pytest.raises(InvalidInputError, match="no frames were written"):
        with VideoWriter(target, source=source, options=FAST):
            pass
    assert not target.exists()
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith(".")] == []
