"""Stage 4, group `deployment`: promote the model chosen on validation, when the test split supports it.

Not promoting is a normal outcome (the model does not beat its baselines): the step succeeds, says why
in its log and in an observation of `production_model`, and the previous production model stays.
"""

import shutil
from pathlib import Path

import dagster as dg
import pandas as pd

from neuroflux_assets import metadata as md
from neuroflux_assets.io_managers import ALL_PARTITIONS
from neuroflux_assets.resources import DatasetResource, ThresholdsResource
from neuroflux_lib.artifacts import read_meta
from neuroflux_lib.data.splits import data_version
from neuroflux_lib.evaluation.promotion import choose_production
from neuroflux_lib.paths import StoragePaths

GROUP = "deployment"


@dg.asset(
    group_name=GROUP,
    code_version="2",
    io_manager_key="folder_io_manager",
    ins={
        "trained_model": dg.AssetIn(
            partition_mapping=dg.AllPartitionMapping(), metadata={ALL_PARTITIONS: True}
        ),
        "evaluation_report": dg.AssetIn(
            partition_mapping=dg.AllPartitionMapping(), metadata={ALL_PARTITIONS: True}
        ),
    },
    output_required=False,
    kinds={"pytorch", "safetensors"},
)
def production_model(
    context: dg.AssetExecutionContext,
    dataset: DatasetResource,
    thresholds: ThresholdsResource,
    trained_model: dict[str, Path],
    evaluation_report: dict[str, Path],
    dataset_splits: pd.DataFrame,
):
    """A copy of the model with the highest validation macro-F1 among those evaluated on the current
    data version, promoted only when its paired interval against the best baseline on the test split
    lies above `thresholds.min_gain`. The rules are the library's (`choose_production`), re-applied
    here to every partition's latest evaluation."""
    gate = thresholds.gate()
    promotion = choose_production(trained_model, evaluation_report, gate, data_version(dataset_splits))
    table = promotion.candidates
    metadata = {
        "why": promotion.why,
        "min_gain": gate.min_gain,
        "min_macro_f1": gate.min_macro_f1 if gate.min_macro_f1 is not None else "off",
        "candidates": md.table(table, index=False),
    }
    context.log.info(promotion.why)
    if promotion.model is None:
        context.log_event(dg.AssetObservation(asset_key=context.asset_key, metadata=metadata))
        return
    best, others = promotion.winner, promotion.others
    staging = StoragePaths(dataset.dataset_config().storage_dir).work(context.run.run_id, "production_model")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(trained_model[promotion.model], staging)
    meta = read_meta(staging)
    yield dg.Output(
        staging,
        metadata={
            "model": promotion.model,
            **metadata,
            "val_macro_f1": float(best["val_macro_f1"]),
            "test_macro_f1": float(best["test_macro_f1"]),
            "gain_vs_best_baseline": str(best["gain_vs_best_baseline"]),
            "weights_origin": meta.weights_origin,
            "data_version": meta.data_version or "",
            "not_promoted": md.bullet_list(f"{r.model}: {r.why}" for r in others.itertuples()),
        },
    )
