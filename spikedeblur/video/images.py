"""Image files as video frames: listing and reading folders of images, single images, PNG writing."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import cv2
import numpy as np
from einops import repeat

from spikedeblur.errors import InvalidInputError

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"})

_DIGIT_RUN = re.compile(r"(\d+)")


def natural_sort_key(path: Path) -> tuple:
    """Sort key that orders ``frame2.png`` before ``frame10.png``."""
    parts = _DIGIT_RUN.split(path.name.lower())
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in parts)


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def list_image_files(folder: Path) -> list[Path]:
    """Return the image files directly inside ``folder`` in natural order; raise if there are none."""
    files = [entry for entry in folder.iterdir() if entry.is_file() and is_image_file(entry)]
    if not files:
        suffixes = ", ".join(sorted(IMAGE_SUFFIXES))
        raise InvalidInputError(f"folder {folder} contains no image files ({suffixes}); give a video or an image folder")
    return sorted(files, key=natural_sort_key)


def read_image_rgb(path: Path) -> np.ndarray:
    """Read an image file as RGB.

    Returns ``(H, W, 3)`` uint8 for 8-bit files and uint16 (full 0..65535 scale) for 16-bit files.
    Grayscale images are repeated to three channels and an alpha channel is dropped.
    """
    return read_image_with_alpha_flag(path)[0]


def read_image_with_alpha_flag(path: Path) -> tuple[np.ndarray, bool]:
    """Read an image file as :func:`read_image_rgb` does; also return whether alpha was dropped."""
    # imdecode on the raw bytes also works for paths that OpenCV's imread cannot open on every platform.
    raw = np.fromfile(path, dtype=np.uint8)
    image = cv2.imdecode(raw, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise InvalidInputError(f"cannot decode image {path}; check that it is a valid PNG, JPEG, TIFF or BMP file")
    if image.dtype not in (np.uint8, np.uint16):
        raise InvalidInputError(f"image {path} has {image.dtype} samples; only 8-bit and 16-bit images are supported")

    if image.ndim == 2:
        return repeat(image, "h w -> h w c", c=3).copy(), False
    channels = image.shape[2]
    if channels == 1:
        return repeat(image[:, :, 0], "h w -> h w c", c=3).copy(), False
    if channels == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB), True
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB), False


def write_png_rgb(path: Path, image: np.ndarray) -> None:
    """Write ``(H, W, 3)`` uint8 or uint16 RGB as a PNG file (8-bit or 16-bit)."""
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise InvalidInputError(f"PNG encoding failed for frame {path.name} ({image.shape}, {image.dtype})")
    encoded.tofile(path)
