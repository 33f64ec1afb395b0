"""PSNR and SSIM following VRT's evaluation protocol, in numpy and OpenCV (no scikit-image at run time).

Protocol (VRT's test script ``main_test_vrt.py`` scores 8-bit outputs on RGB and on Y, border 0):

- Images are compared on a 0-255 scale in float64. Float inputs in [0, 1] are clipped and rounded to 8-bit
  levels first, as VRT quantises its outputs before scoring.
- PSNR = 10 log10(255^2 / MSE), over all pixels and channels; identical images give ``inf``.
- SSIM uses an 11x11 Gaussian window with sigma 1.5, C1 = (0.01 * 255)^2, C2 = (0.03 * 255)^2, keeps only
  the positions where the window fits inside the image, and averages over them. RGB SSIM is the mean of
  the three per-channel SSIMs.
- The Y variants first convert RGB to BT.601 luma with studio swing:
  Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255 for R, G, B on 0-255, so Y lies in [16, 235].
- ``crop_border`` removes that many pixels from each side before scoring (0 by default, as VRT reports).
"""

from __future__ import annotations

import functools
import math

import numpy as np

from spikedeblur.errors import InvalidInputError

DATA_RANGE = 255.0
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
_SSIM_C1 = (0.01 * DATA_RANGE) ** 2
_SSIM_C2 = (0.03 * DATA_RANGE) ** 2
_BT601_Y_WEIGHTS = np.array([65.481, 128.553, 24.966]) / 255.0
_BT601_Y_OFFSET = 16.0


def to_float255(image: np.ndarray) -> np.ndarray:
    """Convert an (H, W, C) or (H, W) image to float64 on the 0-255 scale.

    uint8 is taken as is. uint16 (deep video, full 0-65535 range) is divided by 257, so 65535 maps to 255.
    Floats are read as [0, 1], clipped and rounded to 8-bit levels, as VRT does with model outputs.
    """
    image = np.asarray(image)
    if image.dtype == np.uint8:
        return image.astype(np.float64)
    if image.dtype == np.uint16:
        return image.astype(np.float64) / 257.0
    if np.issubdtype(image.dtype, np.floating):
        return np.round(np.clip(image.astype(np.float64), 0.0, 1.0) * DATA_RANGE)
    raise InvalidInputError(f"image dtype {image.dtype} is not supported; use uint8, uint16 or float in [0, 1]")


def rgb_to_y(image: np.ndarray) -> np.ndarray:
    """Convert (H, W, 3) RGB on the 0-255 scale to (H, W) BT.601 luma in [16, 235], as float64."""
    image = np.asarray(image, dtype=np.float64)
    red_weight, green_weight, blue_weight = _BT601_Y_WEIGHTS

    # Three scaled planes are several times faster than a matmul with a length-3 vector.
    luma = image[..., 0] * red_weight
    luma += image[..., 1] * green_weight
    luma += image[..., 2] * blue_weight
    luma += _BT601_Y_OFFSET
    return luma


