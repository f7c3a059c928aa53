"""ResNet-50 transfer model: torchvision backbone, frozen prefix, the original's MLP head (`fc.0/1/4`).

ImageNet weights come the way torchvision gets them: from the torch hub cache, else downloaded once into
it (with progress and the file's hash checked). Offline (no network, or $NEUROFLUX_OFFLINE=1) a warning
says so and the backbone is randomly initialised with every layer trained, never a frozen random
prefix; `Weights` records what actually happened so runs are never mislabelled.
"""

from __future__ import annotations

import logging
import os
import pickle
from pathlib import Path

import torch
from torch import nn
from torchvision.models import ResNet50_Weights
from torchvision.models.resnet import Bottleneck, ResNet

from neuroflux_lib.models.common import WEIGHTS_POLICIES, Weights, check_dropout, check_positive_int

logger = logging.getLogger(__name__)

#: Frozen stages in forward order; `freeze_until="layer2"` freezes conv1 (with bn1), layer1 and layer2.
RESNET_STAGES: tuple[str, ...] = ("conv1", "layer1", "layer2", "layer3", "layer4")
FREEZE_CHOICES: tuple[str, ...] = ("none", *RESNET_STAGES)

#: torchvision weights checked in the hub cache, in order of preference; the first is downloaded.
IMAGENET_WEIGHTS: tuple[ResNet50_Weights, ...] = (
    ResNet50_Weights.IMAGENET1K_V2,
    ResNet50_Weights.IMAGENET1K_V1,
)
#: (name, url) of each; tests point the url at a local server.
IMAGENET_SOURCES: tuple[tuple[str, str], ...] = tuple((str(w), w.url) for w in IMAGENET_WEIGHTS)
OFFLINE_ENV = "NEUROFLUX_OFFLINE"


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
        self.set_freeze(freeze_until)

    def set_freeze(self, freeze_until: str) -> None:
        """Freeze the stages up to `freeze_until` ("none": train everything)."""
        if freeze_until not in FREEZE_CHOICES:
            raise ValueError(f"freeze_until must be one of {FREEZE_CHOICES}, got {freeze_until!r}")
        self.freeze_until = freeze_until
        self.requires_grad_(True)
        for module in self.frozen_modules():
            module.requires_grad_(False)
        self.train(self.training)

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

    def frozen_split(self) -> tuple[nn.Module, nn.Module] | None:
        """(frozen prefix, the rest) sharing this model's modules, or None when nothing is frozen.

        `rest(prefix(x))` is `self(x)`: the feature cache runs the prefix once per image and trains
        only the rest, whose parameters are this model's.
        """
        stages = self.frozen_stages
        if not stages:
            return None
        prefix = nn.Sequential(
            self.conv1, self.bn1, self.relu, self.maxpool, *(getattr(self, s) for s in stages[1:])
        )
        later = (getattr(self, s) for s in RESNET_STAGES[len(stages) :])
        rest = nn.Sequential(*later, self.avgpool, nn.Flatten(1), self.fc)
        return prefix.eval(), rest

    def train(self, mode: bool = True) -> ResNet50Classifier:
        super().train(mode)
        for module in self.frozen_modules():
            module.eval()
        return self


def imagenet_weight_paths() -> list[Path]:
    """Where torchvision's hub cache keeps the ResNet-50 ImageNet files (V2 first), honouring $TORCH_HOME."""
    checkpoints = Path(torch.hub.get_dir()) / "checkpoints"
    return [checkpoints / Path(url).name for _, url in IMAGENET_SOURCES]


def offline() -> bool:
    """True when $NEUROFLUX_OFFLINE asks never to download (air-gapped machines, tests)."""
    return os.environ.get(OFFLINE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def _read_cached(path: Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as error:
        raise RuntimeError(
            f"cached ImageNet weights {path} could not be read ({error}); delete it"
        ) from error


def imagenet_state() -> tuple[dict | None, str]:
    """(state dict, weights name), or (None, why not): the hub cache first, else torchvision's download
    (`torch.hub.load_state_dict_from_url`, with progress and hash check, into the hub cache)."""
    for (name, _), path in zip(IMAGENET_SOURCES, imagenet_weight_paths(), strict=True):
        if path.is_file():
            logger.info("resnet50: ImageNet weights %s from the hub cache %s", name, path)
            return _read_cached(path), name
    name, url = IMAGENET_SOURCES[0]
    if offline():
        return None, f"${OFFLINE_ENV} is set and {Path(url).name} is not in the hub cache"
    try:
        state = torch.hub.load_state_dict_from_url(
            url, map_location="cpu", progress=True, check_hash=True, weights_only=True
        )
    except (OSError, RuntimeError, pickle.UnpicklingError, EOFError) as error:  # URLError is an OSError
        return None, f"downloading {url} failed ({error})"
    return state, name


def _load_backbone(model: ResNet50Classifier, state: dict, name: str) -> None:
    # The ImageNet 1000-class `fc` is replaced by our head; everything else must match exactly.
    backbone = {key: value for key, value in state.items() if not key.startswith("fc.")}
    missing, unexpected = model.load_state_dict(backbone, strict=False)
    missing = [key for key in missing if not key.startswith("fc.")]
    if missing or unexpected:
        raise RuntimeError(
            f"ImageNet weights {name} do not match ResNet-50: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}"
        )


def build_resnet50(
    num_classes: int,
    *,
    hidden_size: int = 512,
    dropout: float = 0.6,
    weights: str = "imagenet",
    freeze_until: str = "layer3",
) -> tuple[ResNet50Classifier, Weights]:
    """Build ResNet-50 and say where its backbone weights really came from.

    Without ImageNet weights (unavailable, or `weights="random"`) a frozen prefix would stay random
    forever, so then every stage is trained (`freeze_until` is ignored and the returned note says so).
    """
    if weights not in WEIGHTS_POLICIES:
        raise ValueError(f"weights must be one of {WEIGHTS_POLICIES}, got {weights!r}")
    model = ResNet50Classifier(
        num_classes, hidden_size=hidden_size, dropout=dropout, freeze_until=freeze_until
    )
    if weights == "imagenet":
        state, name_or_reason = imagenet_state()
        if state is not None:
            _load_backbone(model, state, name_or_reason)
            return model, Weights("imagenet", name_or_reason)
        note = f"ImageNet weights unavailable: {name_or_reason}; the backbone is randomly initialised"
    else:
        note = None
    if model.frozen_stages:  # a frozen random stage never learns anything
        unfrozen = f"every layer is trained (freeze_until {freeze_until!r} ignored)"
        note = f"{note} and {unfrozen}" if note else f"random weights: {unfrozen}"
        model.set_freeze("none")
    if weights == "imagenet":
        logger.warning(
            "resnet50: %s. To use ImageNet weights, run once with internet access (they are cached in %s), "
            "or place %s there.",
            note,
            Path(torch.hub.get_dir()) / "checkpoints",
            " or ".join(path.name for path in imagenet_weight_paths()),
        )
    return model, Weights("random", note=note)
