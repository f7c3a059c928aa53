"""The data pipeline, step by step: folder of images -> leak-free splits -> balanced training set.

Each step takes tables and returns tables: the Dagster assets run them one per asset, and
`run_preprocess` runs them in a row for library users and tests. Only balancing writes files (its
augmented copies, under `StoragePaths.augmented`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from neuroflux_lib.config import DatasetConfig
from neuroflux_lib.data.balancing import balance_train_set, class_balance
from neuroflux_lib.data.dedup import duplicate_groups
from neuroflux_lib.data.discovery import Discovery, discover_images
from neuroflux_lib.data.outliers import embed_statistics, find_outliers
from neuroflux_lib.data.quality import compute_quality
from neuroflux_lib.data.splits import SPLITS, make_splits, split_counts
from neuroflux_lib.paths import StoragePaths


def scan_images(config: DatasetConfig, progress: bool = False) -> tuple[Discovery, pd.DataFrame]:
    """Discovery plus per-file decoding: the manifest with readability, statistics and hashes."""
    discovery = discover_images(config.data_dir, config.class_names, config.subject_regex)
    quality = compute_quality(
        discovery.manifest["path"].tolist(),
        workers=config.num_workers or None,
        max_pixels=config.max_image_pixels,
        progress=progress,
    )
    images = discovery.manifest.join(quality, on="path")
    readable = images["readable"].astype(bool)
    images["dup_group"] = pd.NA
    if readable.any():
        groups = duplicate_groups(images.loc[readable, "dhash"].tolist(), config.dedup_max_distance)
        images.loc[readable, "dup_group"] = groups
    return discovery, images


def detect_outliers(images: pd.DataFrame, config: DatasetConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    readable = images.loc[images["readable"].astype(bool)].set_index("path")
    return find_outliers(readable, config.outlier_rule, config.outlier_threshold)


def split_dataset(images: pd.DataFrame, outliers: pd.DataFrame, config: DatasetConfig) -> pd.DataFrame:
    """Readable, non-outlier images with a `split` column."""
    usable = images.loc[images["readable"].astype(bool)]
    columns = ["path", "class_name", "subject_id", "sha256", "dup_group"]
    return make_splits(
        usable[columns],
        config.train_val_test_split,
        config.class_names,
        config.random_seed,
        exclude=outliers["path"].tolist(),
    )


@dataclass(frozen=True)
class PreprocessResult:
    discovery: Discovery
    images: pd.DataFrame
    outliers: pd.DataFrame
    outlier_reasons: pd.DataFrame
    embedding: pd.DataFrame
    splits: pd.DataFrame
    balanced: pd.DataFrame


def balance_dataset(splits: pd.DataFrame, config: DatasetConfig, progress: bool = False) -> pd.DataFrame:
    """The train split topped up with augmented copies (written under the storage's `augmented/`)."""
    return balance_train_set(
        splits,
        StoragePaths(config.storage_dir).augmented,
        config.balance_target,
        config.random_seed,
        config.max_image_pixels,
        progress,
    )


def run_preprocess(config: DatasetConfig, progress: bool = False) -> PreprocessResult:
    discovery, images = scan_images(config, progress)
    outliers, reasons = detect_outliers(images, config)
    readable = images.loc[images["readable"].astype(bool)].set_index("path")
    embedding = embed_statistics(readable, seed=config.random_seed)
    splits = split_dataset(images, outliers, config)
    balanced = balance_dataset(splits, config, progress)
    return PreprocessResult(discovery, images, outliers, reasons, embedding, splits, balanced)


def tables_summary(
    images: pd.DataFrame,
    outliers: pd.DataFrame,
    splits: pd.DataFrame,
    balanced: pd.DataFrame,
    config: DatasetConfig,
    discovery: Discovery | None = None,
) -> str:
    """The preprocessing summary from the step tables (the same tables the Dagster assets hold)."""
    names = list(config.class_names)
    lines = ["Images per class:"]
    counts = images.groupby("class_name").size().reindex(names, fill_value=0)
    lines += [f"  {name:<5} {count:>6}" for name, count in counts.items()] + [
        f"  {'total':<5} {counts.sum():>6}"
    ]
    if discovery and discovery.unknown_folders:
        lines.append(f"Folders ignored (not in class_names): {', '.join(discovery.unknown_folders)}")
    if discovery and discovery.missing_classes:
        lines.append(f"Classes with no folder: {', '.join(discovery.missing_classes)}")
    if discovery and discovery.ignored_files:
        lines.append(f"Non-image files ignored: {len(discovery.ignored_files)}")
    bad = images.loc[~images["readable"].astype(bool)]
    lines.append(f"Unreadable files: {len(bad)}")
    lines += [f"  {row.path}: {row.reason} [{row.status}]" for row in bad.itertuples()]
    converted = images.loc[images["status"] == "converted"]
    if len(converted):
        lines.append(f"Converted on load: {len(converted)} (e.g. {converted['reason'].iloc[0]})")
    per_class = outliers.groupby("class_name").size().reindex(names, fill_value=0)
    lines.append(
        f"Outliers ({config.outlier_rule} rule, threshold {config.outlier_threshold}): "
        f"{len(outliers)} — " + ", ".join(f"{k} {v}" for k, v in per_class.items())
    )
    lines += [f"  {Path(row.path).name}: {row.reasons}" for row in outliers.head(10).itertuples()]
    if len(outliers) > 10:
        lines.append(f"  ... and {len(outliers) - 10} more (see the outlier table and gallery)")
    lines.append("Split sizes (images; subjects):")
    table = split_counts(splits, names)
    subjects = splits.groupby("split")["subject_id"].nunique().reindex(list(SPLITS), fill_value=0)
    table.loc["subjects"] = [*subjects.tolist(), int(splits["subject_id"].nunique())]
    lines += ["  " + line for line in table.to_string().splitlines()]
    sizes = splits.groupby("group").size()
    multi = splits.groupby("dup_group")["subject_id"].nunique()
    lines.append(
        f"  {len(sizes)} leakage groups (subject + near-duplicate), largest {sizes.max()} images; "
        f"{int((multi > 1).sum())} near-duplicate group(s) span several subjects"
    )
    balance = class_balance(balanced, names)
    n_aug = int(balanced["augmented"].sum())
    lines.append(f"Balanced train set: {n_aug} augmented images added (train only)")
    lines += ["  " + line for line in balance.to_string().splitlines()]
    return "\n".join(lines)
