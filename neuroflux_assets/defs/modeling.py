"""Stage 3, group `modeling`, one partition per model: hyperparameters, training, cross-validation."""

from collections.abc import Callable, Iterator
from pathlib import Path

import dagster as dg
import pandas as pd
from pydantic import Field

from neuroflux_assets import metadata as md
from neuroflux_assets.locking import writing_model
from neuroflux_assets.partitions import model_partitions
from neuroflux_assets.resources import ComputeResource, DatasetResource, TrackingResource, TuningResource
from neuroflux_assets.settings import (
    GPU_OP_TAGS,
    GPU_POOL,
    MODEL_FIXED_KEYS,
    ModelSettings,
    typed_values,
)
from neuroflux_lib.config import ModelConfig
from neuroflux_lib.data.augmentation import describe_augmentation
from neuroflux_lib.data.splits import data_version
from neuroflux_lib.evaluation.cross_validation import cross_validate
from neuroflux_lib.evaluation.intervals import Interval
from neuroflux_lib.paths import StoragePaths
from neuroflux_lib.plots import intervals_png, training_curves_png
from neuroflux_lib.training.steps import train_model
from neuroflux_lib.training.tuning import (
    StudyResult,
    StudySpec,
    choose_hyperparameters,
    existing_study,
    run_study,
    safe_url,
    study_name,
)

GROUP = "modeling"


def work_folder(context: dg.AssetExecutionContext, storage_dir: str, name: str) -> Path:
    """A run-scoped scratch folder; what the asset returns from it is moved into storage by the IO manager."""
    return StoragePaths(storage_dir).work(context.run.run_id, f"{name}-{context.partition_key}")


def training_asset(io_manager_key: str, kinds: set[str], output_required: bool = True) -> Callable:
    """`@dg.asset` for a step that trains: per model partition, in the `gpu` pool, one GPU on Kubernetes."""
    return dg.asset(
        group_name=GROUP,
        code_version="2",
        partitions_def=model_partitions,
        io_manager_key=io_manager_key,
        pool=GPU_POOL,
        op_tags=GPU_OP_TAGS,
        kinds=kinds,
        output_required=output_required,
    )


class LogEpochs:
    """Training callback: one log line per epoch in the Dagster run log."""

    def __init__(self, context: dg.AssetExecutionContext, total: int):
        self.context, self.total = context, total

    def on_epoch_end(self, epoch: int, metrics: dict) -> None:
        shown = ", ".join(
            f"{k} {v:.4f}"
            for k, v in metrics.items()
            if k in ("train_loss", "val_loss", "val_accuracy", "val_macro_f1")
        )
        self.context.log.info(f"epoch {epoch}/{self.total}: {shown}")


