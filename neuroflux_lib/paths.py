"""Every folder the platform writes, in one place, under the dataset config's `storage_dir`.

storage/
  assets/        asset values (Dagster IO managers): tables, JSON, model and report folders
  reports/       reports of `neuroflux evaluate --artifact` (folders that are not assets)
  augmented/     balancing copies of train images
  cache/         decoded-image cache (content-addressed)
  cache/features/  frozen-stage feature cache (content-addressed, per weights digest)
  checkpoints/   per-model epoch checkpoints (resume after a crash)
  work/          run-scoped scratch folders, moved into assets/ by the IO managers
  optuna/        the default Optuna study database
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


@dataclass(frozen=True)
class StoragePaths:
    """The layout of one storage folder; build it with `StoragePaths(config.storage_dir)`."""

    root: Path

    def __init__(self, root: str | Path) -> None:
        object.__setattr__(self, "root", Path(root))

    @property
    def assets(self) -> Path:
        return self.root / "assets"

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
