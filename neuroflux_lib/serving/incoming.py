"""Scoring a batch of new scans (one folder) with a model artifact, without trusting it blindly.

Every image gets the quality statistics of `data.quality` first. The model scores only the images it can
be trusted on; the others are flagged `out_of_distribution` with the kind and the reason, not scored:

- `unreadable`: the decoder's reason (truncated, not an image, too large);
- `broken`: the fixed rules of `data.broken`, the ones that keep such images out of training;
- `out_of_range`: a statistic outside the range the training images cover, widened on each side by
  `OOD_MARGIN` of that range (and at least the statistic's spread floor of `data.outliers`), e.g. a
  sequence or scanner the model never saw. The training range, not a z-score, because about 11% of the
  real training images are legitimately far from the median and the model has seen those.

Each row also carries the model version (architecture and a digest of the weights file) and the data
version it was trained on, so a prediction can always be traced to the model that made it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from neuroflux_lib.data.broken import broken_reasons
from neuroflux_lib.data.discovery import list_image_files
from neuroflux_lib.data.imageio import DEFAULT_MAX_PIXELS
from neuroflux_lib.data.outliers import spread_floor
from neuroflux_lib.data.quality import STAT_COLUMNS, compute_quality
from neuroflux_lib.data.splits import data_version
from neuroflux_lib.errors import DataError
from neuroflux_lib.evaluation.report import REPORT_FILES, read_report
from neuroflux_lib.monitoring.drift import DriftReport, drift_report
from neuroflux_lib.serving.artifacts import read_meta, weights_sha256
from neuroflux_lib.serving.predictor import DEFAULT_BATCH, Predictor

OOD_MARGIN = 0.10
OOD_KINDS = ("unreadable", "broken", "out_of_range")


@dataclass(frozen=True)
class TrainingReference:
    """What a batch is compared with (`drift_reference` stores it as JSON): the train split's quality
    statistics, for out-of-range flags and drift, and the class counts its predicted-class mix should
    follow, with where they come from."""

    quality: pd.DataFrame  # one row per train image, STAT_COLUMNS
    class_counts: pd.Series  # images per class name
    class_source: str
    data_version: str
    model_version: str = ""

    def to_dict(self) -> dict[str, object]:
        return {
            "statistics": {name: self.quality[name].astype(float).tolist() for name in STAT_COLUMNS},
            "class_counts": {str(k): int(v) for k, v in self.class_counts.items()},
            "class_source": self.class_source,
            "data_version": self.data_version,
            "model_version": self.model_version,
        }

    @classmethod
    def from_dict(cls, values: Mapping[str, object]) -> TrainingReference:
        return cls(
            pd.DataFrame(values["statistics"], columns=STAT_COLUMNS, dtype=float),
            pd.Series(values["class_counts"], dtype=int, name="images"),
            str(values["class_source"]),
            str(values["data_version"]),
            str(values.get("model_version", "")),
        )


def training_reference(
    image_quality: pd.DataFrame, dataset_splits: pd.DataFrame, class_names: Sequence[str]
) -> TrainingReference:
    """The train split (originals: augmented copies are not in `dataset_splits`) joined with its
    statistics, and the train labels' class counts; from the two stored tables, nothing is decoded."""
    train = dataset_splits.loc[dataset_splits["split"] == "train", ["path", "class_name"]]
    quality = train.merge(image_quality[["path", *STAT_COLUMNS]], on="path", how="inner")
    if quality.empty:
        raise DataError(
            "the train split has no quality statistics: materialize image_quality and dataset_splits"
        )
    counts = train["class_name"].value_counts().reindex(list(class_names), fill_value=0)
    return TrainingReference(
        quality[STAT_COLUMNS].reset_index(drop=True),
        counts.astype(int).rename("images"),
        "train-split labels",
        data_version(dataset_splits),
    )


