"""The model card: what a model is for, what it was trained and tested on, how far to trust it.

`model_card.md` is written beside every artifact: at training time from `model.json` and the splits
(results not yet known), then again with the evaluation report (baselines with intervals, the confound
warning, test calibration) into the report folder and the production model's folder.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import torch
from pydantic import ValidationError

from neuroflux_lib.config import AugmentationConfig
from neuroflux_lib.data.augmentation import describe_augmentation
from neuroflux_lib.data.splits import SPLITS, split_counts
from neuroflux_lib.evaluation.comparison import comparison_rows
from neuroflux_lib.evaluation.intervals import Interval
from neuroflux_lib.models import REGISTRY
from neuroflux_lib.serving.artifacts import ArtifactMeta

if TYPE_CHECKING:
    from neuroflux_lib.evaluation.report import EvaluationReport

CARD_FILE = "model_card.md"

INTENDED_USE = (
    "Research on classifying single axial T2/T2* brain MRI slices into the five phases of the Neuroflux "
    "disorder (EO, IO, LO, PTE, IPTE). **Not for diagnosis** or any decision about a patient: the model "
    "has no clinical validation, sees one 2D slice at a time, and its test numbers come from one data "
    "source. Its output is a label and calibrated class probabilities for a slice."
)
SPLIT_POLICY = (
    "Train, validation and test by subject and near-duplicate group (no subject and no near-duplicate "
    "image in two splits), stratified by class, deterministic for the dataset's seed; unreadable and "
    "broken images left out; augmented copies only in train. Validation chooses the best epoch, the "
    "temperature and the production model; the test split only measures, once."
)
LIMITATIONS = (
    "One 2D slice at a time: no volume, no other sequence, no subject history (the report's subject "
    "level averages a subject's slices).",
    "Trained and tested on one data source: accuracy on other scanners, sites, sequences or populations "
    "is unknown.",
    "Acquisition (site, sequence, scan year) can be confounded with the class: a model can learn the "
    "scanner instead of anatomy. See the confound section.",
    "Small test split: read the intervals, not the point estimates.",
    "Calibration holds for data like the validation split; under dataset shift probabilities are again "
    "over- or under-confident.",
)
#: Training settings every card lists (the architecture's own keys come from `model.json` too).
TRAINING_KEYS = (
    "optimizer",
    "learning_rate",
    "weight_decay",
    "batch_size",
    "num_epochs",
    "scheduler",
    "warmup_epochs",
    "label_smoothing",
    "class_weights",
    "grad_clip_norm",
    "early_stopping_patience",
    "monitor",
    "seed",
)


def hardware_name(device: str) -> str:
    """The machine a model trained on, in words: the GPU's name, or the CPU and its cores."""
    if device.startswith("cuda") and torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(torch.device(device))} (CUDA)"
    if device.startswith("mps"):
        return "Apple GPU (MPS)"
    return f"CPU {platform.processor() or platform.machine()}, {os.cpu_count()} cores"


def _number(value: object) -> str:
    return f"{value:.2f}" if isinstance(value, int | float) and value == value else ""


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _table(frame: pd.DataFrame) -> str:
    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "---|" * len(frame.columns)
    rows = ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows])


def _data(meta: ArtifactMeta, splits: pd.DataFrame | None) -> list[str]:
    lines = [f"Data version `{meta.data_version or 'unknown'}` (digest of which image is in which split)."]
    if splits is None:
        return lines
    counts = split_counts(splits, meta.class_names)
    shares = ", ".join(f"{name} {counts[name].sum() / counts['total'].sum():.0%}" for name in SPLITS)
    lines += ["", f"Images per class and split ({shares}):", "", _table(counts.reset_index(names="class"))]
    smallest, largest = counts["total"].min(), counts["total"].max()
    if smallest and largest / smallest >= 2:
        lines += [
            "",
            f"Classes are imbalanced ({largest / smallest:.1f}:1); train is topped up with "
            f"augmented copies ({meta.training.get('train_images', '?')} train images).",
        ]
    return lines


def _results(report: EvaluationReport | None) -> list[str]:
    if report is None:
        return ["Not evaluated yet: the evaluation report's card holds the test results."]
    lines = []
    if not report.held_out:
        lines.append("**The test set was NOT held out: this model was trained on other splits.**\n")
    intervals, subject = report.intervals, report.subject_level
    lines += [
        f"Test split, {report.n_test} images; 95% subject-bootstrap intervals:",
        "",
        f"- macro-F1 {intervals.macro_f1} (chance {report.chance})",
        f"- balanced accuracy {intervals.balanced_accuracy}",
        f"- accuracy {intervals.accuracy}",
        f"- subject-level macro-F1 {subject.macro_f1} ({subject.n_subjects} subjects)",
    ]
    comparison = report.comparison
    if comparison is not None:
        rows = comparison_rows(comparison, report.model_name)
        rows = pd.DataFrame(
            {
                "": rows["name"],
                "test macro-F1 [95% CI]": [
                    str(Interval(*v)) for v in rows[["estimate", "low", "high"]].values
                ],
                "balanced accuracy [95% CI]": rows["balanced_accuracy"],
                "val macro-F1": [f"{v:.3f}" if pd.notna(v) else "" for v in rows["val_macro_f1"]],
            }
        )
        lines += ["", _table(rows), "", f"**{comparison.verdict}**"]
    return lines


