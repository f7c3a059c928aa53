"""The one `Definitions` object, `defs`: everything under `neuroflux_assets/defs/`, found by
`dg.load_from_defs_folder` ([tool.dg] in pyproject.toml), so a new module there needs no registration.
`dagster dev -w workspace.yaml`, `dg check defs`, `dg dev` and the deploy/ code server load it."""

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_shared.record import replace

from neuroflux_assets.executors import executor_from_env


def build_definitions(resources: Mapping[str, Any] | None = None) -> dg.Definitions:
    """The project's definitions; `resources` replaces some by key (tests and the CLI bind the `dataset`
    resource, and with it where the IO managers store values, to their configs). `Definitions.merge`
    refuses two values for one resource key and Dagster has no public override, hence the record
    `replace`."""
    loaded = dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
    if executor := executor_from_env():  # NEUROFLUX_EXECUTOR=k8s: each step in its own pod
        loaded = replace(loaded, executor=executor)
    return replace(loaded, resources={**loaded.resources, **resources}) if resources else loaded


defs = build_definitions()
