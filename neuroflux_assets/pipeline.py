"""Materialize the whole graph in this process, through Dagster, into an instance (CLI, tests, make).

Same plan as the sensor: the full job for the first model, then the model stage for the others, then
print the production model's report. `python -m neuroflux_assets.pipeline --profile cpu-demo`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import dagster as dg

from neuroflux_assets.api import has_materialization
from neuroflux_assets.jobs import MODEL_STAGE_KEYS
from neuroflux_assets.partitions import model_partitions
from neuroflux_lib.config import DatasetConfig
from neuroflux_lib.evaluation.comparison import comparison_text
from neuroflux_lib.evaluation.confound import confound_text
from neuroflux_lib.evaluation.intervals import Interval
from neuroflux_lib.evaluation.report import read_report, read_report_text

DATA_SUMMARY_KEYS = ("raw_images", "outliers", "dataset_splits", "balanced_train_set")


def profile_run_config(profile: str, run_config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """`run_config` with the dataset resource's profile set (other resource settings kept)."""
    config = {key: dict(value) for key, value in (run_config or {}).items()}
    resources = config.setdefault("resources", {})
    dataset = resources.setdefault("dataset", {}).setdefault("config", {})
    dataset["profile"] = profile
    # The terminal shows progress (epochs, trials, checks), not every Dagster engine event; the UI has all.
    config.setdefault("loggers", {"console": {"config": {"log_level": "INFO"}}})
    return config


def materialize_all(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    run_config: Mapping[str, Any] | None = None,
    job_name: str = "full_pipeline",
    models: Sequence[str] | None = None,
) -> list[dg.ExecuteInProcessResult]:
    """One in-process run per model partition (`models`, default all); failures are returned, not
    raised (a blocking check that fails is a legitimate outcome)."""
    job = defs.resolve_job_def(job_name)
    results = []
    for index, partition in enumerate(models or model_partitions.get_partition_keys()):
        results.append(
            job.execute_in_process(
                run_config=dict(run_config or {}),
                instance=instance,
                partition_key=partition,
                asset_selection=None if index == 0 else MODEL_STAGE_KEYS,
                raise_on_error=False,
            )
        )
    return results


def data_summary(
    defs: dg.Definitions, instance: dg.DagsterInstance, config: DatasetConfig | None = None
) -> str:
    """The library's preprocessing summary, from the materialized data assets."""
    from neuroflux_assets.settings import file_dataset_config
    from neuroflux_lib.data.pipeline import tables_summary

    tables = [defs.load_asset_value(key, instance=instance) for key in DATA_SUMMARY_KEYS]
    return tables_summary(*tables, config or file_dataset_config())


def tracking_summary(defs: dg.Definitions, instance: dg.DagsterInstance) -> str:
    """Each model's study and where its W&B runs are."""
    from neuroflux_lib.tracking import runs_table

    lines = []
    for partition in model_partitions.get_partition_keys():
        if not has_materialization(instance, dg.AssetKey("tuned_hyperparameters"), partition):
            continue
        value = defs.load_asset_value("tuned_hyperparameters", partition_key=partition, instance=instance)
        study = value.get("study")
        if study:
            lines.append(
                f"{partition}: study {study['name']} trials {study['trials']}, best val macro-F1 "
                f"{study['best_value']:.3f}; trained with {value['source']}"
            )
    resources = defs.resources  # where the runs of this definitions' tracking resource go
    root = Path(resources["tracking"].settings(resources["dataset"].dataset_config().storage_dir).root)
    runs = runs_table(root)
    if not runs.empty:
        counts = runs["job_type"].value_counts().to_dict()
        lines.append(f"W&B: {len(runs)} offline runs {counts} in {root}/ (list: neuroflux runs)")
    return "\n" + "\n".join(lines)


def evaluation_summary(defs: dg.Definitions, instance: dg.DagsterInstance, partition: str) -> str:
    """The model's test report, then model vs baselines with intervals, the verdict and the confound
    warning: what a person must read before believing the numbers."""
    report_dir = Path(defs.load_asset_value("evaluation_report", partition_key=partition, instance=instance))
    report = read_report(report_dir)
    lines = [f"{partition} on the test set ({report['n_test']} images):", read_report_text(report_dir)]
    if "comparison" in report:
        lines.append(comparison_text(report["comparison"], partition))
    subject = report.get("subject_level")
    if subject:
        lines.append(
            f"subject level ({subject['n_subjects']} subjects): macro-F1 {Interval(**subject['macro_f1'])}"
        )
    if report.get("confound", {}).get("scores"):
        lines.append(confound_text(report["confound"]))
    if report.get("confound_warning"):
        lines.append(f"WARNING: {report['confound_warning']}")
    return "\n".join(lines)


def promotion_summary(defs: dg.Definitions, instance: dg.DagsterInstance) -> str:
    """The latest promotion decision: the production model's report, or why nothing was promoted."""
    from neuroflux_assets.api import production_report

    key = dg.AssetKey("production_model")
    observed = instance.fetch_observations(key, limit=1).records
    promoted = instance.fetch_materializations(key, limit=1).records
    if observed and (not promoted or observed[0].timestamp > promoted[0].timestamp):
        why = observed[0].asset_observation.metadata["why"].value
        kept = " (the previous production model stays)" if promoted else ""
        return f"No model promoted{kept}: {why}"
    if not promoted:
        return "No model promoted: no run reached production_model"
    return production_report(instance=instance, defs=defs)


def failed_checks(result: dg.ExecuteInProcessResult) -> list[str]:
    """`asset.check: metadata` for every check of the run that failed (blocking ones stop the run)."""
    lines = []
    for evaluation in result.get_asset_check_evaluations():
        if not evaluation.passed:
            details = ", ".join(f"{k} {v.value}" for k, v in evaluation.metadata.items())
            lines.append(f"{evaluation.asset_key.to_user_string()}.{evaluation.check_name}: {details}")
    return lines


def run_outcome(partition: str, result: dg.ExecuteInProcessResult) -> tuple[str, bool]:
    """(one line, whether it is a normal outcome). A run stopped by a failed blocking check (e.g. a model
    that did not learn) is normal: the check says why and nothing downstream used the model."""
    checks = failed_checks(result)
    if result.success:
        return f"run {result.run_id} ({partition}): succeeded", True
    if checks:
        return f"run {result.run_id} ({partition}): stopped by a check: {'; '.join(checks)}", True
    return f"run {result.run_id} ({partition}): FAILED", False


def main(argv: list[str] | None = None) -> int:
    """Exit 0 when every step ran, promoted or not (blocked is a normal outcome); 1 when a step failed."""
    from neuroflux_assets.definitions import defs
    from neuroflux_assets.jobs import profile_models

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", default="cpu-demo", help="configs/profiles/<name>.json")
    args = parser.parse_args(argv)
    instance = dg.DagsterInstance.get()
    models = profile_models(args.profile)
    print(f"profile {args.profile}: training {', '.join(models)}")
    results = materialize_all(defs, instance, profile_run_config(args.profile), models=models)
    outcomes = [run_outcome(partition, result) for partition, result in zip(models, results, strict=True)]
    for line, _ in outcomes:
        print(line)
    print(data_summary(defs, instance))
    for partition in models:
        if has_materialization(instance, dg.AssetKey("evaluation_report"), partition):
            print("\n" + evaluation_summary(defs, instance, partition))
    print(tracking_summary(defs, instance))
    print("\n" + promotion_summary(defs, instance))
    return 0 if all(normal for _, normal in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
