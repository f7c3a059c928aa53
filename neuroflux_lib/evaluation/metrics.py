"""Classification metrics, computed once, in one place, with sklearn."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field
from sklearn.metrics import (
    accuracy_score,
    classification_report,
    confusion_matrix,
    f1_score,
    roc_auc_score,
    roc_curve,
)


class ClassScores(BaseModel):
    """One row of sklearn's `classification_report(output_dict=True)`, keys as sklearn spells them."""

    model_config = ConfigDict(frozen=True, validate_by_name=True, serialize_by_alias=True)

    precision: float
    recall: float
    f1_score: float = Field(alias="f1-score")
    support: float


class RocCurve(BaseModel):
    """`roc_per_class`'s curve of one class (no points and AUC None for a class absent from the truth)."""

    model_config = ConfigDict(frozen=True)

    auc: float | None
    fpr: list[float]
    tpr: list[float]


def epoch_metrics(y_true: np.ndarray, y_pred: np.ndarray, class_names: Sequence[str]) -> dict[str, float]:
    """Accuracy, macro-F1 and per-class F1 (keys `f1_<class>`); classes absent from both count as 0."""
    labels = list(range(len(class_names)))
    per_class = f1_score(y_true, y_pred, labels=labels, average=None, zero_division=0)
    metrics = {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
    }
    metrics.update({f"f1_{name}": float(v) for name, v in zip(class_names, per_class, strict=True)})
    return metrics


def roc_per_class(
    y_true: np.ndarray, probabilities: np.ndarray, class_names: Sequence[str]
) -> dict[str, dict]:
    """One-vs-rest ROC curve and AUC per class; a class missing from y_true has no curve (AUC None)."""
    curves = {}
    for index, name in enumerate(class_names):
        positives = y_true == index
        if positives.all() or not positives.any():
            curves[name] = {"auc": None, "fpr": [], "tpr": []}
            continue
        fpr, tpr, _ = roc_curve(positives, probabilities[:, index])
        auc = roc_auc_score(positives, probabilities[:, index])
        curves[name] = {"auc": float(auc), "fpr": fpr.tolist(), "tpr": tpr.tolist()}
    return curves


def classification_summary(
    y_true: np.ndarray, probabilities: np.ndarray, class_names: Sequence[str]
) -> dict[str, object]:
    """Everything the evaluation report holds, as JSON-ready data."""
    y_pred = probabilities.argmax(axis=1)
    labels = list(range(len(class_names)))
    report = classification_report(
        y_true, y_pred, labels=labels, target_names=list(class_names), output_dict=True, zero_division=0
    )
    text = classification_report(
        y_true, y_pred, labels=labels, target_names=list(class_names), digits=3, zero_division=0
    )
    roc = roc_per_class(y_true, probabilities, class_names)
    aucs = [c["auc"] for c in roc.values() if c["auc"] is not None]
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(report["macro avg"]["f1-score"]),
        "weighted_f1": float(report["weighted avg"]["f1-score"]),
        "macro_roc_auc": float(np.mean(aucs)) if aucs else None,
        "per_class": {name: report[name] for name in class_names},
        "macro_avg": report["macro avg"],
        "weighted_avg": report["weighted avg"],
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        "roc": roc,
        "classification_report": text,
        "n_test": len(y_true),
    }


def calibration_bins(y_true: np.ndarray, probabilities: np.ndarray, bins: int = 15) -> dict[str, object]:
    """Expected calibration error (top-label, equal-width confidence bins) and the reliability table.

    ECE = sum over bins of (share of images) x |accuracy - mean confidence|: 0 for a model whose 80%
    answers are right 80% of the time."""
    confidence = probabilities.max(axis=1)
    correct = (probabilities.argmax(axis=1) == y_true).astype(float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    count = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore"):
        accuracy = np.bincount(which, weights=correct, minlength=bins) / count
        mean_confidence = np.bincount(which, weights=confidence, minlength=bins) / count
    share = count / max(len(y_true), 1)
    ece = float(np.nansum(share * np.abs(accuracy - mean_confidence)))
    return {
        "ece": ece,
        "bins": bins,
        "edges": edges.tolist(),
        "count": count.tolist(),
        "accuracy": [None if np.isnan(a) else float(a) for a in accuracy],
        "confidence": [None if np.isnan(c) else float(c) for c in mean_confidence],
    }


def subject_probabilities(
    probabilities: np.ndarray, y_true: np.ndarray, subjects: Sequence[object]
) -> tuple[np.ndarray, np.ndarray, list[object]]:
    """A subject's prediction is the mean of its slices' probabilities (a subject has one class)."""
    frame = pd.DataFrame(probabilities).assign(subject=list(subjects), label=y_true)
    grouped = frame.groupby("subject", sort=True)
    mean = grouped[list(range(probabilities.shape[1]))].mean()
    labels = grouped["label"].agg(lambda s: s.mode().iloc[0])
    return mean.to_numpy(), labels.to_numpy(dtype=np.int64), mean.index.tolist()
