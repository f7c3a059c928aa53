import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neuroflux_lib.config import DatasetConfig
from neuroflux_lib.data.pipeline import detect_outliers, scan_images, split_dataset
from neuroflux_lib.data.splits import (
    LeakageError,
    class_shortfalls,
    empty_split_cells,
    make_splits,
    split_counts,
    verify_no_leakage,
)

CLASSES = ["PTE", "LO", "EO", "IPTE", "IO"]


def synthetic_table(n_subjects: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n_subjects):
        cls = CLASSES[rng.choice(5, p=[0.45, 0.18, 0.18, 0.13, 0.06])]
        for k in range(rng.integers(1, 5)):
            # Mostly unique duplicate groups, with a few duplicates shared between subjects.
            dup = f"d{rng.integers(0, 20)}" if rng.random() < 0.05 else f"u{s}_{k}"
            rows.append((f"{cls}/s{s}_{k}.jpg", cls, f"{s:03d}_S_{s:04d}", dup))
    return pd.DataFrame(rows, columns=["path", "class_name", "subject_id", "dup_group"])


@pytest.fixture(scope="module")
def scanned(demo_dataset):
    config = DatasetConfig(data_dir=str(demo_dataset), num_workers=1, min_images_per_class=3)
    _, images = scan_images(config)
    outliers, _ = detect_outliers(images, config)
    return config, images, outliers


def test_no_subject_or_duplicate_group_crosses_splits_on_demo_data(scanned):
    config, images, outliers = scanned
    splits = split_dataset(images, outliers, config)
    for key in ("subject_id", "dup_group", "group"):
        assert splits.groupby(key)["split"].nunique().max() == 1, key
    counts = split_counts(splits, CLASSES)
    assert (counts[["train", "val", "test"]] > 0).all().all(), counts
    excluded = set(outliers.loc[outliers["excluded"], "path"])
    assert excluded and not excluded & set(splits["path"])
    assert set(outliers.loc[~outliers["excluded"], "path"]) <= set(splits["path"]), "kept outliers are used"
    assert not set(images.loc[~images["readable"], "path"]) & set(splits["path"])


def test_ratios_are_honoured_and_stratified():
    table = synthetic_table(600, seed=1)
    splits = make_splits(table, (0.6, 0.2, 0.2), CLASSES, seed=3)
    share = splits["split"].value_counts(normalize=True)
    assert share["train"] == pytest.approx(0.6, abs=0.03)
    assert share["val"] == pytest.approx(0.2, abs=0.03)
    per_class = pd.crosstab(splits["class_name"], splits["split"], normalize="index")
    assert (per_class["test"] - 0.2).abs().max() < 0.06


def test_deterministic_for_a_seed_and_seed_matters():
    table = synthetic_table(200, seed=2)
    a = make_splits(table, seed=7)["split"].tolist()
    assert a == make_splits(table.sample(frac=1, random_state=0), seed=7)["split"].tolist()
    assert a != make_splits(table, seed=8)["split"].tolist()


def test_excluded_paths_are_dropped():
    table = synthetic_table(50, seed=4)
    dropped = table["path"].iloc[:5].tolist()
    assert not set(make_splits(table, exclude=dropped)["path"]) & set(dropped)


def test_verify_catches_leaks():
    table = pd.DataFrame(
        {"path": ["a", "b", "c"], "subject_id": ["s1", "s1", "s2"], "split": ["train", "test", "val"]}
    )
    with pytest.raises(LeakageError, match="subject_id"):
        verify_no_leakage(table)
    augmented = pd.DataFrame(
        {
            "path": ["a", "b"],
            "subject_id": ["s1", "s2"],
            "split": ["train", "val"],
            "augmented": [False, True],
        }
    )
    with pytest.raises(LeakageError, match="augmented"):
        verify_no_leakage(augmented)


def test_class_helpers_name_short_classes_and_empty_cells():
    table = synthetic_table(80, seed=5)
    table = table[table["class_name"] != "IO"]
    counts = table.groupby("class_name").size()
    short = class_shortfalls(table, CLASSES, minimum=int(counts["LO"]) + 1)
    assert short["IO"] == 0 and short["LO"] == counts["LO"] and "PTE" not in short
    splits = make_splits(table, (0.7, 0.15, 0.15), CLASSES, seed=1)
    assert {("IO", "train"), ("IO", "val"), ("IO", "test")} <= set(empty_split_cells(splits, CLASSES))
    assert ("IO", "val") not in empty_split_cells(splits, CLASSES, (1.0, 0.0, 0.0))


@settings(max_examples=25, deadline=None)
@given(n_subjects=st.integers(5, 120), seed=st.integers(0, 10_000))
def test_property_no_group_ever_spans_splits(n_subjects, seed):
    splits = make_splits(synthetic_table(n_subjects, seed), seed=seed)
    assert splits.groupby("subject_id")["split"].nunique().max() == 1
    assert splits.groupby("dup_group")["split"].nunique().max() == 1
