"""ResNet-50 transfer model: torchvision backbone, frozen prefix, the original's MLP head (`fc.0/1/4`).

Nothing here ever downloads. ImageNet weights are used only when torchvision's file is already in the
torch hub cache; otherwise the backbone stays randomly initialised, a warning says where to put the
file, and `BuiltModel.weights_origin` records what actually happened so runs are never mislabelled.
"""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import torch
from torch import nn
from torchvision.models import ResNet50_Weights
from torchvision.models.resnet import Bottleneck, ResNet

from neuroflux_lib.models.common import WEIGHTS_POLICIES, check_dropout, check_positive_int

logger = logging.getLogger(__name__)

#: Frozen stages in forward order; `freeze_until="layer2"` freezes conv1 (with bn1), layer1 and layer2.
RESNET_STAGES: tuple[str, ...] = ("conv1", "layer1", "layer2", "layer3", "layer4")
FREEZE_CHOICES: tuple[str, ...] = ("none", *RESNET_STAGES)

#: torchvision weights checked in the hub cache, in order of preference.
IMAGENET_WEIGHTS: tuple[ResNet50_Weights, ...] = (
    ResNet50_Weights.IMAGENET1K_V2,
    ResNet50_Weights.IMAGENET1K_V1,
)


class ResNet50Classifier(ResNet):
    """torchvision ResNet-50 with an MLP head and a frozen prefix of stages.

    Subclassing (instead of wrapping) keeps torchvision's state-dict keys with no prefix. `train()` is
    overridden because frozen BatchNorm layers would otherwise keep updating their running statistics,
    silently changing the "frozen" backbone.
    """

    def __init__(
        self, num_classes: int, *, hidden_size: int = 512, dropout: float = 0.6, freeze_until: str = "layer3"
    ) -> None:
        # Validate before the (slow) backbone initialisation.
        check_positive_int("num_classes", num_classes)
        check_positive_int("hidden_size", hidden_size)
        check_dropout(dropout)
        if freeze_until not in FREEZE_CHOICES:
            raise ValueError(f"freeze_until must be one of {FREEZE_CHOICES}, got {freeze_until!r}")
        super().__init__(Bottleneck, [3, 4, 6, 3])
        self.fc = nn.Sequential(
            nn.Linear(2048, hidden_size),  # fc.0
            nn.BatchNorm1d(hidden_size),  # fc.1
            nn.ReLU(),  # fc.2
            nn.Dropout(dropout),  # fc.3
            nn.Linear(hidden_size, num_classes),  # fc.4
        )
        self.freeze_until = freeze_until
        for module in self.frozen_modules():
            module.requires_grad_(False)
        self.train()

    @property
    def frozen_stages(self) -> tuple[str, ...]:
        if self.freeze_until == "none":
            return ()
        return RESNET_STAGES[: RESNET_STAGES.index(self.freeze_until) + 1]

    def frozen_modules(self) -> list[nn.Module]:
        modules: list[nn.Module] = []
        for stage in self.frozen_stages:
            modules.extend([self.conv1, self.bn1] if stage == "conv1" else [getattr(self, stage)])
        return modules

    def train(self, mode: bool = True) -> ResNet50Classifier:
        super().train(mode)
        for module in self.frozen_modules():
            module.eval()
        return self


def imagenet_weight_paths() -> list[Path]:
    """Where torchvision's hub cache keeps the ResNet-50 ImageNet files (V2 first), honouring $TORCH_HOME."""
    checkpoints = Path(torch.hub.get_dir()) / "checkpoints"
    return [checkpoints / Path(weights.url).name for weights in IMAGENET_WEIGHTS]


def _load_imagenet_backbone(model: ResNet50Classifier) -> Path | None:
    """Load cached ImageNet weights into the backbone; None when no file is cached. Never downloads."""
    for path in imagenet_weight_paths():
        if not path.is_file():
            continue
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError) as error:
            raise RuntimeError(
                f"cached ImageNet weights {path} could not be read ({error}); delete it"
            ) from error
        # The ImageNet 1000-class `fc` is replaced by our head; everything else must match exactly.
        backbone = {key: value for key, value in state.items() if not key.startswith("fc.")}
        missing, unexpected = model.load_state_dict(backbone, strict=False)
        missing = [key for key in missing if not key.startswith("fc.")]
        if missing or unexpected:
            raise RuntimeError(
                f"cached ImageNet weights {path} do not match ResNet-50: missing {missing[:5]}, "
                f"unexpected {unexpected[:5]}"
            )
        return path
    return None


def build_resnet50(
    num_classes: int,
    *,
    hidden_size: int = 512,
    dropout: float = 0.6,
    weights: str = "imagenet",
    freeze_until: str = "layer3",
) -> tuple[ResNet50Classifier, str]:
    """Build ResNet-50; returns the model and where its backbone weights really came from."""
    if weights not in WEIGHTS_POLICIES:
        raise ValueError(f"weights must be one of {WEIGHTS_POLICIES}, got {weights!r}")
    model = ResNet50Classifier(
        num_classes, hidden_size=hidden_size, dropout=dropout, freeze_until=freeze_until
    )
    if weights == "random":
        return model, "random"
    loaded = _load_imagenet_backbone(model)
    if loaded is not None:
        logger.info("resnet50: loaded ImageNet backbone weights from %s", loaded)
        return model, "imagenet"
    where = "; or ".join(
        f"{path.name} (from {w.url}) at {path}"
        for w, path in zip(IMAGENET_WEIGHTS, imagenet_weight_paths(), strict=True)
    )
    frozen_note = (
        f" The frozen stages ({', '.join(model.frozen_stages)}) will stay at their random initial values."
        if model.frozen_stages
        else ""
    )
    logger.warning(
        "resnet50: ImageNet weights requested but not in the torch hub cache, and nothing is downloaded: "
        "the backbone is RANDOMLY INITIALISED.%s To use ImageNet weights, place %s (the hub cache follows "
        "$TORCH_HOME).",
        frozen_note,
        where,
    )
    return model, "random"
