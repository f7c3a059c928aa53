"""The original project's preprocessing options, with honest dtypes: uint8 in, uint8 out."""

from __future__ import annotations

import cv2
import numpy as np


def _check(image: np.ndarray) -> np.ndarray:
    if image.dtype != np.uint8 or image.ndim != 2:
        raise ValueError(f"expected a 2-D uint8 grayscale image, got {image.dtype} {image.shape}")
    return image


def minmax_normalize(image: np.ndarray) -> np.ndarray:
    """Stretch to the full 0..255 range; a constant image stays as it is."""
    image = _check(image)
    lo, hi = int(image.min()), int(image.max())
    if hi == lo:
        return image.copy()
    scaled = (image.astype(np.float32) - lo) * (255.0 / (hi - lo))
    return np.rint(scaled).astype(np.uint8)


def clahe(image: np.ndarray, clip_limit: float = 2.0, tile_grid_size: tuple[int, int] = (8, 8)) -> np.ndarray:
    return cv2.createCLAHE(clipLimit=clip_limit, tileGridSize=tile_grid_size).apply(_check(image))


def denoise_nlm(image: np.ndarray, strength: float = 10.0) -> np.ndarray:
    """Non-local means (OpenCV defaults: 7x7 template, 21x21 search window)."""
    return cv2.fastNlMeansDenoising(_check(image), None, h=strength)


def equalize_histogram(image: np.ndarray) -> np.ndarray:
    return cv2.equalizeHist(_check(image))


PREPROCESSORS = {
    "minmax": minmax_normalize,
    "clahe": clahe,
    "denoise": denoise_nlm,
    "equalize": equalize_histogram,
}
