"""The evaluation report: `EvaluationReport`, the typed `report.json` every reader of test results uses,
and the files written beside it (text report, plots), from a model's logits on a split."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from pydantic import BaseModel, ConfigDict, ValidationError
from torch.utils.data import DataLoader, Dataset

from neuroflux_lib.errors import ArtifactError
from neuroflux_lib.evaluation.calibration import Calibration, reliability_png
from neuroflux_lib.evaluation.comparison import Comparison, comparison_rows
from neuroflux_lib.evaluation.confound import ConfoundSummary
from neuroflux_lib.evaluation.intervals import Interval, Scores
from neuroflux_lib.evaluation.metrics import ClassScores, RocCurve
from neuroflux_lib.plots import (
    confusion_matrix_png,
    intervals_png,
    roc_curves_png,
    training_curves_png,
)


@torch.inference_mode()
def predict_logits(
    model: torch.nn.Module,
    data: Dataset,
    prepare: Callable[[torch.Tensor], torch.Tensor],
    device: str | torch.device = "cpu",
    batch_size: int = 64,
) -> tuple[np.ndarray, np.ndarray]:
    """(labels, logits) for every item, in dataset order; `prepare` makes model input of a batch (the
    artifact's normalisation)."""
    model = model.to(device).eval()
    labels, logits = [], []
    for images, targets in DataLoader(data, batch_size=batch_size, shuffle=False):
        logits.append(model(prepare(images.to(device))).float().cpu())
        labels.append(targets)
    if not labels:
        raise ValueError("cannot evaluate on an empty dataset")
    return torch.cat(labels).numpy(), torch.cat(logits).numpy()


def predictions_table(
    paths: Sequence[str], y_true: np.ndarray, probabilities: np.ndarray, class_names: Sequence[str]
) -> pd.DataFrame:
    """One row per test image: path, true and predicted class, confidence, every class's probability."""
    names = np.asarray(class_names)
    table = pd.DataFrame(
        {
            "path": list(paths),
            "true": names[y_true],
            "predicted": names[probabilities.argmax(axis=1)],
            "confidence": probabilities.max(axis=1),
        }
    )
    return pd.concat([table, pd.DataFrame(probabilities, columns=list(class_names))], axis=1)


#: A report folder's files (`predictions.csv` is added by `evaluate_artifact`).
REPORT_FILES = {
    "report": "report.json",
    "text": "classification_report.txt",
    "confusion_matrix": "confusion_matrix.png",
    "roc_curves": "roc_curves.png",
    "training_curves": "training_curves.png",
    "reliability": "reliability.png",
    "comparison": "comparison.png",
    "predictions": "predictions.csv",
}
#: Files written only when their data is in the report.
OPTIONAL_FILES = ("training_curves", "comparison", "predictions")


class SubjectLevel(Scores):
    """The intervals of the subject-level predictions (a subject's slices averaged)."""

    n_subjects: int


class GalleryItem(BaseModel):
    """One test image of the Grad-CAM gallery."""

    model_config = ConfigDict(frozen=True)

    path: str
    true: str
    predicted: str
    confidence: float
    kind: str  # correct | wrong


class FaithfulnessSummary(BaseModel):
    """`gradcam_gallery.Faithfulness.as_dict()`: the deletion test with its reading."""

    model_config = ConfigDict(frozen=True)

    heatmap_drop: Interval
    random_drop: Interval
    difference: Interval
    n_images: int
    fraction: float
    meaningful: bool
    summary: str


class ExplanationsSummary(BaseModel):
    """What `explain_report` adds to a report: the gallery's images and the deletion test."""

    model_config = ConfigDict(frozen=True)

    method: str
    layer: str
    gallery: list[GalleryItem]
    faithfulness: FaithfulnessSummary


class EvaluationReport(BaseModel):
    """`report.json`: the contract between the evaluation and everything that reads its results.

    The JSON is the one `evaluate_artifact` has always written (sklearn's metrics from
    `classification_summary`, then `trust_summary`, calibration and the artifact's digest), so older files
    load as they are; keys this type does not know are ignored.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    accuracy: float
    macro_f1: float
    weighted_f1: float
    macro_roc_auc: float | None  # None when no class has a ROC curve
    per_class: dict[str, ClassScores]
    macro_avg: ClassScores
    weighted_avg: ClassScores
    confusion_matrix: list[list[int]]
    roc: dict[str, RocCurve]
    classification_report: str
    n_test: int
    model_name: str
    intervals: Scores  # subject-bootstrap intervals on the test images
    chance: Interval  # macro-F1 of the same predictions shuffled against the truth
    subject_level: SubjectLevel
    calibration: Calibration
    val_macro_f1: float | None
    confound_warning: str | None
    confound: ConfoundSummary
    held_out: bool
    data_version: str
    trained_on_data_version: str | None
    config_digest: str | None
    artifact_digest: str
    comparison: Comparison | None = None  # with the baselines, when the evaluation had them
    explanations: ExplanationsSummary | None = None  # added by `explain_report`

    def headline(self) -> dict[str, float | int | None]:
        """The test numbers every summary shows (model.json's `test_metrics`, the W&B run summary)."""
        return {
            "accuracy": self.accuracy,
            "macro_f1": self.macro_f1,
            "weighted_f1": self.weighted_f1,
            "macro_roc_auc": self.macro_roc_auc,
            "n_test": self.n_test,
        }

    def to_json(self) -> str:
        """The JSON as `json.dumps` has always written it (NaN stays NaN)."""
        return json.dumps(self.model_dump(mode="json"), indent=2)

    @classmethod
    def from_json(cls, text: str | bytes) -> EvaluationReport:
        """Any `report.json` the platform wrote, older ones included (`json` reads their NaN too)."""
        return cls.model_validate(json.loads(text))


def read_report(report_dir: str | Path) -> EvaluationReport:
    """The report of a report folder, as `save_report` stored it."""
    path = Path(report_dir) / REPORT_FILES["report"]
    if not path.is_file():
        raise ArtifactError(f"{report_dir} is not an evaluation report: {path.name} is missing")
    try:
        return EvaluationReport.from_json(path.read_text())
    except ValidationError as error:
        raise ArtifactError(f"{path} is not an evaluation report this version can read: {error}") from None


def save_report(report: EvaluationReport, report_dir: str | Path) -> Path:
    """Only `report.json` (`write_report` also draws the plots); returns its path."""
    path = Path(report_dir) / REPORT_FILES["report"]
    path.write_text(report.to_json())
    return path


def read_report_text(report_dir: str | Path) -> str:
    path = Path(report_dir) / REPORT_FILES["text"]
    return path.read_text() if path.is_file() else "(classification report not found)"


def write_report(
    report: EvaluationReport,
    out_dir: str | Path,
    class_names: Sequence[str],
    history: Sequence[dict[str, float]] = (),
    title: str = "",
) -> dict[str, Path]:
    """`report.json`, `classification_report.txt` and the PNGs; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {key: out / name for key, name in REPORT_FILES.items() if key not in OPTIONAL_FILES}
    save_report(report, out)
    files["text"].write_text(report.classification_report)
    files["confusion_matrix"].write_bytes(confusion_matrix_png(report.confusion_matrix, class_names, title))
    files["roc_curves"].write_bytes(roc_curves_png(report.roc, title))
    files["reliability"].write_bytes(reliability_png(report.calibration, title and f"{title}: reliability"))
    if report.comparison is not None:
        rows = comparison_rows(report.comparison, report.model_name)
        files["comparison"] = out / REPORT_FILES["comparison"]
        files["comparison"].write_bytes(intervals_png(rows, report.comparison.verdict, 1 / len(class_names)))
    if history:
        files["training_curves"] = out / REPORT_FILES["training_curves"]
        files["training_curves"].write_bytes(training_curves_png(history, class_names, title))
    return files