def prepare_pair(a: np.ndarray, b: np.ndarray, *, crop_border: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Validate two images and return them cropped, as (H, W, C) float64 on the 0-255 scale."""
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape != b.shape:
        raise InvalidInputError(f"images differ in shape: {a.shape} and {b.shape}; compare frames of equal size")
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (1, 3)):
        raise InvalidInputError(f"image shape {a.shape} is not (H, W), (H, W, 1) or (H, W, 3)")
    if crop_border < 0:
        raise InvalidInputError(f"crop border {crop_border} is negative; give 0 or more pixels")

    height, width = a.shape[:2]
    if 2 * crop_border >= min(height, width):
        raise InvalidInputError(f"crop border {crop_border} leaves nothing of a {width}x{height} image; use a smaller one")

    if crop_border:
        a = a[crop_border:-crop_border, crop_border:-crop_border]
        b = b[crop_border:-crop_border, crop_border:-crop_border]
    a = to_float255(a)
    b = to_float255(b)
    if a.ndim == 2:
        a = a[..., None]
        b = b[..., None]
    return a, b


def luma_pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Convert a prepared (H, W, 3) pair to (H, W, 1) BT.601 luma."""
    if a.shape[2] != 3:
        raise InvalidInputError("the Y channel needs RGB images with 3 channels")
    return rgb_to_y(a)[..., None], rgb_to_y(b)[..., None]


def _prepare_pair(a: np.ndarray, b: np.ndarray, *, crop_border: int, y_channel: bool) -> tuple[np.ndarray, np.ndarray]:
    a, b = prepare_pair(a, b, crop_border=crop_border)
    return luma_pair(a, b) if y_channel else (a, b)


def psnr(a: np.ndarray, b: np.ndarray, *, crop_border: int = 0, y_channel: bool = False) -> float:
    """Return the PSNR in dB between two images, ``inf`` when they are identical.

    Args:
        a, b: Images of equal shape, (H, W, 3) RGB or (H, W) grey; uint8, uint16 or float in [0, 1].
        crop_border: Pixels removed from each side before scoring.
        y_channel: Score BT.601 luma instead of RGB.
    """
    return psnr_prepared(*_prepare_pair(a, b, crop_border=crop_border, y_channel=y_channel))


def psnr_prepared(a: np.ndarray, b: np.ndarray) -> float:
    """Return the PSNR of a pair already converted by :func:`prepare_pair` (and :func:`luma_pair`)."""
    mse = float(np.mean(np.square(a - b)))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(DATA_RANGE**2 / mse)


def _gaussian_filter_valid(plane: np.ndarray) -> np.ndarray:
    """Blur an (H, W) float64 plane with the SSIM window, keeping only positions where the window fits."""
    import cv2

    # OpenCV's separable filter is about 60x faster than torch's float64 conv2d for 720p planes (measured on
    # a 2-core x86_64 VM, torch 2.13 CPU).
    kernel = _gaussian_kernel_1d()
    blurred = cv2.sepFilter2D(plane, cv2.CV_64F, kernel, kernel, borderType=cv2.BORDER_REFLECT)
    radius = SSIM_WINDOW // 2
    return blurred[radius:-radius, radius:-radius]


@functools.cache
def _gaussian_kernel_1d() -> np.ndarray:
    radius = SSIM_WINDOW // 2
    positions = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-(positions**2) / (2 * SSIM_SIGMA**2))
    return kernel / kernel.sum()


def _ssim_plane(x: np.ndarray, y: np.ndarray) -> float:
    mu_x = _gaussian_filter_valid(x)
    mu_y = _gaussian_filter_valid(y)
    sigma_x = _gaussian_filter_valid(x * x) - mu_x**2
    sigma_y = _gaussian_filter_valid(y * y) - mu_y**2
    sigma_xy = _gaussian_filter_valid(x * y) - mu_x * mu_y

    numerator = (2 * mu_x * mu_y + _SSIM_C1) * (2 * sigma_xy + _SSIM_C2)
    denominator = (mu_x**2 + mu_y**2 + _SSIM_C1) * (sigma_x + sigma_y + _SSIM_C2)
    return float(np.mean(numerator / denominator))


def ssim(a: np.ndarray, b: np.ndarray, *, crop_border: int = 0, y_channel: bool = False) -> float:
    """Return the SSIM between two images: the mean over channels of each channel's mean SSIM map.

    Args:
        a, b: Images of equal shape, (H, W, 3) RGB or (H, W) grey; uint8, uint16 or float in [0, 1].
            Both sides must be at least 11 pixels after ``crop_border``.
        crop_border: Pixels removed from each side before scoring.
        y_channel: Score BT.601 luma instead of RGB.
    """
    return ssim_prepared(*_prepare_pair(a, b, crop_border=crop_border, y_channel=y_channel))


def ssim_prepared(a: np.ndarray, b: np.ndarray) -> float:
    """Return the SSIM of a pair already converted by :func:`prepare_pair` (and :func:`luma_pair`)."""
    height, width = a.shape[:2]
    if min(height, width) < SSIM_WINDOW:
        raise InvalidInputError(
            f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels, got {width}x{height}"
        )

    per_channel = [
        _ssim_plane(np.ascontiguousarray(a[..., channel]), np.ascontiguousarray(b[..., channel]))
        for channel in range(a.shape[2])
    ]
    return float(np.mean(per_channel))
