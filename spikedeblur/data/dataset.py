"""Write a simulated data set: blurry video, spike stream with sidecar, ground-truth frames, manifest.

Layout of a data set folder::

    DATASET/
      blurry.mp4          the blurry frames, one per exposure (lossless 4:4:4 H.264 by default)
      spikes.dat          the spike stream, every tick of every frame interval
      spikes.dat.json     its sidecar, so `spikedeblur run blurry.mp4 --spikes spikes.dat` needs no options
      sharp/000000.png    the ground truth of each blurry frame, at its exposure centre
      manifest.json       every simulation parameter, for training, evaluation and reproduction

The folder is assembled under a temporary name beside ``DATASET`` and renamed into place only
when every file is complete, so an error or Ctrl-C leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import shutil
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from spikedeblur.data.simulate import ExposureConfig, SimulatedFrame, SpikeSimulationConfig
from spikedeblur.errors import InvalidInputError, OutputExistsError

logger = logging.getLogger(__name__)

MANIFEST_FORMAT = "spikedeblur.simulated-dataset"
MANIFEST_VERSION = 1
BLURRY_NAME = "blurry.mp4"
SPIKES_NAME = "spikes.dat"
SHARP_FOLDER = "sharp"
MANIFEST_NAME = "manifest.json"
GREY_CONVERSION = "BT.601 luma of display-referred (gamma-encoded) RGB"


@dataclass(frozen=True)
class DatasetSummary:
    """Summary of a data set written by :func:`write_dataset`."""

    path: Path
    num_frames: int
    num_ticks: int
    size: tuple[int, int]  # (H, W) of the RGB frames
    spike_size: tuple[int, int]
    fps: Fraction


def dataset_encode_options(crf: int = 0):
    """Return the encoder settings of a data set's blurry video: libx264, 4:4:4 chroma, ``crf`` (0 = lossless).

    A data set is reference material, so by default the blurry frames are coded losslessly (CRF 0 on
    4:4:4 YUV, so only the RGB to YUV rounding remains). With 4:2:0 chroma at CRF 18 the blurry
    input of the demo's procedural clip scored 20.85 dB RGB PSNR instead of 21.67 dB, a loss that
    would be charged to the deblurring model. Some browsers cannot play 4:4:4 H.264; FFmpeg-based
    players (VLC, mpv, ffplay) can.
    """
    from spikedeblur.video import EncodeOptions

    return EncodeOptions(codec="libx264", crf=crf, pixel_format="yuv444p")


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)


def _blurry_source_info(path: Path, height: int, width: int, fps: Fraction, num_frames: int):
    """Describe the blurry video for the writer: its size, frame rate and an exact time base."""
    from spikedeblur.video import VideoInfo

    return VideoInfo(
        path=path,
        width=width,
        height=height,
        fps=fps,
        num_frames=num_frames,
        num_frames_exact=False,
        duration_s=float(num_frames / fps) if num_frames else 0.0,
        time_base=1 / fps,
        start_pts=0,
        codec="rawvideo",
        pix_fmt="rgb24",
        bit_depth=8,
    )


def check_dataset_output(output: Path, *, overwrite: bool) -> None:
    """Raise unless a data set may be written to ``output``; callers check before slow work starts."""
    output = Path(output)
    if output.exists() and not overwrite:
        raise OutputExistsError(f"output {output} already exists; pass --overwrite to replace it")
    if output.exists() and not output.is_dir():
        raise InvalidInputError(f"output {output} is a file; give a folder path for the data set")
    # --overwrite replaces the whole folder, so it only ever replaces an earlier data set, never a
    # folder of the user's own files given as -o by mistake.
    if output.is_dir() and any(output.iterdir()) and not (output / MANIFEST_NAME).is_file():
        raise OutputExistsError(
            f"output {output} is a folder that spikedeblur did not write (it has no {MANIFEST_NAME}), so "
            "--overwrite will not replace it; choose a new folder or empty this one yourself"
        )
    if not output.parent.is_dir():
        raise InvalidInputError(f"output folder {output.parent} does not exist; create it first")


@contextlib.contextmanager
def _staging_folder(output: Path, *, overwrite: bool):
    """Yield an empty folder beside ``output`` that replaces ``output`` when the block succeeds."""
    output = Path(output)
    check_dataset_output(output, overwrite=overwrite)

    # mkdir (unlike mkdtemp) applies the user's umask, so the data set gets ordinary permissions.
    staging = output.parent / f".{output.name}.{secrets.token_hex(4)}.part"
    staging.mkdir()
    try:
        yield staging
        if output.exists():
            shutil.rmtree(output)
        staging.rename(output)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def write_dataset(
    frames: Iterable[SimulatedFrame],
    output: Path,
    *,
    height: int,
    width: int,
    fps: Fraction,
    exposure: ExposureConfig,
    spikes: SpikeSimulationConfig,
    spike_size: tuple[int, int],
    source: dict[str, Any],
    expected_frames: int | None = None,
    encode_options=None,
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
) -> DatasetSummary:
    """Stream simulated frames into a data set folder (see the module docstring for the layout).

    Args:
        frames: simulated frames in order, as produced by :func:`~spikedeblur.data.simulate.simulate_frames`.
        output: the data set folder to create.
        height, width: RGB frame size.
        fps: frame rate of the blurry video; the spike clock runs at ``fps * ticks_per_frame``.
        exposure, spikes: the simulation settings, recorded in the manifest and the sidecar.
        spike_size: (h, w) of the spike frames.
        source: a description of the sharp input, recorded in the manifest.
        expected_frames: the number of frames, if known, for the writer's metadata.
        encode_options: :class:`~spikedeblur.video.EncodeOptions` for the blurry video; None uses
            :func:`dataset_encode_options` (lossless 4:4:4).
        overwrite: replace an existing ``output`` folder.
        progress: called with the number of frames written so far.
    """
    from spikedeblur.spikes import DatWriter, SpikeMeta, SpatialMapping
    from spikedeblur.video import VideoWriter

    fps = Fraction(fps)
    rate_hz = float(fps * exposure.ticks_per_frame)
    spike_height, spike_width = spike_size
    spatial = SpatialMapping(kind="scale_offset", scale=(width / spike_width, height / spike_height))

    with _staging_folder(output, overwrite=overwrite) as staging:
        (staging / SHARP_FOLDER).mkdir()
        info = _blurry_source_info(staging / BLURRY_NAME, height, width, fps, expected_frames or 0)
        count = 0
        frame_ticks = []
        with (
            VideoWriter(staging / BLURRY_NAME, source=info, options=encode_options or dataset_encode_options()) as video,
            DatWriter(staging / SPIKES_NAME, spike_height, spike_width) as dat,
        ):
            for frame in frames:
                video.write(frame.blurry, time=float(frame.index / fps))
                dat.write(frame.spikes)
                sharp_path = staging / SHARP_FOLDER / f"{frame.index:06d}.png"
                if not cv2.imwrite(str(sharp_path), cv2.cvtColor(_to_uint8(frame.sharp), cv2.COLOR_RGB2BGR)):
                    raise OSError(f"could not write ground-truth frame {sharp_path}")
                frame_ticks.append(exposure.frame_ticks(frame.index))
                count += 1
                if progress is not None:
                    progress(count)
            if count == 0:
                raise InvalidInputError("the input gave no complete blurry frame; give more sharp frames")

            if exposure.exposure == exposure.ticks_per_frame:
                timing: dict[str, Any] = {"spikes_per_frame": exposure.ticks_per_frame}
            else:
                timing = {"frame_ticks": tuple(frame_ticks)}
            dat.meta = SpikeMeta(
                rate_hz=rate_hz, spatial=spatial, threshold=spikes.threshold, gain=spikes.gain, **timing
            )

        manifest = {
            "format": MANIFEST_FORMAT,
            "version": MANIFEST_VERSION,
            "num_frames": count,
            "fps": float(fps),
            "fps_fraction": [fps.numerator, fps.denominator],
            "width": width,
            "height": height,
            "blurry": BLURRY_NAME,
            "sharp": SHARP_FOLDER,
            "spikes": SPIKES_NAME,
            "spike_width": spike_width,
            "spike_height": spike_height,
            "spike_rate_hz": rate_hz,
            "ticks_per_frame": exposure.ticks_per_frame,
            "exposure_ticks": exposure.exposure,
            "exposure_start_tick": exposure.exposure_start,
            "ground_truth": "sharp frame at the centre of each exposure window",
            "grey_conversion": GREY_CONVERSION,
            "exposure": asdict(exposure),
            "spikes_simulation": asdict(spikes),
            "source": source,
        }
        (staging / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")

    logger.info("wrote %d blurry frames and %d spike ticks to %s", count, count * exposure.ticks_per_frame, output)
    return DatasetSummary(
        path=Path(output),
        num_frames=count,
        num_ticks=count * exposure.ticks_per_frame,
        size=(height, width),
        spike_size=spike_size,
        fps=fps,
    )
