"""IO managers that keep asset values as ordinary files under `storage/`: Parquet, JSON and folders.

No pickles: every value is readable without this code (pandas, a JSON viewer, the artifact loader).
Partitioned assets get one file or folder per partition; an unpartitioned asset that reads every
partition of a partitioned one receives `{partition: value}` for the partitions that exist.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
from pydantic import Field

from neuroflux_lib.paths import StoragePaths, project_root

# Input metadata: this input takes every partition of a partitioned upstream asset as {partition: value}.
ALL_PARTITIONS = "neuroflux/all_partitions"


def _input_partitions(context: dg.InputContext) -> list[str] | None:
    """Partitions of the upstream asset this input reads; None when that asset is not partitioned."""
    if context.has_asset_partitions:
        return list(context.asset_partition_keys)
    try:
        context.asset_partitions_def  # noqa: B018 (raises when the upstream asset is unpartitioned)
    except dg.DagsterInvariantViolationError:
        return None
    # A partitioned asset check reading its asset: the run's partition.
    return [context.partition_key] if context.has_partition_key else None


class _FileIOManager(dg.ConfigurableIOManager):
    base_dir: str | None = Field(
        default=None, description="root folder of stored asset values; unset = the project's storage/assets"
    )
    suffix: str = ""

    def _path(self, key: dg.AssetKey, partition: str | None) -> Path:
        base = self.base_dir or StoragePaths(project_root() / "storage").assets
        root = Path(base).joinpath(*key.path)
        return root / f"{partition}{self.suffix}" if partition else root.with_name(root.name + self.suffix)

    def path_for(self, context: dg.OutputContext) -> Path:
        partition = context.asset_partition_key if context.has_asset_partitions else None
        return self._path(context.asset_key, partition)

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        path = self.path_for(context)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._write(obj, path)
        context.add_output_metadata({"stored_at": dg.MetadataValue.path(str(path))})

    def load_input(self, context: dg.InputContext) -> Any:
        key = context.asset_key
        partitions = _input_partitions(context)
        if (context.definition_metadata or {}).get(ALL_PARTITIONS):
            found = {p: self._path(key, p) for p in partitions or []}
            missing = [p for p, path in found.items() if not path.exists()]
            if missing:
                context.log.info(f"{key.to_user_string()}: not materialized yet, left out: {missing}")
            return {p: self._read(path) for p, path in found.items() if path.exists()}
        if partitions is not None and len(partitions) != 1:
            raise ValueError(f"{key.to_user_string()}: expected one partition, got {partitions}")
        return self._read_existing(self._path(key, partitions[0] if partitions else None))

    def _read_existing(self, path: Path) -> Any:
        if not path.exists():
            raise FileNotFoundError(f"no stored value at {path}: materialize the upstream asset first")
        return self._read(path)

    def _write(self, obj: Any, path: Path) -> None:
        raise NotImplementedError

    def _read(self, path: Path) -> Any:
        raise NotImplementedError


def _atomic_write_bytes(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    write(tmp)
    os.replace(tmp, path)


class ParquetIOManager(_FileIOManager):
    """DataFrames as `<base>/<asset>.parquet` (or `<asset>/<partition>.parquet`)."""

    suffix: str = ".parquet"

    def _write(self, obj: pd.DataFrame, path: Path) -> None:
        if not isinstance(obj, pd.DataFrame):
            raise TypeError(f"ParquetIOManager stores DataFrames, got {type(obj).__name__}")
        _atomic_write_bytes(path, lambda tmp: obj.to_parquet(tmp, index=False))

    def _read(self, path: Path) -> pd.DataFrame:
        return pd.read_parquet(path)


class JsonIOManager(_FileIOManager):
    """Plain dicts (e.g. hyperparameters) as JSON."""

    suffix: str = ".json"

    def _write(self, obj: dict, path: Path) -> None:
        _atomic_write_bytes(path, lambda tmp: tmp.write_text(json.dumps(obj, indent=2, sort_keys=True)))

    def _read(self, path: Path) -> dict:
        return json.loads(path.read_text())


class FolderIOManager(_FileIOManager):
    """Folders (model artifacts, report folders): the asset hands over a folder, which is moved here.

    The stored folder replaces the previous one in one rename, so readers never see half of it; the
    loaded value is the folder's `Path`.
    """

    def _write(self, obj: str | os.PathLike, path: Path) -> None:
        source = Path(obj)
        if not source.is_dir():
            raise TypeError(f"FolderIOManager stores folders, got {obj!r}")
        staging = path.with_name(f".{path.name}.staging-{os.getpid()}")
        old = path.with_name(f".{path.name}.old-{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        shutil.move(str(source), staging)
        if path.exists():
            path.rename(old)
        staging.rename(path)
        shutil.rmtree(old, ignore_errors=True)

    def _read(self, path: Path) -> Path:
        return path
