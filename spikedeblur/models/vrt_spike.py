"""VRT+Spike: the VRT backbone with spike features fused into its four encoder stages.

Data flow, for frames (B, T, 3, H, W) and spike voxels (B, T, K, H, W):

1. The backbone prepares the clip (optical flow, pre-alignment, ``conv_first``) into a stem feature.
2. :class:`~spikedeblur.layers.spike_encoder.SpikeEncoder3D` turns the voxels into four maps on the
   grids of encoder stages 1-4, and one :class:`~spikedeblur.layers.temporal_attention.SpikeTemporalSA`
   per scale mixes each map along time.
3. After encoder stage i, :class:`~spikedeblur.layers.cross_attention.CrossAttentionFusion` adds the
   attended spike features to the stage output. The fused map feeds stage i + 1 and the decoder skip.
4. The backbone decodes (stages 5-8, reconstruction head, global residual to the input frames).

Every fusion starts as the identity, so a freshly built model reproduces its backbone exactly.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from spikedeblur.errors import InvalidInputError
from spikedeblur.layers.cross_attention import CrossAttentionFusion, WindowSize, validate_window
from spikedeblur.layers.spike_encoder import SpikeEncoder3D
from spikedeblur.layers.temporal_attention import SpikeTemporalSA
from spikedeblur.models.vrt import VRT
from spikedeblur.models.vrt_config import ENCODER_STAGES, VRTConfig

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class VRTSpikeConfig:
    """Frozen, validated hyper-parameters of the VRT+Spike model.

    Args:
        backbone: configuration of the VRT backbone.
        num_bins: K, the spike time bins per frame.
        spike_channels: width of the spike encoder's feature maps.
        encoder_blocks: residual 3D-convolution blocks per spike encoder scale.
        relative_rates: also feed the encoder each bin's rate relative to its pixel's exposure mean
            (see :class:`~spikedeblur.layers.spike_encoder.SpikeEncoder3D`).
        temporal_heads: heads of each scale's temporal self-attention; must divide ``spike_channels``.
        fusion_heads: heads of each cross-attention fusion; must divide the backbone width.
        fusion_windows: window side in pixels (or ``"global"``) of the fusion at scales 1-4.
        mlp_ratio: hidden width of the temporal-attention and fusion MLPs, relative to their width.
    """

    backbone: VRTConfig
    num_bins: int = 32
    spike_channels: int
    encoder_blocks: int = 2
    relative_rates: bool = True
    temporal_heads: int
    fusion_heads: int
    fusion_windows: tuple[WindowSize, ...] = field(default=(8,) * ENCODER_STAGES)
    mlp_ratio: float = 2.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "fusion_windows", tuple(self.fusion_windows))

        if not isinstance(self.backbone, VRTConfig):
            raise InvalidInputError(f"backbone must be a VRTConfig, got {type(self.backbone).__name__}")
        for name in ("num_bins", "spike_channels", "encoder_blocks", "temporal_heads", "fusion_heads"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidInputError(f"VRTSpikeConfig {name}={value!r} is invalid; use a positive integer")
        if self.spike_channels % self.temporal_heads:
            raise InvalidInputError(
                f"temporal_heads={self.temporal_heads} does not divide spike_channels={self.spike_channels}; "
                "pick a divisor"
            )
        if self.backbone.width % self.fusion_heads:
            raise InvalidInputError(
                f"fusion_heads={self.fusion_heads} does not divide the backbone width {self.backbone.width}; "
                "pick a divisor"
            )
        if len(self.fusion_windows) != ENCODER_STAGES:
            raise InvalidInputError(
                f"fusion_windows={self.fusion_windows} has {len(self.fusion_windows)} entries; "
                f"give one per encoder stage ({ENCODER_STAGES})"
            )
        for window in self.fusion_windows:
            validate_window(window)
        if self.mlp_ratio <= 0:
            raise InvalidInputError(f"VRTSpikeConfig mlp_ratio={self.mlp_ratio} is invalid; use a positive value")

    def to_dict(self) -> dict[str, Any]:
        """Return the configuration as JSON-compatible nested dicts and lists."""
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VRTSpikeConfig:
        """Build a configuration from :meth:`to_dict` output; unknown or missing fields raise."""
        values = dict(data)
        try:
            values["backbone"] = VRTConfig(**values["backbone"])
            return cls(**values)
        except (KeyError, TypeError, ValueError) as error:
            raise InvalidInputError(f"invalid VRTSpikeConfig data: {error}") from error


class VRTSpike(nn.Module):
    """VRT backbone plus a spike branch fused into encoder stages 1-4 by cross-attention.

    Args:
        config: the model configuration.
        device: device of the parameters.
        dtype: dtype of the parameters.

    Shapes:
        ``frames``: (B, T, 3, H, W) float in [0, 1]. H and W must be multiples of
        :attr:`size_multiple` and at least :attr:`min_size`, and T at least :attr:`min_frames`.
        ``spike_voxels``: (B, T, K, H, W) float in [0, 1] with K = :attr:`num_bins`, or ``None`` to
        run the backbone alone.
        Output: (B, T, 3, H, W) float, the restored frames.
    """

    def __init__(self, config: VRTSpikeConfig, *, device=None, dtype=None) -> None:
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        self.config = config
        self.backbone = VRT(config.backbone, **factory)
        self.spike_encoder = SpikeEncoder3D(
            num_bins=config.num_bins,
            channels=config.spike_channels,
            num_scales=ENCODER_STAGES,
            blocks_per_scale=config.encoder_blocks,
            relative_rates=config.relative_rates,
            **factory,
        )
        self.temporal_attention = nn.ModuleList(
            SpikeTemporalSA(
                config.spike_channels, num_heads=config.temporal_heads, mlp_ratio=config.mlp_ratio, **factory
            )
            for _ in range(ENCODER_STAGES)
        )
        self.fusions = nn.ModuleList(
            CrossAttentionFusion(
                config.backbone.width,
                context_dim=config.spike_channels,
                num_heads=config.fusion_heads,
                window=window,
                mlp_ratio=config.mlp_ratio,
                **factory,
            )
            for window in config.fusion_windows
        )
        self.grad_checkpointing = False

    @property
    def size_multiple(self) -> int:
        return self.backbone.size_multiple

    @property
    def min_size(self) -> int:
        return self.backbone.min_size

    @property
    def min_frames(self) -> int:
        return self.backbone.min_frames

    @property
    def num_bins(self) -> int:
        return self.config.num_bins

    def spike_branch_parameters(self) -> list[nn.Parameter]:
        """Return the parameters of the spike encoder, temporal attention and fusion layers."""
        return [
            parameter
            for module in (self.spike_encoder, self.temporal_attention, self.fusions)
            for parameter in module.parameters()
        ]

    def reset_fusion_to_identity(self) -> None:
        """Zero the output layers of every fusion, so the model again reproduces its backbone."""
        for fusion in self.fusions:
            fusion.reset_to_identity()

    def set_grad_checkpointing(self, enabled: bool = True) -> None:
        """Recompute activations in the backward pass, per backbone stage and per spike-branch scale."""
        self.backbone.set_grad_checkpointing(enabled)
        self.grad_checkpointing = enabled

    def _run(self, module: nn.Module, *inputs: Tensor):
        if self.grad_checkpointing and torch.is_grad_enabled():
            return checkpoint(module, *inputs, use_reentrant=False)
        return module(*inputs)

    def _check_spikes(self, frames: Tensor, spike_voxels: Tensor) -> None:
        if frames.ndim != 5:
            raise InvalidInputError(f"frames must be (B, T, 3, H, W), got shape {tuple(frames.shape)}")
        expected = (*frames.shape[:2], self.num_bins, *frames.shape[3:])
        if tuple(spike_voxels.shape) != expected:
            raise InvalidInputError(
                f"spike voxels have shape {tuple(spike_voxels.shape)} for frames {tuple(frames.shape)}; "
                f"expected {expected}, i.e. (B, T, {self.num_bins}, H, W) on the frames' grid"
            )

    def forward(self, frames: Tensor, spike_voxels: Tensor | None = None) -> Tensor:
        if spike_voxels is None:
            return self.backbone(frames)
        self._check_spikes(frames, spike_voxels)

        # optical flow, pre-alignment and the stem feature (validates the frame sizes)
        context = self.backbone.prepare(frames)

        # spike features on the grids of encoder stages 1-4
        spike_features = self._run(self.spike_encoder, spike_voxels.to(frames.dtype))

        # encoder stages, each followed by the fusion of that scale's spike features
        x = context.stem
        skips = []
        for index in range(ENCODER_STAGES):
            x = self.backbone.encoder_stage(index, x, context)
            spikes = self._run(self.temporal_attention[index], spike_features[index])
            x = self._run(self.fusions[index], x, spikes)
            skips.append(x)

        # decoder, reconstruction and global residual
        return self.backbone.decode(skips, context)


__all__ = ["VRTSpike", "VRTSpikeConfig"]
