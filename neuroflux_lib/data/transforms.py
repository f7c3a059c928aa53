"""Train / eval transforms (torchvision v2) shared by training, evaluation and prediction.

Images enter as 1xHxW uint8 tensors (grayscale). The same `resize_uint8` fills the decoded-image cache
and starts the eval transform, so a predicted image is preprocessed exactly like a training image.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

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


def _to_model_input(normalization: Sequence[Sequence[float]]) -> list[Transform]:
    mean, std = normalization
    return [
        v2.ToDtype(torch.float32, scale=True),
        v2.Lambda(lambda x: x.expand(3, -1, -1) if x.shape[-3] == 1 else x),
        v2.Normalize(mean=list(mean), std=list(std)),
    ]


def eval_transform(image_size: int, normalization: Sequence[Sequence[float]]) -> Transform:
    return v2.Compose([v2.Lambda(lambda x: resize_uint8(x, image_size)), *_to_model_input(normalization)])


def train_transform(
    image_size: int,
    normalization: Sequence[Sequence[float]],
    augment: bool = True,
    degrees: float = 10.0,
    scale: tuple[float, float] = (0.95, 1.05),
) -> Transform:
    """Light online augmentation (flip + small affine) on top of the offline balancing copies."""
    steps: list[Transform] = [v2.Lambda(lambda x: resize_uint8(x, image_size))]
    if augment:
        steps += [v2.RandomHorizontalFlip(0.5), v2.RandomAffine(degrees=degrees, scale=scale)]
    return v2.Compose([*steps, *_to_model_input(normalization)])
