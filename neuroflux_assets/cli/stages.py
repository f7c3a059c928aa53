"""Which assets a mode materializes, taken from the jobs' selections, and what a session already holds."""

from __future__ import annotations

import dagster as dg

from neuroflux_assets.cli.runner import Session
from neuroflux_assets.defs.jobs import MODEL_STAGE_KEYS, data_stage
from neuroflux_assets.instance import has_materialization

#: What `train` materializes: the model stage up to the test report (cross-validation and promotion are
#: the pipeline's).
train_stage = (
    dg.AssetSelection.assets(*MODEL_STAGE_KEYS) & dg.AssetSelection.assets("evaluation_report").upstream()
)


def keys_of(session: Session, selection: dg.AssetSelection) -> list[dg.AssetKey]:
    return sorted(selection.resolve(session.defs.resolve_asset_graph()), key=lambda k: k.to_user_string())


def data_keys(session: Session) -> list[dg.AssetKey]:
    """The data assets and the baselines: what `neuroflux preprocess` materializes."""
    return keys_of(session, data_stage)


def materialized(session: Session, key: dg.AssetKey, partition: str | None = None) -> bool:
    return has_materialization(session.instance, key, partition)


def with_data_first(session: Session, keys: list[dg.AssetKey]) -> list[dg.AssetKey]:
    """`keys`, preceded by the data assets when those were never materialized in this instance."""
    data = data_keys(session)
    if all(materialized(session, key) for key in data):
        return keys
    print("The data assets have not been materialized yet: preprocessing first")
    return data + keys
