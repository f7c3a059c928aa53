"""Resources: where the data is (plus every dataset knob), how to compute, tracking, tuning, pass marks."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import dagster as dg
import torch
from pydantic import Field, create_model

from neuroflux_assets.settings import (
    available_profiles,
    file_dataset_config,
    load_profile,
    mirrored_fields,
    resolve_dataset_config,
)
from neuroflux_lib.config import DatasetConfig, ModelConfig, Profile, with_overrides
from neuroflux_lib.tracking import TrackedRun, TrackingSettings, start_run
from neuroflux_lib.tuning import default_storage_url

DEFAULT_PROFILE = os.environ.get("NEUROFLUX_PROFILE", "full")


class _DatasetResourceBase(dg.ConfigurableResource):
    """Dataset location, class list and every other `dataset_config.json` key, plus the profile.

    The fields are generated from `DatasetConfig` with the file's values as defaults, so the launchpad
    shows exactly the file's knobs. Relative folders are resolved against the project root.
    """

    profile: str = Field(
        default=DEFAULT_PROFILE,
        description=(
            "Name of configs/profiles/<name>.json applied on top of the config files "
            f"(available: {', '.join(available_profiles())}); default from $NEUROFLUX_PROFILE, else 'full'"
        ),
    )

    def load_profile(self) -> Profile:
        return load_profile(self.profile)

    def dataset_config(self) -> DatasetConfig:
        return resolve_dataset_config(self, self.load_profile(), self.profile)


DatasetResource: type[_DatasetResourceBase] = create_model(  # type: ignore[assignment]
    "DatasetResource",
    __base__=_DatasetResourceBase,
    __doc__=_DatasetResourceBase.__doc__,
    **mirrored_fields(DatasetConfig, file_dataset_config()),
)


class ComputeResource(dg.ConfigurableResource):
    """Where and how hard to compute. Leaving a field at its default keeps the model config's value."""

    device: Literal["auto", "cpu", "cuda", "mps"] = Field(
        default="auto", description="auto keeps the model config's device (itself 'auto' = CUDA if present)"
    )
    threads: int | None = Field(default=None, description="torch intra-op threads; None = torch default")
    workers: int | None = Field(default=None, description="DataLoader workers; None = the model config's")

    def apply(self, config: ModelConfig) -> ModelConfig:
        overrides: dict[str, object] = {}
        if self.device != "auto":
            overrides["device"] = self.device
        if self.workers is not None:
            overrides["num_workers"] = self.workers
        return with_overrides(config, overrides, "compute resource") if overrides else config

    def configure_torch(self) -> None:
        if self.threads:
            torch.set_num_threads(self.threads)


class TrackingResource(dg.ConfigurableResource):
    """Weights & Biases: every training, tuning trial and evaluation becomes a run.

    `auto` is `online` when an API key is configured (`api_key=EnvVar("WANDB_API_KEY")`, which
    `definitions.py` wires when the variable is set; never type the key into the launchpad), else
    `offline`: run folders under `<storage_dir>/wandb`, uploadable later with `neuroflux runs --sync`.
    """

    mode: Literal["auto", "offline", "online", "disabled"] = Field(
        default=os.environ.get("NEUROFLUX_TRACKING", "auto"),
        description="auto = online with an API key, else offline; default from $NEUROFLUX_TRACKING",
    )
    project: str = Field(default="neuroflux", description="W&B project")
    entity: str | None = Field(
        default=None, description="W&B entity (team or user); None = the key's default"
    )
    api_key: str | None = Field(default=None, description="W&B API key, from EnvVar('WANDB_API_KEY')")
    dir: str | None = Field(default=None, description="run folders root; None = <dataset storage_dir>/wandb")

    def settings(self, storage_dir: str) -> TrackingSettings:
        mode = self.mode if self.mode != "auto" else ("online" if self.api_key else "offline")
        root = self.dir or str(Path(storage_dir) / "wandb")
        return TrackingSettings(mode, root, self.project, self.entity, self.api_key)

    def start(
        self,
        context: dg.AssetExecutionContext,
        dataset: _DatasetResourceBase,
        job_type: Literal["train", "evaluate"],
        config: dict,
    ) -> TrackedRun:
        """A run grouped under the Dagster run id, named `<model>-<job>-<run id>`, tagged with the model
        and profile; its config records the Dagster run id (the way back from W&B)."""
        run_id = context.run.run_id
        tracked = start_run(
            self.settings(dataset.dataset_config().storage_dir),
            name=f"{context.partition_key}-{job_type}-{run_id[:8]}",
            job_type=job_type,
            group=run_id,
            tags=(context.partition_key, dataset.profile),
            config={**config, "dagster_run_id": run_id, "profile": dataset.profile},
        )
        if tracked.error:
            context.log.warning(f"W&B tracking off for this step: {tracked.error}")
        return tracked


class TuningResource(dg.ConfigurableResource):
    """Where Optuna studies live and how many processes run trials (budgets are model-config keys)."""

    storage: str | None = Field(
        default=None,
        description=(
            "Optuna storage URL: sqlite:///…, postgresql://user:pass@host/db, or journal:<file>; None = "
            "SQLite at <dataset storage_dir>/optuna/optuna.db. A URL with a password belongs in an "
            "environment variable ({env: NEUROFLUX_OPTUNA_STORAGE}, wired by default when it is set)"
        ),
    )
    workers: int = Field(default=1, ge=1, description="processes running trials of one study at once")

    def storage_url(self, storage_dir: str) -> str:
        return self.storage or default_storage_url(storage_dir)


class ThresholdsResource(dg.ConfigurableResource):
    """Pass marks of the asset checks; `production_model` re-applies `min_macro_f1` when it promotes."""

    min_macro_f1: float = Field(
        default=float(os.environ.get("NEUROFLUX_MIN_MACRO_F1", "0.5")),
        ge=0.0,
        le=1.0,
        description="test macro-F1 a model needs to pass its blocking check ($NEUROFLUX_MIN_MACRO_F1)",
    )
    min_images_per_class: int = Field(default=5, ge=0, description="readable images each class needs")
    max_unreadable_fraction: float = Field(default=0.05, ge=0.0, le=1.0, description="of all image files")
    balance_tolerance: float = Field(
        default=0.0, ge=0.0, description="allowed (max - min) / max of the balanced class counts"
    )
