"""Can the labels be predicted from how and when the scans were made? (BRIEF section 2.)

On the real data the scan year alone predicts the class with macro-F1 0.29 on a subject-grouped split
(chance 0.20): the classes were acquired in different periods. A model may learn scanner or protocol
differences instead of anatomy, so the platform shows, every time: class x field tables, Cramér's V per
field, each field's baseline score next to chance, and a plain warning when a score's interval lies
above chance.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict
from scipy.stats.contingency import association

from neuroflux_lib.evaluation.baselines import Baselines, acquisition_fields
from neuroflux_lib.evaluation.intervals import Bootstrap, Interval


@dataclass(frozen=True)
class ConfoundReport:
    tables: dict[str, pd.DataFrame]  # field -> class x value counts (all images of the split table)
    cramers_v: dict[str, float]
    scores: dict[str, Interval]  # test macro-F1 of each field alone, and of all fields together
    chance: float
    warning: str | None

    def as_dict(self) -> dict:
        return {
            "tables": {name: table.to_dict() for name, table in self.tables.items()},
            "cramers_v": self.cramers_v,
            "scores": {name: score.as_dict() for name, score in self.scores.items()},
            "chance": self.chance,
            "warning": self.warning,
        }


def cramers_v(table: pd.DataFrame) -> float:
    """Association of class and field in [0, 1]; 0 when the field has a single value."""
    observed = table.loc[table.sum(axis=1) > 0, table.sum(axis=0) > 0].to_numpy()
    if min(observed.shape) < 2:
        return 0.0
    return float(association(observed, method="cramer"))


def warning_text(scores: dict[str, Interval], chance: float) -> str | None:
    """The strongest single field whose interval lies above chance, in words a reader acts on."""
    above = {name: s for name, s in scores.items() if name != "all fields" and s.low > chance}
    if not above:
        combined = scores.get("all fields")
        if combined is None or combined.low <= chance:
            return None
        above = {"all fields": combined}
    name, score = max(above.items(), key=lambda item: item[1].estimate)
    what = "the acquisition fields in the file names" if name == "all fields" else f"the scan {name} alone"
    return (
        f"class is predictable from {what}: macro-F1 {score} vs chance {chance:.2f}; a model may learn "
        "scanner or protocol differences instead of anatomy"
    )


def confound_report(
    splits: pd.DataFrame,
    baselines: Baselines,
    class_names: Sequence[str],
    metadata_regex: str,
    groups: Sequence[object],
) -> ConfoundReport:
    """Tables over every image of the split table; scores on the test split with subject intervals."""
    fields = acquisition_fields(splits["path"].tolist(), metadata_regex)
    labels = pd.Categorical(splits["class_name"].to_numpy(), categories=list(class_names))
    tables = {
        column: pd.crosstab(labels, fields[column].to_numpy(), dropna=False).rename_axis(
            index="class", columns=column
        )
        for column in fields.columns
    }
    index = {name: i for i, name in enumerate(class_names)}
    test = splits.loc[splits["split"] == "test"]
    y_test = test["class_name"].map(index).to_numpy(dtype=np.int64)
    bootstrap = Bootstrap.of(y_test, groups, len(class_names))
    scores = {name: bootstrap.intervals(r.test)["macro_f1"] for name, r in baselines.field_results.items()}
    if "metadata" in baselines.results:
        scores["all fields"] = bootstrap.intervals(baselines.results["metadata"].test)["macro_f1"]
    chance = 1.0 / len(class_names)
    return ConfoundReport(
        tables, {k: cramers_v(t) for k, t in tables.items()}, scores, chance, warning_text(scores, chance)
    )


class ConfoundSummary(BaseModel):
    """A `ConfoundReport` without its tables, as the evaluation report and the `baselines` asset keep it
    (all empty when an evaluation had no confound report)."""

    model_config = ConfigDict(frozen=True)

    cramers_v: dict[str, float] = {}
    scores: dict[str, Interval] = {}
    chance: float | None = None
    warning: str | None = None


def confound_table(confound: ConfoundSummary) -> pd.DataFrame:
    """One row per acquisition field (and all together): Cramér's V, test macro-F1 [interval], chance."""
    rows = [
        {
            "field": name,
            "cramers_v": confound.cramers_v.get(name),
            "test_macro_f1": score.estimate,
            "low": score.low,
            "high": score.high,
            "chance": confound.chance,
        }
        for name, score in confound.scores.items()
    ]
    return pd.DataFrame(rows, columns=["field", "cramers_v", "test_macro_f1", "low", "high", "chance"])


def confound_text(confound: ConfoundSummary) -> str:
    """The table in one line per field, for terminals."""
    lines = ["acquisition field -> class (test macro-F1 of a logistic regression on the field alone):"]
    for row in confound_table(confound).itertuples():
        v = "" if row.cramers_v is None or pd.isna(row.cramers_v) else f"Cramér's V {row.cramers_v:.2f}, "
        lines.append(
            f"  {row.field:<11} {v}macro-F1 {Interval(row.test_macro_f1, row.low, row.high)} "
            f"(chance {row.chance:.2f})"
        )
    return "\n".join(lines)
