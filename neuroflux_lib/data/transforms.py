"""The per-image transform (torchvision v2) shared by training, evaluation and prediction.

Images enter as 1xHxW uint8 tensors (grayscale). The same `resize_uint8` fills the decoded-image cache
and starts `image_transform`, so a predicted image is preprocessed exactly like a training image.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torchvision.transforms import v2

Transform = Callable[[torch.Tensor], torch.Tensor]


def resize_uint8(image: np.ndarray | torch.Tensor, image_size: int) -> torch.Tensor:
    """HxW (or 1xHxW) uint8 -> 1xSxS uint8, antialiased; the one resize used everywhere."""
    tensor = torch.as_tensor(image)
    if tensor.ndim == 2:
        tensor = tensor.unsqueeze(0)
    if tensor.dtype != torch.uint8 or tensor.ndim != 3 or tensor.shape[0] != 1:
        raise ValueError(f"expected a grayscale uint8 image, got {tuple(tensor.shape)} {tensor.dtype}")
    if tuple(tensor.shape[-2:]) == (image_size, image_size):
        return tensor
    return v2.functional.resize(tensor, [image_size, image_size], antialias=True)


def image_transform(image_size: int) -> Transform:
    """1xHxW uint8 -> 1xSxS uint8: what datasets yield (a quarter of float32's bytes to move to a GPU).
    Scaling, augmentation and normalisation run afterwards on whole batches on the model's device
    (`data.normalization.ModelInput`)."""
    return lambda image: resize_uint8(image, image_size)