@training_asset("json_io_manager", {"optuna"})
def tuned_hyperparameters(
    context: dg.AssetExecutionContext,
    config: ModelSettings,
    dataset: DatasetResource,
    compute: ComputeResource,
    tracking: TrackingResource,
    tuning: TuningResource,
    balanced_train_set: pd.DataFrame,
    dataset_splits: pd.DataFrame,
) -> Iterator[dg.MaterializeResult[dict]]:
    """An Optuna study per model and data version (train/val only), resumed when it exists;
    `tune_trials` 0 adds no trials but still uses an existing study.

    The value holds the config values, the study's best values, and `hyperparameters`: what
    `trained_model` trains with (the best values when `use_tuned`, else the config's).
    """
    name = context.partition_key
    settings = getattr(config, name)
    typed = typed_values(settings, [k for k in ModelConfig.model_fields if k not in MODEL_FIXED_KEYS])
    profile = dataset.profile_name
    run = dataset.resolve(name, typed, compute.settings())
    data, resolved = run.dataset, run.model
    with writing_model(context, data.storage_dir, "tuning"):
        source = f"configs/models/{name}.json + profile '{profile}' + launchpad/compute"
        metadata: dict = {"source": source, "image_size": resolved.resolved_image_size(data)}
        compute.configure_torch()
        spec = StudySpec(
            name=study_name(resolved, data, data_version(dataset_splits)),
            storage=tuning.storage_url(data.storage_dir),
            base=resolved,
            dataset=data,
            balanced=balanced_train_set,
            splits=dataset_splits,
            tracking=tracking.settings(data.storage_dir),
            tags=(profile,),
            threads=compute.threads,
        )
        if resolved.tune_trials > 0:
            context.log.info(
                f"study {spec.name}: {resolved.tune_trials} trials x {resolved.tune_epochs} epochs, "
                f"{tuning.workers} worker(s), pruner {resolved.tune_pruner}, storage {safe_url(spec.storage)}"
            )
            study = run_study(spec, resolved.tune_trials, resolved.tune_timeout_s, tuning.workers)
        else:  # no new trials, but an existing study (e.g. from `neuroflux tune`) still counts
            study = existing_study(spec)
        if study is not None:
            metadata.update(study_metadata(study))
        elif resolved.use_tuned:
            context.log.warning(
                f"use_tuned is true but study {spec.name} does not exist in {safe_url(spec.storage)}: "
                "training with the config values (run `neuroflux tune` with the same storage first)"
            )
        choice = choose_hyperparameters(resolved, study)
        chosen, use = choice.config, choice.tuned
        metadata["hyperparameters_source"] = choice.source
        shown = pd.DataFrame({"value": {k: str(v) for k, v in chosen.model_dump(mode="json").items()}})
        metadata["hyperparameters"] = md.table(shown.rename_axis("key"))
        yield dg.MaterializeResult(
            value={
                "hyperparameters": chosen.model_dump(mode="json"),
                "config_values": resolved.model_dump(mode="json"),
                "best_params": study.best_params if study else {},
                "use_tuned": use,
                "source": metadata["hyperparameters_source"],
                "study": None
                if study is None
                else {
                    "name": study.name,
                    "storage": safe_url(study.storage),
                    "best_value": study.best_value,
                    "best_trial": study.best_trial,
                    "trials": study.counts,
                },
            },
            metadata=metadata,
        )


def study_metadata(study: StudyResult) -> dict:
    columns = [c for c in study.trials.columns if c not in ("user_attrs_wandb",)]
    metadata: dict = {
        "study": study.name,
        "storage": safe_url(study.storage),
        "best_value": float(study.best_value) if study.best_value is not None else -1.0,
        "best_trial": study.best_trial if study.best_trial is not None else -1,
        "trials_by_state": md.table(pd.DataFrame({"trials": study.counts}).rename_axis("state")),
        "trials": md.table(study.trials[columns].set_index("number"), max_rows=100),
        "tuning_seconds": round(study.seconds, 1),
    }
    if study.history_png:
        metadata["optimization_history"] = md.image(study.history_png, "optimization history")
    if study.importance_png:
        metadata["parameter_importance"] = md.image(study.importance_png, "parameter importance")
    return metadata


class TrainingRun(dg.Config):
    resume: bool = Field(
        default=False,
        description="continue from the last epoch checkpoint of this model (e.g. after a crashed run)",
    )


