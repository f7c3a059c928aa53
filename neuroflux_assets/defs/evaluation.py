"""Stage 3b, group `evaluation`: the baselines every model must beat, and each model's test report."""

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pandas as pd
from pydantic import Field

from neuroflux_assets import metadata as md
from neuroflux_assets.defs.modeling import work_folder
from neuroflux_assets.locking import writing_model
from neuroflux_assets.partitions import model_partitions
from neuroflux_assets.resources import DatasetResource, TrackingResource
from neuroflux_lib.evaluation.comparison import comparison_rows
from neuroflux_lib.evaluation.confound import ConfoundSummary, confound_table
from neuroflux_lib.evaluation.evaluate import evaluate_artifact
from neuroflux_lib.evaluation.gradcam_gallery import explain_report
from neuroflux_lib.evaluation.reference import baselines_of, reference_report, summary_rows
from neuroflux_lib.plots import intervals_png
from neuroflux_lib.serving.artifacts import read_meta

GROUP = "evaluation"


@dg.asset(group_name=GROUP, code_version="1", io_manager_key="json_io_manager", kinds={"sklearn"})
def baselines(context: dg.AssetExecutionContext, dataset: DatasetResource, dataset_splits: pd.DataFrame):
    """Majority class, logistic regression on 32 px thumbnails, and logistic regression on the acquisition
    fields in the file names (site, sequence, year), fitted on train and scored on val and test with
    subject-bootstrap intervals; plus the confound report (can the labels be read off the acquisition?)."""
    config = dataset.dataset_config()
    reference = reference_report(dataset_splits, config)
    confound = reference["confound"]
    if confound["warning"]:
        context.log.warning(confound["warning"])
    rows = pd.DataFrame(
        [{"name": name, **item["test"]["macro_f1"]} for name, item in reference["summary"].items()]
    )
    scores = confound_table(ConfoundSummary.model_validate(confound))
    metadata = {
        "baselines": md.table(summary_rows(reference), index=False),
        "test_macro_f1": md.image(
            intervals_png(rows, "Baselines on the test split", confound["chance"]), "baselines"
        ),
        "confound_warning": dg.MetadataValue.md(
            confound["warning"] or "no acquisition field predicts the class"
        ),
        "confound_scores": md.table(scores, index=False),
        "chance_macro_f1": confound["chance"],
        "unparsed_fields": dg.MetadataValue.json(reference["unparsed"]),
        "data_version": reference["data_version"],
        "seconds": reference["seconds"],
    }
    for field, table in confound["tables"].items():
        metadata[f"class_by_{field}"] = md.table(
            pd.DataFrame(table).fillna(0).astype(int).rename_axis("class")
        )
    return dg.MaterializeResult(value=reference, metadata=metadata)


class EvaluationRun(dg.Config):
    allow_other_data: bool = Field(
        default=False,
        description=(
            "evaluate a model trained on other splits anyway; the report then says that the test set "
            "was not held out"
        ),
    )


