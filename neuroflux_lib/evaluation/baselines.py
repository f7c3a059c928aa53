"""Trivial alternatives a model must beat, fitted on the same train split and scored on the same val/test.

- `majority`: always the most frequent training class (what "no information" scores under macro-F1).
- `thumbnail`: class-balanced logistic regression on standardised 32x32 thumbnails: what the pixels give
  without any deep learning (on the real data: macro-F1 0.33).
- `metadata`: class-balanced logistic regression on acquisition fields parsed from the file names
  (`metadata_regex`: site, sequence, scan year): what the labels give away through *how* and *when*
  the scans were made (on the real data: year alone 0.29, year + sequence + site 0.32; chance 0.20).

scikit-learn fits everything; the original images are used, never the augmented balancing copies.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from neuroflux_lib.config import DatasetConfig
from neuroflux_lib.data.image_cache import cached_arrays
from neuroflux_lib.errors import DataError
from neuroflux_lib.paths import StoragePaths

THUMBNAIL_PX = 32
UNPARSED = "(unparsed)"
BASELINE_DESCRIPTIONS = {
    "majority": "always the most frequent training class",
    "thumbnail": f"class-balanced logistic regression on standardised {THUMBNAIL_PX} px thumbnails",
    "metadata": "class-balanced logistic regression on acquisition fields in the file names",
}


def normalise_field(value: str | None) -> str:
    """`Axial_T2-Star` and `AXIAL_T2__STAR` are one protocol written two ways: compare case- and
    separator-insensitively; an empty match is its own value, a missing one is `(unparsed)`."""
    if value is None:
        return UNPARSED
    return re.sub(r"[_\-\s]+", "_", value.strip().upper()).strip("_") or "(empty)"


def acquisition_fields(paths: Sequence[str], regex: str) -> pd.DataFrame:
    """One column per named group of `regex`, searched in each file name; `(unparsed)` where it fails."""
    pattern = re.compile(regex)
    names = list(pattern.groupindex)
    rows = []
    for path in paths:
        match = pattern.search(str(path).replace("\\", "/").rsplit("/", 1)[-1])
        groups = match.groupdict() if match else {}
        rows.append({name: normalise_field(groups.get(name)) for name in names})
    return pd.DataFrame(rows, columns=names, index=range(len(rows)))


def unparsed_counts(fields: pd.DataFrame) -> dict[str, int]:
    return {column: int((fields[column] == UNPARSED).sum()) for column in fields.columns}


def metadata_model() -> Pipeline:
    return make_pipeline(
        OneHotEncoder(handle_unknown="ignore"),
        LogisticRegression(class_weight="balanced", max_iter=2000),
    )


def thumbnail_model() -> Pipeline:
    return make_pipeline(StandardScaler(), LogisticRegression(class_weight="balanced", max_iter=2000, C=0.01))


@dataclass(frozen=True)
class BaselineResult:
    """One baseline's predicted class indices on val and test, in the split table's row order."""

    name: str
    description: str
    val: list[int]
    test: list[int]

    def as_dict(self) -> dict:
        return {"name": self.name, "description": self.description, "val": self.val, "test": self.test}


@dataclass(frozen=True)
class Baselines:
    """Every baseline on the same rows; `fields` holds the parsed acquisition fields of every row."""

    results: dict[str, BaselineResult]
    val_paths: list[str]
    test_paths: list[str]
    field_results: dict[str, BaselineResult] = field(default_factory=dict)
    unparsed: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "val_paths": self.val_paths,
            "test_paths": self.test_paths,
            "baselines": {name: r.as_dict() for name, r in self.results.items()},
            "fields": {name: r.as_dict() for name, r in self.field_results.items()},
            "unparsed": self.unparsed,
        }

    @classmethod
    def from_dict(cls, value: dict) -> Baselines:
        def results(block: dict) -> dict[str, BaselineResult]:
            return {name: BaselineResult(**item) for name, item in block.items()}

        return cls(
            results(value["baselines"]),
            list(value["val_paths"]),
            list(value["test_paths"]),
            results(value.get("fields", {})),
            dict(value.get("unparsed", {})),
        )


def _labels(table: pd.DataFrame, class_names: Sequence[str]) -> np.ndarray:
    index = {name: i for i, name in enumerate(class_names)}
    return table["class_name"].map(index).to_numpy(dtype=np.int64)


def _thumbnails(table: pd.DataFrame, config: DatasetConfig) -> np.ndarray:
    hashes = table["sha256"].tolist() if "sha256" in table and table["sha256"].notna().all() else None
    arrays = cached_arrays(
        table["path"].tolist(), THUMBNAIL_PX, StoragePaths(config.storage_dir).cache, hashes
    )
    return arrays.reshape(len(table), -1).astype(np.float32) / 255.0


def _fit_predict(model, x_train, y_train, x_val, x_test) -> tuple[list[int], list[int]]:
    model.fit(x_train, y_train)
    return model.predict(x_val).astype(int).tolist(), model.predict(x_test).astype(int).tolist()


def fit_baselines(splits: pd.DataFrame, config: DatasetConfig) -> Baselines:
    """Fit every baseline on the train split and predict val and test (rows in split-table order)."""
    names = ("train", "val", "test")
    parts = {name: splits.loc[splits["split"] == name].reset_index(drop=True) for name in names}
    for name, part in parts.items():
        if part.empty:
            raise DataError(f"the {name} split is empty: baselines need train, val and test images")
    y_train = _labels(parts["train"], config.class_names)
    fields = {name: acquisition_fields(parts[name]["path"].tolist(), config.metadata_regex) for name in names}
    thumbs = {name: _thumbnails(parts[name], config) for name in names}

    def baseline(key: str, model, features: dict) -> BaselineResult:
        val, test = _fit_predict(model, features["train"], y_train, features["val"], features["test"])
        description = BASELINE_DESCRIPTIONS.get(key, f"logistic regression on `{key}` alone")
        return BaselineResult(key, description, val, test)

    results = {
        "majority": baseline("majority", DummyClassifier(strategy="most_frequent"), thumbs),
        "thumbnail": baseline("thumbnail", thumbnail_model(), thumbs),
    }
    columns = list(fields["train"].columns)
    if columns:
        results["metadata"] = baseline("metadata", metadata_model(), fields)
    field_results = {
        column: baseline(column, metadata_model(), {name: fields[name][[column]] for name in names})
        for column in columns
    }
    return Baselines(
        results,
        parts["val"]["path"].tolist(),
        parts["test"]["path"].tolist(),
        field_results,
        unparsed_counts(pd.concat(fields.values(), ignore_index=True)),
    )
