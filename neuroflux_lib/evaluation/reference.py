"""The reference points every model of one data version is measured against, computed once: the
baselines (fitted on train, scored on val and test with subject intervals) and the confound report."""

from __future__ import annotations

import time

import pandas as pd

from neuroflux_lib.config import DatasetConfig
from neuroflux_lib.data.splits import data_version
from neuroflux_lib.evaluation.baselines import Baselines, fit_baselines
from neuroflux_lib.evaluation.comparison import baseline_table, group_keys
from neuroflux_lib.evaluation.confound import confound_report
from neuroflux_lib.evaluation.intervals import Interval


def reference_report(splits: pd.DataFrame, config: DatasetConfig) -> dict:
    """JSON-ready: every baseline's predictions and scores, the confound report, the data version."""
    started = time.perf_counter()
    fitted = fit_baselines(splits, config)
    val = splits.loc[splits["split"] == "val"]
    test = splits.loc[splits["split"] == "test"]
    class_names = list(config.class_names)
    confound = confound_report(splits, fitted, class_names, config.metadata_regex, group_keys(test))
    return {
        **fitted.as_dict(),
        "summary": baseline_table(fitted, val, test, class_names),
        "confound": confound.as_dict(),
        "data_version": data_version(splits),
        "seconds": round(time.perf_counter() - started, 2),
    }


def baselines_of(reference: dict) -> Baselines:
    return Baselines.from_dict(reference)


def summary_rows(reference: dict) -> pd.DataFrame:
    """One row per baseline: val and test macro-F1 and balanced accuracy with intervals (for tables)."""

    return pd.DataFrame(
        [
            {
                "baseline": name,
                "val_macro_f1": str(Interval(**item["val"]["macro_f1"])),
                "test_macro_f1": str(Interval(**item["test"]["macro_f1"])),
                "test_balanced_accuracy": str(Interval(**item["test"]["balanced_accuracy"])),
                "what": item["description"],
            }
            for name, item in reference["summary"].items()
        ]
    )
