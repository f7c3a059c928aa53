"""Python access to materialized assets: `load_predictor()` from any process.

Values are located through the Dagster instance ($DAGSTER_HOME, else the one in the configured
`storage_dir`, like the CLI) and loaded through the IO managers from the configured asset store, so a
new process with the same profile and environment finds what a run (or another pod) stored; a model is
only loadable once a run has materialized it.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from neuroflux_assets.instance import has_materialization, project_instance
from neuroflux_lib.errors import ConfigError, NotMaterializedError
from neuroflux_lib.serving.predictor import Predictor


def configured_instance(defs: dg.Definitions) -> dg.DagsterInstance:
    """The instance of the `dataset` resource's `storage_dir` (the profile and environment in force)."""
    return project_instance(defs.resources["dataset"].dataset_config().storage_dir)


def artifact_path(
    model: str | None = None,
    *,
    instance: dg.DagsterInstance | None = None,
    defs: dg.Definitions | None = None,
) -> Path:
    """Folder of `production_model` (model None) or of the `trained_model` partition `model`."""
    from neuroflux_assets.definitions import defs as project_defs
    from neuroflux_assets.partitions import model_partitions

    defs = defs or project_defs
    instance = instance or configured_instance(defs)
    if model is not None and model not in model_partitions.get_partition_keys():
        raise ConfigError(f"unknown model {model!r}; expected one of {model_partitions.get_partition_keys()}")
    key = dg.AssetKey("production_model" if model is None else "trained_model")
    if not has_materialization(instance, key, model):
        what, how = (
            ("production_model", "`make demo`")
            if model is None
            else (f"trained_model[{model}]", f"`neuroflux train` with the {model} config, `make demo`")
        )
        raise NotMaterializedError(
            f"{what} has not been materialized in this Dagster instance ({instance.root_directory}): "
            f"run {how} or materialize it from the UI (`make dev`)"
        )
    return Path(defs.load_asset_value(key, partition_key=model, instance=instance))


def load_predictor(
    model: str | None = None,
    *,
    instance: dg.DagsterInstance | None = None,
    defs: dg.Definitions | None = None,
    device: str = "cpu",
) -> Predictor:
    """`load_predictor().predict("scan.jpg")`: the production model, or `load_predictor("resnet50")`."""
    return Predictor.from_artifact(artifact_path(model, instance=instance, defs=defs), device=device)


def production_report(
    *, instance: dg.DagsterInstance | None = None, defs: dg.Definitions | None = None
) -> str:
    """The production model's name, why it was chosen, and its classification report."""
    from neuroflux_assets.definitions import defs as project_defs
    from neuroflux_lib.evaluation.report import read_report_text
    from neuroflux_lib.serving.artifacts import read_meta

    defs = defs or project_defs
    instance = instance or configured_instance(defs)
    path = artifact_path(None, instance=instance, defs=defs)
    meta = read_meta(path)
    event = instance.get_latest_materialization_event(dg.AssetKey("production_model"))
    materialization = event.asset_materialization if event else None
    details = {k: v.value for k, v in (materialization.metadata.items() if materialization else [])}
    report_key = dg.AssetKey("evaluation_report")
    report_dir = Path(defs.load_asset_value(report_key, partition_key=meta.architecture, instance=instance))
    text = read_report_text(report_dir)
    return (
        f"Production model: {details.get('model', meta.architecture)} ({details.get('why', '')})\n"
        f"Artifact: {path}\nWeights origin: {meta.weights_origin}\n"
        f"Test report ({report_dir}):\n{text}"
    )
