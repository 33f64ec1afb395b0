"""Forward latency and peak memory of the VRT backbone on CPU, optionally against the reference.

Each measurement runs in a fresh subprocess, so the peak resident memory of one run does not hide
another's. The reported memory is the peak RSS during the timed forwards minus the RSS after the
model was built, which counts activations and workspace (warm-up included) but not weights. Both models get the same random
official-layout weights and input, and the script prints the largest output difference.

    python benchmarks/bench_model.py --preset vrt-tiny --size 6 64 64
    PYTHONPATH=. /path/to/venv-with-torchvision/bin/python benchmarks/bench_model.py \\
        --preset vrt-deblur --size 6 64 64 --reference /tmp/vrt-ref

With ``--reference PATH`` (a checkout of JingyunLiang/VRT; it needs torchvision) flow alignment
is switched on for every preset, since the reference cannot run without it.

With ``--fused PRESET`` (a VRT+Spike preset, repeatable) the script instead measures what the spike
branch and fusion add: the same model runs once without spike voxels (the backbone path) and once
with them. It also prints the FLOPs and the meta-device memory estimate of both paths.

    python benchmarks/bench_model.py --fused vrt-spike --size 6 192 192 --repeat 1
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch


def _current_rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize()


def _child(args: argparse.Namespace) -> None:
    """Build one model, time ``repeat`` forwards after a warm-up, print one JSON line."""
    from spikedeblur.models.vrt import VRT
    from spikedeblur.models.vrt_checkpoint import load_vrt_checkpoint, random_vrt_state_dict
    from spikedeblur.models.vrt_config import get_vrt_config

    torch.set_num_threads(args.threads)
    overrides = {"flow_alignment": True} if args.reference else {}
    config = get_vrt_config(args.preset, **overrides)
    state = random_vrt_state_dict(config, seed=0)

    if args.child == "reference":
        sys.path.insert(0, str(args.reference))
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
        from vrt_parity import build_reference

        model = build_reference(args.reference, config)
        model.load_state_dict(state, strict=True)
    else:
        model = VRT(config)
        load_vrt_checkpoint(model, state)
    model.eval()
    del state

    frames, height, width = args.size
    x = torch.rand(1, frames, 3, height, width, generator=torch.Generator().manual_seed(1))
    noise = torch.full((1, frames, 1, height, width), 0.1) if config.noise_map else None
    if args.child == "reference":
        inputs = (torch.cat((x, noise), dim=2),) if noise is not None else (x,)
    else:
        inputs = (x, noise)

    rss_before = _current_rss_bytes()
    with torch.inference_mode():
        model(*inputs)  # warm-up: allocator pools, lazy kernel choices
        seconds = []
        cpu_seconds = []
        for _ in range(args.repeat):
            started, cpu_started = time.perf_counter(), time.process_time()
            out = model(*inputs)
            seconds.append(time.perf_counter() - started)
            cpu_seconds.append(time.process_time() - cpu_started)

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    torch.save(out, args.output)
    result = {"seconds": statistics.median(seconds), "cpu_seconds": statistics.median(cpu_seconds)}
    print(json.dumps({**result, "peak_mib": max(0, peak - rss_before) / 2**20}))


def _measure(implementation: str, preset: str, size: tuple[int, int, int], args: argparse.Namespace, output: Path) -> dict:
    command = [
        sys.executable, __file__, "--child", implementation, "--preset", preset,
        "--size", *map(str, size), "--repeat", str(args.repeat), "--threads", str(args.threads),
        "--output", str(output),
    ]
    if args.reference:
        command += ["--reference", str(args.reference)]
    # a fixed mmap threshold makes glibc return freed tensors to the OS, so RSS tracks live memory
    environment = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")
    result = subprocess.run(command, capture_output=True, text=True, check=False, env=environment)
    if result.returncode != 0:
        raise SystemExit(f"{implementation} run failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def _spike_child(args: argparse.Namespace) -> None:
    """Build one VRT+Spike model, time ``repeat`` forwards with or without spikes, print one JSON line."""
    from spikedeblur.models.registry import create_model

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = create_model(args.preset).eval()

    frames, height, width = args.size
    generator = torch.Generator().manual_seed(1)
    x = torch.rand(1, frames, 3, height, width, generator=generator)
    voxels = None
    if args.child == "spike-fused":
        voxels = torch.rand(1, frames, model.num_bins, height, width, generator=generator)

    with torch.inference_mode():
        model(x, voxels)  # warm-up: allocator pools, lazy kernel choices
        rss_before = _current_rss_bytes()
        seconds = []
        cpu_seconds = []
        for _ in range(args.repeat):
            started, cpu_started = time.perf_counter(), time.process_time()
            out = model(x, voxels)
            seconds.append(time.perf_counter() - started)
            cpu_seconds.append(time.process_time() - cpu_started)

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    torch.save(out, args.output)
    result = {"seconds": statistics.median(seconds), "cpu_seconds": statistics.median(cpu_seconds)}
    print(json.dumps({**result, "peak_mib": max(0, peak - rss_before) / 2**20}))


def _spike_static_figures(preset: str, size: tuple[int, int, int]) -> dict[str, float]:
    """FLOPs and meta-device memory estimate of a VRT+Spike preset, without and with spikes."""
    from torch.utils.flop_counter import FlopCounterMode

    from spikedeblur.models.registry import create_model, estimate_memory

    frames, height, width = size
    model = create_model(preset, device="meta").eval()
    x = torch.empty(1, frames, 3, height, width, device="meta")
    voxels = torch.empty(1, frames, model.num_bins, height, width, device="meta")
    flops = []
    for spikes in (None, voxels):
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            model(x, spikes)
        flops.append(counter.get_total_flops())

    common = {"frames": frames, "height": height, "width": width}
    plain_memory = estimate_memory(preset, with_spikes=False, **common).total_bytes
    fused_memory = estimate_memory(preset, with_spikes=True, **common).total_bytes
    return {
        "plain_tflop": flops[0] / 1e12,
        "fused_tflop": flops[1] / 1e12,
        "plain_estimate_mib": plain_memory / 2**20,
        "fused_estimate_mib": fused_memory / 2**20,
    }


def _bench_fused(args: argparse.Namespace, scratch: Path) -> None:
    """Print, per VRT+Spike preset and size, the time and memory that the spike branch adds."""
    for preset in args.fused:
        for size in [tuple(s) for s in args.size or [(6, 64, 64)]]:
            static = _spike_static_figures(preset, size)
            plain = _measure("spike-plain", preset, size, args, scratch / "plain.pt")
            fused = _measure("spike-fused", preset, size, args, scratch / "fused.pt")
            added_time = fused["seconds"] / plain["seconds"] - 1
            added_cpu = fused["cpu_seconds"] / plain["cpu_seconds"] - 1
            added_memory = fused["peak_mib"] / max(plain["peak_mib"], 1) - 1
            added_flops = static["fused_tflop"] / static["plain_tflop"] - 1
            added_estimate = static["fused_estimate_mib"] / static["plain_estimate_mib"] - 1
            print(
                f"{preset:15s} 1x{size[0]}x3x{size[1]}x{size[2]}:"
                f" backbone path {plain['seconds']:.3f} s ({plain['cpu_seconds']:.3f} s CPU), {plain['peak_mib']:.0f} MiB"
                f" | with spikes {fused['seconds']:.3f} s ({fused['cpu_seconds']:.3f} s CPU), {fused['peak_mib']:.0f} MiB"
                f" | added: time {added_time:+.1%} wall, {added_cpu:+.1%} CPU, memory {added_memory:+.1%}"
                f" | FLOPs {static['plain_tflop']:.3f} -> {static['fused_tflop']:.3f} T ({added_flops:+.1%}),"
                f" estimated memory {static['plain_estimate_mib']:.0f} -> {static['fused_estimate_mib']:.0f} MiB"
                f" ({added_estimate:+.1%})",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", action="append", help="VRT preset; repeatable (default vrt-tiny)")
    parser.add_argument("--size", type=int, nargs=3, action="append", metavar=("T", "H", "W"), help="input frames, height, width; repeatable (default 6 64 64)")
    parser.add_argument("--repeat", type=int, default=3, help="timed forwards per measurement (the median is printed)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch CPU threads")
    parser.add_argument("--reference", type=Path, help="checkout of JingyunLiang/VRT to run beside ours")
    parser.add_argument("--fused", action="append", metavar="PRESET", help="VRT+Spike preset: measure what the spike branch adds; repeatable")
    parser.add_argument("--child", choices=("ours", "reference", "spike-plain", "spike-fused"), help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.preset = args.preset[0]
        args.size = args.size[0]
        if args.child.startswith("spike-"):
            _spike_child(args)
        else:
            _child(args)
        return

    print(f"torch {torch.__version__}, {args.threads} threads, median of {args.repeat} forwards (wall and process CPU time)")
    if args.fused:
        with tempfile.TemporaryDirectory() as scratch:
            _bench_fused(args, Path(scratch))
        return
    with tempfile.TemporaryDirectory() as scratch:
        for preset in args.preset or ["vrt-tiny"]:
            for size in [tuple(s) for s in args.size or [(6, 64, 64)]]:
                ours_file = Path(scratch) / "ours.pt"
                ours = _measure("ours", preset, size, args, ours_file)
                line = (
                    f"{preset:11s} 1x{size[0]}x3x{size[1]}x{size[2]}: ours {ours['seconds']:.3f} s"
                    f" (CPU {ours['cpu_seconds']:.3f} s), {ours['peak_mib']:.0f} MiB"
                )
                if args.reference:
                    ref_file = Path(scratch) / "reference.pt"
                    ref = _measure("reference", preset, size, args, ref_file)
                    diff = (torch.load(ours_file) - torch.load(ref_file)).abs().max().item()
                    line += (
                        f" | reference {ref['seconds']:.3f} s (CPU {ref['cpu_seconds']:.3f} s), {ref['peak_mib']:.0f} MiB"
                        f" | speed-up {ref['seconds'] / ours['seconds']:.2f}x (CPU {ref['cpu_seconds'] / ours['cpu_seconds']:.2f}x),"
                        f" memory {ref['peak_mib'] / max(ours['peak_mib'], 1):.2f}x less, max|diff| {diff:.1e}"
                    )
                print(line, flush=True)


if __name__ == "__main__":
    main()
