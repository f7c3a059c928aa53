"""Evaluate a trained model on the test split and write the report people expect."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

from neuroflux_lib.errors import ArtifactError
from neuroflux_lib.evaluation.calibration import reliability_png
from neuroflux_lib.evaluation.comparison import comparison_rows
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


def read_report(report_dir: str | Path) -> dict:
    """The metrics of a report folder, as `write_report` stored them."""
    path = Path(report_dir) / REPORT_FILES["report"]
    if not path.is_file():
        raise ArtifactError(f"{report_dir} is not an evaluation report: {path.name} is missing")
    return json.loads(path.read_text())


def read_report_text(report_dir: str | Path) -> str:
    path = Path(report_dir) / REPORT_FILES["text"]
    return path.read_text() if path.is_file() else "(classification report not found)"


def write_report(
    report: dict[str, object],
    out_dir: str | Path,
    class_names: Sequence[str],
    history: Sequence[dict[str, float]] = (),
    title: str = "",
) -> dict[str, Path]:
    """`report.json`, `classification_report.txt` and the PNGs; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {key: out / name for key, name in REPORT_FILES.items() if key not in OPTIONAL_FILES}
    files["report"].write_text(json.dumps(report, indent=2))
    files["text"].write_text(str(report["classification_report"]))
    files["confusion_matrix"].write_bytes(
        confusion_matrix_png(report["confusion_matrix"], class_names, title)
    )
    files["roc_curves"].write_bytes(roc_curves_png(report["roc"], title))
    files["reliability"].write_bytes(
        reliability_png(report["calibration"], title and f"{title}: reliability")
    )
    if "comparison" in report:
        rows = comparison_rows(report["comparison"], str(report.get("model_name", "model")))
        files["comparison"] = out / REPORT_FILES["comparison"]
        files["comparison"].write_bytes(
            intervals_png(rows, report["comparison"]["verdict"], 1 / len(class_names))
        )
    if history:
        files["training_curves"] = out / REPORT_FILES["training_curves"]
        files["training_curves"].write_bytes(training_curves_png(history, class_names, title))
    return files
