"""Everything a reader needs to believe (or not) a test score, computed in one place for every report."""

from __future__ import annotations

import numpy as np
import pandas as pd

from neuroflux_lib.data.splits import data_version
from neuroflux_lib.evaluation.baselines import Baselines
from neuroflux_lib.evaluation.comparison import compare, group_keys
from neuroflux_lib.evaluation.intervals import Bootstrap, named
from neuroflux_lib.evaluation.metrics import calibration_bins, subject_probabilities
from neuroflux_lib.serving.artifacts import ArtifactMeta


def trust_summary(
    meta: ArtifactMeta,
    test: pd.DataFrame,
    y_true: np.ndarray,
    probabilities: np.ndarray,
    splits: pd.DataFrame,
    baselines: Baselines | None,
    confound: dict | None,
    held_out: bool,
) -> dict:
    """What a reader needs to believe (or not) the test numbers: intervals, subject-level results,
    calibration, the comparison with the baselines, the confound warning, and data provenance."""
    class_names = meta.class_names
    k = len(class_names)
    y_pred = probabilities.argmax(axis=1)
    groups = group_keys(test)
    subjects = (
        test["subject_id"].fillna(test["path"]).tolist() if "subject_id" in test else test["path"].tolist()
    )
    subject_probs, subject_true, _ = subject_probabilities(probabilities, y_true, subjects)
    subject_intervals = Bootstrap.of(subject_true, np.arange(len(subject_true)), k).intervals(
        subject_probs.argmax(axis=1)
    )
    bootstrap = Bootstrap.of(y_true, groups, k)
    summary = {
        "model_name": meta.architecture,
        "intervals": named(bootstrap.intervals(y_pred), class_names),
        "chance": bootstrap.chance(y_pred).as_dict(),
        "subject_level": {"n_subjects": len(subject_true), **named(subject_intervals, class_names)},
        "calibration": calibration_bins(y_true, probabilities),
        "val_macro_f1": meta.training.get("best_val", {}).get("val_macro_f1"),
        "confound_warning": (confound or {}).get("warning"),
        "confound": {key: value for key, value in (confound or {}).items() if key != "tables"},
        "held_out": held_out,
        "data_version": data_version(splits),
        "trained_on_data_version": meta.data_version,
        "config_digest": meta.config_digest,
    }
    if baselines is not None:
        val = splits.loc[splits["split"] == "val"]
        summary["comparison"] = compare(meta.architecture, test, val, y_pred.tolist(), baselines, class_names)
        summary["comparison"]["model_val_macro_f1"] = summary["val_macro_f1"]
    return summary
