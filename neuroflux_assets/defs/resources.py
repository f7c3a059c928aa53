"""The resources every asset, check and sensor is bound to (the `dg` layout: a `@dg.definitions` in defs/).

The IO managers store values where the `dataset` resource's config says (`asset_store`, default
`<storage_dir>/assets`), read by key when a run starts: run config moves them with the rest.
`neuroflux_assets.definitions.build_definitions` replaces resources by key (tests and the CLI bind the
`dataset` resource to their configs, so values load from there outside a run too).
"""

import os
from typing import Any

import dagster as dg

from neuroflux_assets.io_managers import FolderIOManager, JsonIOManager, ParquetIOManager
from neuroflux_assets.resources import (
    ComputeResource,
    DatasetResource,
    ThresholdsResource,
    TrackingResource,
    TuningResource,
)
from neuroflux_assets.settings import OPTUNA_STORAGE_ENV


def secret_from_env(name: str) -> dg.EnvVar | None:
    """A secret (W&B key, an Optuna URL with a database password) read through EnvVar when it is set, so
    it is never stored in run config, snapshots or logs; None leaves the resource's default."""
    return dg.EnvVar(name) if os.environ.get(name) else None


def default_resources() -> dict[str, Any]:
    return {
        "dataset": DatasetResource(),
        "compute": ComputeResource(),
        "tracking": TrackingResource(api_key=secret_from_env("WANDB_API_KEY")),
        "tuning": TuningResource(storage=secret_from_env(OPTUNA_STORAGE_ENV)),
        "thresholds": ThresholdsResource(),
        "parquet_io_manager": ParquetIOManager.definition(),
        "json_io_manager": JsonIOManager.definition(),
        "folder_io_manager": FolderIOManager.definition(),
    }


@dg.definitions
def resources() -> dg.Definitions:
    """Built when the definitions are loaded, so the secrets' variables are read then, not at import."""
    return dg.Definitions(resources=default_resources())
