"""Measure .dat decode+voxelize throughput on one thread, and peak memory against file length.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_spikes.py [--frames 8000] [--long-frames 20000]

Prints, for a synthetic 250x400 stream at 20 kHz voxelized as 25 fps video frames (800 ticks per
frame, K=32 bins):

- throughput in MB/s of .dat input, per wall-clock second and per CPU second of the process (the
  second is steadier on a shared machine), for ``voxelize_dat`` (memory map, chunked unpackbits)
  and for a plain per-frame loop reader (read bytes, unpack with shifts, flip, float32, then bin),
  the way research loaders usually do it;
- peak memory while voxelizing a 1-tick file, a one-video-frame (800-tick) file and a
  ``--long-frames`` file, each in a fresh process: the peak of heap allocations traced by
  ``tracemalloc`` (NumPy reports its buffers to it) and the peak resident set size (``VmHWM``,
  which also counts memory-mapped file pages that the kernel can drop at any time).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

HEIGHT, WIDTH = 250, 400
TICKS_PER_FRAME = 800  # 20 kHz spike clock, 25 fps video
BINS = 32


def make_stream(path: Path, num_frames: int, *, seed: int = 0) -> None:
    """Write a random 250x400 stream with a 30 % firing rate, in batches to bound memory."""
    from spikedeblur.spikes import DatWriter

    rng = np.random.default_rng(seed)
    with DatWriter(path, HEIGHT, WIDTH, overwrite=True) as writer:
        for start in range(0, num_frames, 1000):
            count = min(1000, num_frames - start)
            writer.write(rng.random((count, HEIGHT, WIDTH), dtype=np.float32) < 0.3)


def run_voxelize_dat(path: Path) -> tuple[float, float]:
    """Voxelize every video frame of ``path``; return (wall seconds, CPU seconds of this process)."""
    from spikedeblur.spikes import DatReader
    from spikedeblur.spikes.voxelize import voxelize_dat

    with DatReader(path, HEIGHT, WIDTH) as reader:
        frames = max(1, len(reader) // TICKS_PER_FRAME)
        began, began_cpu = time.perf_counter(), time.process_time()
        for index in range(frames):
            start = index * TICKS_PER_FRAME
            voxelize_dat(reader, start, min(len(reader), start + TICKS_PER_FRAME), BINS)
        return time.perf_counter() - began, time.process_time() - began_cpu


def loop_reader_voxelize(path: Path, num_ticks: int) -> tuple[float, float]:
    """Decode ``num_ticks`` frames with a per-frame Python loop, then bin them; return (wall, CPU) seconds."""
    frame_bytes = HEIGHT * WIDTH // 8
    began, began_cpu = time.perf_counter(), time.process_time()
    with open(path, "rb") as handle:
        frames = []
        for _ in range(num_ticks):
            raw = np.frombuffer(handle.read(frame_bytes), dtype=np.uint8)
            bits = np.stack([(raw >> bit) & 1 for bit in range(8)], axis=1)
            frames.append(np.flipud(bits.reshape(HEIGHT, WIDTH)).astype(np.float32))
        spikes = np.stack(frames)
        edges = (np.arange(BINS + 1) * num_ticks) // BINS
        _ = np.stack([spikes[edges[k] : edges[k + 1]].mean(axis=0) for k in range(BINS)])
    return time.perf_counter() - began, time.process_time() - began_cpu


def measure_peak_memory(path: Path) -> tuple[float, float]:
    """Voxelize ``path`` in a fresh process; return (traced heap peak MB, VmHWM MB)."""
    code = f"""
import tracemalloc, sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
import bench_spikes
from pathlib import Path
tracemalloc.start()
bench_spikes.run_voxelize_dat(Path({str(path)!r}))
peak = tracemalloc.get_traced_memory()[1]
hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]
print(peak / 1e6, int(hwm) / 1e3)
"""
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    heap, hwm = completed.stdout.split()
    return float(heap), float(hwm)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=8000, help="spike ticks in the throughput file")
    parser.add_argument("--loop-frames", type=int, default=800, help="ticks decoded by the loop reader")
    parser.add_argument("--long-frames", type=int, default=20000, help="spike ticks in the long file")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        stream = Path(folder) / "stream.dat"
        make_stream(stream, args.frames)
        size_mb = stream.stat().st_size / 1e6

        run_voxelize_dat(stream)  # warm the page cache so both readers see the same conditions
        wall, cpu = min(run_voxelize_dat(stream) for _ in range(3))
        print(f"voxelize_dat   : {size_mb / wall:7.1f} MB/s wall, {size_mb / cpu:7.1f} MB/s CPU time "
              f"({args.frames} ticks of {HEIGHT}x{WIDTH}, {TICKS_PER_FRAME} ticks per frame, K={BINS})")

        loop_wall, loop_cpu = loop_reader_voxelize(stream, args.loop_frames)
        loop_mb = args.loop_frames * HEIGHT * WIDTH / 8 / 1e6
        print(f"per-frame loop : {loop_mb / loop_wall:7.1f} MB/s wall, {loop_mb / loop_cpu:7.1f} MB/s CPU time "
              f"({args.loop_frames} ticks)")
        stream.unlink()

        for frames in (1, TICKS_PER_FRAME, args.long_frames):
            path = Path(folder) / f"len{frames}.dat"
            make_stream(path, frames)
            heap, hwm = measure_peak_memory(path)
            print(f"peak memory {frames:6d} ticks: heap {heap:7.1f} MB, VmHWM {hwm:7.1f} MB "
                  f"(file {path.stat().st_size / 1e6:.1f} MB)")
            path.unlink()


if __name__ == "__main__":
    main()
