"""Training samples: procedural clips made on the fly, simulated data sets and the GoPro-spike layout.

Every sample is a dict of float32 NumPy arrays for one clip of T frames:

- ``blurry``: (T, 3, H, W) RGB in [0, 1], the model input;
- ``voxels``: (T, K, H, W) spike firing rates in [0, 1] per time bin, on the RGB grid;
- ``sharp``: (T, 3, H, W) RGB in [0, 1], the ground truth at each exposure centre.

Samples are pure functions of an integer sample id (and the data set seed), so a resumed or
distributed run draws exactly the samples an uninterrupted single-process run would.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from einops import rearrange

from spikedeblur.data.dataset import MANIFEST_NAME
from spikedeblur.data.simulate import IntegrateAndFire, SpikeSimulationConfig, rgb_to_luma, spike_size
from spikedeblur.data.synthetic import ProceduralScene, SceneConfig
from spikedeblur.errors import InputNotFoundError, InvalidInputError
from spikedeblur.spikes.spatial import SpatialMapping, map_to_video

logger = logging.getLogger(__name__)

Sample = dict[str, np.ndarray]


@dataclass(frozen=True)
class ProceduralClipSettings:
    """Parameters of one procedural clip (already drawn from the augmentation ranges)."""

    clip_length: int
    height: int
    width: int
    num_bins: int
    ticks_per_bin: int
    threshold: float
    speed: float
    spike_scale: float
    num_layers: int


def make_procedural_clip(settings: ProceduralClipSettings, *, seed: int) -> Sample:
    """Render and simulate one procedural clip; returns a :data:`Sample`.

    Each frame interval is one full exposure split into ``num_bins`` bins. The scene is rendered at
    the middle of each bin, and its light is held for that bin's ``ticks_per_bin`` spike ticks, so
    the cost grows with the bins, not with the ticks. The blurry frame is the mean of the bin
    renders and the ground truth is rendered at the interval's centre.
    """
    scene_config = SceneConfig(
        height=settings.height,
        width=settings.width,
        num_layers=settings.num_layers,
        max_speed=settings.speed,
        shake_amplitude=0.3 * settings.speed,
    )
    scene = ProceduralScene(scene_config, seed=seed)
    spike_height, spike_width = spike_size(settings.height, settings.width, settings.spike_scale)
    neuron = IntegrateAndFire(
        spike_height, spike_width, SpikeSimulationConfig(threshold=settings.threshold, seed=seed)
    )
    mapping = SpatialMapping(
        kind="scale_offset", scale=(settings.width / spike_width, settings.height / spike_height)
    )

    blurry, sharp, voxels = [], [], []
    bin_offsets = (np.arange(settings.num_bins) + 0.5) / settings.num_bins
    for frame_index in range(settings.clip_length):
        renders = scene.render_times(frame_index + bin_offsets)
        blurry.append(renders.mean(axis=0))
        sharp.append(scene.render(frame_index + 0.5))

        luma = rgb_to_luma(renders)
        rates = np.empty((settings.num_bins, spike_height, spike_width), np.float32)
        for bin_index in range(settings.num_bins):
            intensity = luma[bin_index]
            if (spike_height, spike_width) != intensity.shape:
                intensity = cv2.resize(intensity, (spike_width, spike_height), interpolation=cv2.INTER_AREA)
            count = np.zeros((spike_height, spike_width), np.float32)
            for _ in range(settings.ticks_per_bin):
                count += neuron.step(intensity)
            rates[bin_index] = count / settings.ticks_per_bin
        voxels.append(map_to_video(rates, mapping, (settings.height, settings.width)))

    return {
        "blurry": rearrange(np.stack(blurry), "t h w c -> t c h w").astype(np.float32),
        "voxels": np.stack(voxels).astype(np.float32),
        "sharp": rearrange(np.stack(sharp), "t h w c -> t c h w").astype(np.float32),
    }


class ProceduralDataset:
    """An endless stream of procedural clips with randomised motion, spike threshold and tick count.

    ``dataset[i]`` is deterministic in ``(seed, i)``.
    """

    def __init__(
        self,
        *,
        clip_length: int,
        size: int,
        num_bins: int,
        ticks_per_bin: tuple[float, float],
        threshold: tuple[float, float],
        speed: tuple[float, float],
        spike_scale: float,
        num_layers: int = 4,
        seed: int = 0,
    ) -> None:
        self.clip_length = clip_length
        self.size = size
        self.num_bins = num_bins
        self.ticks_per_bin = ticks_per_bin
        self.threshold = threshold
        self.speed = speed
        self.spike_scale = spike_scale
        self.num_layers = num_layers
        self.seed = seed

    def settings(self, index: int) -> ProceduralClipSettings:
        """Draw the clip parameters of sample ``index``."""
        rng = np.random.default_rng([self.seed, index, 1])
        low_ticks, high_ticks = int(math.floor(self.ticks_per_bin[0])), int(math.floor(self.ticks_per_bin[1]))
        return ProceduralClipSettings(
            clip_length=self.clip_length,
            height=self.size,
            width=self.size,
            num_bins=self.num_bins,
            ticks_per_bin=int(rng.integers(low_ticks, high_ticks + 1)),
            threshold=float(rng.uniform(*self.threshold)),
            speed=float(rng.uniform(*self.speed)),
            spike_scale=self.spike_scale,
            num_layers=self.num_layers,
        )

    def __getitem__(self, index: int) -> Sample:
        scene_seed = int(np.random.default_rng([self.seed, index, 2]).integers(2**31))
        return make_procedural_clip(self.settings(index), seed=scene_seed)


@dataclass(frozen=True)
class _Sequence:
    """One clip on disk: how to read its frames and spikes."""

    name: str
    blurry: list[Path] | Path  # frame files, or one video file
    sharp: list[Path]
    spikes: Path  # a .dat with its sidecar, or a folder of per-frame .dat files
    num_frames: int
    times: tuple[float, ...]
    durations: tuple[float, ...]


def _read_image(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise InvalidInputError(f"image {path} could not be read; check that it is a valid PNG or JPEG")
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    scale = 65535.0 if image.dtype == np.uint16 else 255.0
    return cv2.cvtColor(image[..., :3], cv2.COLOR_BGR2RGB).astype(np.float32) / scale


def _image_files(folder: Path) -> list[Path]:
    return sorted(path for path in folder.iterdir() if path.suffix.lower() in (".png", ".jpg", ".jpeg", ".tif", ".tiff"))


def read_simulated_sequence(root: Path) -> _Sequence:
    """Describe a folder written by ``spikedeblur simulate`` (it contains ``manifest.json``)."""
    manifest_path = root / MANIFEST_NAME
    if not manifest_path.is_file():
        raise InputNotFoundError(f"{manifest_path} not found; pass a folder written by 'spikedeblur simulate'")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))

    num_frames = int(manifest["num_frames"])
    fps = float(manifest["fps"])
    sharp = _image_files(root / manifest["sharp"])
    if len(sharp) != num_frames:
        raise InvalidInputError(
            f"{root / manifest['sharp']} has {len(sharp)} ground-truth frames but the manifest lists {num_frames}"
        )
    blurry_frames = root / manifest.get("blurry_frames", "")
    blurry: list[Path] | Path = _image_files(blurry_frames) if manifest.get("blurry_frames") else root / manifest["blurry"]
    return _Sequence(
        name=root.name,
        blurry=blurry,
        sharp=sharp,
        spikes=root / manifest["spikes"],
        num_frames=num_frames,
        times=tuple(index / fps for index in range(num_frames)),
        durations=(1.0 / fps,) * num_frames,
    )


def read_gopro_spike_clips(root: Path, split: str = "train") -> list[_Sequence]:
    """Describe the clips of a GoPro-spike data set.

    Layout: ``GOPRO_Large/{split}_blurred/<clip>/*.png`` (or ``{split}/<clip>/blur``),
    ``GOPRO_Large/{split}_GT/<clip>/*.png`` (or ``{split}/<clip>/sharp``) and
    ``GOPRO_Large_spike_seq/{split}/<clip>/spike/*.dat``, one ``.dat`` per blurry frame.
    """
    rgb_root = root / "GOPRO_Large"
    spike_root = root / "GOPRO_Large_spike_seq" / split
    if not spike_root.is_dir():
        raise InputNotFoundError(f"{spike_root} not found; pass the folder that contains GOPRO_Large_spike_seq")

    clips = []
    for spike_clip in sorted(path for path in spike_root.iterdir() if path.is_dir()):
        blurry_folder = rgb_root / f"{split}_blurred" / spike_clip.name
        sharp_folder = rgb_root / f"{split}_GT" / spike_clip.name
        if not blurry_folder.is_dir():
            blurry_folder = rgb_root / split / spike_clip.name / "blur"
            sharp_folder = rgb_root / split / spike_clip.name / "sharp"
        if not blurry_folder.is_dir() or not sharp_folder.is_dir():
            raise InputNotFoundError(f"blurry or sharp frames for clip {spike_clip.name} not found under {rgb_root}")

        blurry, sharp = _image_files(blurry_folder), _image_files(sharp_folder)
        spike_files = sorted((spike_clip / "spike").glob("*.dat"))
        count = min(len(blurry), len(sharp), len(spike_files))
        if count < len(blurry):
            logger.warning("clip %s: using %d of %d frames that have spikes and ground truth", spike_clip.name, count, len(blurry))
        clips.append(
            _Sequence(
                name=spike_clip.name,
                blurry=blurry[:count],
                sharp=sharp[:count],
                spikes=spike_clip,
                num_frames=count,
                times=tuple(float(i) for i in range(count)),
                durations=(1.0,) * count,
            )
        )
    return clips


class FileClipDataset:
    """Random crops of T consecutive frames from simulated or GoPro-spike clips on disk.

    ``dataset[i]`` picks a clip position, crop and flips from ``(seed, i)``. Frame-file inputs are
    read on demand.

    NOTE: a blurry video is decoded whole on first use and kept in memory, which suits the short
    clips of simulated data sets but not hours of footage; store long ones as frame folders.
    """

    def __init__(
        self,
        sequences: list[_Sequence],
        *,
        clip_length: int,
        crop_size: int,
        num_bins: int,
        flips: bool = True,
        seed: int = 0,
    ) -> None:
        self.sequences = [sequence for sequence in sequences if sequence.num_frames >= clip_length]
        if not self.sequences:
            raise InvalidInputError(f"no clip has {clip_length} frames or more; lower data.clip_length")
        self.clip_length = clip_length
        self.crop_size = crop_size
        self.num_bins = num_bins
        self.flips = flips
        self.seed = seed
        self._video_cache: dict[Path, np.ndarray] = {}
        self._sources: dict[Path, object] = {}
        self._starts = [
            (sequence_index, start)
            for sequence_index, sequence in enumerate(self.sequences)
            for start in range(sequence.num_frames - clip_length + 1)
        ]

    def __len__(self) -> int:
        return len(self._starts)

    def _blurry_frames(self, sequence: _Sequence, start: int) -> np.ndarray:
        if isinstance(sequence.blurry, list):
            return np.stack([_read_image(path) for path in sequence.blurry[start : start + self.clip_length]])

        if sequence.blurry not in self._video_cache:
            from spikedeblur.video import VideoReader

            with VideoReader(sequence.blurry) as reader:
                frames = [frame.image for frame in reader]
            scale = 65535.0 if frames[0].dtype == np.uint16 else 255.0
            self._video_cache[sequence.blurry] = np.stack(frames).astype(np.float32) / scale
        return self._video_cache[sequence.blurry][start : start + self.clip_length]

    def _spike_source(self, sequence: _Sequence):
        if sequence.spikes not in self._sources:
            from spikedeblur.spikes.source import open_spike_source

            self._sources[sequence.spikes] = open_spike_source(sequence.spikes)
        return self._sources[sequence.spikes]

    def __getitem__(self, index: int) -> Sample:
        rng = np.random.default_rng([self.seed, index, 3])
        sequence_index, start = self._starts[int(rng.integers(len(self._starts)))]
        sequence = self.sequences[sequence_index]

        blurry = self._blurry_frames(sequence, start)
        sharp = np.stack([_read_image(path) for path in sequence.sharp[start : start + self.clip_length]])
        height, width = blurry.shape[1:3]
        if sharp.shape[1:3] != (height, width):
            raise InvalidInputError(
                f"clip {sequence.name}: ground truth {sharp.shape[2]}x{sharp.shape[1]} and blurry frames "
                f"{width}x{height} differ in size"
            )
        crop = min(self.crop_size, height, width)
        top = int(rng.integers(0, height - crop + 1))
        left = int(rng.integers(0, width - crop + 1))

        source = self._spike_source(sequence)
        voxels = []
        for frame_index in range(start, start + self.clip_length):
            rates = source.voxels(
                frame_index, sequence.times[frame_index], sequence.durations[frame_index], bins=self.num_bins
            )
            voxels.append(_crop_mapped(rates, source.meta.spatial, (height, width), top, left, crop))

        sample = {
            "blurry": rearrange(blurry[:, top : top + crop, left : left + crop], "t h w c -> t c h w"),
            "voxels": np.stack(voxels),
            "sharp": rearrange(sharp[:, top : top + crop, left : left + crop], "t h w c -> t c h w"),
        }
        if self.flips:
            sample = _random_flips(sample, rng)
        return {key: np.ascontiguousarray(value, dtype=np.float32) for key, value in sample.items()}


def _crop_mapped(
    rates: np.ndarray, mapping: SpatialMapping, video_size: tuple[int, int], top: int, left: int, crop: int
) -> np.ndarray:
    """Map (K, h, w) spike-size rates onto the video grid and return the (K, crop, crop) window."""
    # NOTE: this maps the whole frame before cropping, which costs K x H x W floats per frame
    # (about 118 MB at 1280x720 with K=32); crop in spike pixels first if large frames get slow.
    full = map_to_video(rates, mapping, video_size)
    return full[:, top : top + crop, left : left + crop]


def _random_flips(sample: Sample, rng: np.random.Generator) -> Sample:
    """Flip every array of a sample horizontally and/or vertically, the same way."""
    if rng.random() < 0.5:
        sample = {key: value[..., ::-1] for key, value in sample.items()}
    if rng.random() < 0.5:
        sample = {key: value[..., ::-1, :] for key, value in sample.items()}
    return sample


def collate(samples: list[Sample]) -> dict[str, np.ndarray]:
    """Stack samples into a batch: each array gains a leading B axis."""
    return {key: np.stack([sample[key] for sample in samples]) for key in samples[0]}
