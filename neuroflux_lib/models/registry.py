"""The model registry: one entry per architecture, the only place that knows a model exists.

An entry holds the builder, the config keys it reads, its part of the Optuna search space and its
config file. The defaults of its hyperparameters are the builder's keyword defaults (one source).
Adding a model is one `ModelSpec` here plus `configs/models/<name>.json` (docs/architecture.md).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from neuroflux_lib.models.cnn import build_neuroflux_cnn
from neuroflux_lib.models.common import BuiltModel, Weights, input_normalization
from neuroflux_lib.models.resnet import build_resnet50
from neuroflux_lib.models.resnet_gray import build_resnet18_gray

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FloatRange:
    """A float hyperparameter searched between `low` and `high` (log scale when `log`)."""

    low: float
    high: float
    log: bool = False


SearchSpace = Mapping[str, list | FloatRange]

#: The original project's search space for what every model shares (BRIEF section 4).
SHARED_SEARCH_SPACE: SearchSpace = {
    "optimizer": ["Adam", "AdamW", "SGD", "RMSprop"],
    "scheduler": ["ReduceLROnPlateau", "CosineAnnealing", "OneCycle"],
    "batch_size": [16, 32, 64],
    "learning_rate": FloatRange(1e-5, 1e-3, log=True),
    "weight_decay": FloatRange(1e-5, 1e-3, log=True),
    "dropout": FloatRange(0.3, 0.7),
}


@dataclass(frozen=True)
class ModelSpec:
    """Everything the platform needs to know about one architecture."""

    name: str
    builder: Callable[..., tuple[nn.Module, Weights]]
    #: Config keys passed to the builder by keyword (after `builder_kwargs` maps them).
    config_keys: tuple[str, ...]
    #: The model's own part of the search space, added to `SHARED_SEARCH_SPACE`.
    search_space: SearchSpace = field(default_factory=dict)
    #: Config file names the original project used for this model (still accepted by `--model_config`).
    legacy_config_names: tuple[str, ...] = ()
    #: True when the builder needs the input size (its flatten size depends on it).
    needs_image_size: bool = False
    #: Config values -> builder keyword arguments, for keys whose names differ.
    builder_kwargs: Callable[[Mapping[str, Any]], dict[str, Any]] = dict
    #: Image channels the first layer takes (grayscale is repeated for 3-channel models).
    in_channels: int = 3
    #: The layer Grad-CAM explains (dotted module name, `serving.gradcam`); None: the last Conv2d.
    #: The last conv block is the most class-specific; an earlier one gives finer maps on small inputs.
    cam_layer: str | None = None

    @property
    def config_file(self) -> str:
        """Path relative to the config folder."""
        return f"models/{self.name}.json"

    @property
    def defaults(self) -> dict[str, Any]:
        """The builder's keyword defaults: what the architecture uses when a key is not given."""
        parameters = inspect.signature(self.builder).parameters.values()
        return {p.name: p.default for p in parameters if p.kind is p.KEYWORD_ONLY}

    def searched(self) -> SearchSpace:
        return {**SHARED_SEARCH_SPACE, **self.search_space}


def _resnet_kwargs(values: Mapping[str, Any]) -> dict[str, Any]:
    kwargs = {k: v for k, v in values.items() if k != "pretrained"}
    if "pretrained" in values:
        kwargs["weights"] = "imagenet" if values["pretrained"] else "random"
    return kwargs


REGISTRY: Mapping[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="resnet50",
            builder=build_resnet50,
            config_keys=("hidden_size", "dropout", "pretrained", "freeze_until"),
            search_space={"hidden_size": [256, 512, 1024]},
            legacy_config_names=("resnet50_config.json",),
            builder_kwargs=_resnet_kwargs,
            cam_layer="layer4",
        ),
        ModelSpec(
            name="neuroflux_cnn",
            builder=build_neuroflux_cnn,
            config_keys=("conv_channels", "dropout"),
            search_space={"conv_channels": [16, 32, 64]},
            legacy_config_names=("neuroflux_config.json", "neuroflux_cnn_config.json"),
            needs_image_size=True,
            cam_layer="conv4",
        ),
        ModelSpec(
            name="resnet18_gray",
            builder=build_resnet18_gray,
            config_keys=("dropout",),
            search_space={"dropout": FloatRange(0.0, 0.5), "learning_rate": FloatRange(3e-4, 3e-3, log=True)},
            in_channels=1,
            # At the demo's 64 px layer4's map is 2x2: blurring its top 20% moved the prediction less
            # than random regions (docs/evaluation.md); layer3 (4x4) passed the deletion test.
            cam_layer="layer3",
        ),
    )
}
MODEL_NAMES: tuple[str, ...] = tuple(REGISTRY)


def check_name(name: str) -> None:
    if name not in REGISTRY:
        raise ValueError(f"unknown model {name!r}; valid names: {', '.join(MODEL_NAMES)}")


def model_spec(name: str) -> ModelSpec:
    check_name(name)
    return REGISTRY[name]


def model_hyperparams(name: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """The builder's keyword arguments taken from a config mapping (training keys are left out)."""
    spec = model_spec(name)
    return spec.builder_kwargs({key: config[key] for key in spec.config_keys if key in config})


def build_model(
    name: str,
    num_classes: int,
    hyperparams: Mapping[str, Any] | None = None,
    *,
    image_size: int = 224,
    normalization: str = "auto",
) -> BuiltModel:
    """Build a model by name from builder keyword arguments (as `model_hyperparams` returns them).

    Keys the builder does not take are training settings sharing the mapping and are ignored.
    `normalization` is the config setting (`models.common.input_normalization`): with `auto`,
    ImageNet's mean/std only when ImageNet weights were actually loaded, else per-image.
    """
    spec = model_spec(name)
    hyperparams = dict(hyperparams or {})
    accepted = set(spec.defaults)
    kwargs = {key: value for key, value in hyperparams.items() if key in accepted}
    ignored = sorted(set(hyperparams) - set(kwargs))
    if ignored:
        logger.debug("%s: hyperparameters not used by the model builder: %s", name, ignored)
    if spec.needs_image_size:
        kwargs["image_size"] = image_size
    model, weights = spec.builder(num_classes, **kwargs)
    return BuiltModel(
        model=model,
        name=name,
        weights_origin=weights.origin,
        normalization=input_normalization(normalization, weights.origin, spec.in_channels),
        weights_name=weights.name,
        frozen=tuple(getattr(model, "frozen_stages", ())),
        weights_note=weights.note,
    )


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter elements; `trainable_only` skips frozen (requires_grad=False) ones."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
