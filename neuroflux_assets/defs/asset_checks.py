"""Asset checks: each says in its metadata what failed and by how much.

Data checks that make every later number meaningless are blocking: a class with too few images or
missing from a split (the model never sees it, or the test set cannot score it), and too many files
without a subject id (the splits' leak-freedom cannot be verified). Their metadata names the setting
to change. The other data checks warn (a person decides whether a few bad files matter).
"""

from collections.abc import Callable
from pathlib import Path

import dagster as dg
import pandas as pd

from neuroflux_assets import metadata as md
from neuroflux_assets.partitions import incoming_batches, model_partitions
from neuroflux_assets.resources import DatasetResource, ThresholdsResource
from neuroflux_lib.data.discovery import NO_SUBJECT, no_subject_problem
from neuroflux_lib.data.splits import (
    LeakageError,
    class_shortfalls,
    empty_split_cells,
    split_counts,
    verify_no_leakage,
)
from neuroflux_lib.evaluation.promotion import artifact_problems, passes_gate
from neuroflux_lib.evaluation.report import read_report
from neuroflux_lib.monitoring.drift import ALPHA, PSI_THRESHOLD
from neuroflux_lib.serving.artifacts import read_meta
from neuroflux_lib.serving.incoming import TrainingReference, batch_drift
from neuroflux_lib.training.learn_check import recorded_learn_check


def blocking_check(asset: str, description: str) -> Callable:
    """A data check that stops the graph when it fails: no model is trained on data that cannot be used."""
    return dg.asset_check(asset=asset, blocking=True, description=f"{description}; blocking")


# ---- raw_images -----------------------------------------------------------------------------------


@blocking_check("raw_images", "every configured class has at least one readable image")
def all_classes_present(dataset: DatasetResource, raw_images: pd.DataFrame) -> dg.AssetCheckResult:
    names = list(dataset.dataset_config().class_names)
    present = set(raw_images.loc[raw_images["readable"].astype(bool), "class_name"])
    missing = [name for name in names if name not in present]
    return dg.AssetCheckResult(
        passed=not missing,
        metadata={"missing_classes": md.bullet_list(missing), "expected": ", ".join(names)},
    )


@blocking_check("raw_images", "each class has at least the dataset's `min_images_per_class` readable images")
def min_images_per_class(dataset: DatasetResource, raw_images: pd.DataFrame) -> dg.AssetCheckResult:
    config = dataset.dataset_config()
    readable = raw_images.loc[raw_images["readable"].astype(bool)]
    short = class_shortfalls(readable, config.class_names, config.min_images_per_class)
    counts = readable.groupby("class_name").size().reindex(list(config.class_names), fill_value=0)
    return dg.AssetCheckResult(
        passed=not short,
        metadata={
            "minimum": config.min_images_per_class,
            "below_minimum": md.bullet_list(f"{k}: {v} readable images" for k, v in short.items()),
            "fix": "add images to the class folder, remove the class from class_names, or lower "
            "min_images_per_class in the dataset config",
            "counts": md.table(counts.rename("readable").to_frame().rename_axis("class")),
        },
    )


@blocking_check(
    "raw_images", "at most the dataset's `max_no_subject_fraction` of the files have no subject id"
)
def subject_ids_found(dataset: DatasetResource, raw_images: pd.DataFrame) -> dg.AssetCheckResult:
    config = dataset.dataset_config()
    problem = no_subject_problem(raw_images, config.max_no_subject_fraction)
    missing = raw_images.loc[raw_images["subject_source"] == NO_SUBJECT, "path"]
    return dg.AssetCheckResult(
        passed=problem is None,
        metadata={
            "files_without_subject_id": len(missing),
            "fraction": len(missing) / len(raw_images) if len(raw_images) else 0.0,
            "threshold": config.max_no_subject_fraction,
            "problem": problem or "none",
            "settings": f"subject_regex {config.subject_regex!r}, subject_from {config.subject_from}",
            "examples": md.bullet_list(f"`{p}`" for p in missing.head(10)),
        },
    )


