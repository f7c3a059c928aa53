"""A model next to its baselines, with intervals, and the sentence that says whether it beats them.

The best baseline is the one with the highest *validation* macro-F1 (the test split never chooses);
the model is then compared with it on the *test* split with a paired subject-bootstrap interval of the
difference in macro-F1.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from neuroflux_lib.errors import DataError
from neuroflux_lib.evaluation.baselines import Baselines
from neuroflux_lib.evaluation.intervals import Bootstrap, Interval, Scores, named


def group_keys(rows: pd.DataFrame) -> list[str]:
    """What a bootstrap resamples: the split's leakage groups (subjects joined with their near-duplicates),
    else subjects, else images."""
    for column in ("group", "subject_id"):
        if column in rows and rows[column].notna().all():
            return rows[column].astype(str).tolist()
    return rows["path"].astype(str).tolist()


def labels_of(rows: pd.DataFrame, class_names: Sequence[str]) -> np.ndarray:
    index = {name: i for i, name in enumerate(class_names)}
    return rows["class_name"].map(index).to_numpy(dtype=np.int64)


def baseline_table(
    baselines: Baselines, val_rows: pd.DataFrame, test_rows: pd.DataFrame, class_names: Sequence[str]
) -> dict[str, dict]:
    """Each baseline's val and test macro-F1, balanced accuracy and accuracy, with intervals."""
    k = len(class_names)
    val = Bootstrap.of(labels_of(val_rows, class_names), group_keys(val_rows), k)
    test = Bootstrap.of(labels_of(test_rows, class_names), group_keys(test_rows), k)
    return {
        name: {
            "description": result.description,
            "val": named(val.intervals(result.val), class_names),
            "test": named(test.intervals(result.test), class_names),
        }
        for name, result in baselines.results.items()
    }


def best_baseline(table: dict[str, dict]) -> str:
    """Highest validation macro-F1 (ties: the simpler one listed first)."""
    return max(table, key=lambda name: table[name]["val"]["macro_f1"]["estimate"])


def verdict(model: str, difference: Interval, baseline: str, description: str, min_gain: float = 0.0) -> str:
    """One line a person can act on."""
    beats = difference.low > min_gain
    gain = f"by {difference}" if beats else f"(difference {difference})"
    bar = "" if min_gain == 0 else f" (required gain > {min_gain:.2f})"
    word = "beats" if beats else "does not beat"
    return f"{model} {word} the best baseline ({baseline}: {description}) {gain}{bar}"


def compare(
    model_name: str,
    test_rows: pd.DataFrame,
    val_rows: pd.DataFrame,
    model_test_pred: Sequence[int],
    baselines: Baselines,
    class_names: Sequence[str],
) -> dict:
    """Model intervals, baseline table, the best baseline and the paired difference on test."""
    if list(test_rows["path"]) != baselines.test_paths or list(val_rows["path"]) != baselines.val_paths:
        raise DataError(
            "the baselines were fitted on other splits than this evaluation's: materialize `baselines` "
            "again for the current dataset_splits"
        )
    test = Bootstrap.of(labels_of(test_rows, class_names), group_keys(test_rows), len(class_names))
    table = baseline_table(baselines, val_rows, test_rows, class_names)
    best = best_baseline(table)
    difference = test.difference(model_test_pred, baselines.results[best].test)
    return {
        "model": named(test.intervals(model_test_pred), class_names),
        "baselines": table,
        "best_baseline": best,
        "difference": difference.as_dict(),
        "verdict": verdict(model_name, difference, best, table[best]["description"]),
        "resampling": {
            "unit": "subject groups",
            "groups": int(test.n_groups),
            "resamples": int(test.counts.shape[0]),
            "level": test.level,
        },
    }


class BaselineScores(BaseModel):
    """One baseline of `baseline_table`: what it is and its validation and test scores."""

    model_config = ConfigDict(frozen=True)

    description: str
    val: Scores
    test: Scores


class Resampling(BaseModel):
    """How the comparison's intervals were resampled."""

    model_config = ConfigDict(frozen=True)

    unit: str
    groups: int
    resamples: int
    level: float


class Comparison(BaseModel):
    """`compare`'s result as the evaluation report stores it, with the model's validation macro-F1."""

    model_config = ConfigDict(frozen=True)

    model: Scores
    baselines: dict[str, BaselineScores]
    best_baseline: str
    difference: Interval
    verdict: str
    resampling: Resampling
    model_val_macro_f1: float | None = None


def comparison_rows(comparison: Comparison, model_name: str) -> pd.DataFrame:
    """model + baselines: test macro-F1 and balanced accuracy with intervals, val macro-F1 (a table)."""
    rows = [(model_name, comparison.model, comparison.model_val_macro_f1)]
    rows += [
        (f"baseline: {name}", item.test, item.val.macro_f1.estimate)
        for name, item in comparison.baselines.items()
    ]
    return pd.DataFrame(
        {
            "name": [name for name, _, _ in rows],
            "estimate": [test.macro_f1.estimate for _, test, _ in rows],
            "low": [test.macro_f1.low for _, test, _ in rows],
            "high": [test.macro_f1.high for _, test, _ in rows],
            "balanced_accuracy": [str(test.balanced_accuracy) for _, test, _ in rows],
            "val_macro_f1": [val for _, _, val in rows],
        }
    )


def comparison_text(comparison: Comparison, model_name: str) -> str:
    """The comparison as a terminal table plus the verdict."""
    rows = comparison_rows(comparison, model_name)
    lines = [f"{'':<24} {'test macro-F1 [95% CI]':<26} {'balanced acc. [95% CI]':<26} val macro-F1"]
    for row in rows.itertuples():
        val = "" if row.val_macro_f1 is None or pd.isna(row.val_macro_f1) else f"{row.val_macro_f1:.3f}"
        macro = str(Interval(row.estimate, row.low, row.high))
        lines.append(f"{row.name:<24} {macro:<26} {row.balanced_accuracy:<26} {val}")
    lines.append(comparison.verdict)
    return "\n".join(lines)
