"""Launchpad settings generated from the JSON configs, so `configs/*.json` stays the one source of defaults.

Each Dagster `Config` / resource field mirrors a key of `DatasetConfig` or `ModelConfig`, with the
file's value as its default. Precedence when a run resolves its configuration:
file < profile (`configs/profiles/<name>.json`) < launchpad values that differ from the file.
"""

from __future__ import annotations

import os
import types
import typing
from functools import cache
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import BaseModel, Field, create_model

from neuroflux_lib.config import (
    ConfigError,
    DatasetConfig,
    ModelConfig,
    Profile,
    load_config,
    with_overrides,
)
from neuroflux_lib.models import MODEL_NAMES

PROJECT_ROOT = Path(os.environ.get("NEUROFLUX_ROOT", Path(__file__).resolve().parents[1]))
CONFIG_DIR = PROJECT_ROOT / "configs"
DATASET_CONFIG_FILE = CONFIG_DIR / "dataset_config.json"
MODEL_CONFIG_FILES = {
    "resnet50": CONFIG_DIR / "resnet50_config.json",
    "neuroflux_cnn": CONFIG_DIR / "neuroflux_config.json",
}
PROFILE_DIR = CONFIG_DIR / "profiles"
NO_PROFILE = "none"  # the configs exactly as given (the CLI applies --profile itself)
# Environment variable holding a shared Optuna storage URL (it may contain a password).
OPTUNA_STORAGE_ENV = "NEUROFLUX_OPTUNA_STORAGE"
# Steps that train (tuning trials, training) run in this concurrency pool (limit in dagster.yaml) and,
# on Kubernetes with the k8s_job_executor, in a pod asking for this many GPUs ($NEUROFLUX_K8S_GPUS).
GPU_POOL = "gpu"
GPU_OP_TAGS = {
    "dagster-k8s/config": {
        "container_config": {
            "resources": {"limits": {"nvidia.com/gpu": os.environ.get("NEUROFLUX_K8S_GPUS", "1")}}
        }
    }
}
# Fixed by the partition (model_name) or by the dataset's class list (num_classes): not launchpad knobs.
MODEL_FIXED_KEYS = frozenset({"model_name", "num_classes"})


@cache
def file_dataset_config() -> DatasetConfig:
    return load_config(DatasetConfig, DATASET_CONFIG_FILE)


@cache
def file_model_config(model_name: str) -> ModelConfig:
    if model_name not in MODEL_CONFIG_FILES:
        raise ConfigError(f"unknown model {model_name!r}; expected one of {list(MODEL_CONFIG_FILES)}")
    return load_config(ModelConfig, MODEL_CONFIG_FILES[model_name])


def load_profile(name: str) -> Profile:
    """`configs/profiles/<name>.json`; a path to a JSON file also works; "none" applies nothing."""
    if name == NO_PROFILE:
        return Profile()
    path = Path(name) if name.endswith(".json") else PROFILE_DIR / f"{name}.json"
    return load_config(Profile, path)


def available_profiles() -> list[str]:
    return sorted(p.stem for p in PROFILE_DIR.glob("*.json"))


def _config_type(annotation: Any) -> Any:
    """Dagster config has lists but no tuples: `tuple[X, ...]` / `tuple[X, X, X]` become `list[X]`."""
    origin = typing.get_origin(annotation)
    if origin is tuple:
        return list[typing.get_args(annotation)[0]]
    if origin in (typing.Union, types.UnionType):
        args = [_config_type(arg) for arg in typing.get_args(annotation)]
        return typing.Union[tuple(args)]  # noqa: UP007 (built dynamically)
    return annotation


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def mirrored_fields(
    model: type[BaseModel], defaults: BaseModel, exclude: frozenset[str] = frozenset()
) -> dict:
    """pydantic field specs copying `model`'s fields with `defaults`' values as defaults."""
    fields = {}
    for name, info in model.model_fields.items():
        if name in exclude:
            continue
        value = _jsonable(getattr(defaults, name))
        description = info.description or f"`{name}` in the config file (default from the file)"
        fields[name] = (_config_type(info.annotation), Field(default=value, description=description))
    return fields


def explicit_values(settings: BaseModel, defaults: BaseModel, names: typing.Iterable[str]) -> dict:
    """The settings a person changed on the launchpad: those that differ from the file's value."""
    changed = {}
    for name in names:
        value = getattr(settings, name)
        if value != _jsonable(getattr(defaults, name)):
            changed[name] = value
    return changed


def resolve_dataset_config(settings: BaseModel, profile: Profile, profile_name: str) -> DatasetConfig:
    base = file_dataset_config()
    names = [n for n in DatasetConfig.model_fields if hasattr(settings, n)]
    config = with_overrides(profile.apply_dataset(base, profile_name), explicit_values(settings, base, names))
    # Relative folders are relative to the project, not to whatever directory a process started in.
    absolute = {
        key: str(PROJECT_ROOT / getattr(config, key))
        for key in ("data_dir", "storage_dir")
        if not Path(getattr(config, key)).is_absolute()
    }
    return with_overrides(config, absolute, "project root") if absolute else config


def resolve_model_config(
    model_name: str, settings: BaseModel, profile: Profile, profile_name: str
) -> ModelConfig:
    base = file_model_config(model_name)
    names = [n for n in ModelConfig.model_fields if n not in MODEL_FIXED_KEYS]
    changed = explicit_values(settings, base, names)
    return with_overrides(profile.apply_model(base, profile_name), changed, "launchpad")


def _model_settings_class(model_name: str) -> type[dg.Config]:
    defaults = file_model_config(model_name)
    return create_model(
        f"{''.join(part.title() for part in model_name.split('_'))}Settings",
        __base__=dg.Config,
        __doc__=f"Training settings for `{model_name}`; defaults from {MODEL_CONFIG_FILES[model_name].name}.",
        **mirrored_fields(ModelConfig, defaults, MODEL_FIXED_KEYS),
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