@dg.asset_check(asset="raw_images", description="the share of unreadable files stays below a threshold")
def unreadable_fraction(thresholds: ThresholdsResource, raw_images: pd.DataFrame) -> dg.AssetCheckResult:
    bad = raw_images.loc[~raw_images["readable"].astype(bool)]
    fraction = len(bad) / len(raw_images) if len(raw_images) else 1.0
    return dg.AssetCheckResult(
        passed=fraction <= thresholds.max_unreadable_fraction,
        metadata={
            "unreadable_fraction": fraction,
            "threshold": thresholds.max_unreadable_fraction,
            "unreadable_files": md.bullet_list(f"`{r.path}`: {r.reason}" for r in bad.head(50).itertuples()),
        },
    )


# ---- dataset_splits -------------------------------------------------------------------------------


@dg.asset_check(asset="dataset_splits", description="no subject, near-duplicate group or file in two splits")
def no_leakage(dataset_splits: pd.DataFrame) -> dg.AssetCheckResult:
    try:
        verify_no_leakage(dataset_splits)
    except LeakageError as error:
        return dg.AssetCheckResult(passed=False, metadata={"problem": str(error)})
    return dg.AssetCheckResult(passed=True, metadata={"groups": int(dataset_splits["group"].nunique())})


@dg.asset_check(asset="dataset_splits", description="val and test hold no augmented images")
def no_augmented_in_val_test(dataset_splits: pd.DataFrame) -> dg.AssetCheckResult:
    """Splits are made from originals only; a copy (`augmented` flag or `__aug` name) in val/test leaks."""
    held_out = dataset_splits.loc[dataset_splits["split"] != "train"]
    flagged = held_out["augmented"].astype(bool) if "augmented" in held_out else False
    copies = held_out.loc[flagged | held_out["path"].str.contains("__aug", regex=False)]
    return dg.AssetCheckResult(
        passed=copies.empty, metadata={"augmented_in_val_test": md.bullet_list(copies["path"].head(20))}
    )


@blocking_check("dataset_splits", "every class appears in every split with a ratio above zero")
def every_class_in_every_split(dataset: DatasetResource, dataset_splits: pd.DataFrame) -> dg.AssetCheckResult:
    config = dataset.dataset_config()
    counts = split_counts(dataset_splits, config.class_names)
    empty = empty_split_cells(dataset_splits, config.class_names, config.train_val_test_split)
    return dg.AssetCheckResult(
        passed=not empty,
        metadata={
            "empty_cells": md.bullet_list(f"{name} has no {split} images" for name, split in empty),
            "counts": md.table(counts.rename_axis("class")),
        },
    )


# ---- balanced_train_set ---------------------------------------------------------------------------


@dg.asset_check(asset="balanced_train_set", description="class counts are equal within `balance_tolerance`")
def classes_balanced(thresholds: ThresholdsResource, balanced_train_set: pd.DataFrame) -> dg.AssetCheckResult:
    counts = balanced_train_set.groupby("class_name").size()
    spread = (counts.max() - counts.min()) / counts.max() if len(counts) else 1.0
    return dg.AssetCheckResult(
        passed=bool(spread <= thresholds.balance_tolerance),
        metadata={
            "relative_spread": float(spread),
            "tolerance": thresholds.balance_tolerance,
            "counts": md.table(counts.rename("images").to_frame().rename_axis("class")),
        },
    )


@dg.asset_check(
    asset="balanced_train_set",
    description="augmented copies stay in train and come from train images of the same class",
    additional_ins={"dataset_splits": dg.AssetIn("dataset_splits")},
)
def augmented_only_from_train(
    balanced_train_set: pd.DataFrame, dataset_splits: pd.DataFrame
) -> dg.AssetCheckResult:
    train = set(dataset_splits.loc[dataset_splits["split"] == "train", "path"])
    copies = balanced_train_set.loc[balanced_train_set["augmented"].astype(bool)]
    bad_source = copies.loc[~copies["source_path"].isin(train)]
    held_out = dataset_splits.loc[dataset_splits["split"] != "train"].assign(augmented=False)
    combined = pd.concat([balanced_train_set, held_out], ignore_index=True)
    problems = [f"copy of a non-train image: {p}" for p in bad_source["path"].head(20)]
    try:
        verify_no_leakage(combined, keys=("subject_id",))
    except LeakageError as error:
        problems.append(str(error))
    return dg.AssetCheckResult(
        passed=not problems, metadata={"augmented": len(copies), "problems": md.bullet_list(problems)}
    )


