"""Launchpad settings generated from the config models, so `configs/*.json` stays the one source of defaults.

Each field mirrors a key of `DatasetConfig` or `ModelConfig`. It defaults to unset (None) and its
description shows the file's value; a value typed on the launchpad is applied whenever it is given.
Precedence (`neuroflux_lib.config.resolve`): file < profile (`configs/profiles/<name>.json`) < launchpad.
"""

from __future__ import annotations

import types
import typing
from functools import cache
from typing import Any

import dagster as dg
from pydantic import BaseModel, Field, create_model

from neuroflux_lib.config import DatasetConfig, ModelConfig
from neuroflux_lib.config.resolve import dataset_config_path, load_config, model_config_path
from neuroflux_lib.models.registry import MODEL_NAMES

# Environment variable holding a shared Optuna storage URL (it may contain a password).
OPTUNA_STORAGE_ENV = "NEUROFLUX_OPTUNA_STORAGE"
# Steps that train (tuning trials, training, cross-validation) run in this concurrency pool (limit in
# dagster.yaml) and, on Kubernetes (`NEUROFLUX_EXECUTOR=k8s`: each step in its own pod, executors.py), in
# a pod that asks for one GPU, tolerates the GPU nodes' taint and is placed on a GPU node (the label of
# NVIDIA's GPU feature discovery). Only these steps: every other step's pod stays off the GPU nodes.
# Override per step through the executor's `per_step_k8s_config` (docs/deployment.md).
GPU_POOL = "gpu"
GPU_OP_TAGS = {
    "dagster-k8s/config": {
        "container_config": {"resources": {"limits": {"nvidia.com/gpu": "1"}}},
        "pod_spec_config": {
            "node_selector": {"nvidia.com/gpu.present": "true"},
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        },
    }
}
# Fixed by the partition (model_name) or by the dataset's class list (num_classes): not launchpad knobs.
MODEL_FIXED_KEYS = frozenset({"model_name", "num_classes"})


@cache
def file_dataset_config() -> DatasetConfig:
    return load_config(DatasetConfig, dataset_config_path())


@cache
def file_model_config(model_name: str) -> ModelConfig:
    return load_config(ModelConfig, model_config_path(model_name))


def _config_type(annotation: Any) -> Any:
    """Dagster config has lists but no tuples (`tuple[X, ...]` becomes `list[X]`), no optional Literal
    (a Literal becomes its values' type; the config model validates the choice, naming the key) and no
    pydantic models (a nested block becomes a map of numbers)."""
    origin = typing.get_origin(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return dict[str, float]  # a nested block (augmentation): the keys typed are merged into the file's
    if origin is typing.Literal:
        return type(typing.get_args(annotation)[0])
    if origin is tuple:
        return list[typing.get_args(annotation)[0]]
    if origin in (typing.Union, types.UnionType):
        args = [_config_type(arg) for arg in typing.get_args(annotation)]
        return typing.Union[tuple(args)]  # noqa: UP007 (built dynamically)
    return annotation


def mirrored_fields(
    model: type[BaseModel], defaults: BaseModel, exclude: frozenset[str] = frozenset()
) -> dict:
    """Optional pydantic field specs for `model`'s fields; unset (None) means "the file's value"."""
    fields = {}
    for name, info in model.model_fields.items():
        if name in exclude:
            continue
        shown = getattr(defaults, name)
        shown = list(shown) if isinstance(shown, tuple) else shown
        shown = shown.model_dump() if isinstance(shown, BaseModel) else shown
        about = f"{info.description}. " if info.description else ""
        if typing.get_origin(info.annotation) is typing.Literal:
            about += f"One of {', '.join(map(str, typing.get_args(info.annotation)))}. "
        fields[name] = (
            _config_type(info.annotation) | None,
            Field(default=None, description=f"{about}Unset = the file's value ({shown!r}) or the profile's"),
        )
    return fields


def typed_values(settings: BaseModel, names: typing.Iterable[str]) -> dict[str, Any]:
    """The launchpad values of `names` (None where nothing was typed)."""
    return {name: getattr(settings, name) for name in names if hasattr(settings, name)}


def _model_settings_class(model_name: str) -> type[dg.Config]:
    return create_model(
        f"{''.join(part.title() for part in model_name.split('_'))}Settings",
        __base__=dg.Config,
        __doc__=f"Training settings for `{model_name}`; defaults from configs/models/{model_name}.json.",
        **mirrored_fields(ModelConfig, file_model_config(model_name), MODEL_FIXED_KEYS),
    )


MODEL_SETTINGS: dict[str, type[dg.Config]] = {name: _model_settings_class(name) for name in MODEL_NAMES}

ModelSettings = create_model(
    "ModelSettings",
    __base__=dg.Config,
    __doc__="Per-model training settings; the run's partition picks which block applies.",
    **{
        name: (cls, Field(default_factory=cls, description=f"settings for the `{name}` partition"))
        for name, cls in MODEL_SETTINGS.items()
    },
)
