"""Intensity normalisation of model inputs, applied to whole batches on the model's device.

MRI intensities have no absolute scale: gain, contrast and coil bias differ by scanner, site and
protocol, so a fixed mean/std (the original's 0.5/0.5, or ImageNet's) leaves every image at its own
offset and scale. `per_image` standardises each image on its foreground (the head, found as the pixels
above `FOREGROUND_FRACTION` of the image's 99th percentile), so the background does not dilute the
statistics. Fixed mean/std remains for ImageNet weights and for imported original checkpoints, whose
weights expect it.

The recipe is stored in `model.json` (`InputNormalization.to_dict`) and rebuilt by the predictor, so a
new process normalises exactly as training did.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

FOREGROUND_FRACTION = 0.1
#: Below this share of foreground pixels (blank or near-blank image) the whole image is used.
MIN_FOREGROUND_SHARE = 0.01
MIN_STD = 1e-3


def to_unit(batch: torch.Tensor) -> torch.Tensor:
    """uint8 -> float32 in [0, 1]; floats are taken as already scaled."""
    return batch.float().div_(255) if batch.dtype == torch.uint8 else batch.float()


def standardize_foreground(batch: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) in [0, 1] -> each image minus its foreground mean, over its foreground std."""
    flat = batch.float().flatten(1)
    k = max(1, int(round(0.99 * flat.shape[1])))
    high = flat.kthvalue(k, dim=1, keepdim=True).values
    mask = flat > FOREGROUND_FRACTION * high
    count = mask.sum(dim=1, keepdim=True)
    too_small = count < MIN_FOREGROUND_SHARE * flat.shape[1]
    mask = mask | too_small
    count = mask.sum(dim=1, keepdim=True).clamp_min(1)
    weights = mask.to(flat.dtype)
    mean = (flat * weights).sum(dim=1, keepdim=True) / count
    var = (((flat - mean) * weights) ** 2).sum(dim=1, keepdim=True) / count
    return ((flat - mean) / var.sqrt().clamp_min(MIN_STD)).view_as(batch)


@dataclass(frozen=True)
class InputNormalization:
    """How a batch of 1-channel [0, 1] images becomes model input: the method, then the channel count
    the model takes (grayscale is repeated when the model was built for RGB)."""

    method: Literal["per_image", "fixed"]
    channels: int = 3
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if self.method not in ("per_image", "fixed"):
            raise ValueError(f"normalization method must be per_image or fixed, got {self.method!r}")
        if self.method == "fixed" and not (len(self.mean) == len(self.std) == self.channels):
            raise ValueError(f"fixed normalization needs {self.channels} means and stds")

    @classmethod
    def fixed(cls, mean: Sequence[float], std: Sequence[float]) -> InputNormalization:
        return cls("fixed", len(mean), tuple(float(m) for m in mean), tuple(float(s) for s in std))

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> InputNormalization:
        """Also reads the `{"mean": [...], "std": [...]}` of artifacts written before per-image existed."""
        if values.get("method", "fixed") == "fixed":
            return cls.fixed(values["mean"], values["std"])
        return cls("per_image", int(values.get("channels", 1)))

    def to_dict(self) -> dict[str, Any]:
        values: dict[str, Any] = {"method": self.method, "channels": self.channels}
        if self.method == "fixed":
            values.update(mean=list(self.mean), std=list(self.std))
        return values

    def describe(self) -> str:
        if self.method == "per_image":
            return f"per-image foreground standardisation, {self.channels} channel(s)"
        return f"fixed mean {list(self.mean)} std {list(self.std)}"

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        """(N, 1, H, W), uint8 or floats in [0, 1] -> (N, channels, H, W) normalised."""
        if batch.ndim != 4 or batch.shape[1] != 1:
            raise ValueError(f"expected a (N, 1, H, W) batch, got {tuple(batch.shape)}")
        batch = to_unit(batch)
        if self.method == "per_image":
            batch = standardize_foreground(batch)
        if self.channels != 1:
            batch = batch.expand(-1, self.channels, -1, -1)
        if self.method == "fixed":
            mean = torch.tensor(self.mean, device=batch.device).view(1, -1, 1, 1)
            std = torch.tensor(self.std, device=batch.device).view(1, -1, 1, 1)
            batch = (batch - mean) / std
        return batch


@dataclass(frozen=True)
class ModelInput:
    """Batch -> model input on the batch's device: scale to [0, 1], augment (training only), normalise."""

    normalization: InputNormalization
    augmentation: nn.Module | None = None

    def train(self, batch: torch.Tensor) -> torch.Tensor:
        batch = to_unit(batch)
        if self.augmentation is not None:
            batch = self.augmentation(batch)
        return self.normalization(batch)

    def eval(self, batch: torch.Tensor) -> torch.Tensor:
        return self.normalization(batch)
