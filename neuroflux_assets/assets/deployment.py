"""Stage 4, group `deployment`: promote the best model that passed every check."""

import shutil
from pathlib import Path

import dagster as dg
import pandas as pd

from neuroflux_assets import metadata as md
from neuroflux_assets.gates import artifact_problems, meets_quality_bar, read_report
from neuroflux_assets.io_managers import ALL_PARTITIONS
from neuroflux_assets.resources import DatasetResource, ThresholdsResource
from neuroflux_lib.artifacts import read_meta

GROUP = "deployment"


def compare_models(trained: dict[str, Path], reports: dict[str, Path], min_macro_f1: float) -> pd.DataFrame:
    """One row per model with an evaluation: metrics and whether it passes the rules (re-applied here)."""
    rows = []
    for name, report_dir in sorted(reports.items()):
        report = read_report(report_dir)
        passed, why = meets_quality_bar(report, min_macro_f1)
        problems = artifact_problems(trained[name]) if name in trained else ["no trained_model artifact"]
        rows.append(
            {
                "model": name,
                "macro_f1": float(report["macro_f1"]),
                "accuracy": float(report["accuracy"]),
                "n_test": int(report["n_test"]),
                "passed": passed and not problems,
                "why": "; ".join([why, *problems]),
            }
        )
    return pd.DataFrame(rows, columns=["model", "macro_f1", "accuracy", "n_test", "passed", "why"])


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
    table = compare_models(trained_model, evaluation_report, thresholds.min_macro_f1)
    if table.empty or not table["passed"].any():
        raise dg.Failure(
            description="no model passed its checks: nothing promoted",
            metadata={"candidates": md.table(table, index=False)},
        )
    best = table.loc[table["passed"]].sort_values(["macro_f1", "accuracy"], ascending=False).iloc[0]
    others = table.loc[table["model"] != best["model"]]
    why = f"highest test macro-F1 ({best['macro_f1']:.3f}) of {int(table['passed'].sum())} passing model(s)"
    data = dataset.dataset_config()
    staging = Path(data.storage_dir) / "dagster" / "work" / context.run.run_id / "production_model"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(trained_model[best["model"]], staging)
    meta = read_meta(staging)
    context.log.info(f"promoting {best['model']}: {why}")
    return dg.Output(
        staging,
        metadata={
            "model": str(best["model"]),
            "why": why,
            "macro_f1": float(best["macro_f1"]),
            "accuracy": float(best["accuracy"]),
            "min_macro_f1": thresholds.min_macro_f1,
            "weights_origin": meta.weights_origin,
            "data_version": meta.data_version or "",
            "candidates": md.table(table, index=False),
            "not_promoted": md.bullet_list(f"{r.model}: {r.why}" for r in others.itertuples()),
        },
    )
