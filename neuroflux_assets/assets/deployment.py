"""Stage 4, group `deployment`: promote the best model that passed every check."""

import shutil
from pathlib import Path

import dagster as dg

from neuroflux_assets import metadata as md
from neuroflux_assets.io_managers import ALL_PARTITIONS
from neuroflux_assets.resources import DatasetResource, ThresholdsResource
from neuroflux_lib.artifacts import read_meta
from neuroflux_lib.evaluation.promotion import choose_production
from neuroflux_lib.paths import StoragePaths

GROUP = "deployment"


@dg.asset(
    group_name=GROUP,
    code_version="1",
    io_manager_key="folder_io_manager",
    ins={
        "trained_model": dg.AssetIn(
            partition_mapping=dg.AllPartitionMapping(), metadata={ALL_PARTITIONS: True}
        ),
        "evaluation_report": dg.AssetIn(
            partition_mapping=dg.AllPartitionMapping(), metadata={ALL_PARTITIONS: True}
        ),
    },
    kinds={"pytorch", "safetensors"},
)
def production_model(
    context: dg.AssetExecutionContext,
    dataset: DatasetResource,
    thresholds: ThresholdsResource,
    trained_model: dict[str, Path],
    evaluation_report: dict[str, Path],
) -> dg.Output[Path]:
    """A copy of the best (test macro-F1) model artifact among those that pass every check.

    The blocking check stops this asset in a run where the run's model failed; because other models'
    evaluations come from earlier runs, the same rules are re-applied here to every candidate.
    """
    promotion = choose_production(trained_model, evaluation_report, thresholds.quality_bar())
    table = promotion.candidates
    if promotion.model is None:
        raise dg.Failure(description=promotion.why, metadata={"candidates": md.table(table, index=False)})
    best, others, why = promotion.winner, promotion.others, promotion.why
    staging = StoragePaths(dataset.dataset_config().storage_dir).work(context.run.run_id, "production_model")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(trained_model[promotion.model], staging)
    meta = read_meta(staging)
    context.log.info(f"promoting {promotion.model}: {why}")
    return dg.Output(
        staging,
        metadata={
            "model": promotion.model,
            "why": why,
            "macro_f1": float(best["macro_f1"]),
            "accuracy": float(best["accuracy"]),
            "min_macro_f1": thresholds.quality_bar(),
            "weights_origin": meta.weights_origin,
            "data_version": meta.data_version or "",
            "candidates": md.table(table, index=False),
            "not_promoted": md.bullet_list(f"{r.model}: {r.why}" for r in others.itertuples()),
        },
    )
