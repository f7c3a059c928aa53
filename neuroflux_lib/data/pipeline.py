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
from neuroflux_lib.data.discovery import NO_SUBJECT, Discovery, class_folders, discover_images
from neuroflux_lib.data.outliers import embed_statistics, excluded_paths, flag_images, flags_per_class
from neuroflux_lib.data.quality import compute_quality
from neuroflux_lib.data.splits import (
    SPLITS,
    class_shortfalls,
    empty_split_cells,
    make_splits,
    split_counts,
)
from neuroflux_lib.errors import DataError
from neuroflux_lib.paths import StoragePaths

SPLIT_COLUMNS = ["path", "class_name", "subject_id", "sha256", "dup_group"]


def scan_images(config: DatasetConfig, progress: bool = False) -> tuple[Discovery, pd.DataFrame]:
    """Discovery plus per-file decoding: the manifest with readability, statistics and hashes.

    Raises DataError when the data folder is missing or holds no image of any configured class.
    """
    discovery = discover_images(
        config.data_dir, config.class_names, config.subject_regex, subject_from=config.subject_from
    )
    if discovery.manifest.empty:
        folders = sorted(p.name for p in Path(config.data_dir).iterdir() if p.is_dir())
        raise DataError(
            f"no images in {config.data_dir}: expected <class>/<image> files for the classes "
            f"{', '.join(config.class_names)} (folders there: {', '.join(folders) or 'none'})"
        )
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
    """Broken images (always excluded) and statistical outliers (kept unless `outlier_action` is
    "exclude"): (flags, per-statistic reasons), see `neuroflux_lib.data.outliers.flag_images`."""
    readable = images.loc[images["readable"].astype(bool)].set_index("path")
    return flag_images(readable, config.outlier_rule, config.outlier_threshold, config.outlier_action)


def _too_few_message(short: dict[str, int], minimum: int) -> str:
    listed = ", ".join(f"{name} has {count}" for name, count in short.items())
    return (
        f"too few usable images per class: {listed} (min_images_per_class {minimum}); add images to the "
        "class folder, remove the class from class_names, or lower min_images_per_class"
    )


def split_dataset(images: pd.DataFrame, outliers: pd.DataFrame, config: DatasetConfig) -> pd.DataFrame:
    """Readable images that are not excluded (broken, or outliers with `outlier_action` "exclude"),
    with `group` and `split` columns.

    Raises DataError naming the class when a class has fewer than `min_images_per_class` usable images
    or none in a split: a model that never saw a class, or a test set without it, is not a result.
    """
    excluded = set(excluded_paths(outliers))
    usable = images.loc[images["readable"].astype(bool) & ~images["path"].isin(excluded)]
    short = class_shortfalls(usable, config.class_names, config.min_images_per_class)
    if short:
        raise DataError(_too_few_message(short, config.min_images_per_class))
    splits = make_splits(
        usable[SPLIT_COLUMNS], config.train_val_test_split, config.class_names, config.random_seed
    )
    empty = empty_split_cells(splits, config.class_names, config.train_val_test_split)
    if empty:
        subjects = usable.groupby("class_name")["subject_id"].nunique()
        cells = "; ".join(
            f"{name} has no {split} images ({int((usable['class_name'] == name).sum())} usable images "
            f"from {int(subjects.get(name, 0))} subjects)"
            for name, split in empty
        )
        raise DataError(
            f"a class is missing from a split: {cells}; add images (subjects) to that class or change "
            "train_val_test_split"
        )
    return splits


@dataclass(frozen=True)
class PreprocessResult:
    discovery: Discovery
    images: pd.DataFrame
    outliers: pd.DataFrame
    outlier_reasons: pd.DataFrame
    embedding: pd.DataFrame
    splits: pd.DataFrame
    balanced: pd.DataFrame


def balance_dataset(
    splits: pd.DataFrame, config: DatasetConfig, progress: bool = False, out_dir: str | Path | None = None
) -> pd.DataFrame:
    """The train split topped up with augmented copies, written under `out_dir` (default the storage's
    `augmented/`; cross-validation folds each have their own)."""
    return balance_train_set(
        splits,
        out_dir or StoragePaths(config.storage_dir).augmented,
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


def data_root(images: pd.DataFrame, config: DatasetConfig) -> Path:
    """The folder the images were found in: from the table's paths (the config the summary is given may
    not be the one the scan ran with), else the config's `data_dir`."""
    if len(images):
        first = images.iloc[0]
        class_dir = next((p for p in Path(first["path"]).parents if p.name == first["class_name"]), None)
        if class_dir is not None:
            return class_dir.parent
    return Path(config.data_dir)


def _per_class(table: pd.DataFrame, column: str) -> str:
    """`EO 3 (1.3%), ...`: count and share of the class's files, for every class."""
    return ", ".join(
        f"{name} {int(row[column])} ({row[column + '_share']:.1%})" for name, row in table.iterrows()
    )


def _flag_lines(flags: pd.DataFrame, limit: int = 10) -> list[str]:
    lines = [f"  {Path(row.path).name}: {row.reasons}" for row in flags.head(limit).itertuples()]
    if len(flags) > limit:
        lines.append(f"  ... and {len(flags) - limit} more (see the outliers table and gallery)")
    return lines


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
    root = data_root(images, config)
    if discovery is not None:
        unknown, missing = discovery.unknown_folders, discovery.missing_classes
    else:
        unknown, missing = class_folders(root, names) if root.is_dir() else ([], [])
    if unknown:
        lines.append(f"Folders ignored (not in class_names): {', '.join(unknown)} in {root}")
    if missing:
        lines.append(f"Classes with no folder: {', '.join(missing)}")
    if discovery and discovery.ignored_files:
        lines.append(f"Non-image files ignored: {len(discovery.ignored_files)}")
    if "subject_source" in images:
        source = images["subject_source"].value_counts()
        lines.append(
            f"Subject ids (subject_regex {config.subject_regex}, subject_from {config.subject_from}): "
            f"{int(source.get('filename', 0))} files from the file name, {int(source.get('folder', 0))} "
            f"from a folder name, {int(source.get(NO_SUBJECT, 0))} with none (each its own subject)"
        )
    bad = images.loc[~images["readable"].astype(bool)]
    lines.append(f"Unreadable files: {len(bad)}")
    lines += [f"  {row.path}: {row.reason} [{row.status}]" for row in bad.itertuples()]
    converted = images.loc[images["status"] == "converted"]
    if len(converted):
        lines.append(f"Converted on load: {len(converted)} (e.g. {converted['reason'].iloc[0]})")
    kind = outliers["kind"] if "kind" in outliers else pd.Series("outlier", index=outliers.index)
    broken, statistical = outliers.loc[kind == "broken"], outliers.loc[kind == "outlier"]
    per_class = flags_per_class(outliers, images, names)
    lines.append(f"Broken images (excluded, fixed rules): {len(broken)} — {_per_class(per_class, 'broken')}")
    lines += _flag_lines(broken)
    action = "excluded" if config.outlier_action == "exclude" else "kept, outlier_action keep"
    lines.append(
        f"Outliers ({config.outlier_rule} rule, threshold {config.outlier_threshold}; {action}): "
        f"{len(statistical)} — {_per_class(per_class, 'outliers')}"
    )
    lines += _flag_lines(statistical)
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
