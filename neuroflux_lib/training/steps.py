"""From split tables to a trained, evaluated, saved model: the steps the CLI and the assets share."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from torch import nn
from torch.utils.data import Dataset

from neuroflux_lib.config import DatasetConfig, ModelConfig
from neuroflux_lib.data.augmentation import build_augmentation
from neuroflux_lib.data.datasets import ImageTensorDataset, cached_dataset, split_rows
from neuroflux_lib.data.normalization import ModelInput
from neuroflux_lib.data.splits import data_version
from neuroflux_lib.evaluation.calibration import (
    temperature_scaling,
)
from neuroflux_lib.evaluation.report import (
    predict_logits,
)
from neuroflux_lib.models import BuiltModel, build_model, count_parameters, model_hyperparams
from neuroflux_lib.paths import StoragePaths
from neuroflux_lib.serving.artifacts import (
    ArtifactMeta,
    save_artifact,
)
from neuroflux_lib.serving.model_card import CARD_FILE, hardware_name, model_card
from neuroflux_lib.training.feature_cache import FeatureCacheInfo, Precomputed, fill_cache, frozen_split
from neuroflux_lib.training.learn_check import LearnCheck, learn_check
from neuroflux_lib.training.loop import EpochCallback, FitResult, fit, seed_everything, training_settings

logger = logging.getLogger(__name__)


#: Settings that change neither the data a run learns from nor what it learns (hardware, search budgets).
NOT_IN_CONFIG_DIGEST = frozenset(
    {
        "device",
        "num_workers",
        "use_tuned",
        "tune_trials",
        "tune_timeout_s",
        "tune_pruner",
        "tune_startup_trials",
        "cv_folds",
    }
)


def config_digest(config: ModelConfig) -> str:
    """Short digest of the settings that shape the weights: a checkpoint only continues its own run."""
    values = {k: v for k, v in config.model_dump(mode="json").items() if k not in NOT_IN_CONFIG_DIGEST}
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:16]


def model_input(built: BuiltModel, config: ModelConfig) -> ModelInput:
    """The model's normalisation, plus the configured augmentation when `augment` is on."""
    augmentation = build_augmentation(config.augmentation) if config.augment else None
    return ModelInput(built.normalization, augmentation)


def prepare_training(
    model_config: ModelConfig,
    dataset_config: DatasetConfig,
    balanced: pd.DataFrame,
    splits: pd.DataFrame,
    progress: bool = False,
) -> tuple[BuiltModel, ImageTensorDataset, ImageTensorDataset]:
    """The seeded model and its train (balanced) and val datasets; training and tuning both start here."""
    class_names = list(dataset_config.class_names)
    image_size = model_config.resolved_image_size(dataset_config)
    seed_everything(model_config.seed)  # the initial weights are part of the result: same seed, same model
    built = build_model(
        model_config.model_name,
        len(class_names),
        model_hyperparams(model_config.model_name, model_config.model_dump()),
        image_size=image_size,
        normalization=model_config.normalization,
    )
    logger.info(
        "%s: %s parameters (%s trainable), weights %s",
        built.name,
        f"{count_parameters(built.model):,}",
        f"{count_parameters(built.model, True):,}",
        built.weights_origin,
    )
    cache = {
        "cache_root": StoragePaths(dataset_config.storage_dir).cache,
        "workers": max(1, dataset_config.num_workers),
        "progress": progress,
    }
    train = cached_dataset(split_rows(balanced, "train"), class_names, image_size, **cache)
    val = cached_dataset(split_rows(splits, "val"), class_names, image_size, **cache)
    return built, train, val


@dataclass(frozen=True)
class FitInputs:
    """What `fit` trains on: the whole model on images, or, when its first stages are frozen, the rest
    of it on their cached output (`feature_cache`; `rest` shares the model's parameters)."""

    model: nn.Module
    train: Dataset
    val: Dataset
    inputs: ModelInput | Precomputed
    feature_cache: FeatureCacheInfo


