"""Every folder the platform writes, in one place, under the dataset config's `storage_dir`.

storage/
  assets/        asset values (Dagster IO managers): tables, JSON, model and report folders, unless the
                 config's `asset_store` puts them elsewhere (`asset_store` below)
  reports/       reports of `neuroflux evaluate --artifact` (folders that are not assets)
  augmented/     balancing copies of train images
  cache/         decoded-image cache (content-addressed)
  cache/features/  frozen-stage feature cache (content-addressed, per weights digest)
  cache/assets/  local copies of folders kept in a remote asset store (models, reports)
  checkpoints/   per-model epoch checkpoints (resume after a crash)
  work/          run-scoped scratch folders, moved into assets/ by the IO managers
  optuna/        the default Optuna study database
  locks/         one writer at a time per model and for production_model (neuroflux_lib.locks)
  wandb/         offline W&B runs
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

#: Overrides where `configs/` is found (the package's parent by default); read when asked, not at import.
ROOT_ENV = "NEUROFLUX_ROOT"


def project_root() -> Path:
    """The folder holding `configs/` (and, by default, `data/` and `storage/`)."""
    return Path(os.environ.get(ROOT_ENV) or Path(__file__).resolve().parents[1])


def config_dir() -> Path:
    return project_root() / "configs"


def is_url(location: str) -> bool:
    """An fsspec URL (`s3://bucket/prefix`, `gs://…`, `file://…`) rather than a local folder."""
    return "://" in location


@dataclass(frozen=True)
class StoragePaths:
    """The layout of one storage folder; build it with `StoragePaths(config.storage_dir)`."""

    root: Path

    def __init__(self, root: str | Path) -> None:
        object.__setattr__(self, "root", Path(root))

    @property
    def assets(self) -> Path:
        return self.root / "assets"

    def asset_store(self, setting: str | None) -> str:
        """Where asset values live: the config's `asset_store` (a folder or an fsspec URL), unset =
        `assets/` here. One answer for every process, so a value written by one pod is found by the next."""
        return setting.rstrip("/") if setting else str(self.assets)

    @property
    def asset_cache(self) -> Path:
        """Local copies of folders from a remote asset store: code that needs files gets a folder."""
        return self.cache / "assets"

    @property
    def augmented(self) -> Path:
        return self.root / "augmented"

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    @property
    def feature_cache(self) -> Path:
        return self.cache / "features"

    @property
    def locks(self) -> Path:
        return self.root / "locks"

    @property
    def optuna_db(self) -> Path:
        return self.root / "optuna" / "optuna.db"

    @property
    def wandb(self) -> Path:
        return self.root / "wandb"

    def checkpoints(self, model_name: str) -> Path:
        return self.root / "checkpoints" / model_name

    def report(self, name: str) -> Path:
        return self.root / "reports" / name

    def work(self, run_id: str, name: str) -> Path:
        """A run-scoped scratch folder (its parent is created)."""
        folder = self.root / "work" / run_id / name
        folder.parent.mkdir(parents=True, exist_ok=True)
        return folder
