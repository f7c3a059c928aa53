"""Evaluate a saved model folder on a split: logits, calibrated probabilities, the report files."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from neuroflux_lib.config import DatasetConfig
from neuroflux_lib.data.datasets import cached_dataset, split_rows
from neuroflux_lib.data.splits import data_version
from neuroflux_lib.errors import DataError
from neuroflux_lib.evaluation.baselines import Baselines
from neuroflux_lib.evaluation.calibration import calibrated_probabilities, calibration_report
from neuroflux_lib.evaluation.metrics import classification_summary
from neuroflux_lib.evaluation.report import (
    REPORT_FILES,
    EvaluationReport,
    predict_logits,
    predictions_table,
    write_report,
)
from neuroflux_lib.evaluation.trust import trust_summary
from neuroflux_lib.paths import StoragePaths
from neuroflux_lib.serving.artifacts import (
    ArtifactMeta,
    load_artifact,
    read_meta,
    update_meta,
    weights_sha256,
)
from neuroflux_lib.serving.model_card import write_model_card

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Evaluation:
    report: EvaluationReport
    files: dict[str, Path]
    predictions: pd.DataFrame


def check_data_version(meta: ArtifactMeta, splits: pd.DataFrame, allow_other_data: bool) -> bool:
    """True when the artifact was trained on these splits. A model trained on other splits may have seen
    today's test images: refuse, unless the user asks, and then the report says so."""
    current = data_version(splits)
    if not meta.data_version or meta.data_version == current:
        return True
    if allow_other_data:
        logger.warning(
            "%s was trained on data version %s, the splits are %s: the test set is NOT held out",
            meta.architecture,
            meta.data_version,
            current,
        )
        return False
    raise DataError(
        f"this {meta.architecture} model was trained on data version {meta.data_version}, but the current "
        f"splits are {current}: its test images may have been training images. Train it again on the "
        "current splits, or pass --allow-other-data to evaluate anyway (the report then says that the "
        "test set was not held out)"
    )


def split_logits(
    artifact_dir: str | Path,
    dataset_config: DatasetConfig,
    splits: pd.DataFrame,
    split: str,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """(labels, logits) of a saved model on one split, through the decode-once cache."""
    model, meta = load_artifact(artifact_dir)
    data = cached_dataset(
        split_rows(splits, split),
        meta.class_names,
        meta.image_size,
        StoragePaths(dataset_config.storage_dir).cache,
        progress=progress,
    )
    return predict_logits(model, data, meta.input_normalization)


def predict_split(
    artifact_dir: str | Path,
    dataset_config: DatasetConfig,
    splits: pd.DataFrame,
    split: str,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """(labels, calibrated probabilities) of a saved model on one split, as the predictor gives them."""
    labels, logits = split_logits(artifact_dir, dataset_config, splits, split, progress)
    return labels, calibrated_probabilities(logits, read_meta(artifact_dir).temperature).numpy()


def evaluate_artifact(
    artifact_dir: str | Path,
    dataset_config: DatasetConfig,
    splits: pd.DataFrame,
    report_dir: str | Path,
    *,
    baselines: Baselines | None = None,
    confound: dict | None = None,
    allow_other_data: bool = False,
    record_metrics: bool = True,
    progress: bool = False,
) -> Evaluation:
    """Evaluate a saved artifact (the best checkpoint) on the test split; write report files.

    The report holds subject-bootstrap intervals, subject-level results, calibration and, with
    `baselines`, the comparison with them and its verdict. With `record_metrics`, the test metrics are
    also written into the artifact's `model.json`.
    """
    meta = read_meta(artifact_dir)
    held_out = check_data_version(meta, splits, allow_other_data)
    test = split_rows(splits, "test")
    y_true, logits = split_logits(artifact_dir, dataset_config, splits, "test", progress)
    probabilities = calibrated_probabilities(logits, meta.temperature).numpy()  # what users are shown
    report = EvaluationReport.model_validate(
        classification_summary(y_true, probabilities, meta.class_names)
        | trust_summary(meta, test, y_true, probabilities, splits, baselines, confound, held_out)
        | {
            "calibration": calibration_report(y_true, logits, meta.temperature),  # ECE before and after T
            "artifact_digest": weights_sha256(artifact_dir),
        }
    )
    predictions = predictions_table(test["path"].tolist(), y_true, probabilities, meta.class_names)
    history = meta.training.get("history", [])
    best_epoch = meta.training.get("best_epoch", "?")
    title = f"{meta.architecture} (best epoch {best_epoch}, weights {meta.weights_origin})"
    if not held_out:
        title = f"{title}: TEST SET NOT HELD OUT"
    files = write_report(report, report_dir, meta.class_names, history, title)
    files["model_card"] = write_model_card(report_dir, meta, splits, report)
    files["predictions"] = Path(report_dir) / REPORT_FILES["predictions"]
    predictions.to_csv(files["predictions"], index=False)
    if record_metrics:
        meta.test_metrics = report.headline()
        update_meta(artifact_dir, meta)
    return Evaluation(report, files, predictions)