def with_model_class_mix(
    reference: TrainingReference, artifact: str | Path, evaluation_reports: Mapping[str, str | Path]
) -> TrainingReference:
    """`reference` with the class counts a batch's predicted classes are compared with: the model's own
    predictions on the held-out test split, from the evaluation report of exactly this artifact (same
    weights digest). A model does not predict the label mix (class-balanced training makes it predict the
    rare classes more often), so comparing with the labels would warn on every batch. Without such a
    report the label counts stay, and `class_source` says so."""
    digest = weights_sha256(artifact)
    version = model_identity(artifact, digest)["model_version"]
    for name, folder in sorted(evaluation_reports.items()):
        report_file = Path(folder) / REPORT_FILES["report"]
        predictions_file = Path(folder) / REPORT_FILES["predictions"]
        if not (report_file.is_file() and predictions_file.is_file()):
            continue
        if read_report(folder).artifact_digest != digest:
            continue
        predicted = pd.read_csv(predictions_file)["predicted"]
        counts = predicted.value_counts().reindex(reference.class_counts.index, fill_value=0).astype(int)
        source = f"test-split predictions of {version} (evaluation_report[{name}])"
        return replace(
            reference, class_counts=counts.rename("images"), class_source=source, model_version=version
        )
    source = f"{reference.class_source} (no evaluation report of {version}'s weights)"
    return replace(reference, class_source=source, model_version=version)


def batch_folders(incoming_dir: str | Path) -> list[str]:
    """Names of the batches waiting under `incoming_dir`: sub-folders holding at least one image file.

    Hidden folders (`.name`) are skipped, so a batch can be copied under a hidden name and renamed when
    complete; a missing `incoming_dir` holds no batches.
    """
    root = Path(incoming_dir)
    if not root.is_dir():
        return []
    return sorted(
        folder.name
        for folder in root.iterdir()
        if folder.is_dir() and not folder.name.startswith(".") and list_image_files(folder)[0]
    )


def out_of_range_reasons(
    quality: pd.DataFrame, reference: pd.DataFrame, margin: float = OOD_MARGIN
) -> pd.Series:
    """Per row of `quality`: every statistic outside the training range (widened, see the module
    docstring) as "intensity 212 above the training range [40, 160]", joined by "; ", or ""."""
    ref = reference[STAT_COLUMNS].astype(float)
    low, high = ref.min(), ref.max()
    slack = np.maximum(margin * (high - low), spread_floor(ref, ref.median().fillna(0.0)))
    found: dict[object, list[str]] = {}
    values = quality[STAT_COLUMNS].astype(float)
    for name in STAT_COLUMNS:
        span = f"the training range [{low[name]:.3g}, {high[name]:.3g}]"
        for key, value in values[name].items():
            if value < low[name] - slack[name]:
                found.setdefault(key, []).append(f"{name} {value:.3g} below {span}")
            elif value > high[name] + slack[name]:
                found.setdefault(key, []).append(f"{name} {value:.3g} above {span}")
    return pd.Series(
        [("; ".join(found.get(k, []))) for k in quality.index], index=quality.index, dtype=object
    )


def model_identity(artifact: str | Path, weights: str | None = None) -> dict[str, str]:
    """The model version columns: `<architecture>-<first 12 hex of the weights' sha256>`, the data version
    it was trained on and its config digest (`weights`: the sha256, when the caller has it already)."""
    meta = read_meta(artifact)
    weights = weights or weights_sha256(artifact)
    return {
        "model_version": f"{meta.architecture}-{weights[:12]}",
        "model_architecture": meta.architecture,
        "model_data_version": meta.data_version or "",
        "model_config_digest": meta.config_digest or "",
    }


