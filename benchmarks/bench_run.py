"""Measure ``spikedeblur run`` end to end against its parts, and its peak memory against video length.

On a generated H.264 clip with a synthetic spike stream and the ``vrt-spike-tiny`` preset (random
weights), prints the time of:

* decode-only: iterate the video reader;
* voxelize-only: voxels of every frame from the spike source;
* model-only: the model's forward calls on the same clips and tiles (inputs already in memory),
  next to the engine time around them (tiling, blending, thread hand-offs);
* encode-only: the video writer on the decoded frames;
* end-to-end: the whole ``run`` pipeline writing the output file.

Then it runs the whole pipeline in a fresh process for each ``--memory-frames`` count and prints the
peak resident memory of each.

    python benchmarks/bench_run.py
    python benchmarks/bench_run.py --frames 40 --repeats 3 --memory-frames
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

from spikedeblur.inference import InferenceSettings, run_inference, settings_for_preset
from spikedeblur.inference.devices import peak_host_memory_bytes
from spikedeblur.inference.pipeline import RunRequest, deblur_video
from spikedeblur.spikes import DatWriter, SpikeMeta, open_spike_source
from spikedeblur.video import EncodeOptions, VideoReader, VideoWriter

PRESET = "vrt-spike-tiny"
FPS = 25
SPIKE_RATE_HZ = 4000.0  # 160 ticks per frame keeps the 1,000-frame stream small on disk
ENCODE = EncodeOptions(preset="ultrafast")


def make_clip(path: Path, *, frames: int, width: int, height: int) -> None:
    """Write an H.264 clip of moving gradients."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    container = av.open(str(path), mode="w")
    stream = container.add_stream("libx264", rate=FPS, options={"preset": "ultrafast", "crf": "18"})
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    for index in range(frames):
        red = 128 + 100 * np.sin((xs + 4 * index) / 20.0)
        green = 128 + 100 * np.cos((ys - 3 * index) / 15.0)
        blue = 128 + 90 * np.sin((xs + ys + 5 * index) / 25.0)
        image = np.stack([red, green, blue], axis=-1).astype(np.uint8)
        frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
        frame.pts = index
        frame.time_base = Fraction(1, FPS)
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))
    container.close()


