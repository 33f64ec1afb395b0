"""Compare spikedeblur's VRT with the reference implementation (JingyunLiang/VRT) on random weights.

Draws an official-layout state dict with every parameter random (including the last offset
convolution, which training starts at zero), loads it into both models, runs both on the same
random frames and prints the maximum absolute difference of the flows, of every stage output and
of the final output.

The reference code is never imported by the package or the tests; point ``--reference`` at a local
checkout and run this script in an environment where that code imports (it needs torchvision):

    PYTHONPATH=. /path/to/venv/bin/python tools/vrt_parity.py --reference /tmp/vrt-ref \\
        --preset vrt-tiny --size 6 64 64 --size 8 96 128

``--write-expected FILE`` stores the reference output for the first size, subsampled every 8
pixels, as the expected-output file of the test suite.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from einops import rearrange

from spikedeblur.models.vrt import VRT, FlowGuidedDeformAlign
from spikedeblur.models.vrt_checkpoint import load_vrt_checkpoint, random_vrt_state_dict
from spikedeblur.models.vrt_config import VRTConfig, get_vrt_config

EXPECTED_STRIDE = 8


def build_reference(reference: Path, config: VRTConfig) -> torch.nn.Module:
    """Build the reference VRT for ``config`` from the checkout at ``reference``."""
    sys.path.insert(0, str(reference))
    from models.network_vrt import VRT as ReferenceVRT  # noqa: PLC0415 - only importable with --reference

    return ReferenceVRT(
        upscale=1,
        img_size=[6, 64, 64],
        window_size=list(config.window_size),
        depths=list(config.depths),
        indep_reconsts=list(config.independent_reconstruction),
        embed_dims=list(config.embed_dims),
        num_heads=list(config.num_heads),
        mul_attn_ratio=config.mutual_ratio,
        mlp_ratio=config.mlp_ratio,
        qkv_bias=config.qkv_bias,
        drop_path_rate=0.0,
        spynet_path=None,
        pa_frames=2,
        deformable_groups=config.deformable_groups,
        nonblind_denoising=config.noise_map,
    )


def capture_stage_outputs(model: torch.nn.Module, names: list[str], channel_last: set[str]) -> dict[str, torch.Tensor]:
    """Record the output of each named submodule as ``(B, C, T, H, W)`` on every forward."""
    outputs: dict[str, torch.Tensor] = {}
    for name in names:
        module = model.get_submodule(name)

        def hook(_module, _args, output, name=name):
            outputs[name] = rearrange(output, "b t h w c -> b c t h w") if name in channel_last else output

        module.register_forward_hook(hook)
    return outputs


def compare(reference_dir: Path, preset: str, sizes: list[tuple[int, int, int]], seed: int, dcn: str, expected: Path | None) -> float:
    config = get_vrt_config(preset, flow_alignment=True)
    state = random_vrt_state_dict(config, seed=seed)

    reference = build_reference(reference_dir, config).eval()
    reference.load_state_dict(state, strict=True)
    ours = VRT(config).eval()
    load_vrt_checkpoint(ours, {"params": state})
    if dcn == "torch":
        for module in ours.modules():
            if isinstance(module, FlowGuidedDeformAlign):
                module.use_torchvision = False

    stages = [f"stage{i}" for i in range(1, 8)]
    # stage 8 runs group by group, so its last group's output is the stage output
    last_group = f"stage8.{len(ours.stage8) - 1}"
    ref_outputs = capture_stage_outputs(reference, [*stages, last_group], set())
    our_outputs = capture_stage_outputs(ours, [*stages, last_group], {last_group})

    worst = 0.0
    for index, (frames, height, width) in enumerate(sizes):
        generator = torch.Generator().manual_seed(seed + 1)
        x = torch.rand(1, frames, 3, height, width, generator=generator)
        noise = torch.full((1, frames, 1, height, width), 25 / 255) if config.noise_map else None
        ref_input = torch.cat((x, noise), dim=2) if noise is not None else x

        with torch.no_grad():
            started = time.perf_counter()
            ref_out = reference(ref_input)
            ref_seconds = time.perf_counter() - started
            started = time.perf_counter()
            our_out = ours(x, noise)
            our_seconds = time.perf_counter() - started
            ref_flows = reference.get_flows(x)
            our_flows = ours._estimate_flows(x)

        print(f"{preset} input {tuple(x.shape)}: reference {ref_seconds:.2f} s, ours {our_seconds:.2f} s")
        rows = []
        for direction, ref_list, our_list in (("flows_backward", ref_flows[0], our_flows[0]), ("flows_forward", ref_flows[1], our_flows[1])):
            for scale, (a, b) in enumerate(zip(ref_list, our_list)):
                rows.append((f"{direction}[{scale}]", a, b))
        for name in stages:
            rows.append((name, ref_outputs[name], our_outputs[name]))
        rows.append(("stage8", ref_outputs[last_group], our_outputs[last_group]))
        rows.append(("output", ref_out, our_out))

        for name, a, b in rows:
            diff = (a - b).abs().max().item()
            worst = max(worst, diff)
            print(f"  {name:18s} max|diff| {diff:.3e}   max|ref| {a.abs().max().item():.3e}")

        if expected is not None and index == 0:
            from safetensors.torch import save_file  # noqa: PLC0415

            subsampled = ref_out[..., ::EXPECTED_STRIDE, ::EXPECTED_STRIDE].contiguous()
            metadata = {"preset": preset, "seed": str(seed), "input_seed": str(seed + 1), "shape": str(tuple(x.shape)), "stride": str(EXPECTED_STRIDE)}
            save_file({"output": subsampled}, str(expected), metadata=metadata)
            print(f"  wrote {expected} ({expected.stat().st_size} bytes)")
    print(f"worst max|diff| {worst:.3e}")
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, required=True, help="checkout of JingyunLiang/VRT")
    parser.add_argument("--preset", default="vrt-tiny", help="VRT preset (flow alignment is always on)")
    parser.add_argument("--size", type=int, nargs=3, action="append", metavar=("T", "H", "W"), help="input frames, height, width")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights; the input uses seed + 1")
    parser.add_argument("--dcn", choices=("auto", "torch"), default="auto", help="our deformable convolution: torchvision when importable, or pure PyTorch")
    parser.add_argument("--write-expected", type=Path, help="write the test suite's expected-output file here")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    compare(args.reference, args.preset, [tuple(s) for s in args.size or [(6, 64, 64)]], args.seed, args.dcn, args.write_expected)


if __name__ == "__main__":
    main()
