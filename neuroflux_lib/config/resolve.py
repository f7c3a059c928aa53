"""The one config resolver: files < profile < typed values < compute settings, folders made absolute.

Every caller (the CLI, the Dagster resources and assets, the demo, the tests) resolves through
`resolve_config`, so a setting means the same wherever a run starts. This module sits above the model
registry: it checks model names there, which the schema (`config.schema`) cannot import.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from neuroflux_lib.config.schema import (
    DatasetConfig,
    ModelConfig,
    ModelT,
    Profile,
    parse_config,
    with_overrides,
)
from neuroflux_lib.errors import ConfigError
from neuroflux_lib.models.registry import MODEL_NAMES, REGISTRY, check_name, model_spec
from neuroflux_lib.paths import config_dir, is_url, project_root

DATASET_CONFIG_NAME = "dataset_config.json"
#: The configs exactly as given, no profile on top.
NO_PROFILE = "none"
#: The profile in force when none is named (`make demo` and `make dev` set `cpu-demo`).
PROFILE_ENV = "NEUROFLUX_PROFILE"
DEFAULT_PROFILE = "full"
#: Folders of the dataset config made absolute by the resolver (`asset_store` only when it is a folder).
FOLDER_KEYS = ("data_dir", "storage_dir", "incoming_dir", "asset_store")


def load_config(model: type[ModelT], path: str | Path) -> ModelT:
    """Read a JSON config file into `model`, raising ConfigError that names the bad key."""
    path = Path(path)
    try:
        values = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except json.JSONDecodeError as error:
        raise ConfigError(f"config file {path} is not valid JSON: {error}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"config file {path} must hold a JSON object")
    return parse_config(model, values, str(path))


def dataset_config_path() -> Path:
    return config_dir() / DATASET_CONFIG_NAME


def model_config_path(model_name: str) -> Path:
    """`configs/models/<model>.json`, the registry's file for this model."""
    return config_dir() / model_spec(model_name).config_file


def resolve_model_config_path(path: str | Path) -> Path:
    """`path`, or, when it does not exist and is named like one of the original project's model configs
    (`configs/resnet50_config.json`, `configs/neuroflux_config.json`), that model's file today."""
    path = Path(path)
    if path.exists():
        return path
    for spec in REGISTRY.values():
        if path.name in spec.legacy_config_names:
            return model_config_path(spec.name)
    return path


def load_model_config(path: str | Path) -> ModelConfig:
    """A model config file; its `model_name` must be in the registry."""
    config = load_config(ModelConfig, resolve_model_config_path(path))
    _check_model_name(config.model_name, str(path))
    return config


def _check_model_name(name: str, source: str) -> None:
    try:
        check_name(name)
    except (KeyError, ValueError) as error:
        message = error.args[0] if error.args else str(error)
        raise ConfigError(f"invalid config {source}: model_name: {message}") from None


def profile_in_force(explicit: str | None = None, default: str = DEFAULT_PROFILE) -> str:
    """The profile named, else $NEUROFLUX_PROFILE, else `default`."""
    return explicit or os.environ.get(PROFILE_ENV) or default


def load_profile(name: str) -> Profile:
    """`configs/profiles/<name>.json`; a path to a JSON file also works; "none" applies nothing. Every
    model it names (blocks and `trains`) must be in the registry."""
    if name == NO_PROFILE:
        return Profile()
    path = Path(name) if name.endswith(".json") else config_dir() / "profiles" / f"{name}.json"
    profile = load_config(Profile, path)
    for model in [*profile.models, *(profile.trains or ())]:
        _check_model_name(model, str(path))
    return profile


def available_profiles() -> list[str]:
    return sorted(p.stem for p in (config_dir() / "profiles").glob("*.json"))


def profile_models(profile: str) -> list[str]:
    """The models a profile trains (pipeline, schedule and sensor runs), in registry order."""
    trains = load_profile(profile).trains
    return [name for name in MODEL_NAMES if trains is None or name in trains]


def given(values: Mapping[str, object] | None) -> dict[str, object]:
    """The values a person typed: launchpad fields default to None, which means "not given"."""
    return {key: value for key, value in (values or {}).items() if value is not None}


def absolute_folders(config: DatasetConfig, root: str | Path) -> DatasetConfig:
    """The folders (`FOLDER_KEYS`) made absolute against `root`, so no process depends on where it
    started; an unset `asset_store` or a URL stays as it is."""
    absolute = {
        key: str((Path(root) / value).resolve())
        for key in FOLDER_KEYS
        if (value := getattr(config, key)) is not None and not is_url(value) and not Path(value).is_absolute()
    }
    return with_overrides(config, absolute, str(root)) if absolute else config


@dataclass(frozen=True)
class ResolvedConfig:
    """What a run uses: the dataset config, the model config (None for data-only work), the profile."""

    dataset: DatasetConfig
    model: ModelConfig | None
    profile: str


def resolve_config(
    *,
    profile: str = NO_PROFILE,
    model: str | None = None,
    model_file: str | Path | None = None,
    dataset_file: str | Path | None = None,
    dataset_values: Mapping[str, object] | None = None,
    model_values: Mapping[str, object] | None = None,
    compute: Mapping[str, object] | None = None,
    root: str | Path | None = None,
) -> ResolvedConfig:
    """The configs in force, by precedence: file < profile < typed values < compute settings.

    `model` names a registry model (its `configs/models/<name>.json`); `model_file` is a model config file
    instead (the CLI's `--model_config`, the original project's names accepted). Typed values and compute
    settings that are None count as not given. `num_classes` follows the dataset's class list. Relative
    folders are made absolute against `root` (default: the project root, `NEUROFLUX_ROOT`).
    """
    chosen = load_profile(profile)
    dataset = load_config(DatasetConfig, dataset_file or dataset_config_path())
    dataset = with_overrides(dataset, chosen.dataset, f"profile {profile} [dataset]")
    dataset = with_overrides(dataset, given(dataset_values), "typed dataset values")
    dataset = absolute_folders(dataset, root if root is not None else project_root())
    if model is None and model_file is None:
        return ResolvedConfig(dataset, None, profile)
    if model_file is not None:
        config = load_model_config(model_file)
    else:
        _check_model_name(model, "model")
        config = load_config(ModelConfig, model_config_path(model))
    name = config.model_name
    config = with_overrides(config, chosen.models.get(name, {}), f"profile {profile} [{name}]")
    config = with_overrides(config, given(model_values), f"typed values [{name}]")
    config = with_overrides(config, given(compute), "compute settings")
    config = with_overrides(config, {"num_classes": len(dataset.class_names)}, "class list")
    return ResolvedConfig(dataset, config, profile)
