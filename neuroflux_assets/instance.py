"""The project's Dagster instance and what it has materialized.

Below `api` and the definitions: sensors, the CLI and `api` all ask the instance, and none of them may
have to build the definitions (or import every asset module) to do so.
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from neuroflux_lib.paths import project_root


def project_instance(storage_dir: str | Path | None = None) -> dg.DagsterInstance:
    """$DAGSTER_HOME's instance when set, else one in `storage_dir` (default the project's `storage/`)
    configured by the root dagster.yaml."""
    if os.environ.get("DAGSTER_HOME"):
        return dg.DagsterInstance.get()
    from dagster._core.instance.ref import InstanceRef

    storage = Path(storage_dir or project_root() / "storage")
    storage.mkdir(parents=True, exist_ok=True)
    return dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(storage), config_dir=str(project_root())))


def has_materialization(instance: dg.DagsterInstance, key: dg.AssetKey, partition: str | None) -> bool:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition] if partition else None), limit=1
    )
    return bool(records.records)
