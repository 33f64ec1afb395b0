"""VRT: the video restoration transformer backbone (Liang et al., "VRT: A Video Restoration
Transformer", arXiv:2201.12288), deblurring/denoising variant (output at input resolution).

Parameter names follow VRT's released checkpoints, so :mod:`~spikedeblur.models.vrt_checkpoint`
loads them without renaming. The forward pass is split into :meth:`VRT.prepare`,
:meth:`VRT.encoder_stage` and :meth:`VRT.decode`, so a fused model can replace encoder outputs.

Layouts: frames are ``(B, T, C, H, W)``; stage features ``(B, C, T, H, W)``; inside the
transformer blocks features are channel-last ``(B, T, H, W, C)``. T never changes: stages 2-4
halve H and W, stages 5-7 double them back.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from einops.layers.torch import Rearrange
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from spikedeblur.errors import InvalidInputError
from spikedeblur.layers.deform_conv import modulated_deform_conv2d, torchvision_deform_conv_available
from spikedeblur.layers.flow_warp import flow_warp, flow_warp_nearest4
from spikedeblur.layers.mlp import GEGLUMlp
from spikedeblur.layers.spynet import SpyNet
from spikedeblur.layers.window_attention import (
    Size3,
    WindowAttention,
    effective_window,
    ShiftedWindows,
    shifted_windows,
    window_partition,
    window_reverse,
)
from spikedeblur.models.vrt_config import ENCODER_STAGES, RGB_CHANNELS, UNET_STAGES, VRTConfig, get_vrt_config

logger = logging.getLogger(__name__)

STAGE_FLOW_SCALES = (0, 1, 2, 3, 2, 1, 0)
"""Index of the flow pyramid level (0 = full, 3 = 1/8) each of stages 1-7 aligns with."""

Factory = dict[str, object]


class TMSA(nn.Module):
    """Temporal mutual self attention block: pre-norm window attention and a GEGLU MLP.

    Works channel-last, ``(B, D, H, W, C)`` in and out.
    """

    def __init__(self, dim: int, window: Size3, num_heads: int, *, mutual: bool, mlp_ratio: float, qkv_bias: bool, factory: Factory) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, **factory)
        self.attn = WindowAttention(dim, window, num_heads, mutual=mutual, qkv_bias=qkv_bias, **factory)
        self.norm2 = nn.LayerNorm(dim, **factory)
        self.mlp = GEGLUMlp(dim, int(dim * mlp_ratio), dim, **factory)

    def forward(self, x: Tensor, window: Size3, shift: Size3, groups: ShiftedWindows | None) -> Tensor:
        x = x + self._attention(x, window, shift, groups)
        return x + self.mlp(self.norm2(x))

    def _attention(self, x: Tensor, window: Size3, shift: Size3, groups: ShiftedWindows | None) -> Tensor:
        _, d, h, w, _ = x.shape

        # normalise first, then zero-pad to whole windows (VRT's order, so padding stays zero)
        y = self.norm1(x)
        pad_d, pad_h, pad_w = ((ws - s % ws) % ws for s, ws in zip((d, h, w), window))
        if pad_d or pad_h or pad_w:
            y = F.pad(y, (0, 0, 0, pad_w, 0, pad_h, 0, pad_d))
        padded = (d + pad_d, h + pad_h, w + pad_w)

        shifted = any(shift)
        if shifted:
            y = torch.roll(y, shifts=tuple(-s for s in shift), dims=(1, 2, 3))
        windows = self.attn(window_partition(y, window), groups if shifted else None)
        y = window_reverse(windows, window, padded)
        if shifted:
            y = torch.roll(y, shifts=shift, dims=(1, 2, 3))

        return y[:, :d, :h, :w]


class TMSAG(nn.Module):
    """Group of TMSA blocks; odd blocks shift their windows by half a window.

    Works channel-last, ``(B, D, H, W, C)`` in and out. Along an axis where the input is not
    larger than the window, the window shrinks to the input and does not shift.
    """

    def __init__(self, dim: int, depth: int, window: Size3, num_heads: int, *, mutual: bool, mlp_ratio: float, qkv_bias: bool, factory: Factory) -> None:
        super().__init__()
        self.window = tuple(window)
        self.shift = tuple(ws // 2 for ws in window)
        self.blocks = nn.ModuleList(
            TMSA(dim, self.window, num_heads, mutual=mutual, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, factory=factory)
            for _ in range(depth)
        )

    def forward(self, x: Tensor) -> Tensor:
        _, d, h, w, _ = x.shape
        window, shift = effective_window((d, h, w), self.window, self.shift)
        padded = tuple(-(-s // ws) * ws for s, ws in zip((d, h, w), window))
        groups = shifted_windows(padded, window, shift).to(x.device) if any(shift) else None

        no_shift = (0, 0, 0)
        for index, block in enumerate(self.blocks):
            x = block(x, window, shift if index % 2 else no_shift, groups)
        return x


class RTMSA(nn.Module):
    """Residual group of stage 8: ``x + linear(TMSAG(x))``, channel-last ``(B, D, H, W, C)``."""

    def __init__(self, dim: int, depth: int, window: Size3, num_heads: int, *, mlp_ratio: float, qkv_bias: bool, factory: Factory) -> None:
        super().__init__()
        self.residual_group = TMSAG(dim, depth, window, num_heads, mutual=False, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, factory=factory)
        self.linear = nn.Linear(dim, dim, **factory)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.linear(self.residual_group(x))


class FlowGuidedDeformAlign(nn.Module):
    """Align a neighbour frame's features to the current frame with flow-guided DCNv2.

    The offsets are the optical flow plus a residual bounded by ``max_residue_magnitude`` pixels,
    predicted from the flow-warped neighbour, the current features and the flow (BasicVSR++,
    arXiv:2104.13371). The deformable convolution samples the un-warped neighbour.
    """

    def __init__(self, dim: int, deformable_groups: int, max_residue_magnitude: float, *, factory: Factory) -> None:
        super().__init__()
        self.deformable_groups = deformable_groups
        self.max_residue_magnitude = max_residue_magnitude
        # decided once here: a failing import traced inside forward breaks torch.compile graphs
        self.use_torchvision = torchvision_deform_conv_available()
        self.weight = nn.Parameter(torch.empty(dim, dim, 3, 3, **factory))
        self.bias = nn.Parameter(torch.zeros(dim, **factory))
        nn.init.kaiming_uniform_(self.weight, a=5**0.5)

        self.conv_offset = nn.Sequential(
            nn.Conv2d(2 * dim + 2, dim, 3, padding=1, **factory),
            nn.LeakyReLU(0.1),
            nn.Conv2d(dim, dim, 3, padding=1, **factory),
            nn.LeakyReLU(0.1),
            nn.Conv2d(dim, dim, 3, padding=1, **factory),
            nn.LeakyReLU(0.1),
            nn.Conv2d(dim, 27 * deformable_groups, 3, padding=1, **factory),
        )
        # a zero last layer starts the alignment as a pure flow warp
        nn.init.zeros_(self.conv_offset[-1].weight)
        nn.init.zeros_(self.conv_offset[-1].bias)

    def forward(self, neighbour: Tensor, current: Tensor, flow: Tensor) -> Tensor:
        """Align ``neighbour`` onto ``current``.

        Args:
            neighbour: ``(N, C, H, W)`` features of the neighbour frame.
            current: ``(N, C, H, W)`` features of the frame to align to.
            flow: ``(N, 2, H, W)`` flow in pixels that warps ``neighbour`` onto ``current``.

        Returns:
            ``(N, C, H, W)`` aligned neighbour features.
        """
        warped = flow_warp(neighbour, flow)
        offset_x, offset_y, modulation = self.conv_offset(torch.cat((warped, current, flow.to(current.dtype)), dim=1)).chunk(3, dim=1)

        # torchvision wants (dy, dx) pairs per tap, the flow is (dx, dy)
        residue = self.max_residue_magnitude * torch.tanh(torch.cat((offset_x, offset_y), dim=1))
        offset = residue + flow.flip(1).repeat(1, residue.shape[1] // 2, 1, 1).to(residue.dtype)
        return modulated_deform_conv2d(
            neighbour, offset, torch.sigmoid(modulation), self.weight, self.bias, padding=1, use_torchvision=self.use_torchvision
        )


class Stage(nn.Module):
    """One of VRT stages 1-7: resize, mutual + self attention groups, flow-guided alignment.

    Input and output are ``(B, C, T, H, W)``. ``resize`` is ``"none"`` (stage 1), ``"down"``
    (2x2 space-to-depth, stages 2-4) or ``"up"`` (depth-to-space, stages 5-7).
    """

    def __init__(self, config: VRTConfig, index: int, resize: str, *, factory: Factory) -> None:
        super().__init__()
        dim = config.embed_dims[index]
        in_dim = config.embed_dims[index - 1]
        depth = config.depths[index]
        heads = config.num_heads[index]
        window = config.window_size
        common = {"mlp_ratio": config.mlp_ratio, "qkv_bias": config.qkv_bias, "factory": factory}

        # the (neiw neih c) channel order is what the checkpoints' reshape.2 weights expect
        if resize == "none":
            self.reshape = nn.Sequential(Rearrange("b c t h w -> b t h w c"), nn.LayerNorm(dim, **factory))
        elif resize == "down":
            self.reshape = nn.Sequential(
                Rearrange("b c t (h neih) (w neiw) -> b t h w (neiw neih c)", neih=2, neiw=2),
                nn.LayerNorm(4 * in_dim, **factory),
                nn.Linear(4 * in_dim, dim, **factory),
            )
        elif resize == "up":
            self.reshape = nn.Sequential(
                Rearrange("b (neiw neih c) t h w -> b t (h neih) (w neiw) c", neih=2, neiw=2),
                nn.LayerNorm(in_dim // 4, **factory),
                nn.Linear(in_dim // 4, dim, **factory),
            )
        else:
            raise ValueError(f"resize must be 'none', 'down' or 'up', got {resize!r}")

        mutual_depth = int(depth * config.mutual_ratio)
        self.residual_group1 = TMSAG(dim, mutual_depth, (2, window[1], window[2]), heads, mutual=True, **common)
        self.linear1 = nn.Linear(dim, dim, **factory)
        self.residual_group2 = TMSAG(dim, depth - mutual_depth, window, heads, mutual=False, **common)
        self.linear2 = nn.Linear(dim, dim, **factory)

        if config.flow_alignment:
            magnitude = 10.0 / 2 ** STAGE_FLOW_SCALES[index]
            self.pa_deform = FlowGuidedDeformAlign(dim, config.deformable_groups, magnitude, factory=factory)
            self.pa_fuse = GEGLUMlp(3 * dim, 3 * dim, dim, **factory)

    def forward(self, x: Tensor, flows: tuple[Tensor, Tensor] | None) -> Tensor:
        """Run the stage.

        Args:
            x: ``(B, C_in, T, H_in, W_in)``.
            flows: (backward, forward) flows at this stage's resolution, each
                ``(B, T - 1, 2, H, W)``; backward[t] warps frame t+1 onto t, forward[t] warps t onto t+1.

        Returns:
            ``(B, C, T, H, W)``.
        """
        x = self.reshape(x)
        x = x + self.linear1(self.residual_group1(x))
        x = x + self.linear2(self.residual_group2(x))

        if flows is not None:
            # the fused features replace x: VRT has no residual around this step
            x = self.pa_fuse(torch.cat((x, *self._align_neighbours(x, *flows)), dim=-1))

        return rearrange(x, "b t h w c -> b c t h w")

    def _align_neighbours(self, x: Tensor, flows_backward: Tensor, flows_forward: Tensor) -> tuple[Tensor, Tensor]:
        """Align frame t+1 and frame t-1 onto every frame t; zeros where the neighbour is missing.

        Takes and returns channel-last ``(B, T, H, W, C)``; all frame pairs run as one batch.
        """
        b = x.shape[0]
        frames = rearrange(x, "b t h w c -> b t c h w")

        from_next = self.pa_deform(
            rearrange(frames[:, 1:], "b t c h w -> (b t) c h w"),
            rearrange(frames[:, :-1], "b t c h w -> (b t) c h w"),
            rearrange(flows_backward, "b t xy h w -> (b t) xy h w"),
        )
        from_previous = self.pa_deform(
            rearrange(frames[:, :-1], "b t c h w -> (b t) c h w"),
            rearrange(frames[:, 1:], "b t c h w -> (b t) c h w"),
            rearrange(flows_forward, "b t xy h w -> (b t) xy h w"),
        )
        from_next = rearrange(from_next, "(b t) c h w -> b t h w c", b=b)
        from_previous = rearrange(from_previous, "(b t) c h w -> b t h w c", b=b)

        zeros = torch.zeros_like(x[:, :1])
        return torch.cat((from_next, zeros), dim=1), torch.cat((zeros, from_previous), dim=1)


@dataclass(frozen=True, eq=False)
class BackboneContext:
    """Per-clip tensors that :meth:`VRT.prepare` computes and the later steps reuse.

    Attributes:
        frames: the input RGB frames ``(B, T, 3, H, W)``, added back at the end.
        flows_backward: per pyramid level (full, 1/2, 1/4, 1/8) ``(B, T - 1, 2, H_i, W_i)``,
            entry t warps frame t+1 onto frame t; empty without flow alignment.
        flows_forward: same shapes, entry t warps frame t onto frame t+1.
        stem: ``conv_first`` output ``(B, C, T, H, W)``, the input of stage 1.
    """

    frames: Tensor
    flows_backward: tuple[Tensor, ...]
    flows_forward: tuple[Tensor, ...]
    stem: Tensor

    def flows_at(self, scale: int) -> tuple[Tensor, Tensor] | None:
        """(backward, forward) flows at pyramid level ``scale``, or None without flow alignment."""
        if not self.flows_backward:
            return None
        return self.flows_backward[scale], self.flows_forward[scale]


class VRT(nn.Module):
    """VRT backbone for restoration at the input resolution (deblurring, denoising).

    Input rules: H and W multiples of :attr:`size_multiple` and at least :attr:`min_size`, at
    least :attr:`min_frames` frames. Padding to these sizes is the caller's job.

    Example::

        model = build_vrt("vrt-tiny")
        out = model(torch.rand(1, 6, 3, 64, 64))  # (1, 6, 3, 64, 64)

    Args:
        config: hyper-parameters, see :class:`~spikedeblur.models.vrt_config.VRTConfig`.
        device: where to create the parameters.
        dtype: parameter dtype.
    """

    size_multiple: int = 8
    min_frames: int = 2

    def __init__(self, config: VRTConfig, *, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> None:
        super().__init__()
        factory: Factory = {"device": device, "dtype": dtype}
        self.config = config
        self.grad_checkpointing = False
        width = config.width

        if config.flow_alignment:
            self.spynet = SpyNet((2, 3, 4, 5), device=device, dtype=dtype)
        self.conv_first = nn.Conv3d(config.input_channels, width, (1, 3, 3), padding=(0, 1, 1), **factory)

        resizes = ("none", "down", "down", "down", "up", "up", "up")
        for index, resize in enumerate(resizes):
            self.add_module(f"stage{index + 1}", Stage(config, index, resize, factory=factory))

        stage8_dim = config.embed_dims[UNET_STAGES]
        groups: list[nn.Module] = [
            nn.Sequential(
                Rearrange("b c t h w -> b t h w c"),
                nn.LayerNorm(width, **factory),
                nn.Linear(width, stage8_dim, **factory),
            )
        ]
        for index in range(UNET_STAGES, len(config.depths)):
            window = config.window_size
            if index in config.independent_reconstruction:
                window = (1, window[1], window[2])
            groups.append(
                RTMSA(stage8_dim, config.depths[index], window, config.num_heads[index],
                      mlp_ratio=config.mlp_ratio, qkv_bias=config.qkv_bias, factory=factory)
            )
        self.stage8 = nn.ModuleList(groups)
        self.norm = nn.LayerNorm(stage8_dim, **factory)
        self.conv_after_body = nn.Linear(stage8_dim, width, **factory)
        self.conv_last = nn.Conv3d(width, RGB_CHANNELS, (1, 3, 3), padding=(0, 1, 1), **factory)

    @property
    def embed_dims(self) -> tuple[int, ...]:
        """Channels per stage (stages 1-7 share ``embed_dims[0]``)."""
        return self.config.embed_dims

    @property
    def min_size(self) -> int:
        """Smallest H and W: the 1/8-scale map must hold a whole mutual-attention window."""
        return 8 * max(self.config.window_size[1:])

    @property
    def stages(self) -> tuple[Stage, ...]:
        """Stages 1-7 in order."""
        return tuple(getattr(self, f"stage{index + 1}") for index in range(UNET_STAGES))

    def set_grad_checkpointing(self, enabled: bool = True) -> None:
        """Recompute each stage's activations in the backward pass instead of storing them."""
        self.grad_checkpointing = enabled

    def prepare(self, frames: Tensor, noise_map: Tensor | None = None) -> BackboneContext:
        """Validate the input, estimate optical flow, pre-align the frames and run ``conv_first``.

        Args:
            frames: ``(B, T, 3, H, W)`` RGB in [0, 1].
            noise_map: ``(B, T, 1, H, W)`` noise standard deviation / 255; required exactly when
                ``config.noise_map`` is set.

        Returns:
            the :class:`BackboneContext` for :meth:`encoder_stage` and :meth:`decode`.

        Raises:
            InvalidInputError: wrong shape, size, frame count or noise map.
        """
        self._check_input(frames, noise_map)
        b, t = frames.shape[:2]
        parts = [frames]
        flows_backward: tuple[Tensor, ...] = ()
        flows_forward: tuple[Tensor, ...] = ()

        if self.config.flow_alignment:
            flows_backward, flows_forward = self._estimate_flows(frames)

            # image-level pre-alignment: 4 integer-neighbour samples of each adjacent frame
            nearest = flow_warp_nearest4(
                rearrange(frames[:, 1:], "b t c h w -> (b t) c h w"),
                rearrange(flows_backward[0], "b t xy h w -> (b t) xy h w"),
            )
            from_next = rearrange(nearest, "(b t) c h w -> b t c h w", b=b)
            nearest = flow_warp_nearest4(
                rearrange(frames[:, :-1], "b t c h w -> (b t) c h w"),
                rearrange(flows_forward[0], "b t xy h w -> (b t) xy h w"),
            )
            from_previous = rearrange(nearest, "(b t) c h w -> b t c h w", b=b)
            zeros = torch.zeros_like(from_next[:, :1])
            parts += [torch.cat((from_next, zeros), dim=1), torch.cat((zeros, from_previous), dim=1)]

        if noise_map is not None:
            parts.append(noise_map.to(frames.dtype))

        stem = self.conv_first(rearrange(torch.cat(parts, dim=2), "b t c h w -> b c t h w"))
        return BackboneContext(frames=frames, flows_backward=flows_backward, flows_forward=flows_forward, stem=stem)

    def encoder_stage(self, index: int, x: Tensor, context: BackboneContext) -> Tensor:
        """Run encoder stage ``index`` (0-3 = VRT stages 1-4).

        Args:
            index: 0 for stage 1 (full resolution) to 3 for stage 4 (1/8 resolution).
            x: ``(B, C, T, H_i, W_i)``: ``context.stem`` for index 0, otherwise the previous
                stage's (possibly fused) output.
            context: from :meth:`prepare`.

        Returns:
            ``(B, C, T, H / 2^index, W / 2^index)``.
        """
        if not 0 <= index < ENCODER_STAGES:
            raise ValueError(f"encoder stage index must be 0..{ENCODER_STAGES - 1}, got {index}")
        return self._run_stage(index, x, context)

    def decode(self, skips: Sequence[Tensor], context: BackboneContext) -> Tensor:
        """Run stages 5-8 with the U-Net skips, then the reconstruction head and global residual.

        Args:
            skips: outputs of stages 1-4 (or features that replace them), ``(B, C, T, H_i, W_i)``.
            context: from :meth:`prepare`.

        Returns:
            restored frames ``(B, T, 3, H, W)``, not clamped.
        """
        if len(skips) != ENCODER_STAGES:
            raise ValueError(f"decode needs the outputs of {ENCODER_STAGES} encoder stages, got {len(skips)}")
        x1, x2, x3, x4 = skips

        # U-Net decoder: each stage adds the encoder output of its resolution
        y = self._run_stage(4, x4, context)
        y = self._run_stage(5, y + x3, context)
        y = self._run_stage(6, y + x2, context)
        y = y + x1

        # stage 8 and the head work channel-last
        for group in self.stage8:
            y = self._checkpointed(group, y)
        y = self.conv_after_body(self.norm(y))
        features = context.stem + rearrange(y, "b t h w c -> b c t h w")
        out = rearrange(self.conv_last(features), "b c t h w -> b t c h w")
        return out + context.frames

    def forward(self, frames: Tensor, noise_map: Tensor | None = None) -> Tensor:
        """Restore ``frames`` ``(B, T, 3, H, W)`` in [0, 1]; returns ``(B, T, 3, H, W)``."""
        context = self.prepare(frames, noise_map)
        skips = []
        x = context.stem
        for index in range(ENCODER_STAGES):
            x = self.encoder_stage(index, x, context)
            skips.append(x)
        return self.decode(skips, context)

    def _run_stage(self, index: int, x: Tensor, context: BackboneContext) -> Tensor:
        return self._checkpointed(self.stages[index], x, context.flows_at(STAGE_FLOW_SCALES[index]))

    def _checkpointed(self, module: nn.Module, *args: object) -> Tensor:
        if self.grad_checkpointing and torch.is_grad_enabled():
            return checkpoint(module, *args, use_reentrant=False)
        return module(*args)

    def _estimate_flows(self, frames: Tensor) -> tuple[tuple[Tensor, ...], tuple[Tensor, ...]]:
        """SpyNet flows between adjacent frames, both directions, at scales 1, 1/2, 1/4, 1/8."""
        b, t = frames.shape[:2]
        earlier = rearrange(frames[:, :-1], "b t c h w -> (b t) c h w")
        later = rearrange(frames[:, 1:], "b t c h w -> (b t) c h w")

        # one SpyNet batch for both directions
        flows = self.spynet(torch.cat((earlier, later)), torch.cat((later, earlier)))
        pairs = b * (t - 1)
        backward = tuple(rearrange(flow[:pairs], "(b t) xy h w -> b t xy h w", b=b) for flow in flows)
        forward = tuple(rearrange(flow[pairs:], "(b t) xy h w -> b t xy h w", b=b) for flow in flows)
        return backward, forward

    def _check_input(self, frames: Tensor, noise_map: Tensor | None) -> None:
        if frames.dim() != 5 or frames.shape[2] != RGB_CHANNELS:
            raise InvalidInputError(f"frames must be (B, T, 3, H, W), got shape {tuple(frames.shape)}")
        b, t, _, h, w = frames.shape
        if t < self.min_frames:
            raise InvalidInputError(f"VRT needs at least {self.min_frames} frames per clip, got {t}; use a longer clip")
        if h % self.size_multiple or w % self.size_multiple:
            raise InvalidInputError(
                f"frame size {h}x{w} is not a multiple of {self.size_multiple}; pad the frames first"
            )
        if h < self.min_size or w < self.min_size:
            raise InvalidInputError(f"frame size {h}x{w} is below the minimum {self.min_size}x{self.min_size}; pad the frames first")

        if self.config.noise_map and noise_map is None:
            raise InvalidInputError("this VRT configuration denoises with a noise level map; pass noise_map (B, T, 1, H, W)")
        if not self.config.noise_map and noise_map is not None:
            raise InvalidInputError("noise_map was given but this VRT configuration has no noise map input")
        if noise_map is not None and tuple(noise_map.shape) != (b, t, 1, h, w):
            raise InvalidInputError(f"noise_map must have shape {(b, t, 1, h, w)}, got {tuple(noise_map.shape)}")


def build_vrt(preset: str, *, device: torch.device | str | None = None, dtype: torch.dtype | None = None, **overrides: object) -> VRT:
    """Build a randomly initialised VRT from a named preset (see ``VRT_PRESETS``), with field overrides."""
    config = get_vrt_config(preset, **overrides)
    logger.debug("building VRT preset %s (%s)", preset, config)
    return VRT(config, device=device, dtype=dtype)
