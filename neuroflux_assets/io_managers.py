"""IO managers that keep asset values as ordinary files in the asset store: Parquet, JSON and folders.

No pickles: every value is readable without this code (pandas, a JSON viewer, the artifact loader).
Partitioned assets get one file or folder per partition; an unpartitioned asset that reads every
partition of a partitioned one receives `{partition: value}` for the partitions that exist.

The store is the run's dataset config's `asset_store` (`StoragePaths.asset_store`: `<storage_dir>/assets`
unless set): a local folder or an fsspec URL (`s3://bucket/prefix`), through Dagster's `UPathIOManager`.
Each IO manager reads the `dataset` resource when a run starts, so run config decides where values go.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
from upath import UPath

from neuroflux_assets.metadata import column_schema
from neuroflux_lib.config import DatasetConfig
from neuroflux_lib.paths import StoragePaths

# Input metadata: this input takes every partition of a partitioned upstream asset as {partition: value}.
ALL_PARTITIONS = "neuroflux/all_partitions"


def every_partition() -> dg.AssetIn:
    """An input that reads every existing partition of its partitioned upstream asset as a dict."""
    return dg.AssetIn(partition_mapping=dg.AllPartitionMapping(), metadata={ALL_PARTITIONS: True})


#: In a folder kept in a remote store: its files and digest, written last (no manifest = incomplete).
MANIFEST = ".neuroflux-manifest.json"
_LOCAL_PROTOCOLS = ("", "file", "local")


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


def is_local(path: UPath) -> bool:
    return path.protocol in _LOCAL_PROTOCOLS


def _put(path: UPath, data: bytes) -> None:
    """Locally through a temporary file and a rename, so readers never see half a file; an object store
    publishes an object only once its upload is complete."""
    if not is_local(path):
        path.write_bytes(data)
        return
    target = Path(path.path)
    tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, target)


class _StoreIOManager(dg.UPathIOManager):
    """One file format in the asset store; `definition()` is what the definitions bind."""

    def __init__(self, base_path: UPath, cache_dir: Path) -> None:
        super().__init__(base_path=base_path)
        self.cache_dir = cache_dir
        if not is_local(base_path):
            self.fs.invalidate_cache()  # another pod may have written since this process last listed

    @classmethod
    def for_config(cls, dataset: DatasetConfig) -> _StoreIOManager:
        storage = StoragePaths(dataset.storage_dir)
        return cls(UPath(storage.asset_store(dataset.asset_store)), storage.asset_cache)

    @classmethod
    def definition(cls) -> dg.IOManagerDefinition:
        """Rooted at the run's `dataset` resource (by key, so the run config's storage is the one used)."""

        @dg.io_manager(required_resource_keys={"dataset"}, description=cls.__doc__)
        def store(context: dg.InitResourceContext) -> _StoreIOManager:
            return cls.for_config(context.resources.dataset.dataset_config())

        return store

    def make_directory(self, path: UPath) -> None:
        if is_local(path):  # object stores have no folders
            path.mkdir(parents=True, exist_ok=True)

    def _partition_path(self, context: dg.InputContext | dg.OutputContext, partition: str | None) -> UPath:
        if partition is None:
            return self._get_path(context)
        asset_path = self._get_path_without_extension(context)
        return self._with_extension(self.get_path_for_partition(context, asset_path, partition))

    def load_input(self, context: dg.InputContext) -> Any:
        key = context.asset_key
        partitions = _input_partitions(context)
        if (context.definition_metadata or {}).get(ALL_PARTITIONS):
            found = {p: self._partition_path(context, p) for p in partitions or []}
            present = {p: path for p, path in found.items() if self.path_exists(path)}
            if missing := sorted(set(found) - set(present)):
                context.log.info(f"{key.to_user_string()}: not materialized yet, left out: {missing}")
            return {p: self.load_from_path(context, path) for p, path in present.items()}
        if partitions is not None and len(partitions) != 1:
            raise ValueError(f"{key.to_user_string()}: expected one partition, got {partitions}")
        path = self._partition_path(context, partitions[0] if partitions else None)
        if not self.path_exists(path):
            raise FileNotFoundError(f"no stored value at {path}: materialize the upstream asset first")
        return self.load_from_path(context, path)

    def get_metadata(self, context: dg.OutputContext, obj: Any) -> dict[str, Any]:
        partition = context.asset_partition_key if context.has_asset_partitions else None
        return {
            "stored_at": dg.MetadataValue.path(str(self._partition_path(context, partition))),
            **self._describe(obj),
        }

    def _describe(self, obj: Any) -> dict[str, Any]:
        """Materialization metadata about the stored value itself."""
        return {}


class ParquetIOManager(_StoreIOManager):
    """DataFrames as `<store>/<asset>.parquet` (or `<asset>/<partition>.parquet`)."""

    extension = ".parquet"

    def dump_to_path(self, context: dg.OutputContext, obj: pd.DataFrame, path: UPath) -> None:
        if not isinstance(obj, pd.DataFrame):
            raise TypeError(f"ParquetIOManager stores DataFrames, got {type(obj).__name__}")
        buffer = io.BytesIO()
        obj.to_parquet(buffer, index=False)
        _put(path, buffer.getvalue())

    def load_from_path(self, context: dg.InputContext, path: UPath) -> pd.DataFrame:
        return pd.read_parquet(io.BytesIO(path.read_bytes()))

    def _describe(self, obj: pd.DataFrame) -> dict[str, Any]:
        """The stored columns and their types (the asset's Columns tab), as Dagster's own DataFrame IO
        managers record them. (`TableMetadataSet`, which names this key, is not exported by dagster 1.13.)"""
        return {"dagster/column_schema": column_schema(obj)}


class JsonIOManager(_StoreIOManager):
    """Plain dicts (e.g. hyperparameters) as JSON."""

    extension = ".json"

    def dump_to_path(self, context: dg.OutputContext, obj: dict, path: UPath) -> None:
        _put(path, json.dumps(obj, indent=2, sort_keys=True).encode())

    def load_from_path(self, context: dg.InputContext, path: UPath) -> dict:
        return json.loads(path.read_text())


def _folder_manifest(folder: Path) -> dict[str, Any]:
    """The folder's files (relative path: size) and a digest of their names and contents."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    digest = hashlib.sha256()
    sizes = {}
    for path in files:
        relative = path.relative_to(folder).as_posix()
        with path.open("rb") as handle:
            digest.update(f"{relative}\0{hashlib.file_digest(handle, 'sha256').hexdigest()}\n".encode())
        sizes[relative] = path.stat().st_size
    return {"digest": digest.hexdigest(), "files": sizes}


class FolderIOManager(_StoreIOManager):
    """Folders (model artifacts, report folders): the asset hands over a local folder; loading gives one.

    Locally the folder is moved into the store and replaces the previous one in one rename, so readers
    never see half of it. In a remote store it is uploaded file by file, then a manifest (files and
    content digest); loading downloads it once into `<storage_dir>/cache/assets/`, keyed by the remote
    path and the digest (a new version is a new download), through a temporary folder renamed when
    complete and checked against the digest, so a partial or mixed download is never used.
    """

    def dump_to_path(self, context: dg.OutputContext, obj: str | os.PathLike, path: UPath) -> None:
        source = Path(obj)
        if not source.is_dir():
            raise TypeError(f"FolderIOManager stores folders, got {obj!r}")
        if is_local(path):
            self._move_into_place(source, Path(path.path))
        else:
            self._upload(source, path)

    def load_from_path(self, context: dg.InputContext, path: UPath) -> Path:
        return Path(path.path) if is_local(path) else self._download(path)

    def path_exists(self, path: UPath) -> bool:
        """A remote folder exists once its manifest does (an upload in progress does not count)."""
        return path.exists() if is_local(path) else (path / MANIFEST).exists()

    @staticmethod
    def _move_into_place(source: Path, path: Path) -> None:
        staging = path.with_name(f".{path.name}.staging-{os.getpid()}")
        old = path.with_name(f".{path.name}.old-{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        shutil.move(str(source), staging)
        if path.exists():
            path.rename(old)
        staging.rename(path)
        shutil.rmtree(old, ignore_errors=True)

    def _upload(self, source: Path, path: UPath) -> None:
        manifest = _folder_manifest(source)
        if (path / MANIFEST).exists():
            (path / MANIFEST).unlink()  # readers see "not there" rather than a mix of two versions
        if path.exists():
            self.fs.rm(path.path, recursive=True)
        for relative in manifest["files"]:
            self.fs.put_file(str(source / relative), (path / relative).path)
        (path / MANIFEST).write_text(json.dumps(manifest, indent=2))
        # The handed-over folder is this version's local copy: no download in this process or pod.
        target = self._cached(path, manifest["digest"])
        if target.is_dir():
            shutil.rmtree(source)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(source), target)

    def _cached(self, path: UPath, digest: str) -> Path:
        return self.cache_dir / hashlib.sha256(str(path).encode()).hexdigest()[:16] / digest[:16]

    def _download(self, path: UPath) -> Path:
        manifest = json.loads((path / MANIFEST).read_text())
        target = self._cached(path, manifest["digest"])
        if target.is_dir():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
        try:
            for relative in manifest["files"]:
                (partial / relative).parent.mkdir(parents=True, exist_ok=True)
                self.fs.get_file((path / relative).path, str(partial / relative))
            if _folder_manifest(partial) != manifest:
                raise OSError(f"{path} changed while it was downloaded: load it again")
            try:
                partial.rename(target)
            except OSError:
                if not target.is_dir():  # else another process finished the same download first
                    raise
        finally:
            shutil.rmtree(partial, ignore_errors=True)
        return target
