"""Stage 3, group `modeling`, one partition per model: hyperparameters, training, evaluation."""

from pathlib import Path

import dagster as dg
import pandas as pd
from pydantic import Field

from neuroflux_assets import metadata as md
from neuroflux_assets.partitions import model_partitions
from neuroflux_assets.resources import ComputeResource, DatasetResource, TrackingResource
from neuroflux_assets.settings import MODEL_CONFIG_FILES, ModelSettings, resolve_model_config
from neuroflux_lib.config import ModelConfig, with_overrides
from neuroflux_lib.modeling import evaluate_artifact, train_model
from neuroflux_lib.plots import training_curves_png

GROUP = "modeling"


def work_folder(context: dg.AssetExecutionContext, storage_dir: str, name: str) -> Path:
    """A run-scoped scratch folder; what the asset returns from it is moved into storage by the IO manager."""
    folder = Path(storage_dir) / "dagster" / "work" / context.run.run_id / f"{name}-{context.partition_key}"
    folder.parent.mkdir(parents=True, exist_ok=True)
    return folder


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


@dg.asset(
    group_name=GROUP,
    code_version="1",
    partitions_def=model_partitions,
    io_manager_key="json_io_manager",
    deps=["balanced_train_set", "dataset_splits"],
    kinds={"python"},
)
def tuned_hyperparameters(
    context: dg.AssetExecutionContext,
    config: ModelSettings,
    dataset: DatasetResource,
    compute: ComputeResource,
) -> dg.Output[dict]:
    """The model's training settings. Not tuned yet: the config file's values, with profile, launchpad and
    compute overrides applied (a later issue searches them with Optuna)."""
    name = context.partition_key
    data = dataset.dataset_config()
    resolved = resolve_model_config(name, getattr(config, name), dataset.load_profile(), dataset.profile)
    resolved = compute.apply(with_overrides(resolved, {"num_classes": len(data.class_names)}, "class list"))
    values = resolved.model_dump(mode="json")
    shown = pd.DataFrame({"value": {k: str(v) for k, v in values.items()}})
    return dg.Output(
        values,
        metadata={
            "tuning": "not tuned yet: config values",
            "source": f"{MODEL_CONFIG_FILES[name].name} + profile '{dataset.profile}' + launchpad/compute",
            "image_size": resolved.resolved_image_size(data),
            "hyperparameters": md.table(shown.rename_axis("key")),
        },
    )


class TrainingRun(dg.Config):
    resume: bool = Field(
        default=False,
        description="continue from the last epoch checkpoint of this model (e.g. after a crashed run)",
    )


@dg.asset(
    group_name=GROUP,
    code_version="1",
    partitions_def=model_partitions,
    io_manager_key="folder_io_manager",
    pool="training",
    kinds={"pytorch", "safetensors"},
)
def trained_model(
    context: dg.AssetExecutionContext,
    config: TrainingRun,
    dataset: DatasetResource,
    compute: ComputeResource,
    tracking: TrackingResource,
    tuned_hyperparameters: dict,
    balanced_train_set: pd.DataFrame,
    dataset_splits: pd.DataFrame,
) -> dg.Output[Path]:
    """Train on the balanced train set, keep the best validation epoch, save a safetensors artifact.

    Runs in pool `training` (limit 1 in dagster.yaml): two trainings never compete for the machine.
    """
    run = config
    config = ModelConfig.model_validate(tuned_hyperparameters)
    data = dataset.dataset_config()
    compute.configure_torch()
    context.log.info(tracking.describe())
    trained = train_model(
        config,
        data,
        balanced_train_set,
        dataset_splits,
        artifact_dir=work_folder(context, data.storage_dir, "artifact"),
        work_dir=Path(data.storage_dir) / "dagster" / "training" / context.partition_key,
        resume=run.resume,
        callbacks=[LogEpochs(context, config.num_epochs)],
    )
    fit, meta = trained.fit, trained.meta
    weights = meta.weights_origin
    if config.pretrained and weights == "random" and config.model_name == "resnet50":
        weights = (
            "random (ImageNet weights requested but not in the torch cache: backbone randomly initialised)"
        )
        context.log.warning(weights)
    best_val = meta.training.get("best_val", {})
    curves = training_curves_png(fit.history, meta.class_names, f"{config.model_name} training curves")
    return dg.Output(
        trained.artifact_dir,
        metadata={
            "epochs_run": len(fit.history),
            "best_epoch": fit.best_epoch,
            "monitor": f"{config.monitor} = {fit.best_metric:.4f}",
            "stopped_early": fit.stopped_early,
            "device": fit.device,
            "weights_origin": weights,
            "image_size": meta.image_size,
            "data_version": meta.data_version or "",
            "val_metrics": md.table(
                pd.DataFrame({"value": {k: v for k, v in best_val.items() if not k.startswith("val_f1_")}})
            ),
            "training_curves": md.image(curves, "training curves"),
        },
    )


@dg.asset(
    group_name=GROUP,
    code_version="1",
    partitions_def=model_partitions,
    io_manager_key="folder_io_manager",
    kinds={"pytorch", "sklearn"},
)
def evaluation_report(
    context: dg.AssetExecutionContext,
    dataset: DatasetResource,
    trained_model: Path,
    dataset_splits: pd.DataFrame,
) -> dg.Output[Path]:
    """The upstream artifact (best checkpoint) on the test split: report.json, text report and plots."""
    data = dataset.dataset_config()
    out = work_folder(context, data.storage_dir, "report")
    # record_metrics=False: the trained_model asset's stored artifact is not modified by its consumer.
    evaluation = evaluate_artifact(trained_model, data, dataset_splits, out, record_metrics=False)
    report = evaluation.report
    per_class = pd.DataFrame(report["per_class"]).T  # {class: {precision, recall, f1-score, support}}
    return dg.Output(
        out,
        metadata={
            "accuracy": float(report["accuracy"]),
            "macro_f1": float(report["macro_f1"]),
            "weighted_f1": float(report["weighted_f1"]),
            "macro_roc_auc": float(report["macro_roc_auc"]) if report["macro_roc_auc"] is not None else -1.0,
            "n_test": int(report["n_test"]),
            "per_class": md.table(per_class.rename_axis("class")),
            "confusion_matrix": md.image(
                evaluation.files["confusion_matrix"].read_bytes(), "confusion matrix"
            ),
            "roc_curves": md.image(evaluation.files["roc_curves"].read_bytes(), "ROC curves"),
            "classification_report": dg.MetadataValue.md(f"```\n{report['classification_report']}\n```"),
        },
    )
