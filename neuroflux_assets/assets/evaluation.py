"""Stage 3b, group `evaluation`: what every model must beat, on the same splits."""

import dagster as dg
import pandas as pd

from neuroflux_assets import metadata as md
from neuroflux_assets.resources import DatasetResource
from neuroflux_lib.evaluation.confound import confound_table
from neuroflux_lib.evaluation.reference import reference_report, summary_rows
from neuroflux_lib.plots import intervals_png

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
    scores = confound_table(confound)
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
        metadata[f"class_by_{field}"] = md.table(pd.DataFrame(table).fillna(0).astype(int))
    return dg.Output(reference, metadata=metadata)
