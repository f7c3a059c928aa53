"""The one `Definitions` object: `dagster dev`, `dagster definitions validate` and workspace.yaml load it."""

import os
from collections.abc import Mapping
from typing import Any

import dagster as dg

from neuroflux_assets.asset_checks import ALL_CHECKS
from neuroflux_assets.assets import data_quality, dataset, deployment, evaluation, incoming, modeling
from neuroflux_assets.io_managers import FolderIOManager, JsonIOManager, ParquetIOManager
from neuroflux_assets.jobs import full_pipeline, retrain, score_incoming
from neuroflux_assets.resources import (
    ComputeResource,
    DatasetResource,
    ThresholdsResource,
    TrackingResource,
    TuningResource,
)
from neuroflux_assets.schedules import weekly_retrain_schedule
from neuroflux_assets.sensors import log_run_failure, new_images, new_incoming_batches
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
        "parquet_io_manager": ParquetIOManager(),
        "json_io_manager": JsonIOManager(),
        "folder_io_manager": FolderIOManager(),
    }


def build_definitions(resources: Mapping[str, Any] | None = None) -> dg.Definitions:
    """The project's definitions; `resources` replaces some (tests point storage at a temp folder)."""
    return dg.Definitions(
        assets=dg.load_assets_from_modules(
            [data_quality, dataset, evaluation, modeling, deployment, incoming]
        ),
        asset_checks=ALL_CHECKS,
        jobs=[full_pipeline, retrain, score_incoming],
        schedules=[weekly_retrain_schedule()],
        sensors=[new_images, new_incoming_batches, log_run_failure],
        resources={**default_resources(), **(resources or {})},
    )


defs = build_definitions()