# ---- models ---------------------------------------------------------------------------------------


@dg.asset_check(
    asset="trained_model",
    partitions_def=model_partitions,
    description="the artifact loads, every weight is finite, logits have shape (1, n_classes)",
)
def weights_finite_and_logits_shape(trained_model: Path) -> dg.AssetCheckResult:
    problems = artifact_problems(trained_model)
    return dg.AssetCheckResult(passed=not problems, metadata={"problems": md.bullet_list(problems)})


@dg.asset_check(
    asset="trained_model",
    partitions_def=model_partitions,
    blocking=True,
    description=(
        "did it learn? the training loss at the best epoch is below 0.9 x ln(classes) and validation "
        "predictions use more than one class; blocking: a model at chance is not evaluated or promoted"
    ),
)
def model_learned(trained_model: Path) -> dg.AssetCheckResult:
    meta = read_meta(trained_model)
    learned = recorded_learn_check(meta.training)
    if learned is None:
        return dg.AssetCheckResult(passed=True, metadata={"verdict": "trained before the check existed"})
    return dg.AssetCheckResult(
        passed=learned.passed,
        metadata={
            "verdict": learned.message,
            "train_loss_at_best_epoch": learned.train_loss,
            "chance_loss": learned.chance_loss,
            "val_predicted_classes": learned.val_predicted_classes,
        },
    )


@dg.asset_check(
    asset="evaluation_report",
    partitions_def=model_partitions,
    description=(
        "the paired 95% interval of test macro-F1 minus the best baseline's lies above thresholds.min_gain "
        "(and the optional floor): what production_model requires. A warning, not an error: a model "
        "that does not beat its baselines is a normal outcome, it is just not promoted"
    ),
)
def beats_best_baseline(thresholds: ThresholdsResource, evaluation_report: Path) -> dg.AssetCheckResult:
    report = read_report(evaluation_report)
    passed, why = passes_gate(report, thresholds.gate())
    return dg.AssetCheckResult(
        passed=passed,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "verdict": why,
            "gain_low": report.comparison.difference.low if report.comparison else float("nan"),
            "min_gain": thresholds.min_gain,
            "macro_f1": report.macro_f1,
        },
    )


# ---- incoming scans -------------------------------------------------------------------------------


@dg.asset_check(
    asset="incoming_predictions",
    partitions_def=incoming_batches,
    additional_ins={"drift_reference": dg.AssetIn()},
    description=(
        "the batch's quality statistics (KS test, PSI) against the train split's and its predicted-class "
        "mix (chi-square, PSI) against the model's on the test split: a test moved when its Bonferroni "
        f"p < {ALPHA} and its PSI > {PSI_THRESHOLD}. A warning: drift says a retrain is due "
        "(docs/incoming.md wires it to the retrain job)"
    ),
)
def no_drift_from_training(incoming_predictions: pd.DataFrame, drift_reference: dict) -> dg.AssetCheckResult:
    reference = TrainingReference.from_dict(drift_reference)
    report = batch_drift(incoming_predictions, reference)
    return dg.AssetCheckResult(
        passed=not report.drifted,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "verdict": report.summary(),
            "moved": md.bullet_list(report.moved),
            "tests": md.table(report.table, index=False),
            "class_mix": md.table(report.class_mix),
            "class_mix_reference": reference.class_source,
            "reference_data_version": reference.data_version,
            "reference_model_version": reference.model_version,
            "batch_model_version": str(incoming_predictions["model_version"].iloc[0]),
        },
    )
