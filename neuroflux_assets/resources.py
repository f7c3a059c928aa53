"""Resources: where the data is (plus every dataset knob), how to compute, and experiment tracking."""

from __future__ import annotations

import os
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
    """Experiment-tracking placeholder: it records nothing yet.

    Only mode "disabled" exists; the W&B issue replaces this with real runs (offline by default).
    It is a resource already so assets do not change when tracking arrives.
    """

    mode: Literal["disabled"] = Field(default="disabled", description="tracking is not implemented yet")

    def describe(self) -> str:
        return "experiment tracking disabled (not implemented yet)"


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
