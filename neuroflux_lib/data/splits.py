"""Leak-free train / val / test splits: stratified by class, grouped by subject and near-duplicate.

sklearn has group-aware splitters (`StratifiedGroupKFold`: equal folds; `GroupShuffleSplit`: no
stratification) but none that takes three arbitrary ratios, so groups are allocated greedily: largest
groups first, each to the split whose per-class quota is least filled. Deterministic for a seed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import pandas as pd

from neuroflux_lib.data.dedup import connected_labels

SPLITS = ("train", "val", "test")


class LeakageError(AssertionError):
    """A subject or near-duplicate group sits in two splits, or augmented data left train."""


def leakage_groups(table: pd.DataFrame, keys: Sequence[str] = ("subject_id", "dup_group")) -> np.ndarray:
    """One id per row: rows sharing any key value (transitively) share the id."""
    n = len(table)
    rows, cols = [], []
    for offset, key in enumerate(keys):
        codes = pd.factorize(table[key])[0]
        # Bipartite graph: image i -- value node (n + offset block + code).
        rows.append(np.arange(n))
        cols.append(n * (offset + 1) + codes)
    labels = connected_labels(n * (len(keys) + 1), np.concatenate(rows), np.concatenate(cols))
    return pd.factorize(labels[:n])[0]


def allocate_groups(
    classes: pd.Series, groups: np.ndarray, ratios: Sequence[float], class_names: Sequence[str], seed: int
) -> np.ndarray:
    """Split name per row; a group goes wholly to one split."""
    if len(ratios) != len(SPLITS):
        raise ValueError(f"need {len(SPLITS)} ratios (train, val, test), got {list(ratios)}")
    class_index = {name: i for i, name in enumerate(class_names)}
    y = classes.map(class_index).to_numpy()
    if np.isnan(y.astype(float)).any():
        unknown = sorted(set(classes) - set(class_index))
        raise ValueError(f"rows with classes not in class_names: {unknown}")
    n_groups = int(groups.max()) + 1 if len(groups) else 0
    counts = np.zeros((n_groups, len(class_names)))
    np.add.at(counts, (groups, y.astype(int)), 1)

    quota = np.asarray(ratios, dtype=float)[:, None] * counts.sum(axis=0)[None, :]
    filled = np.zeros_like(quota)
    rng = np.random.default_rng(seed)
    order = rng.permutation(n_groups)
    order = order[np.argsort(-counts[order].sum(axis=1), kind="stable")]
    assignment = np.empty(n_groups, dtype=int)
    for g in order:
        # Relative deficit of each split for this group's classes; the neediest split takes it.
        need = ((quota - filled) / np.maximum(quota, 1e-9)) @ counts[g]
        need[np.asarray(ratios) <= 0] = -np.inf
        choice = int(np.argmax(need))
        assignment[g] = choice
        filled[choice] += counts[g]
    return np.asarray(SPLITS)[assignment[groups]]


def make_splits(
    table: pd.DataFrame,
    ratios: Sequence[float] = (0.7, 0.15, 0.15),
    class_names: Sequence[str] | None = None,
    seed: int = 42,
    exclude: Sequence[str] = (),
) -> pd.DataFrame:
    """Return `table` (path, class_name, subject_id, dup_group, ...) with `group` and `split` columns.

    Rows whose path is in `exclude` (outliers, unreadable files) are dropped first.
    """
    kept = table[~table["path"].isin(set(exclude))].sort_values("path", ignore_index=True)
    names = list(class_names) if class_names is not None else sorted(kept["class_name"].unique())
    keys = [key for key in ("subject_id", "dup_group") if key in kept]
    kept = kept.assign(group=leakage_groups(kept, keys))
    kept["split"] = allocate_groups(kept["class_name"], kept["group"].to_numpy(), ratios, names, seed)
    verify_no_leakage(kept)
    return kept


def verify_no_leakage(
    table: pd.DataFrame, keys: Sequence[str] = ("subject_id", "dup_group", "sha256")
) -> None:
    """Raise LeakageError if any key value spans two splits or an augmented row is outside train."""
    problems = []
    for key in keys:
        if key not in table:
            continue
        spread = table.groupby(key)["split"].nunique()
        crossing = spread[spread > 1]
        if len(crossing):
            examples = ", ".join(map(str, crossing.index[:5]))
            problems.append(f"{len(crossing)} {key} value(s) in more than one split (e.g. {examples})")
    if "augmented" in table:
        leaked = table[table["augmented"].astype(bool) & (table["split"] != "train")]
        if len(leaked):
            problems.append(f"{len(leaked)} augmented image(s) in val/test (e.g. {leaked['path'].iloc[0]})")
    if problems:
        raise LeakageError("data leakage between splits: " + "; ".join(problems))


def split_counts(table: pd.DataFrame, class_names: Sequence[str] | None = None) -> pd.DataFrame:
    """Images per class (rows) and split (columns), with totals."""
    counts = pd.crosstab(table["class_name"], table["split"]).reindex(columns=list(SPLITS), fill_value=0)
    if class_names is not None:
        counts = counts.reindex(list(class_names), fill_value=0)
    counts["total"] = counts.sum(axis=1)
    return counts


def class_shortfalls(table: pd.DataFrame, class_names: Sequence[str], minimum: int) -> dict[str, int]:
    """{class: image count} for each class with fewer than `minimum` rows in `table`."""
    counts = table.groupby("class_name").size().reindex(list(class_names), fill_value=0)
    return {name: int(count) for name, count in counts.items() if count < minimum}


def empty_split_cells(
    splits: pd.DataFrame, class_names: Sequence[str], ratios: Sequence[float] = (1.0, 1.0, 1.0)
) -> list[tuple[str, str]]:
    """(class, split) pairs with no image, for every split whose ratio is above zero."""
    counts = split_counts(splits, class_names)
    wanted = [split for split, ratio in zip(SPLITS, ratios, strict=True) if ratio > 0]
    return [(name, split) for name in counts.index for split in wanted if counts.at[name, split] == 0]


def data_version(splits: pd.DataFrame) -> str:
    """Short digest of which bytes are in which split: changes when any image or assignment does."""
    keyed = splits.sort_values("path")[["sha256", "split"]].astype(str).agg(":".join, axis=1)
    return hashlib.sha256("\n".join(keyed).encode()).hexdigest()[:16]
