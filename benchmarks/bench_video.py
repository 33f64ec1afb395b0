"""Measure spikedeblur's video reader and writer against plain PyAV loops doing the same work.

Prints frames per second for decode-only, encode-only and decode+encode on a generated 720p H.264
clip. Each figure stands next to a plain single-threaded PyAV loop with the same conversions and
encoder settings. Then it prints the peak resident memory of a transcode of a short and a long clip.

    python benchmarks/bench_video.py                 # 720p, 120 frames, best of 3
    python benchmarks/bench_video.py --frames 60 --repeats 1 --memory-frames 100 1000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import ColorRange, Colorspace, Interpolation

from spikedeblur.video import EncodeOptions, VideoReader, VideoWriter, probe

# The same swscale flags and colour arguments the reader and writer use, so both sides do equal work.
_READ_FLAGS = Interpolation.BILINEAR | Interpolation.ACCURATE_RND | Interpolation.FULL_CHR_H_INT
_WRITE_FLAGS = Interpolation.BILINEAR | Interpolation.ACCURATE_RND


def make_clip(path: Path, *, frames: int, width: int, height: int) -> None:
    """Write an H.264 clip of moving noise-free gradients with ultrafast settings."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    container = av.open(str(path), mode="w")
    stream = container.add_stream("libx264", rate=25, options={"preset": "ultrafast", "crf": "18"})
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    for index in range(frames):
        red = 128 + 100 * np.sin((xs + 4 * index) / 40.0)
        green = 128 + 100 * np.cos((ys - 3 * index) / 30.0)
        blue = 128 + 90 * np.sin((xs + ys + 5 * index) / 50.0)
        image = np.stack([red, green, blue], axis=-1).astype(np.uint8)
        frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
        frame.pts = index
        frame.time_base = Fraction(1, 25)
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))
    container.close()


def decode_plain(path: Path) -> int:
    count = 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        matrix = Colorspace.ITU709 if stream.codec_context.height >= 720 else Colorspace.ITU601
        for frame in container.decode(stream):
            frame.to_ndarray(
                format="rgb24",
                interpolation=_READ_FLAGS,
                src_colorspace=matrix,
                src_color_range=ColorRange.MPEG,
                dst_color_range=ColorRange.JPEG,
            )
            count += 1
    return count


def decode_ours(path: Path) -> int:
    with VideoReader(path) as reader:
        return sum(1 for _ in reader)


def encode_plain(path: Path, images: list[np.ndarray], preset: str) -> int:
    height, width = images[0].shape[:2]
    container = av.open(str(path), mode="w")
    stream = container.add_stream("libx264", rate=25, options={"crf": "18", "preset": preset})
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    stream.time_base = Fraction(1, 12800)
    for index, image in enumerate(images):
        frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(
            format="yuv420p",
            interpolation=_WRITE_FLAGS,
            src_color_range=ColorRange.JPEG,
            dst_colorspace=Colorspace.ITU709,
            dst_color_range=ColorRange.MPEG,
        )
        frame.pts = index * 512
        frame.time_base = Fraction(1, 12800)
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))
    container.close()
    return len(images)


def encode_ours(path: Path, images: list[np.ndarray], preset: str, source) -> int:
    with VideoWriter(path, source=source, options=EncodeOptions(preset=preset), overwrite=True) as writer:
        for index, image in enumerate(images):
            writer.write(image, pts=index * 512)
    return len(images)


def transcode_plain(source: Path, target: Path, preset: str) -> int:
    count = 0
    with av.open(str(source)) as input_container:
        input_stream = input_container.streams.video[0]
        input_stream.thread_type = "AUTO"
        output = av.open(str(target), mode="w")
        stream = output.add_stream("libx264", rate=25, options={"crf": "18", "preset": preset})
        stream.width, stream.height, stream.pix_fmt = input_stream.width, input_stream.height, "yuv420p"
        stream.time_base = input_stream.time_base
        for frame in input_container.decode(input_stream):
            image = frame.to_ndarray(
                format="rgb24",
                interpolation=_READ_FLAGS,
                src_colorspace=Colorspace.ITU709,
                src_color_range=ColorRange.MPEG,
                dst_color_range=ColorRange.JPEG,
            )
            new = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(
                format="yuv420p",
                interpolation=_WRITE_FLAGS,
                src_color_range=ColorRange.JPEG,
                dst_colorspace=Colorspace.ITU709,
                dst_color_range=ColorRange.MPEG,
            )
            new.pts = frame.pts
            new.time_base = frame.time_base
            output.mux(stream.encode(new))
            count += 1
        output.mux(stream.encode(None))
        output.close()
    return count


