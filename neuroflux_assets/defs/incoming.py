"""Group `incoming`: new scans scored by the production model, one partition per batch folder.

A batch is a sub-folder of the dataset's `incoming_dir`; the `new_incoming_batches` sensor (or
`neuroflux predict --batch DIR`) adds its partition. `drift_reference` is what batches are compared
with. The library decides what is scored and what is flagged (`neuroflux_lib.serving.incoming`); the check
`incoming_predictions:no_drift_from_training` compares the batch with the training set
(`neuroflux_lib.monitoring.drift`).
"""

from pathlib import Path

import dagster as dg
import pandas as pd

from neuroflux_assets import metadata as md
from neuroflux_assets.io_managers import every_partition
from neuroflux_assets.partitions import incoming_batches
from neuroflux_assets.resources import DatasetResource
from neuroflux_lib.plots import image_gallery
from neuroflux_lib.serving.incoming import (
    TrainingReference,
    batch_summary,
    class_counts,
    score_batch,
    training_reference,
    with_model_class_mix,
)

GROUP = "incoming"


@dg.asset(
    group_name=GROUP,
    code_version="1",
    io_manager_key="json_io_manager",
    ins={
        "evaluation_report": every_partition(),
    },
    kinds={"pandas", "json"},
    # Rematerialized when production_model or the data changes (the `drift_reference_automation` sensor).
    # evaluation_report is ignored: a partition a profile never evaluates stays missing, which would hold
    # eager() back forever, and the production model's report only changes with production_model.
    automation_condition=dg.AutomationCondition.eager().ignore(dg.AssetSelection.assets("evaluation_report")),
)
def drift_reference(
    dataset: DatasetResource,
    image_quality: pd.DataFrame,
    dataset_splits: pd.DataFrame,
    production_model: Path,
    evaluation_report: dict[str, Path],
) -> dg.MaterializeResult[dict]:
    """What every batch is compared with: the train split's quality statistics (out-of-range flags, drift)
    and the classes the production model predicts on the test split (drift of the predicted-class
    mix). Refreshed by every scoring run and, with the daemon, whenever production_model or the data
    changes, so it follows the production model."""
    reference = training_reference(image_quality, dataset_splits, dataset.dataset_config().class_names)
    reference = with_model_class_mix(reference, production_model, evaluation_report)
    ranges = reference.quality.agg(["min", "median", "max"]).T.rename_axis("statistic")
    return dg.MaterializeResult(
        value=reference.to_dict(),
        metadata={
            "train_images": len(reference.quality),
            "data_version": reference.data_version,
            "model_version": reference.model_version,
            "class_mix_source": reference.class_source,
            "class_counts": md.table(reference.class_counts.to_frame().rename_axis("class")),
            "statistic_ranges": md.table(ranges),
        },
    )


@dg.asset(
    group_name=GROUP,
    code_version="1",
    partitions_def=incoming_batches,
    io_manager_key="parquet_io_manager",
    kinds={"pytorch", "pandas", "parquet"},
)
def incoming_predictions(
    context: dg.AssetExecutionContext,
    dataset: DatasetResource,
    production_model: Path,
    drift_reference: dict,
) -> dg.MaterializeResult[pd.DataFrame]:
    """Every image of the batch folder `<incoming_dir>/<partition>`: label, class probabilities, model
    version and quality statistics; unreadable, broken and out-of-training-range images are flagged
    (`out_of_distribution`, `ood_kind`, `ood_reason`) instead of scored."""
    config = dataset.dataset_config()
    folder = Path(config.incoming_dir) / context.partition_key
    reference = TrainingReference.from_dict(drift_reference)
    table = score_batch(
        folder, production_model, reference, workers=config.num_workers, max_pixels=config.max_image_pixels
    )
    summary = batch_summary(table)
    context.log.info(f"{folder}: {summary}")
    flagged = table.loc[table["out_of_distribution"]]
    shown = ["file", "label", "confidence", *[c for c in table.columns if c.startswith("p_")]]
    return dg.MaterializeResult(
        value=table,
        metadata={
            "dagster/row_count": len(table),
            "summary": summary,
            "batch_folder": dg.MetadataValue.path(str(folder)),
            "model_version": str(table["model_version"].iloc[0]),
            "model_data_version": str(table["model_data_version"].iloc[0]),
            "scored": int(table["scored"].sum()),
            "out_of_distribution": len(flagged),
            "class_counts": md.table(class_counts(table, config.class_names)),
            "flagged": md.table(flagged[["file", "ood_kind", "ood_reason"]], index=False),
            "predictions": md.table(table.loc[table["scored"], shown], index=False),
            **({"flagged_gallery": gallery(flagged)} if len(flagged) else {}),
        },
    )


def gallery(flagged: pd.DataFrame) -> dg.MetadataValue:
    captioned = flagged.assign(caption=flagged["ood_kind"] + ": " + flagged["ood_reason"])
    title = f"{len(flagged)} images flagged out of distribution (not scored)"
    return md.image(image_gallery(captioned, title), "flagged images")
