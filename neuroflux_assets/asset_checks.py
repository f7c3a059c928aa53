"""Asset checks: each says in its metadata what failed and by how much.

Only the model-quality bar is blocking: a model below it must never become `production_model`. The
data checks warn (a person decides whether a missing class or a few bad files matter).
"""

from pathlib import Path

import dagster as dg
import pandas as pd

from neuroflux_assets import metadata as md
from neuroflux_assets.partitions import model_partitions
from neuroflux_assets.resources import DatasetResource, ThresholdsResource
from neuroflux_lib.data.splits import SPLITS, LeakageError, split_counts, verify_no_leakage
from neuroflux_lib.evaluation.promotion import artifact_problems, meets_quality_bar
from neuroflux_lib.evaluation.report import read_report

# ---- raw_images -----------------------------------------------------------------------------------


@dg.asset_check(asset="raw_images", description="every configured class has at least one readable image")
def all_classes_present(dataset: DatasetResource, raw_images: pd.DataFrame) -> dg.AssetCheckResult:
    names = list(dataset.dataset_config().class_names)
    present = set(raw_images.loc[raw_images["readable"].astype(bool), "class_name"])
    missing = [name for name in names if name not in present]
    return dg.AssetCheckResult(
        passed=not missing,
        metadata={"missing_classes": md.bullet_list(missing), "expected": ", ".join(names)},
    )


@dg.asset_check(
    asset="raw_images", description="each class has at least `min_images_per_class` readable images"
)
def min_images_per_class(
    dataset: DatasetResource, thresholds: ThresholdsResource, raw_images: pd.DataFrame
) -> dg.AssetCheckResult:
    names = list(dataset.dataset_config().class_names)
    readable = raw_images.loc[raw_images["readable"].astype(bool)]
    counts = readable.groupby("class_name").size().reindex(names, fill_value=0)
    short = counts[counts < thresholds.min_images_per_class]
    return dg.AssetCheckResult(
        passed=short.empty,
        metadata={
            "minimum": thresholds.min_images_per_class,
            "below_minimum": md.bullet_list(f"{k}: {v}" for k, v in short.items()),
            "counts": md.table(counts.rename("readable").to_frame().rename_axis("class")),
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


@dg.asset_check(asset="dataset_splits", description="every class appears in train, val and test")
def every_class_in_every_split(dataset: DatasetResource, dataset_splits: pd.DataFrame) -> dg.AssetCheckResult:
    counts = split_counts(dataset_splits, dataset.dataset_config().class_names)
    empty = [
        f"{cls} has no {split} images"
        for cls in counts.index
        for split in SPLITS
        if counts.at[cls, split] == 0
    ]
    return dg.AssetCheckResult(
        passed=not empty,
        metadata={"empty_cells": md.bullet_list(empty), "counts": md.table(counts.rename_axis("class"))},
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
    asset="evaluation_report",
    partitions_def=model_partitions,
    blocking=True,
    description="test macro-F1 >= thresholds.quality_bar(); blocking: a failing model is never promoted",
)
def macro_f1_above_threshold(thresholds: ThresholdsResource, evaluation_report: Path) -> dg.AssetCheckResult:
    report = read_report(evaluation_report)
    passed, why = meets_quality_bar(report, thresholds.quality_bar())
    return dg.AssetCheckResult(
        passed=passed,
        metadata={
            "macro_f1": float(report["macro_f1"]),
            "threshold": thresholds.quality_bar(),
            "verdict": why,
        },
    )


ALL_CHECKS = [
    all_classes_present,
    min_images_per_class,
    unreadable_fraction,
    no_leakage,
    no_augmented_in_val_test,
    every_class_in_every_split,
    classes_balanced,
    augmented_only_from_train,
    weights_finite_and_logits_shape,
    macro_f1_above_threshold,
]
