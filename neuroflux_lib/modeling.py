"""From split tables to a trained, evaluated, saved model: the steps the CLI and the assets share."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from neuroflux_lib.artifacts import ArtifactMeta, save_artifact
from neuroflux_lib.config import DatasetConfig, ModelConfig
from neuroflux_lib.evaluation import evaluate_model, write_report
from neuroflux_lib.image_cache import cached_arrays
from neuroflux_lib.models import BuiltModel, build_model, count_parameters
from neuroflux_lib.training import EpochCallback, FitResult, ImageTensorDataset, fit
from neuroflux_lib.transforms import eval_transform, train_transform

logger = logging.getLogger(__name__)


def data_version(splits: pd.DataFrame) -> str:
    """Short digest of which bytes are in which split: changes when any image or assignment does."""
    keyed = splits.sort_values("path")[["sha256", "split"]].astype(str).agg(":".join, axis=1)
    return hashlib.sha256("\n".join(keyed).encode()).hexdigest()[:16]


def label_indices(classes: pd.Series, class_names: Sequence[str]) -> np.ndarray:
    index = {name: i for i, name in enumerate(class_names)}
    unknown = sorted(set(classes) - set(index))
    if unknown:
        raise ValueError(f"labels not in class_names: {unknown}")
    return classes.map(index).to_numpy(dtype=np.int64)


@dataclass(frozen=True)
class SplitData:
    train: ImageTensorDataset
    val: ImageTensorDataset
    test: ImageTensorDataset


def build_split_data(
    balanced: pd.DataFrame,
    splits: pd.DataFrame,
    class_names: Sequence[str],
    image_size: int,
    normalization: Sequence[Sequence[float]],
    cache_root: str | Path,
    augment: bool = True,
    workers: int = 1,
    progress: bool = False,
) -> SplitData:
    """Datasets over the decode-once cache: balanced train (with copies), val and test."""

    def arrays(table: pd.DataFrame) -> np.ndarray:
        hashes = table["sha256"].tolist() if "sha256" in table and table["sha256"].notna().all() else None
        return cached_arrays(table["path"].tolist(), image_size, cache_root, hashes, workers, progress)

    val = splits.loc[splits["split"] == "val"]
    test = splits.loc[splits["split"] == "test"]
    for name, table in (("train", balanced), ("val", val), ("test", test)):
        if table.empty:
            raise ValueError(f"the {name} split is empty: add images or change train_val_test_split")
    train_tf = train_transform(image_size, normalization, augment)
    eval_tf = eval_transform(image_size, normalization)
    return SplitData(
        ImageTensorDataset(arrays(balanced), label_indices(balanced["class_name"], class_names), train_tf),
        ImageTensorDataset(arrays(val), label_indices(val["class_name"], class_names), eval_tf),
        ImageTensorDataset(arrays(test), label_indices(test["class_name"], class_names), eval_tf),
    )


@dataclass(frozen=True)
class TrainOutcome:
    artifact_dir: Path
    report_dir: Path
    report: dict
    fit: FitResult
    meta: ArtifactMeta
    report_files: dict[str, Path]


def train_and_evaluate(
    model_config: ModelConfig,
    dataset_config: DatasetConfig,
    balanced: pd.DataFrame,
    splits: pd.DataFrame,
    *,
    artifact_dir: str | Path,
    report_dir: str | Path,
    work_dir: str | Path,
    resume: bool = False,
    callbacks: Sequence[EpochCallback] = (),
    progress: bool = False,
) -> TrainOutcome:
    """Train on balanced train, select on val, evaluate the best checkpoint on test, save the artifact."""
    class_names = list(dataset_config.class_names)
    image_size = model_config.resolved_image_size(dataset_config)
    built: BuiltModel = build_model(
        model_config.model_name, len(class_names), model_config.model_hyperparams(), image_size=image_size
    )
    logger.info(
        "%s: %s parameters (%s trainable), weights %s",
        built.name,
        f"{count_parameters(built.model):,}",
        f"{count_parameters(built.model, True):,}",
        built.weights_origin,
    )
    data = build_split_data(
        balanced,
        splits,
        class_names,
        image_size,
        built.normalization,
        Path(dataset_config.storage_dir) / "cache",
        model_config.augment,
        workers=max(1, dataset_config.num_workers),
        progress=progress,
    )
    work_dir = Path(work_dir)
    result = fit(
        built.model,
        data.train,
        data.val,
        model_config,
        class_names,
        checkpoint_path=work_dir / "checkpoint.pt",
        resume=resume,
        callbacks=callbacks,
        progress=progress,
    )
    report = evaluate_model(built.model, data.test, class_names, result.device)
    best = result.history[result.best_epoch - 1] if result.best_epoch else {}
    mean, std = built.normalization
    meta = ArtifactMeta(
        architecture=built.name,
        class_names=class_names,
        image_size=image_size,
        normalization={"mean": list(mean), "std": list(std)},
        hyperparameters=model_config.model_dump(),
        weights_origin=built.weights_origin,
        data_version=data_version(splits),
        training={
            "epochs_run": len(result.history),
            "best_epoch": result.best_epoch,
            "monitor": model_config.monitor,
            "best_metric": result.best_metric,
            "stopped_early": result.stopped_early,
            "device": result.device,
            "best_val": {k: v for k, v in best.items() if k.startswith("val_")},
            "train_images": len(data.train),
        },
        test_metrics={
            "accuracy": report["accuracy"],
            "macro_f1": report["macro_f1"],
            "weighted_f1": report["weighted_f1"],
            "macro_roc_auc": report["macro_roc_auc"],
            "n_test": report["n_test"],
        },
    )
    artifact = save_artifact(artifact_dir, built.model, meta)
    title = f"{built.name} (best epoch {result.best_epoch}, weights {built.weights_origin})"
    files = write_report(report, report_dir, class_names, result.history, title)
    return TrainOutcome(artifact, Path(report_dir), report, result, meta, files)
