"""Clip and tile settings for inference, with a default per model preset.

Why the defaults are what they are:

* **Clip length.** VRT's attention windows span 2 frames in stages 1-7 and 6 frames in stage 8, so a
  clip that is a multiple of 6 needs no temporal padding inside the model. VRT's published deblurring
  results used 18-frame clips. The full ``vrt-spike`` preset uses 12 because the spike branch also
  keeps 96-channel 3-D convolution features for every frame of the clip (an estimate of the extra
  activation memory, not a measurement).
* **Clip overlap 2.** Every output frame near a clip border still gets one neighbour on each side
  from some clip, and only 2 of every 12-18 frames are computed twice.
* **Tile 192 / 256.** Tiles must be multiples of 8 and at least 64 pixels (three 2x downsamplings and
  8x8 attention windows at the coarsest scale). 192 is the tile of VRT's published GoPro settings;
  the small and tiny presets afford 256.
* **Tile overlap 20.** The same as VRT's published settings. The output of a transformer shifts a
  little when its context changes; 20 pixels of smooth cross-fade hide that shift.
"""

from __future__ import annotations

from dataclasses import dataclass

from spikedeblur.errors import InvalidInputError
from spikedeblur.inference.ensemble import SELF_ENSEMBLE_SIZES

# The smallest tile the engine falls back to after running out of memory, in pixels.
DEFAULT_MIN_TILE = 64


@dataclass(frozen=True, kw_only=True)
class InferenceSettings:
    """Temporal clip and spatial tile sizes.

    Attributes:
        clip_len: frames per temporal clip (>= 1).
        clip_overlap: frames shared by consecutive clips, in ``[0, clip_len)``.
        tile: tile side in pixels; 0 runs whole frames. The engine checks it against the model's
            size multiple and minimum size.
        tile_overlap: pixels shared by neighbouring tiles, smaller than ``tile`` when tiling.
        min_tile: smallest tile side the engine may fall back to after running out of memory.
        self_ensemble: flipped, transposed and time-reversed copies of each tile the model's
            outputs are averaged over, one of 1 (off), 2, 4, 8 or 16; see
            :mod:`spikedeblur.inference.ensemble`.
    """

    clip_len: int = 16
    clip_overlap: int = 2
    tile: int = 256
    tile_overlap: int = 20
    min_tile: int = DEFAULT_MIN_TILE
    self_ensemble: int = 1

    def __post_init__(self) -> None:
        if self.clip_len < 1:
            raise InvalidInputError(f"clip length {self.clip_len} must be at least 1 frame")
        if not 0 <= self.clip_overlap < self.clip_len:
            raise InvalidInputError(
                f"clip overlap {self.clip_overlap} must be in [0, {self.clip_len}) for a {self.clip_len}-frame clip"
            )
        if self.tile < 0:
            raise InvalidInputError(f"tile size {self.tile} is negative; use 0 for whole frames")
        if self.tile_overlap < 0:
            raise InvalidInputError(f"tile overlap {self.tile_overlap} is negative; use 0 or more pixels")
        if self.tile > 0 and self.tile_overlap >= self.tile:
            raise InvalidInputError(f"tile overlap {self.tile_overlap} must be smaller than the tile size {self.tile}")
        if self.min_tile < 1:
            raise InvalidInputError(f"minimum tile size {self.min_tile} must be at least 1 pixel")
        if self.self_ensemble not in SELF_ENSEMBLE_SIZES:
            sizes = ", ".join(str(size) for size in SELF_ENSEMBLE_SIZES)
            raise InvalidInputError(f"self-ensemble size {self.self_ensemble} is not supported; use one of {sizes}")


PRESET_SETTINGS: dict[str, InferenceSettings] = {
    "vrt-spike": InferenceSettings(clip_len=12, clip_overlap=2, tile=192, tile_overlap=20),
    "vrt-spike-small": InferenceSettings(clip_len=18, clip_overlap=2, tile=256, tile_overlap=20),
    "vrt-spike-tiny": InferenceSettings(clip_len=18, clip_overlap=2, tile=256, tile_overlap=20),
    # The plain backbone, as in VRT's published deblurring settings.
    "vrt-deblur": InferenceSettings(clip_len=18, clip_overlap=2, tile=192, tile_overlap=20),
}


def settings_for_preset(preset: str | None, **overrides: int | None) -> InferenceSettings:
    """Return the default settings of ``preset`` with every non-None value in ``overrides`` replaced.

    Unknown presets (a custom checkpoint, say) use the ``vrt-spike`` defaults, the most frugal ones.
    """
    base = PRESET_SETTINGS.get(preset or "", PRESET_SETTINGS["vrt-spike"])
    values = {
        "clip_len": base.clip_len,
        "clip_overlap": base.clip_overlap,
        "tile": base.tile,
        "tile_overlap": base.tile_overlap,
        "min_tile": base.min_tile,
        "self_ensemble": base.self_ensemble,
    }
    for name, value in overrides.items():
        if name not in values:
            raise TypeError(f"unknown inference setting {name!r}")
        if value is not None:
            values[name] = value

    # A shorter clip or a smaller tile given without its overlap keeps the default overlap only
    # where it still fits.
    if overrides.get("clip_overlap") is None:
        values["clip_overlap"] = min(values["clip_overlap"], values["clip_len"] - 1)
    if overrides.get("tile_overlap") is None and values["tile"] > 0:
        values["tile_overlap"] = min(values["tile_overlap"], values["tile"] // 2)
    return InferenceSettings(**values)