@training_asset("folder_io_manager", {"pytorch", "safetensors"})
def trained_model(
    context: dg.AssetExecutionContext,
    config: TrainingRun,
    dataset: DatasetResource,
    compute: ComputeResource,
    tracking: TrackingResource,
    tuned_hyperparameters: dict,
    balanced_train_set: pd.DataFrame,
    dataset_splits: pd.DataFrame,
) -> Iterator[dg.MaterializeResult[Path]]:
    """Train on the balanced train set, keep the best validation epoch, save a safetensors artifact.

    Runs in pool `gpu` (limit 1 in dagster.yaml): two trainings never compete for the machine.
    """
    run = config
    config = ModelConfig.model_validate(tuned_hyperparameters["hyperparameters"])
    data = dataset.dataset_config()
    with writing_model(context, data.storage_dir, "training"):
        compute.configure_torch()
        version = data_version(dataset_splits)
        split_sizes = dataset_splits["split"].value_counts().to_dict()
        tracked = tracking.start(
            context,
            dataset,
            "train",
            {
                **config.model_dump(mode="json"),
                "hyperparameters_source": tuned_hyperparameters["source"],
                "data_version": version,
                "split_sizes": split_sizes,
                "train_images_balanced": int((balanced_train_set["split"] == "train").sum()),
            },
        )
        with tracked:
            trained = train_model(
                config,
                data,
                balanced_train_set,
                dataset_splits,
                artifact_dir=work_folder(context, data.storage_dir, "artifact"),
                work_dir=StoragePaths(data.storage_dir).checkpoints(context.partition_key),
                resume=run.resume,
                callbacks=[LogEpochs(context, config.num_epochs), tracked],
            )
            fit, meta = trained.fit, trained.meta
            curves = training_curves_png(
                fit.history, meta.class_names, f"{config.model_name} training curves"
            )
            tracked.update_config(
                {
                    "weights_origin": meta.weights_origin,
                    "weights_name": meta.weights_name,
                    "frozen_layers": meta.frozen_layers,
                    "normalization": meta.normalization,
                    "device": fit.device,
                    "precision": fit.precision,
                }
            )
            tracked.set_summary(
                {
                    "best_epoch": fit.best_epoch,
                    f"best_{config.monitor}": fit.best_metric,
                    "epochs_run": len(fit.history),
                    "learned": trained.learned.passed,
                }
            )
            tracked.log_images({"training_curves": curves})
        weights = meta.weights_origin
        if meta.weights_note:  # e.g. ImageNet weights asked for but unavailable offline
            weights = f"{weights} ({meta.weights_note})"
            context.log.warning(weights)
        best_val = meta.training.get("best_val", {})
        yield dg.MaterializeResult(
            value=trained.artifact_dir,
            metadata={
                "epochs_run": len(fit.history),
                "best_epoch": fit.best_epoch,
                "monitor": f"{config.monitor} = {fit.best_metric:.4f}",
                "stopped_early": fit.stopped_early,
                "device": fit.device,
                "precision": fit.precision,
                "weights_origin": weights,
                "weights_name": meta.weights_name or "",
                "frozen_layers": ", ".join(meta.frozen_layers) or "none (every layer trained)",
                "normalization": meta.input_normalization.describe(),
                "augmentation": describe_augmentation(config.augmentation) if config.augment else "off",
                "learn_check": trained.learned.message,
                "feature_cache": trained.feature_cache.describe(),
                "image_size": meta.image_size,
                "data_version": meta.data_version or "",
                "val_metrics": md.table(
                    pd.DataFrame(
                        {"value": {k: v for k, v in best_val.items() if not k.startswith("val_f1_")}}
                    ).rename_axis("metric")
                ),
                "training_curves": md.image(curves, "training curves"),
                "hyperparameters_source": tuned_hyperparameters["source"],
                "wandb_run": md.run_link(tracked),
            },
        )


@training_asset("json_io_manager", {"pytorch", "sklearn"}, output_required=False)
def cross_validation(
    context: dg.AssetExecutionContext,
    dataset: DatasetResource,
    compute: ComputeResource,
    tuned_hyperparameters: dict,
    dataset_splits: pd.DataFrame,
):
    """Opt-in (`cv_folds` >= 3 in the model config): the model and the baselines retrained on K
    subject-grouped stratified folds of train+val; mean macro-F1 with a t interval over folds. A second
    estimate beside the held-out test split, which it never touches."""
    config = ModelConfig.model_validate(tuned_hyperparameters["hyperparameters"])
    if config.cv_folds == 0:
        why = "cross-validation is off for this model: set cv_folds (e.g. 5) in its config or the launchpad"
        context.log.info(why)
        context.log_event(dg.AssetObservation(asset_key=context.asset_key, metadata={"why": why}))
        return
    data = dataset.dataset_config()
    with writing_model(context, data.storage_dir, "cross-validating"):
        compute.configure_torch()
        work = work_folder(context, data.storage_dir, "cross_validation")
        result = cross_validate(config, data, dataset_splits, config.cv_folds, work)
        summary = pd.DataFrame([{"name": name, **interval} for name, interval in result["macro_f1"].items()])
        gain = result["gain_vs_best_baseline"]
        context.log.info(f"{result['estimate']}: model macro-F1 {Interval(**result['macro_f1']['model'])}")
        yield dg.MaterializeResult(
            value=result,
            metadata={
                "estimate": result["estimate"],
                "macro_f1": md.table(summary.round(3), index=False),
                "gain_vs_best_baseline": str(Interval(**gain)),
                "folds": md.table(pd.DataFrame(result["folds"]).round(3), index=False),
                "macro_f1_by_fold": md.image(intervals_png(summary, result["estimate"]), "cross-validation"),
            },
        )
