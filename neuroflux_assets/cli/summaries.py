"""What the terminal shows after a run: built from the materialized assets and the run's events, so the
command line reports what the UI would show, never a second computation."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path

import dagster as dg
import pandas as pd

from neuroflux_assets.instance import has_materialization
from neuroflux_assets.partitions import model_partitions
from neuroflux_lib.config import DatasetConfig
from neuroflux_lib.evaluation.comparison import comparison_text
from neuroflux_lib.evaluation.confound import confound_text
from neuroflux_lib.evaluation.report import EvaluationReport, read_report, read_report_text

DATA_SUMMARY_KEYS = ("raw_images", "outliers", "dataset_splits", "balanced_train_set")


def data_summary(defs: dg.Definitions, instance: dg.DagsterInstance, config: DatasetConfig) -> str:
    """The library's preprocessing summary, from the materialized data assets and the run's config."""
    from neuroflux_lib.data.pipeline import tables_summary

    tables = [defs.load_asset_value(key, instance=instance) for key in DATA_SUMMARY_KEYS]
    return tables_summary(*tables, config)


def tracking_summary(defs: dg.Definitions, instance: dg.DagsterInstance, storage_dir: str) -> str:
    """Each model's study and where the W&B runs of `storage_dir` are."""
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
    root = Path(defs.resources["tracking"].settings(storage_dir).root)
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
    lines = [f"{partition} on the test set ({report.n_test} images):", read_report_text(report_dir)]
    if report.comparison is not None:
        lines.append(comparison_text(report.comparison, partition))
    subject = report.subject_level
    lines.append(f"subject level ({subject.n_subjects} subjects): macro-F1 {subject.macro_f1}")
    if report.confound.scores:
        lines.append(confound_text(report.confound))
    if report.confound_warning:
        lines.append(f"WARNING: {report.confound_warning}")
    return "\n".join(lines)


def model_evaluation(defs: dg.Definitions, instance: dg.DagsterInstance, partition: str) -> str:
    """`train`, `evaluate`: the evaluation summary, then where the report's files are."""
    report_dir = defs.load_asset_value("evaluation_report", partition_key=partition, instance=instance)
    return f"{evaluation_summary(defs, instance, partition)}\nReport and plots: {report_dir}/"


def folder_evaluation_summary(name: str, report: EvaluationReport, folder: Path, report_dir: Path) -> str:
    """`evaluate --artifact`: the report of a model folder that is not an asset, and where it went."""
    lines = [
        f"{name} on the test set ({report.n_test} images), model folder {folder}:",
        report.classification_report,
    ]
    if report.comparison is not None:
        lines.append(comparison_text(report.comparison, name))
    lines.append(f"Report and plots: {report_dir}/")
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


def training_summary(model_name: str, metadata: Mapping[str, dg.MetadataValue]) -> str:
    """`train`: how the model was trained, from its `trained_model` materialization."""
    meta = {k: v.value for k, v in metadata.items()}
    return (
        f"\n{model_name}: {meta['epochs_run']} epochs on {meta['device']} ({meta['precision']}), best epoch "
        f"{meta['best_epoch']} ({meta['monitor']}), weights {meta['weights_origin']}, frozen layers "
        f"{meta['frozen_layers']}\nNormalization: {meta['normalization']}\n"
        f"Augmentation: {meta['augmentation']}\nFrozen-feature cache: {meta['feature_cache']}\n"
        f"Did it learn? {meta['learn_check']}\n"
        f"Hyperparameters: {meta['hyperparameters_source']}\nW&B run: {meta['wandb_run']}\n"
        f"Artifact: {meta['stored_at']}"
    )


def study_summary(value: dict) -> str:
    """`tune`: the study and its best hyperparameters, from the `tuned_hyperparameters` value."""
    study = value["study"]
    return (
        f"\nstudy {study['name']} ({study['storage']}): trials {study['trials']}, best trial "
        f"{study['best_trial']} val macro-F1 {study['best_value']}\nbest hyperparameters: "
        f"{json.dumps(value['best_params'], indent=2)}\n{value['source']}"
    )


def incoming_summary(
    table: pd.DataFrame, class_names: Iterable[str], result: dg.ExecuteInProcessResult
) -> str:
    """`predict --batch`: counts per class, the flagged images and the drift verdict."""
    from neuroflux_lib.serving.incoming import batch_summary, class_counts

    lines = [batch_summary(table), class_counts(table, list(class_names)).to_string()]
    lines += [
        f"  flagged {row.file}: {row.ood_kind}: {row.ood_reason}"
        for row in table.loc[table["out_of_distribution"]].itertuples()
    ]
    lines += [
        f"{evaluation.check_name}: {evaluation.metadata['verdict'].value}"
        for evaluation in result.get_asset_check_evaluations()
    ]
    return "\n".join(lines)


def print_predictions(predictions: Iterable, as_json: bool = False) -> None:
    """One block per image as it is predicted (label, confidence, every class's probability), or a JSON
    list (rows are small: the images are never all in memory); both say whether they are calibrated."""
    if as_json:
        rows = [
            {
                "image": p.source,
                "label": p.label,
                "probabilities": p.probabilities,
                "calibrated": p.calibrated,
                "temperature": p.temperature,
            }
            for p in predictions
        ]
        print(json.dumps(rows, indent=2))
        return
    for index, p in enumerate(predictions):
        if index == 0:
            print(f"{p.probability_kind}:")
        probabilities = "  ".join(f"{name} {value:.3f}" for name, value in p.probabilities.items())
        print(f"{p.source}: {p.label} ({p.confidence:.1%})\n  {probabilities}", flush=True)


def runs_summary(table: pd.DataFrame, show_trials: bool) -> str:
    """`runs`: the offline W&B runs, tuning trials counted unless `show_trials`."""
    trials = table.get("job_type", pd.Series(index=table.index, dtype=object)) == "tune"
    shown = table if show_trials else table.loc[~trials]
    lines = []
    if not shown.empty:
        shown = shown.dropna(axis=1, how="all").drop(columns=["group"], errors="ignore")
        with pd.option_context("display.max_rows", None, "display.width", 250, "display.max_colwidth", 70):
            lines.append(shown.to_string(index=False, na_rep=""))
    if trials.any() and not show_trials:
        lines.append(f"(and {int(trials.sum())} tuning-trial runs: `--all` lists them)")
    return "\n".join(lines)


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
