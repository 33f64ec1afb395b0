"""Configuration of the VRT backbone and its named presets."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

ENCODER_STAGES = 4
RGB_CHANNELS = 3
UNET_STAGES = 7


@dataclass(frozen=True, kw_only=True)
class VRTConfig:
    """Frozen, validated hyper-parameters of the VRT backbone (restoration at scale 1).

    Per-stage tuples list the seven U-shaped stages first, then one entry per stage-8 residual
    group; stage 8 starts with a projection from ``embed_dims[6]`` to ``embed_dims[7]``.

    Args:
        depths: TMSA blocks per stage. In stages 1-7 the first ``int(depth * mutual_ratio)`` blocks
            use mutual + self attention in 2-frame windows, and the others use self attention only.
        embed_dims: channels per stage; stages 1-7 must share one width.
        num_heads: attention heads per stage.
        window_size: self-attention window (frames, height, width).
        independent_reconstruction: stage-8 entries (indices into the per-stage tuples) that
            attend within single frames, window ``(1, Wh, Ww)``.
        mutual_ratio: share of each stage's blocks that use mutual attention.
        mlp_ratio: hidden width of the feed-forward blocks relative to the stage width.
        qkv_bias: bias on the attention input projections.
        flow_alignment: SpyNet optical flow, image pre-alignment and flow-guided deformable
            alignment after every stage (VRT's ``pa_frames=2``). Off means the backbone sees only
            the RGB frames, which suits models trained from scratch without a pretrained SpyNet.
        deformable_groups: offset groups of the deformable alignment; must divide the width.
        noise_map: one extra input channel, the noise level map of non-blind denoising.
    """

    depths: tuple[int, ...]
    embed_dims: tuple[int, ...]
    num_heads: tuple[int, ...]
    window_size: tuple[int, int, int] = (6, 8, 8)
    independent_reconstruction: tuple[int, ...] = ()
    mutual_ratio: float = 0.75
    mlp_ratio: float = 2.0
    qkv_bias: bool = True
    flow_alignment: bool = True
    deformable_groups: int = 16
    noise_map: bool = False

    def __post_init__(self) -> None:
        for name in ("depths", "embed_dims", "num_heads", "window_size", "independent_reconstruction"):
            object.__setattr__(self, name, tuple(getattr(self, name)))

        stages = len(self.depths)
        if stages <= UNET_STAGES:
            raise ValueError(f"depths needs more than {UNET_STAGES} entries (7 U-Net stages + stage 8), got {stages}")
        if len(self.embed_dims) != stages or len(self.num_heads) != stages:
            raise ValueError(
                f"depths, embed_dims and num_heads must have the same length, got "
                f"{stages}, {len(self.embed_dims)} and {len(self.num_heads)}"
            )
        if any(d < 1 for d in self.depths):
            raise ValueError(f"every depth must be at least 1, got {self.depths}")
        if len(set(self.embed_dims[:UNET_STAGES])) != 1:
            raise ValueError(f"stages 1-7 must share one width (U-Net skips add them), got {self.embed_dims[:UNET_STAGES]}")
        if len(set(self.embed_dims[UNET_STAGES:])) != 1:
            raise ValueError(f"stage 8 must keep one width, got {self.embed_dims[UNET_STAGES:]}")
        for index, (dim, heads) in enumerate(zip(self.embed_dims, self.num_heads)):
            if heads < 1 or dim % heads:
                raise ValueError(f"embed_dims[{index}]={dim} is not divisible by num_heads[{index}]={heads}")
        if self.embed_dims[0] % 4:
            raise ValueError(f"the stage 1-7 width must be divisible by 4 (position encoding, reshapes), got {self.embed_dims[0]}")
        if len(self.window_size) != 3 or any(w < 1 for w in self.window_size):
            raise ValueError(f"window_size must be 3 positive ints (frames, height, width), got {self.window_size}")
        if any(not UNET_STAGES <= i < stages for i in self.independent_reconstruction):
            raise ValueError(
                f"independent_reconstruction entries must index stage-8 groups ({UNET_STAGES}..{stages - 1}), "
                f"got {self.independent_reconstruction}"
            )
        if not 0.0 < self.mutual_ratio < 1.0:
            raise ValueError(f"mutual_ratio must be in (0, 1), got {self.mutual_ratio}")
        if any(int(d * self.mutual_ratio) < 1 for d in self.depths[:UNET_STAGES]):
            raise ValueError(f"with mutual_ratio {self.mutual_ratio}, stages 1-7 need depth >= {1 / self.mutual_ratio:.0f}")
        if any(d - int(d * self.mutual_ratio) < 1 for d in self.depths[:UNET_STAGES]):
            raise ValueError(f"with mutual_ratio {self.mutual_ratio}, every stage 1-7 needs a self-attention block")
        if self.mlp_ratio <= 0:
            raise ValueError(f"mlp_ratio must be positive, got {self.mlp_ratio}")
        if self.flow_alignment and (self.deformable_groups < 1 or self.embed_dims[0] % self.deformable_groups):
            raise ValueError(
                f"deformable_groups {self.deformable_groups} must divide the stage width {self.embed_dims[0]}"
            )

    @property
    def width(self) -> int:
        """Channels of stages 1-7, which the U-Net skips and the encoder outputs share."""
        return self.embed_dims[0]

    @property
    def input_channels(self) -> int:
        """Channels entering ``conv_first``: RGB, 4+4 pre-aligned neighbour copies, noise map."""
        channels = RGB_CHANNELS * (9 if self.flow_alignment else 1)
        return channels + (1 if self.noise_map else 0)

    def replace(self, **overrides: Any) -> VRTConfig:
        """Return a copy with some fields changed (validated again)."""
        known = {f.name for f in fields(self) if f.init}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"unknown VRTConfig field(s) {unknown}; valid fields: {sorted(known)}")
        return replace(self, **overrides)


_DEBLUR = VRTConfig(
    depths=(8,) * 7 + (4,) * 4,
    embed_dims=(96,) * 7 + (120,) * 4,
    num_heads=(6,) * 11,
    window_size=(6, 8, 8),
    independent_reconstruction=(9, 10),
    deformable_groups=16,
)

VRT_PRESETS: dict[str, VRTConfig] = {
    # the released deblurring checkpoints 005 (DVD), 006 (GoPro) and 007 (REDS)
    "vrt-deblur": _DEBLUR,
    # the released denoising checkpoint 008 (DAVIS): the noise level map is a 4th input channel
    "vrt-denoise": _DEBLUR.replace(noise_map=True),
    # a narrower, shallower model for CPU experiments (about 1/10 of the deblur compute)
    "vrt-small": VRTConfig(
        depths=(4,) * 7 + (2,) * 2,
        embed_dims=(48,) * 7 + (64,) * 2,
        num_heads=(4,) * 9,
        window_size=(6, 8, 8),
        independent_reconstruction=(8,),
        deformable_groups=8,
        flow_alignment=False,
    ),
    # the smallest model that still has every block type; for tests
    "vrt-tiny": VRTConfig(
        depths=(2,) * 7 + (1,) * 2,
        embed_dims=(16,) * 7 + (24,) * 2,
        num_heads=(2,) * 9,
        window_size=(6, 8, 8),
        independent_reconstruction=(8,),
        deformable_groups=2,
        flow_alignment=False,
    ),
}


def get_vrt_config(preset: str, **overrides: Any) -> VRTConfig:
    """Return the named preset, with ``overrides`` applied to its fields."""
    try:
        config = VRT_PRESETS[preset]
    except KeyError:
        raise ValueError(f"unknown VRT preset {preset!r}; choose one of {sorted(VRT_PRESETS)}") from None
    return config.replace(**overrides) if overrides else config