def make_spikes(path: Path, *, frames: int, height: int, width: int) -> None:
    """Write a random spike stream at half the video size covering ``frames`` video frames."""
    rng = np.random.default_rng(0)
    ticks_per_frame = int(SPIKE_RATE_HZ / FPS)
    meta = SpikeMeta(height=height // 2, width=width // 2, rate_hz=SPIKE_RATE_HZ)
    with DatWriter(path, height // 2, width // 2, meta=meta) as writer:
        for _ in range(frames):
            writer.write(rng.random((ticks_per_frame, height // 2, width // 2)) < 0.3)


def make_weights(path: Path) -> None:
    from spikedeblur.models.checkpoint import save_checkpoint
    from spikedeblur.models.registry import create_model

    torch.manual_seed(0)
    save_checkpoint(create_model(PRESET), path, preset=PRESET)


def timed(function):
    started = time.perf_counter()
    result = function()
    return time.perf_counter() - started, result


class TimedModel:
    """Wraps a model and sums the wall time of its forward calls."""

    def __init__(self, model) -> None:
        self.model = model
        self.seconds = 0.0

    def __call__(self, frames, spike_voxels):
        started = time.perf_counter()
        result = self.model(frames, spike_voxels)
        self.seconds += time.perf_counter() - started
        return result


class MemorySpikes:
    def __init__(self, voxels: list[np.ndarray]) -> None:
        self.by_frame = voxels

    def voxels(self, index, time_s, duration_s, *, bins=32):
        return self.by_frame[index]


def run_request(clip: Path, spikes: Path, weights: Path, output: Path | None) -> RunRequest:
    return RunRequest(
        input_path=clip,
        output_path=output,
        spikes_path=spikes,
        weights=str(weights),
        device="cpu",
        encode_options=ENCODE,
        overwrite=True,
    )


def measure_parts(folder: Path, clip: Path, spikes: Path, weights: Path, *, repeats: int) -> None:
    """Time each part and the whole pipeline ``repeats`` times, interleaved, and print the fastest of each.

    Interleaving and taking the minimum keeps a burst of load from other processes from landing on
    one measurement only.
    """
    from spikedeblur.models.checkpoint import load_model

    model, _ = load_model(weights, device="cpu")
    settings = settings_for_preset(PRESET)
    duration = 1.0 / FPS
    best: dict[str, float] = {}

    def record(name: str, seconds: float) -> None:
        best[name] = min(seconds, best.get(name, float("inf")))

    for _ in range(repeats):
        decode_s, frames = timed(lambda: list(VideoReader(clip)))
        record("decode", decode_s)
        count = len(frames)
        first_time = frames[0].time

        def voxelize_all():
            with open_spike_source(spikes, video_size=frames[0].image.shape[:2]) as source:
                return [source.voxels(frame.index, frame.time - first_time, duration) for frame in frames]

        voxelize_s, voxels = timed(voxelize_all)
        record("voxelize", voxelize_s)

        timed_model = TimedModel(model)
        engine_s, _ = timed(
            lambda: run_inference(frames, timed_model, None, settings=settings, spikes=MemorySpikes(voxels), frame_interval_s=duration)
        )
        record("model", timed_model.seconds)
        record("engine", engine_s)

        def encode_all():
            with VideoWriter(folder / "encode_only.mp4", source=VideoReader(clip).info, options=ENCODE, overwrite=True) as writer:
                for frame in frames:
                    writer.write(frame.image, pts=frame.pts)

        record("encode", timed(encode_all)[0])
        del frames, voxels

        end_to_end_s, summary = timed(lambda: deblur_video(run_request(clip, spikes, weights, folder / "run.mp4")))
        record("end to end", end_to_end_s)
        record("pipeline", summary.stats.elapsed_s)

    parts = best["decode"] + best["voxelize"] + best["model"] + best["encode"]
    print(
        f"{count} frames, preset {PRESET}, clip {settings.clip_len}, tile {settings.tile}, "
        f"{torch.get_num_threads()} torch threads, fastest of {repeats}"
    )
    rows = [
        ("decode only", best["decode"]),
        ("voxelize only", best["voxelize"]),
        ("model only (forward calls)", best["model"]),
        ("engine on in-memory inputs", best["engine"]),
        ("encode only", best["encode"]),
        ("sum of decode, voxelize, model, encode", parts),
        ("end to end (spikedeblur run)", best["end to end"]),
        ("end to end without model loading", best["pipeline"]),
    ]
    for name, seconds in rows:
        print(f"  {name:<40} {seconds:8.2f} s  {count / seconds:8.2f} frames/s")
    print(f"  end to end / sum of parts: {best['end to end'] / parts:.3f} ({best['pipeline'] / parts:.3f} without model loading)")
    print(f"  end to end / model only:   {best['end to end'] / best['model']:.3f} ({best['pipeline'] / best['model']:.3f} without model loading)")


def current_resident_bytes() -> int | None:
    """Return this process's anonymous resident memory now (Linux only), else None.

    Anonymous memory leaves out file-backed pages such as the memory-mapped spike stream, whose
    pages count as resident once read although the kernel can drop them at any time.
    """
    status = Path("/proc/self/status")
    if not status.exists():
        return None
    for line in status.read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
    return None


def memory_run(clip: Path, spikes: Path, weights: Path, output: Path) -> None:
    """Run the whole pipeline once and print memory figures as JSON (child process).

    ``peak_host_bytes`` is the process's peak since it started, model loading included.
    ``resident_first_clip`` and ``resident_max_during_run`` sample the anonymous resident memory at
    each progress report, so growth with the number of frames shows even below that peak.
    """
    samples: list[int] = []

    def sample(report) -> None:
        resident = current_resident_bytes()
        if resident is not None:
            samples.append(resident)

    summary = deblur_video(run_request(clip, spikes, weights, output), progress=sample)
    print(
        json.dumps(
            {
                "frames": summary.stats.frames,
                "peak_host_bytes": peak_host_memory_bytes(),
                "resident_first_clip": samples[0] if samples else None,
                "resident_max_during_run": max(samples) if samples else None,
                "seconds": summary.stats.elapsed_s,
            }
        )
    )


def measure_memory(folder: Path, weights: Path, counts: list[int], width: int, height: int) -> None:
    results = []
    for count in counts:
        clip = folder / f"memory_{count}.mp4"
        spikes = folder / f"memory_{count}.dat"
        make_clip(clip, frames=count, width=width, height=height)
        make_spikes(spikes, frames=count, height=height, width=width)
        completed = subprocess.run(
            [sys.executable, __file__, "--memory-run", str(clip), str(spikes), str(weights), str(folder / f"out_{count}.mp4")],
            capture_output=True,
            text=True,
            check=True,
        )
        result = json.loads(completed.stdout.strip().splitlines()[-1])
        results.append(result)
        line = f"  {result['frames']:5d} frames: peak host memory {result['peak_host_bytes'] / 2**20:7.1f} MiB"
        if result["resident_max_during_run"] is not None:
            line += (
                f", anonymous resident after the first clip {result['resident_first_clip'] / 2**20:7.1f} MiB, "
                f"max during the run {result['resident_max_during_run'] / 2**20:7.1f} MiB"
            )
        print(f"{line} ({result['seconds']:.1f} s)")
    if len(results) >= 2:
        first, last = results[0], results[-1]
        print(
            f"  peak memory ratio {last['frames']} / {first['frames']} frames: "
            f"{last['peak_host_bytes'] / first['peak_host_bytes']:.3f}"
        )
        if first["resident_max_during_run"] and last["resident_max_during_run"]:
            print(
                f"  max anonymous resident memory during the run, ratio {last['frames']} / {first['frames']} frames: "
                f"{last['resident_max_during_run'] / first['resident_max_during_run']:.3f}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100, help="frames for the timing comparison")
    parser.add_argument("--repeats", type=int, default=3, help="timing rounds; the fastest of each part is printed")
    parser.add_argument("--width", type=int, default=96)
    parser.add_argument("--height", type=int, default=72)
    parser.add_argument("--memory-frames", type=int, nargs="*", default=[100, 1000], help="frame counts for the memory runs")
    parser.add_argument("--memory-run", nargs=4, metavar=("CLIP", "SPIKES", "WEIGHTS", "OUTPUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.memory_run:
        memory_run(*(Path(value) for value in args.memory_run))
        return

    with tempfile.TemporaryDirectory(prefix="bench_run_") as name:
        folder = Path(name)
        weights = folder / "tiny.safetensors"
        make_weights(weights)
        if args.frames > 0:
            clip = folder / "clip.mp4"
            spikes = folder / "clip.dat"
            make_clip(clip, frames=args.frames, width=args.width, height=args.height)
            make_spikes(spikes, frames=args.frames, height=args.height, width=args.width)
            measure_parts(folder, clip, spikes, weights, repeats=args.repeats)
        if args.memory_frames:
            print(f"peak memory of spikedeblur run ({args.width}x{args.height}, one process per run):")
            measure_memory(folder, weights, args.memory_frames, args.width, args.height)


if __name__ == "__main__":
    main()