def transcode_ours(source: Path, target: Path, preset: str) -> int:
    with VideoReader(source) as reader:
        with VideoWriter(target, source=reader.info, options=EncodeOptions(preset=preset), overwrite=True) as writer:
            for frame in reader:
                writer.write(frame.image, pts=frame.pts)
    return writer.frames_written


def best_fps(run, repeats: int) -> float:
    """Return the best frames-per-second of ``repeats`` runs; the best run is the least disturbed."""
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        frames = run()
        best = max(best, frames / (time.perf_counter() - start))
    return best


def peak_memory_mib() -> float:
    """Return this process's peak resident memory in MiB.

    On Linux this reads VmHWM, because ``ru_maxrss`` survives ``exec`` and would include the
    parent's memory at fork time.
    """
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_memory_child(source: str, target: str, preset: str) -> None:
    """Transcode in this process and print its peak resident memory in MiB (for --memory-child)."""
    transcode_ours(Path(source), Path(target), preset)
    print(peak_memory_mib())


def measure_memory(folder: Path, frame_counts: list[int], width: int, height: int, preset: str) -> dict[int, float]:
    peaks = {}
    for frames in frame_counts:
        clip = folder / f"memory_{frames}.mp4"
        make_clip(clip, frames=frames, width=width, height=height)
        result = subprocess.run(
            [sys.executable, __file__, "--memory-child", str(clip), str(folder / f"memory_{frames}_out.mp4"), preset],
            check=True,
            capture_output=True,
            text=True,
        )
        peaks[frames] = float(result.stdout.strip().splitlines()[-1])
    return peaks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=120, help="frames in the speed clip (default 120)")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--preset", default="veryfast", help="x264 preset for encoding (default veryfast)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per measurement; the best is kept")
    parser.add_argument("--memory-frames", type=int, nargs="*", default=[100, 1000], help="clip lengths for peak memory")
    parser.add_argument("--memory-size", default="640x360", help="frame size of the memory clips (default 640x360)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.add_argument("--memory-child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.memory_child:
        peak_memory_child(*args.memory_child)
        return

    results: dict[str, object] = {
        "machine": f"{os.cpu_count()} CPUs, PyAV {av.__version__}",
        "clip": f"{args.width}x{args.height}, {args.frames} frames, H.264",
        "preset": args.preset,
    }
    with tempfile.TemporaryDirectory() as temp:
        folder = Path(temp)
        clip = folder / "clip.mp4"
        make_clip(clip, frames=args.frames, width=args.width, height=args.height)
        source = probe(clip)
        with VideoReader(clip) as reader:
            images = [frame.image for frame in reader]

        pairs = {
            "decode": (lambda: decode_plain(clip), lambda: decode_ours(clip)),
            "encode": (
                lambda: encode_plain(folder / "plain.mp4", images, args.preset),
                lambda: encode_ours(folder / "ours.mp4", images, args.preset, source),
            ),
            "decode+encode": (
                lambda: transcode_plain(clip, folder / "plain_t.mp4", args.preset),
                lambda: transcode_ours(clip, folder / "ours_t.mp4", args.preset),
            ),
        }
        for name, (plain, ours) in pairs.items():
            plain_fps = best_fps(plain, args.repeats)
            ours_fps = best_fps(ours, args.repeats)
            results[name] = {"plain_fps": round(plain_fps, 1), "ours_fps": round(ours_fps, 1), "ratio": round(ours_fps / plain_fps, 3)}
        del images

        if args.memory_frames:
            width, height = (int(part) for part in args.memory_size.lower().split("x"))
            peaks = measure_memory(folder, args.memory_frames, width, height, args.preset)
            results["peak_rss_mib"] = {str(frames): round(peak, 1) for frames, peak in peaks.items()}

    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"clip: {results['clip']}; encoder libx264 CRF 18 preset {args.preset}; {results['machine']}")
    print(f"{'step':<15}{'plain PyAV fps':>16}{'spikedeblur fps':>17}{'ratio':>8}")
    for name in pairs:
        row = results[name]
        print(f"{name:<15}{row['plain_fps']:>16.1f}{row['ours_fps']:>17.1f}{row['ratio']:>8.2f}")
    if "peak_rss_mib" in results:
        for frames, peak in results["peak_rss_mib"].items():
            print(f"peak resident memory, transcode of {frames} frames at {args.memory_size}: {peak:.0f} MiB")


if __name__ == "__main__":
    main()
