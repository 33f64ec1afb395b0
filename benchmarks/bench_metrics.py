"""Measure PSNR/SSIM time per frame against scikit-image, as ``spikedeblur eval`` computes them.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_metrics.py [--width 1280] [--height 720] [--repeats 5]

Prints, for one random RGB uint8 frame pair of the given size, the median time of each of the four
scores ``eval`` computes per frame (PSNR and SSIM on RGB and on BT.601 Y), of ``score_frame`` (all four
with one shared conversion, which is what ``eval`` runs per frame), and the
same SSIM from ``skimage.metrics.structural_similarity`` with VRT's settings (when scikit-image is
installed) with the largest difference between the two.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402


def median_seconds(function, repeats: int) -> float:
    """Return the median wall time of ``repeats`` calls of ``function``."""
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        function()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=1280, help="Frame width in pixels.")
    parser.add_argument("--height", type=int, default=720, help="Frame height in pixels.")
    parser.add_argument("--repeats", type=int, default=5, help="Timed calls per measurement (median reported).")
    args = parser.parse_args()

    from spikedeblur.evaluation import psnr, score_frame, ssim

    rng = np.random.default_rng(0)
    truth = rng.integers(0, 256, (args.height, args.width, 3), dtype=np.uint8)
    noise = rng.integers(-12, 13, truth.shape)
    prediction = np.clip(truth.astype(np.int16) + noise, 0, 255).astype(np.uint8)

    timings = {
        "psnr (RGB)": median_seconds(lambda: psnr(prediction, truth), args.repeats),
        "ssim (RGB)": median_seconds(lambda: ssim(prediction, truth), args.repeats),
        "psnr (Y)": median_seconds(lambda: psnr(prediction, truth, y_channel=True), args.repeats),
        "ssim (Y)": median_seconds(lambda: ssim(prediction, truth, y_channel=True), args.repeats),
    }
    print(f"frame {args.width}x{args.height}, median of {args.repeats} calls, OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}")
    for name, seconds in timings.items():
        print(f"  {name:12s} {seconds * 1000:8.1f} ms")
    frame_seconds = median_seconds(lambda: score_frame(prediction, truth), args.repeats)
    print(f"  {'score_frame':12s} {frame_seconds * 1000:8.1f} ms (all four, as eval scores each frame)")

    try:
        from skimage.metrics import structural_similarity
    except ImportError:
        print("scikit-image is not installed; skipping the comparison")
        return

    def skimage_ssim() -> float:
        return structural_similarity(
            prediction,
            truth,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=255,
            channel_axis=2,
        )

    reference_seconds = median_seconds(skimage_ssim, args.repeats)
    difference = abs(skimage_ssim() - ssim(prediction, truth))
    print(f"  skimage ssim (RGB) {reference_seconds * 1000:8.1f} ms, |ours - skimage| = {difference:.2e}")


if __name__ == "__main__":
    main()
