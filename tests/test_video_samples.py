"""Transcoding the real sample clips: frames, duration, audio, size and quality are kept."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from conftest import shared_file

from spikedeblur.video import EncodeOptions, VideoReader, open_video_writer, probe


def audio_payloads(path: Path) -> list[bytes]:
    with av.open(str(path)) as container:
        return [bytes(packet) for packet in container.demux(audio=0) if packet.size]


def sampled_yuv_planes(path: Path, step: int) -> list[np.ndarray]:
    """Return every ``step``-th frame as stacked yuv420p planes, the samples the encoder compresses."""
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="yuv420p") for index, frame in enumerate(container.decode(video=0)) if index % step == 0]


def psnr(first: np.ndarray, second: np.ndarray) -> float:
    mse = np.mean((first.astype(np.float64) - second.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-12)))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["bigbuckbunny.mp4", "bikes.mp4"])
def test_sample_transcode_keeps_everything(tmp_path, name):
    source = shared_file(f"video/{name}")
    target = tmp_path / name
    # veryfast instead of the default medium keeps the test short; CRF 18 sets the quality either way.
    options = EncodeOptions(crf=18, preset="veryfast")

    rgb_scores = []
    with VideoReader(source) as reader:
        with open_video_writer(target, source=reader.info, options=options, copy_streams_from=source) as writer:
            originals = []
            for frame in reader:
                writer.write(frame.image, pts=frame.pts)
                if frame.index % 10 == 0:
                    originals.append(frame.image)
    with VideoReader(target) as reader:
        for frame in reader:
            if frame.index % 10 == 0:
                rgb_scores.append(psnr(originals[frame.index // 10], frame.image))
    yuv_scores = [psnr(a, b) for a, b in zip(sampled_yuv_planes(source, 10), sampled_yuv_planes(target, 10), strict=True)]

    before, after = probe(source), probe(target)
    assert after.num_frames == before.num_frames
    assert after.duration_s == pytest.approx(before.duration_s, abs=1e-6)
    assert (after.width, after.height) == (before.width, before.height)
    assert len(rgb_scores) == len(originals)
    # The encoder's loss, measured on the YUV planes as FFmpeg's psnr filter does.
    assert min(yuv_scores) > 40, f"YUV PSNR per sampled frame: {yuv_scores}"
    # In RGB the 4:2:0 chroma is resampled once more; a wrong matrix or range would cost 10 dB.
    assert np.mean(rgb_scores) > 39, f"RGB PSNR per sampled frame: {rgb_scores}"
    assert len(after.audio_streams) == len(before.audio_streams)
    if before.audio_streams:
        assert audio_payloads(target) == audio_payloads(source)
