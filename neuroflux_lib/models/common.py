"""What every architecture shares: the built-model record, normalisations and argument checks."""

from __future__ import annotations

import typing
from dataclasses import dataclass

from torch import nn

from neuroflux_lib.config.schema import NormalizationSetting
from neuroflux_lib.data.normalization import InputNormalization

Normalization = tuple[tuple[float, ...], tuple[float, ...]]
IMAGENET_NORMALIZATION: Normalization = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
#: The original project normalised with 0.5/0.5 for both models, pretrained or not.
ORIGINAL_NORMALIZATION: Normalization = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
ORIGINAL_CLASS_NAMES: tuple[str, ...] = ("PTE", "LO", "EO", "IPTE", "IO")

WEIGHTS_POLICIES: tuple[str, ...] = ("imagenet", "random")
#: "checkpoint" is used by `load_original_checkpoint`: the weights are neither ImageNet nor random.
WEIGHTS_ORIGINS: tuple[str, ...] = ("imagenet", "random", "checkpoint")


NORMALIZATION_SETTINGS: tuple[str, ...] = typing.get_args(NormalizationSetting)


@dataclass(frozen=True)
class Weights:
    """Where a builder's initial weights came from: `origin` (WEIGHTS_ORIGINS), the weights' name (e.g.
    `ResNet50_Weights.IMAGENET1K_V2`) and a note when the request could not be met (offline)."""

    origin: str
    name: str | None = None
    note: str | None = None


def input_normalization(setting: str, weights_origin: str, channels: int) -> InputNormalization:
    """The normalisation a model trains with: `auto` is ImageNet's only with ImageNet weights, else
    per-image; `original` is the original project's 0.5/0.5 (its checkpoints expect it)."""
    if setting not in NORMALIZATION_SETTINGS:
        raise ValueError(f"normalization must be one of {NORMALIZATION_SETTINGS}, got {setting!r}")
    if setting == "auto":
        setting = "imagenet" if weights_origin == "imagenet" else "per_image"
    if setting == "per_image":
        return InputNormalization("per_image", channels)
    mean, std = IMAGENET_NORMALIZATION if setting == "imagenet" else ORIGINAL_NORMALIZATION
    if channels != len(mean):
        raise ValueError(
            f"{setting} normalization is for {len(mean)}-channel models, this one takes {channels}"
        )
    return InputNormalization.fixed(mean, std)


@dataclass(frozen=True)
class BuiltModel:
    """A model plus the facts about its weights that preprocessing and run metadata depend on."""

    model: nn.Module
    name: str
    weights_origin: str  # one of WEIGHTS_ORIGINS
    normalization: InputNormalization  # what the model's input must look like
    weights_name: str | None = None
    frozen: tuple[str, ...] = ()  # stages whose weights training leaves as they are
    weights_note: str | None = None  # why the weights are not what was asked for

    @property
    def pretrained(self) -> bool:
        """True when the weights came from ImageNet or a trained checkpoint rather than random init."""
        return self.weights_origin != "random"


def check_positive_int(key: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{key} must be a positive integer, got {value!r}")


def check_dropout(value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ValueError(f"dropout must be a number in [0, 1), got {value!r}")