def fit_inputs(
    built: BuiltModel,
    train: ImageTensorDataset,
    val: ImageTensorDataset,
    config: ModelConfig,
    storage_dir: str | Path,
    progress: bool = False,
) -> FitInputs:
    """Training and tuning both go through here, so Optuna trials share the cache with training."""
    inputs = model_input(built, config)
    split = frozen_split(built.model) if config.feature_cache else None
    if split is None:
        why = "off: no frozen stages" if config.feature_cache else "off: feature_cache is false"
        return FitInputs(built.model, train, val, inputs, FeatureCacheInfo(why))
    prefix, rest = split
    train_features, val_features, info = fill_cache(
        prefix,
        built.frozen,
        train.images,
        train.labels,
        val.images,
        val.labels,
        inputs,
        StoragePaths(storage_dir).feature_cache,
        image_size=int(train.images.shape[-1]),
        augmentation=config.augmentation.model_dump() if config.augment else None,
        views=config.feature_cache_views,
        seed=config.seed,
        settings=training_settings(config),
        progress=progress,
    )
    return FitInputs(rest, train_features, val_features, Precomputed(), info)


@dataclass(frozen=True)
class TrainedModel:
    artifact_dir: Path
    fit: FitResult
    meta: ArtifactMeta
    learned: LearnCheck  # also in meta.training["learn_check"]
    feature_cache: FeatureCacheInfo  # also in meta.training["feature_cache"]


def train_model(
    model_config: ModelConfig,
    dataset_config: DatasetConfig,
    balanced: pd.DataFrame,
    splits: pd.DataFrame,
    *,
    artifact_dir: str | Path,
    work_dir: str | Path,
    resume: bool = False,
    callbacks: Sequence[EpochCallback] = (),
    progress: bool = False,
) -> TrainedModel:
    """Train on the balanced train set, select on val, save the best epoch's weights as an artifact."""
    built, train, val = prepare_training(model_config, dataset_config, balanced, splits, progress)
    class_names = list(dataset_config.class_names)
    image_size = model_config.resolved_image_size(dataset_config)
    version, digest = data_version(splits), config_digest(model_config)
    checkpoint = Path(work_dir) / "checkpoint.pt"
    plan = fit_inputs(built, train, val, model_config, dataset_config.storage_dir, progress)
    result = fit(
        plan.model,
        plan.train,
        plan.val,
        model_config,
        class_names,
        inputs=plan.inputs,
        checkpoint_path=checkpoint,
        resume=resume,
        callbacks=callbacks,
        progress=progress,
        fingerprint={"data_version": version, "config_digest": digest},
    )
    best = result.history[result.best_epoch - 1] if result.best_epoch else {}
    learned = learn_check(result.history, result.best_epoch, len(class_names))
    (logger.info if learned.passed else logger.warning)("%s: %s", built.name, learned.message)
    meta = ArtifactMeta(
        architecture=built.name,
        class_names=class_names,
        image_size=image_size,
        normalization=built.normalization.to_dict(),
        hyperparameters=model_config.model_dump(),
        weights_origin=built.weights_origin,
        pretrained=built.pretrained,
        weights_name=built.weights_name,
        frozen_layers=list(built.frozen),
        weights_note=built.weights_note,
        data_version=version,
        config_digest=digest,
        training={
            "epochs_run": len(result.history),
            "best_epoch": result.best_epoch,
            "monitor": model_config.monitor,
            "best_metric": result.best_metric,
            "stopped_early": result.stopped_early,
            "device": result.device,
            "precision": result.precision,
            "best_val": {k: v for k, v in best.items() if k.startswith("val_")},
            "train_images": len(train),
            "learn_check": learned.to_dict(),
            "feature_cache": plan.feature_cache.to_dict(),
            "history": result.history,
        },
    )
    # Temperature scaling on val through the evaluation's input pipeline; the card goes in the same swap.
    val_labels, val_logits = predict_logits(built.model, val, meta.input_normalization, result.device)
    meta.calibration = temperature_scaling(val_logits, val_labels, "val")
    meta.temperature = meta.calibration["temperature"]
    meta.training["hardware"] = hardware_name(result.device)
    saved = save_artifact(artifact_dir, built.model, meta, {CARD_FILE: model_card(meta, splits)})
    checkpoint.unlink(missing_ok=True)  # the run is complete: nothing left to resume
    return TrainedModel(saved, result, meta, learned, plan.feature_cache)