@dg.asset(
    group_name=GROUP,
    code_version="3",
    partitions_def=model_partitions,
    io_manager_key="folder_io_manager",
    kinds={"pytorch", "sklearn"},
)
def evaluation_report(
    context: dg.AssetExecutionContext,
    config: EvaluationRun,
    dataset: DatasetResource,
    tracking: TrackingResource,
    trained_model: Path,
    dataset_splits: pd.DataFrame,
    baselines: dict,
) -> Iterator[dg.MaterializeResult[Path]]:
    """The upstream artifact (best checkpoint) on the test split, next to the baselines with
    subject-bootstrap intervals and a verdict; subject-level results, calibration, the confound warning;
    report.json, text report, predictions and plots; the same as a W&B `evaluate` run in the training's
    group."""
    data = dataset.dataset_config()
    with writing_model(context, data.storage_dir, "evaluating"):
        out = work_folder(context, data.storage_dir, "report")
        meta = read_meta(trained_model)
        tracked = tracking.start(
            context,
            dataset,
            "evaluate",
            {
                **meta.hyperparameters,
                "weights_origin": meta.weights_origin,
                "data_version": meta.data_version,
                "best_epoch": meta.training.get("best_epoch"),
                "artifact": str(trained_model),
            },
        )
        with tracked:
            # record_metrics=False: the trained_model asset's stored artifact is not modified by its consumer.
            evaluation = evaluate_artifact(
                trained_model,
                data,
                dataset_splits,
                out,
                baselines=baselines_of(baselines),
                confound=baselines["confound"],
                allow_other_data=config.allow_other_data,
                record_metrics=False,
            )
            report = evaluation.report
            explanations = explain_report(trained_model, evaluation.predictions, out, dataset_splits)
            comparison = report.comparison  # always there: the evaluation had the baselines
            rows = comparison_rows(comparison, meta.architecture)
            tracked.set_summary(
                {f"test_{key}": value for key, value in report.headline().items()}
                | {
                    "best_epoch": meta.training.get("best_epoch"),
                    "test_macro_f1_low": report.intervals.macro_f1.low,
                    "test_macro_f1_high": report.intervals.macro_f1.high,
                    "gain_vs_best_baseline": comparison.difference.estimate,
                    "gain_low": comparison.difference.low,
                    "gain_high": comparison.difference.high,
                    "best_baseline": comparison.best_baseline,
                    "verdict": comparison.verdict,
                    "confound_warning": report.confound_warning or "",
                    "test_ece": report.calibration.ece,
                    "test_ece_before_calibration": report.calibration.before.ece,
                    "temperature": meta.temperature,
                    "subject_macro_f1": report.subject_level.macro_f1.estimate,
                }
            )
            tracked.log_table("model_vs_baselines", rows)
            tracked.log_table("confound", confound_table(report.confound))
            tracked.log_evaluation(evaluation.predictions, meta.class_names)
            tracked.log_images(
                {
                    k: v
                    for k, v in evaluation.files.items()
                    if k in ("confusion_matrix", "roc_curves", "training_curves", "reliability", "comparison")
                }
                | {"gradcam_gallery": explanations.gallery}
            )
            faithful = explanations.faithfulness.difference
            tracked.set_summary(
                {
                    "gradcam_faithfulness": faithful.estimate,
                    "gradcam_faithfulness_low": faithful.low,
                    "gradcam_faithfulness_high": faithful.high,
                }
            )
        # one row per class: precision, recall, f1-score, support
        per_class = pd.DataFrame({name: scores.model_dump() for name, scores in report.per_class.items()}).T
        context.log.info(comparison.verdict)
        if report.confound_warning:
            context.log.warning(report.confound_warning)
        subject = report.subject_level
        calibration = report.calibration
        yield dg.MaterializeResult(
            value=out,
            metadata={
                "verdict": dg.MetadataValue.md(f"**{comparison.verdict}**"),
                "model_vs_baselines": md.table(rows.round(3), index=False),
                "comparison": md.image(evaluation.files["comparison"].read_bytes(), "model vs baselines"),
                "macro_f1_interval": str(report.intervals.macro_f1),
                "confound_warning": dg.MetadataValue.md(report.confound_warning or "none"),
                "confound": md.table(confound_table(report.confound).round(3), index=False),
                "subject_level_macro_f1": f"{subject.macro_f1} ({subject.n_subjects} subjects)",
                "calibration": (
                    f"temperature {meta.temperature:.3f} (fitted on val): test ECE "
                    f"{calibration.before.ece:.3f} before, {calibration.ece:.3f} after"
                ),
                "ece": calibration.ece,
                "reliability": md.image(evaluation.files["reliability"].read_bytes(), "reliability diagram"),
                "model_card": dg.MetadataValue.md(evaluation.files["model_card"].read_text()),
                "data_version": report.data_version,
                **{key: -1.0 if value is None else value for key, value in report.headline().items()},
                "per_class": md.table(per_class.rename_axis("class")),
                "confusion_matrix": md.image(
                    evaluation.files["confusion_matrix"].read_bytes(), "confusion matrix"
                ),
                "roc_curves": md.image(evaluation.files["roc_curves"].read_bytes(), "ROC curves"),
                "gradcam_gallery": md.image(explanations.gallery.read_bytes(), "Grad-CAM gallery"),
                "gradcam_faithfulness": dg.MetadataValue.md(explanations.faithfulness.describe()),
                "classification_report": dg.MetadataValue.md(f"```\n{report.classification_report}\n```"),
                "wandb_run": md.run_link(tracked),
            },
        )