def flag_images(quality: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
    """`ood_kind` and `ood_reason` per row of a quality table (indexed by path); "" when the image is fine.
    The first kind that applies wins, in the order of `OOD_KINDS`."""
    kind = pd.Series("", index=quality.index, dtype=object)
    reason = pd.Series("", index=quality.index, dtype=object)
    readable = quality["readable"].astype(bool)
    kind[~readable] = "unreadable"
    reason[~readable] = quality.loc[~readable, "reason"].fillna("").astype(str)
    broken = broken_reasons(quality.loc[readable])
    broken = broken[broken != ""]
    kind[broken.index], reason[broken.index] = "broken", broken
    rest = quality.loc[readable].drop(index=broken.index)
    far = out_of_range_reasons(rest, reference)
    far = far[far != ""]
    kind[far.index], reason[far.index] = "out_of_range", far
    return pd.DataFrame({"ood_kind": kind, "ood_reason": reason})


def score_batch(
    folder: str | Path,
    artifact: str | Path,
    reference: TrainingReference,
    workers: int | None = None,
    batch_size: int = DEFAULT_BATCH,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> pd.DataFrame:
    """One row per image file under `folder` (sorted): file, flags, label, confidence, one `p_<class>`
    column per class, the model version columns, size and quality statistics. Flagged images have no
    label and no probabilities. Raises DataError when the folder holds no image files."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"batch folder not found: {folder}")
    images, _ignored = list_image_files(folder)
    if not images:
        raise DataError(f"no image files in {folder}")
    quality = compute_quality([str(p) for p in images], workers, max_pixels)
    flags = flag_images(quality, reference.quality)
    predictor = Predictor.from_artifact(artifact)
    names = predictor.class_names
    to_score = flags.index[flags["ood_kind"] == ""].tolist()
    predictions = {
        p: pred for p, pred in zip(to_score, predictor.predict_stream(to_score, batch_size), strict=True)
    }
    table = pd.DataFrame(
        {
            "path": quality.index,
            "file": [str(Path(p).relative_to(folder)) for p in quality.index],
            "readable": quality["readable"].astype(bool).to_numpy(),
            "out_of_distribution": (flags["ood_kind"] != "").to_numpy(),
            "ood_kind": flags["ood_kind"].to_numpy(),
            "ood_reason": flags["ood_reason"].to_numpy(),
            "scored": [p in predictions for p in quality.index],
            "label": [predictions[p].label if p in predictions else None for p in quality.index],
            "confidence": [predictions[p].confidence if p in predictions else np.nan for p in quality.index],
        }
    )
    for name in names:
        table[f"p_{name}"] = [
            predictions[p].probabilities[name] if p in predictions else np.nan for p in quality.index
        ]
    for column, value in model_identity(artifact).items():
        table[column] = value
    for column in ["height", "width", *STAT_COLUMNS]:
        table[column] = quality[column].astype(float).to_numpy()
    return table


def class_counts(predictions: pd.DataFrame, class_names: Sequence[str]) -> pd.DataFrame:
    """Scored images per predicted class with their share, and the flagged images per kind."""
    scored = predictions.loc[predictions["scored"].astype(bool), "label"]
    counts = scored.value_counts().reindex(list(class_names), fill_value=0).astype(int)
    table = pd.DataFrame({"images": counts, "share": counts / max(int(counts.sum()), 1)})
    flagged = predictions["ood_kind"].value_counts().reindex(list(OOD_KINDS), fill_value=0).astype(int)
    for kind, count in flagged.items():
        table.loc[f"flagged: {kind}"] = [count, count / max(len(predictions), 1)]
    return table.astype({"images": int}).rename_axis("class")


def comparable_quality(predictions: pd.DataFrame) -> pd.DataFrame:
    """The rows whose statistics may be compared with the training set: readable and not broken (broken
    images never enter training either); out-of-range images stay, they are the drift."""
    return predictions.loc[predictions["readable"].astype(bool) & (predictions["ood_kind"] != "broken")]


def batch_summary(predictions: pd.DataFrame) -> str:
    """One line: how many images, how many scored, how many flagged and why."""
    flagged = predictions.loc[predictions["out_of_distribution"].astype(bool)]
    kinds = ", ".join(f"{k} {v}" for k, v in flagged["ood_kind"].value_counts().items())
    version = predictions["model_version"].iloc[0] if len(predictions) else "-"
    return (
        f"{len(predictions)} images: {int(predictions['scored'].sum())} scored by {version}, "
        f"{len(flagged)} flagged out of distribution{f' ({kinds})' if kinds else ''}"
    )


def batch_drift(predictions: pd.DataFrame, reference: TrainingReference) -> DriftReport:
    """The batch's statistics (readable, not broken) against the train split's and its predicted-class
    mix against the reference's class counts, judged by the rule of `monitoring.drift`."""
    scored = predictions.loc[predictions["scored"].astype(bool), "label"].tolist()
    return drift_report(reference.quality, reference.class_counts, comparable_quality(predictions), scored)
