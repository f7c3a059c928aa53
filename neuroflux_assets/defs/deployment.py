"""Stage 4, group `deployment`: promote the model chosen on validation, when the test split supports it.

Not promoting is a normal outcome (the model does not beat its baselines): the step succeeds, says why
in its log and in an observation of `production_model`, and the previous production model stays.
"""

import shutil
from pathlib import Path

import dagster as dg
import pandas as pd

from neuroflux_assets import metadata as md
from neuroflux_assets.io_managers import every_partition
from neuroflux_assets.locking import writing
from neuroflux_assets.resources import DatasetResource, ThresholdsResource, TrackingResource
from neuroflux_lib.data.splits import data_version
from neuroflux_lib.evaluation.promotion import choose_production
from neuroflux_lib.evaluation.report import read_report
from neuroflux_lib.paths import StoragePaths
from neuroflux_lib.serving.artifacts import read_meta
from neuroflux_lib.serving.export import export_for_serving
from neuroflux_lib.serving.model_card import write_model_card
from neuroflux_lib.tracking.wandb_run import publish_model

GROUP = "deployment"


@dg.asset(
    group_name=GROUP,
    code_version="2",
    io_manager_key="folder_io_manager",
    ins={
        "trained_model": every_partition(),
        "evaluation_report": every_partition(),
    },
    output_required=False,
    kinds={"pytorch", "safetensors"},
)
def production_model(
    context: dg.AssetExecutionContext,
    dataset: DatasetResource,
    thresholds: ThresholdsResource,
    tracking: TrackingResource,
    trained_model: dict[str, Path],
    evaluation_report: dict[str, Path],
    dataset_splits: pd.DataFrame,
):
    """A copy of the model with the highest validation macro-F1 among those evaluated on the current
    data version, promoted only when its paired interval against the best baseline on the test split
    lies above `thresholds.min_gain`. The rules are the library's (`choose_production`), re-applied
    here to every partition's latest evaluation. The folder holds the full model card; online, it is
    also logged as the W&B model artifact `production_model` (offline, its UPLOAD.md says how)."""
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
    with writing(context, dataset.dataset_config().storage_dir, "production", "promoting a production model"):
        staging = StoragePaths(dataset.dataset_config().storage_dir).work(
            context.run.run_id, "production_model"
        )
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(trained_model[promotion.model], staging)
        meta = read_meta(staging)
        card = write_model_card(
            staging, meta, dataset_splits, read_report(evaluation_report[promotion.model])
        ).read_text()
        serving = export_for_serving(staging)
        context.log.info(f"serving backend: {serving}")
        run_id = context.run.run_id
        uploaded = publish_model(
            tracking.settings(dataset.dataset_config().storage_dir),
            staging,
            name="production_model",
            aliases=["production", promotion.model, f"data-{meta.data_version}"],
            card=card,
            metadata={
                "model": promotion.model,
                "why": promotion.why,
                "val_macro_f1": float(best["val_macro_f1"]),
                "test_macro_f1": float(best["test_macro_f1"]),
                "gain_vs_best_baseline": str(best["gain_vs_best_baseline"]),
                "temperature": meta.temperature,
                "data_version": meta.data_version,
                "dagster_run_id": run_id,
            },
            run_name=f"{promotion.model}-promote-{run_id[:8]}",
            tags=(promotion.model, dataset.profile_name, "production"),
            config={**meta.hyperparameters, "dagster_run_id": run_id, "profile": dataset.profile_name},
        )
        context.log.info(f"W&B model artifact: {uploaded}")
        yield dg.MaterializeResult(
            value=staging,
            metadata={
                "model": promotion.model,
                **metadata,
                "val_macro_f1": float(best["val_macro_f1"]),
                "test_macro_f1": float(best["test_macro_f1"]),
                "gain_vs_best_baseline": str(best["gain_vs_best_baseline"]),
                "weights_origin": meta.weights_origin,
                "data_version": meta.data_version or "",
                "not_promoted": md.bullet_list(f"{r.model}: {r.why}" for r in others.itertuples()),
                "temperature": float(meta.temperature),
                "serving": serving,
                "model_card": dg.MetadataValue.md(card),
                "wandb_artifact": dg.MetadataValue.url(uploaded) if uploaded.startswith("http") else uploaded,
            },
        )