def _confound(report: EvaluationReport | None) -> list[str]:
    if report is None:
        return ["See the evaluation report (the `baselines` asset measures it on the splits)."]
    lines = [
        f"**{report.confound_warning}**"
        if report.confound_warning
        else "No acquisition field read from the file names predicts the class beyond chance here."
    ]
    scores = report.confound.scores
    if scores:
        rows = pd.DataFrame(
            {
                "acquisition field": list(scores),
                "test macro-F1 from it alone [95% CI]": [str(s) for s in scores.values()],
                "Cramér's V": [_number(report.confound.cramers_v.get(k)) for k in scores],
            }
        )
        lines += ["", _table(rows)]
    return lines


def _calibration(meta: ArtifactMeta, report: EvaluationReport | None) -> list[str]:
    if not meta.calibrated:
        return [
            "Not calibrated (an artifact from before temperature scaling): probabilities are the plain "
            "softmax of the logits."
        ]
    fit = meta.calibration
    lines = [
        f"Temperature scaling: probabilities are softmax(logits / T) with **T = {meta.temperature:.3f}**, "
        f"fitted on the {fit['fitted_on']} split ({fit['n_images']} images) by minimum negative "
        f"log-likelihood (NLL {fit['nll_before']:.3f} -> {fit['nll_after']:.3f}, ECE {fit['ece_before']:.3f} "
        f"-> {fit['ece_after']:.3f}); T > 1: the raw model was over-confident, T < 1: under-confident. "
        "Predictions (argmax) "
        "are unchanged; every probability shown to users is the calibrated one.",
    ]
    if report is not None:
        test = report.calibration
        lines.append(
            f"\nTest split expected calibration error (15 equal-width bins): {test.before.ece:.3f} "
            f"before, {test.ece:.3f} after (reliability diagram in the evaluation report)."
        )
    return lines


def _limitations(meta: ArtifactMeta, report: EvaluationReport | None) -> list[str]:
    found = []
    learned = meta.training.get("learn_check") or {}
    if learned and not learned.get("passed", True):
        found.append(f"**{learned.get('message')}**")
    if meta.weights_note:
        found.append(f"Weights: {meta.weights_note}")
    if report is not None and not report.held_out:
        found.append("The test split of this report was not held out.")
    return [f"- {item}" for item in (*found, *LIMITATIONS)]


def _augmentation(hyperparameters: Mapping) -> str:
    if not hyperparameters.get("augment", False):
        return "off"
    try:
        return describe_augmentation(
            AugmentationConfig.model_validate(hyperparameters.get("augmentation", {}))
        )
    except ValidationError:
        return str(hyperparameters.get("augmentation"))


def _training(meta: ArtifactMeta) -> list[str]:
    training, hyper = meta.training, meta.hyperparameters
    history = training.get("history", [])
    seconds = sum(float(epoch.get("train_seconds", 0.0)) for epoch in history)
    weights = meta.weights_origin + (f" ({meta.weights_name})" if meta.weights_name else "")
    own = REGISTRY[meta.architecture].config_keys if meta.architecture in REGISTRY else ()
    keys = [k for k in (*own, *TRAINING_KEYS) if k in hyper]
    settings = pd.DataFrame({"setting": keys, "value": [hyper[k] for k in keys]})
    best = training.get("best_metric")
    lines = [
        f"- architecture: `{meta.architecture}`, {meta.image_size} px input, classes "
        f"{', '.join(meta.class_names)}",
        f"- weights origin: {weights}" + (f"; {meta.weights_note}" if meta.weights_note else ""),
        f"- frozen layers: {', '.join(meta.frozen_layers) or 'none (every layer trained)'}",
        f"- normalisation: {meta.input_normalization.describe()}; augmentation: {_augmentation(hyper)}",
        f"- epochs: {training.get('epochs_run', '?')} run, best epoch {training.get('best_epoch', '?')} by "
        f"{training.get('monitor', '?')}"
        + (f" = {best:.4f}" if isinstance(best, float) else "")
        + (", stopped early" if training.get("stopped_early") else ""),
        f"- hardware: {training.get('hardware') or training.get('device', 'unknown')}",
        f"- precision: {training.get('precision', 'float32')}",
        f"- training time: {_duration(seconds)} in training passes over {len(history)} epoch(s) "
        "(validation passes not included)",
        f"- library version {meta.library_version}, config digest `{meta.config_digest or 'unknown'}`",
        "",
        _table(settings),
    ]
    return lines


def model_card(
    meta: ArtifactMeta, splits: pd.DataFrame | None = None, report: EvaluationReport | None = None
) -> str:
    """The card as markdown, from the artifact's `model.json`, the split table it was trained on and,
    once there is one, its evaluation report."""
    sections = {
        "Intended use": [INTENDED_USE],
        "Data": _data(meta, splits),
        "Split policy": [SPLIT_POLICY],
        "Results against the baselines": _results(report),
        "Confound warning": _confound(report),
        "Calibration": _calibration(meta, report),
        "Known limitations": _limitations(meta, report),
        "How it was trained": _training(meta),
    }
    parts = [f"# Model card: {meta.architecture}"]
    for title, lines in sections.items():
        parts += ["", f"## {title}", "", *lines]
    return "\n".join(parts) + "\n"


def write_model_card(
    folder: str | Path,
    meta: ArtifactMeta,
    splits: pd.DataFrame | None = None,
    report: EvaluationReport | None = None,
) -> Path:
    """`model_card.md` in `folder`; returns its path."""
    path = Path(folder) / CARD_FILE
    path.write_text(model_card(meta, splits, report))
    return path
