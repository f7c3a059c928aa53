"""Resources: where the data is (plus every dataset knob), how to compute, tracking, tuning, pass marks."""

from __future__ import annotations

import os
from typing import Literal

import dagster as dg
import torch
from pydantic import Field, create_model

from neuroflux_assets.settings import file_dataset_config, mirrored_fields, typed_values
from neuroflux_lib.config import ConfigError, DatasetConfig, Profile
from neuroflux_lib.config.resolve import (
    PROFILE_ENV,
    ResolvedConfig,
    available_profiles,
    load_profile,
    profile_in_force,
    resolve_config,
)
from neuroflux_lib.evaluation.promotion import Gate
from neuroflux_lib.paths import StoragePaths
from neuroflux_lib.tracking import TrackedRun, TrackingSettings, choose_mode, start_run
from neuroflux_lib.training.tuning import default_storage_url

TRACKING_ENV = "NEUROFLUX_TRACKING"
TRACKING_MODES = ("auto", "offline", "online", "disabled")


class _DatasetResourceBase(dg.ConfigurableResource):
    """Dataset location, class list and every other `dataset_config.json` key, plus the profile.

    The fields are generated from `DatasetConfig`; a field left unset keeps the file's (or the
    profile's) value. Relative folders are resolved against the project root.
    """

    profile: str | None = Field(
        default=None,
        description=(
            "Name of configs/profiles/<name>.json applied on top of the config files "
            f"(available: {', '.join(available_profiles())}; 'none' = no profile); "
            f"unset = ${PROFILE_ENV}, else 'full'"
        ),
    )

    @property
    def profile_name(self) -> str:
        return profile_in_force(self.profile)

    def load_profile(self) -> Profile:
        return load_profile(self.profile_name)

    def resolve(
        self, model: str | None = None, model_values: dict | None = None, compute: dict | None = None
    ) -> ResolvedConfig:
        """The configs in force for a run (`neuroflux_lib.config.resolve.resolve_config`): files < this
        profile < launchpad values (these fields, and `model_values` for the model) < `compute`."""
        return resolve_config(
            profile=self.profile_name,
            model=model,
            dataset_values=typed_values(self, DatasetConfig.model_fields),
            model_values=model_values,
            compute=compute,
        )

    def dataset_config(self) -> DatasetConfig:
        return self.resolve().dataset

    def storage(self) -> StoragePaths:
        return StoragePaths(self.dataset_config().storage_dir)


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

    def settings(self) -> dict[str, object]:
        """The model-config values this resource sets (applied last by the resolver); None = not set."""
        return {"device": None if self.device == "auto" else self.device, "num_workers": self.workers}

    def configure_torch(self) -> None:
        if self.threads:
            torch.set_num_threads(self.threads)


class TrackingResource(dg.ConfigurableResource):
    """Weights & Biases: every training, tuning trial and evaluation becomes a run.

    `auto` is `online` when W&B credentials are set up the way W&B users do it: an API key
    (`api_key=EnvVar("WANDB_API_KEY")`, which `definitions.py` wires when the variable is set; never type
    the key into the launchpad) or `wandb login` (wandb's own lookup, `choose_mode`); else `offline`: run
    folders under `<storage_dir>/wandb`, uploadable later with `neuroflux runs --sync`. Each step logs
    which mode it chose and why.
    """

    mode: str | None = Field(
        default=None,
        description=(
            f"auto, offline, online or disabled; auto = online with W&B credentials (an API key or "
            f"`wandb login`), else offline; "
            f"unset = ${TRACKING_ENV}, else auto"
        ),
    )
    project: str = Field(default="neuroflux", description="W&B project")
    entity: str | None = Field(
        default=None, description="W&B entity (team or user); None = the key's default"
    )
    api_key: str | None = Field(default=None, description="W&B API key, from EnvVar('WANDB_API_KEY')")
    dir: str | None = Field(default=None, description="run folders root; None = <dataset storage_dir>/wandb")

    def settings(self, storage_dir: str) -> TrackingSettings:
        mode = self.mode or os.environ.get(TRACKING_ENV) or "auto"
        if mode not in TRACKING_MODES:
            raise ConfigError(f"tracking mode must be one of {', '.join(TRACKING_MODES)}, got {mode!r}")
        chosen, reason = choose_mode(mode, self.api_key)
        root = self.dir or str(StoragePaths(storage_dir).wandb)
        return TrackingSettings(chosen, root, self.project, self.entity, self.api_key, reason)

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
        settings = self.settings(dataset.dataset_config().storage_dir)
        context.log.info(f"W&B tracking {settings.reason}")
        tracked = start_run(
            settings,
            name=f"{context.partition_key}-{job_type}-{run_id[:8]}",
            job_type=job_type,
            group=run_id,
            tags=(context.partition_key, dataset.profile_name),
            config={**config, "dagster_run_id": run_id, "profile": dataset.profile_name},
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
    """Pass marks of the asset checks; `production_model` re-applies the gate when it promotes."""

    min_gain: float = Field(
        default=0.0,
        ge=-1.0,
        le=1.0,
        description=(
            "the chosen model is promoted only when the lower end of its paired 95% interval of test "
            "macro-F1 minus the best baseline's is above this"
        ),
    )
    min_macro_f1: float | None = Field(
        default=None, ge=0.0, le=1.0, description="optional absolute floor on test macro-F1 (unset = off)"
    )

    def gate(self) -> Gate:
        return Gate(min_gain=self.min_gain, min_macro_f1=self.min_macro_f1)

    max_unreadable_fraction: float = Field(default=0.05, ge=0.0, le=1.0, description="of all image files")
    balance_tolerance: float = Field(
        default=0.0, ge=0.0, description="allowed (max - min) / max of the balanced class counts"
    )
