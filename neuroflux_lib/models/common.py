"""What every architecture shares: the built-model record, normalisations and argument checks."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

Normalization = tuple[tuple[float, ...], tuple[float, ...]]
IMAGENET_NORMALIZATION: Normalization = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
#: The original project normalised with 0.5/0.5 for both models, pretrained or not.
ORIGINAL_NORMALIZATION: Normalization = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
ORIGINAL_CLASS_NAMES: tuple[str, ...] = ("PTE", "LO", "EO", "IPTE", "IO")

WEIGHTS_POLICIES: tuple[str, ...] = ("imagenet", "random")
#: "checkpoint" is used by `load_original_checkpoint`: the weights are neither ImageNet nor random.
WEIGHTS_ORIGINS: tuple[str, ...] = ("imagenet", "random", "checkpoint")


@dataclass(frozen=True)
class BuiltModel:
    """A model plus the facts about its weights that preprocessing and run metadata depend on."""

    model: nn.Module
    name: str
    weights_origin: str  # one of WEIGHTS_ORIGINS
    normalization: Normalization  # (mean, std) the model's weights expect

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
