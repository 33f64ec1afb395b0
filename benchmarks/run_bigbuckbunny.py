"""Run the whole of a real video through ``spikedeblur run`` and check frames, timestamps and audio.

By default the video is ``../shared/data/video/bigbuckbunny.mp4`` (1280x720, 25 fps, 132 frames, AAC
audio). The script writes a synthetic spike stream covering the video (random spikes at 90x160, which
maps onto 720p by a stretch because the aspect ratios agree) and random ``vrt-spike-tiny`` weights, runs
the real command line in a subprocess, then prints:

* the input and output frame counts and whether every frame timestamp matches;
* the number of audio packets and whether they are byte-identical;
* the wall time and the command's own summary line.

It exits with status 1 when a check fails. The output quality is meaningless (random weights); this
checks the video path at full size and length.

    python benchmarks/run_bigbuckbunny.py
    python benchmarks/run_bigbuckbunny.py --video clip.mp4 --device cuda
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import torch

from spikedeblur.spikes import DatWriter, SpikeMeta
from spikedeblur.video import probe

DEFAULT_VIDEO = Path(__file__).resolve().parents[2] / "shared" / "data" / "video" / "bigbuckbunny.mp4"
PRESET = "vrt-spike-tiny"
SPIKE_SIZE = (90, 160)
SPIKE_RATE_HZ = 2000.0  # 80 ticks per 25 fps frame keeps the stream at about 20 MB


def write_spike_stream(path: Path, *, seconds: float) -> None:
    """Write random spikes covering ``seconds`` (plus one spare frame) with a sidecar."""
    height, width = SPIKE_SIZE
    ticks = int(np.ceil((seconds + 0.04) * SPIKE_RATE_HZ))
    rng = np.random.default_rng(0)
    meta = SpikeMeta(height=height, width=width, rate_hz=SPIKE_RATE_HZ)
    with DatWriter(path, height, width, meta=meta) as writer:
        for start in range(0, ticks, 1000):
            count = min(1000, ticks - start)
            writer.write(rng.random((count, height, width)) < 0.2)


def write_weights(path: Path) -> None:
    from spikedeblur.models.checkpoint import save_checkpoint
    from spikedeblur.models.registry import create_model

    torch.manual_seed(0)
    save_checkpoint(create_model(PRESET), path, preset=PRESET)


def video_pts(path: Path) -> list[int]:
    with av.open(str(path)) as container:
        return [frame.pts for frame in container.decode(video=0)]


def audio_packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return []
        return [bytes(packet) for packet in container.demux(audio=0) if packet.size]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, default=DEFAULT_VIDEO, help="input video (default: bigbuckbunny.mp4)")
    parser.add_argument("--device", default="auto", help="--device for spikedeblur run")
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="further options for spikedeblur run")
    args = parser.parse_args()

    if not args.video.exists():
        print(f"video {args.video} does not exist; give --video", file=sys.stderr)
        return 1

    info = probe(args.video)
    print(f"input: {args.video.name}, {info.width}x{info.height}, {float(info.fps):g} fps, {info.num_frames} frames, "
          f"{len(info.audio_streams)} audio stream(s)")

    with tempfile.TemporaryDirectory(prefix="run_bbb_") as name:
        folder = Path(name)
        spikes = folder / "synthetic.dat"
        weights = folder / "tiny.safetensors"
        output = folder / "deblurred.mp4"
        write_spike_stream(spikes, seconds=info.num_frames / float(info.fps))
        write_weights(weights)

        command = [
            sys.executable, "-m", "spikedeblur", "run", str(args.video), "--spikes", str(spikes),
            "--weights", str(weights), "-o", str(output), "--device", args.device, "--no-progress", *args.extra,
        ]
        print("command:", " ".join(command))
        started = time.perf_counter()
        completed = subprocess.run(command, capture_output=True, text=True, check=False)
        elapsed = time.perf_counter() - started
        print(completed.stderr.strip())
        if completed.returncode != 0:
            print(f"spikedeblur run failed with exit code {completed.returncode}", file=sys.stderr)
            return 1

        input_pts = video_pts(args.video)
        output_pts = video_pts(output)
        input_audio = audio_packets(args.video)
        output_audio = audio_packets(output)

    frames_ok = len(output_pts) == len(input_pts)
    pts_ok = sorted(output_pts) == sorted(input_pts)
    audio_ok = output_audio == input_audio
    print(f"wall time: {elapsed:.1f} s ({len(input_pts) / elapsed:.3f} frames/s including start-up)")
    print(f"frames: input {len(input_pts)}, output {len(output_pts)}: {'equal' if frames_ok else 'DIFFERENT'}")
    print(f"timestamps: {'all equal' if pts_ok else 'DIFFERENT'}")
    print(f"audio packets: input {len(input_audio)}, output {len(output_audio)}: "
          f"{'byte-identical' if audio_ok else 'DIFFERENT'}")
    return 0 if frames_ok and pts_ok and audio_ok else 1


if __name__ == "__main__":
    sys.exit(main())
