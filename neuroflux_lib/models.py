"""Model builders for the MRI classifier: a ResNet-50 transfer model and the original small CNN.

Design choices worth knowing:

* Nothing here ever downloads. ImageNet weights are used only when torchvision's file is already in the
  torch hub cache; otherwise the backbone stays randomly initialised, a warning says where to put the
  file, and `BuiltModel.weights_origin` records what actually happened so runs are never mislabelled.
* State-dict keys are exactly the original project's (torchvision names for ResNet-50, `conv1`..`fc2`
  for the CNN) so its checkpoints load with `strict=True`.
* Checkpoints are read with `weights_only=True`: a checkpoint file is untrusted input, and unpickling
  arbitrary objects would run arbitrary code.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchvision.models import ResNet50_Weights
from torchvision.models.resnet import Bottleneck, ResNet

logger = logging.getLogger(__name__)

MODEL_NAMES: tuple[str, ...] = ("resnet50", "neuroflux_cnn")

#: Hyperparameter keys each builder honours; any other key (lr, batch_size, ...) is a training setting
#: shared in the same config mapping and is ignored by `build_model`.
MODEL_HYPERPARAMS: Mapping[str, frozenset[str]] = {
    "resnet50": frozenset({"hidden_size", "dropout", "weights", "freeze_until"}),
    "neuroflux_cnn": frozenset({"conv_channels", "dropout"}),
}

WEIGHTS_POLICIES: tuple[str, ...] = ("imagenet", "random")
#: "checkpoint" is used by `load_original_checkpoint`: the weights are neither ImageNet nor random.
WEIGHTS_ORIGINS: tuple[str, ...] = ("imagenet", "random", "checkpoint")

#: Frozen stages in forward order; `freeze_until="layer2"` freezes conv1 (with bn1), layer1 and layer2.
RESNET_STAGES: tuple[str, ...] = ("conv1", "layer1", "layer2", "layer3", "layer4")
FREEZE_CHOICES: tuple[str, ...] = ("none", *RESNET_STAGES)

#: torchvision weights checked in the hub cache, in order of preference.
IMAGENET_WEIGHTS: tuple[ResNet50_Weights, ...] = (
    ResNet50_Weights.IMAGENET1K_V2,
    ResNet50_Weights.IMAGENET1K_V1,
)

Normalization = tuple[tuple[float, ...], tuple[float, ...]]
IMAGENET_NORMALIZATION: Normalization = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
#: The original project normalised with 0.5/0.5 for both models, pretrained or not.
ORIGINAL_NORMALIZATION: Normalization = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
ORIGINAL_CLASS_NAMES: tuple[str, ...] = ("PTE", "LO", "EO", "IPTE", "IO")


class UnsafeCheckpointError(ValueError):
    """A checkpoint file is not a plain tensor state dict (e.g. a pickled nn.Module) and was refused."""


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


# --------------------------------------------------------------------------------------------- CNN


class NeurofluxCNN(nn.Module):
    """The original project's 4-block CNN; keys `conv1`..`conv4`, `fc1`, `fc2` match its checkpoints.

    Expects 3-channel input (grayscale repeated) of the `image_size` it was built for, because the
    flatten size of `fc1` depends on it.
    """

    def __init__(
        self,
        num_classes: int,
        *,
        conv_channels: int = 64,
        dropout: float = 0.5,
        image_size: int | tuple[int, int] = 224,
    ) -> None:
        super().__init__()
        _check_positive_int("num_classes", num_classes)
        _check_positive_int("conv_channels", conv_channels)
        _check_dropout(dropout)
        height, width = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        if min(height, width) < 16:
            raise ValueError(f"image_size must be at least 16 (four 2x poolings), got {image_size}")
        c = conv_channels
        self.image_size = (height, width)
        self.conv1 = nn.Conv2d(3, c, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(c, 2 * c, kernel_size=3, padding=1)
        self.conv3 = nn.Conv2d(2 * c, 4 * c, kernel_size=3, padding=1)
        self.conv4 = nn.Conv2d(4 * c, 8 * c, kernel_size=3, padding=1)
        # Parameter-free modules: they add no state-dict keys.
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.flatten = nn.Flatten()
        self.dropout = nn.Dropout(dropout)
        self.fc1 = nn.Linear(8 * c * (height // 16) * (width // 16), 256)
        self.fc2 = nn.Linear(256, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4):
            x = self.pool(self.relu(conv(x)))
        x = self.flatten(x)
        if x.shape[1] != self.fc1.in_features:
            raise ValueError(
                f"NeurofluxCNN was built for {self.image_size[0]}x{self.image_size[1]} input; "
                f"got {tuple(x.shape)} features after the conv blocks (rebuild with the right image_size)"
            )
        return self.fc2(self.dropout(self.relu(self.fc1(x))))


def build_neuroflux_cnn(
    num_classes: int, *, conv_channels: int = 64, dropout: float = 0.5, image_size: int = 224
) -> tuple[NeurofluxCNN, str]:
    """Build the CNN; always randomly initialised, so the origin is "random"."""
    model = NeurofluxCNN(num_classes, conv_channels=conv_channels, dropout=dropout, image_size=image_size)
    return model, "random"


# ---------------------------------------------------------------------------------------- ResNet-50


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
        _check_positive_int("num_classes", num_classes)
        _check_positive_int("hidden_size", hidden_size)
        _check_dropout(dropout)
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


# ----------------------------------------------------------------------------------------- registry

_BUILDERS: Mapping[str, Callable[..., tuple[nn.Module, str]]] = {
    "resnet50": build_resnet50,
    "neuroflux_cnn": build_neuroflux_cnn,
}


def _check_name(name: str) -> None:
    if name not in MODEL_NAMES:
        raise ValueError(f"unknown model {name!r}; valid names: {', '.join(MODEL_NAMES)}")


def build_model(
    name: str,
    num_classes: int,
    hyperparams: Mapping[str, Any] | None = None,
    *,
    image_size: int = 224,
) -> BuiltModel:
    """Build a model by name from a config-style mapping.

    Only the keys in `MODEL_HYPERPARAMS[name]` are passed (by keyword) to the builder; the rest are
    training settings that share the mapping and are ignored. Normalisation is ImageNet's only when
    ImageNet weights were requested and actually loaded, otherwise the original project's 0.5/0.5.
    """
    _check_name(name)
    hyperparams = dict(hyperparams or {})
    kwargs = {key: value for key, value in hyperparams.items() if key in MODEL_HYPERPARAMS[name]}
    ignored = sorted(set(hyperparams) - set(kwargs))
    if ignored:
        logger.debug("%s: hyperparameters not used by the model builder: %s", name, ignored)
    if name == "neuroflux_cnn":
        kwargs["image_size"] = image_size
    model, origin = _BUILDERS[name](num_classes, **kwargs)
    normalization = IMAGENET_NORMALIZATION if origin == "imagenet" else ORIGINAL_NORMALIZATION
    return BuiltModel(model=model, name=name, weights_origin=origin, normalization=normalization)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter elements; `trainable_only` skips frozen (requires_grad=False) ones."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


# ------------------------------------------------------------------------------------- checkpoints


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        reason = _unpickling_reason(error)
        raise UnsafeCheckpointError(
            f"refusing checkpoint {path}: it is not a plain tensor state dict (weights-only loading "
            f"rejected it: {reason}). Re-save it with torch.save(model.state_dict(), path) from a trusted "
            f"environment."
        ) from error
    if isinstance(loaded, Mapping):
        for wrapper_key in ("model_state_dict", "state_dict"):
            if isinstance(loaded.get(wrapper_key), Mapping):
                loaded = loaded[wrapper_key]
                break
    if (
        not isinstance(loaded, Mapping)
        or not loaded
        or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in loaded.items())
    ):
        raise UnsafeCheckpointError(
            f"refusing checkpoint {path}: expected a state dict mapping parameter names to tensors "
            f"(optionally under 'model_state_dict' or 'state_dict'), got {type(loaded).__name__}"
        )
    state = dict(loaded)
    if all(key.startswith("module.") for key in state):  # saved from nn.DataParallel
        state = {key.removeprefix("module."): value for key, value in state.items()}
    return state


def _unpickling_reason(error: Exception) -> str:
    # torch's message suggests weights_only=False, exactly what must not be done with an untrusted file;
    # keep only the specific cause, e.g. "Unsupported global: GLOBAL torch.nn.modules.linear.Linear ...".
    for line in str(error).splitlines():
        line = line.strip()
        if line.startswith("WeightsUnpickler error:"):
            return line.removeprefix("WeightsUnpickler error:").strip().split(". ")[0]
    return "unreadable, or holds objects other than tensors"


def _require_key(state: Mapping[str, torch.Tensor], key: str, name: str, path: Path) -> torch.Tensor:
    if key not in state:
        raise ValueError(f"checkpoint {path} is not a {name} state dict: key {key!r} is missing")
    return state[key]


def load_original_checkpoint(
    path: str | Path,
    name: str,
    num_classes: int = 5,
    hyperparams: Mapping[str, Any] | None = None,
    image_size: int = 224,
) -> BuiltModel:
    """Load a state dict saved by the original project, strictly, into a freshly built model.

    Architecture sizes (conv_channels, hidden_size) are read from the tensors because the original's
    configs did not reliably reach its models. The model is returned in eval mode (checkpoints are
    mostly evaluated; call `.train()` to fine-tune) with `ORIGINAL_NORMALIZATION`, and its
    `weights_origin` is "checkpoint".
    """
    _check_name(name)
    path = Path(path)
    state = _read_state_dict(path)
    params = dict(hyperparams or {})
    if name == "neuroflux_cnn":
        inferred = {"conv_channels": int(_require_key(state, "conv1.weight", name, path).shape[0])}
        last = _require_key(state, "fc2.weight", name, path)
    else:
        inferred = {"hidden_size": int(_require_key(state, "fc.0.weight", name, path).shape[0])}
        last = _require_key(state, "fc.4.weight", name, path)
        params["weights"] = "random"  # the checkpoint replaces every weight; don't read ImageNet files
    for key, value in inferred.items():
        if key in params and params[key] != value:
            logger.warning(
                "%s: checkpoint %s has %s=%s; ignoring configured %s", name, path, key, value, params[key]
            )
        params[key] = value
    if last.shape[0] != num_classes:
        raise ValueError(f"checkpoint {path} has {last.shape[0]} output classes, expected {num_classes}")
    built = build_model(name, num_classes, params, image_size=image_size)
    try:
        built.model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        hint = " (was it trained with a different image_size?)" if name == "neuroflux_cnn" else ""
        raise ValueError(f"checkpoint {path} does not match {name}{hint}: {error}") from error
    built.model.eval()
    return BuiltModel(
        model=built.model, name=name, weights_origin="checkpoint", normalization=ORIGINAL_NORMALIZATION
    )


def _check_positive_int(key: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{key} must be a positive integer, got {value!r}")


def _check_dropout(value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ValueError(f"dropout must be a number in [0, 1), got {value!r}")
