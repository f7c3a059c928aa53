"""`neuroflux evaluate`: the `evaluation_report` asset again, or any model folder on the test split."""

from __future__ import annotations

import argparse
from pathlib import Path

import dagster as dg
import pandas as pd

from neuroflux_assets.cli.options import ARTIFACT_HELP, Mode, add_config_options, resolve
from neuroflux_assets.cli.runner import Session, materialize, open_session, report_run
from neuroflux_assets.cli.stages import materialized
from neuroflux_assets.cli.summaries import folder_evaluation_summary, model_evaluation
from neuroflux_lib.errors import NotMaterializedError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_options(parser)
    parser.add_argument("--artifact", default=None, help=ARTIFACT_HELP)
    parser.add_argument(
        "--allow-other-data",
        action="store_true",
        help="evaluate a model trained on other splits anyway (its report says: test set not held out)",
    )


def load_splits(session: Session) -> pd.DataFrame:
    key = dg.AssetKey("dataset_splits")
    if not materialized(session, key):
        raise NotMaterializedError(
            "dataset_splits has not been materialized: run `neuroflux preprocess` first"
        )
    return session.defs.load_asset_value(key, instance=session.instance)


def reference_baselines(session: Session):
    """The `baselines` asset of the current splits, when it exists (the comparison needs it)."""
    from neuroflux_lib.evaluation.reference import baselines_of

    if not materialized(session, dg.AssetKey("baselines")):
        return None
    return baselines_of(session.defs.load_asset_value("baselines", instance=session.instance))


def evaluate_folder(session: Session, artifact: Path, allow_other_data: bool) -> int:
    """Any model folder on the current test split, with the library; the report goes to storage, never
    into the folder."""
    from neuroflux_lib.evaluation.evaluate import evaluate_artifact

    out = session.storage.report(artifact.resolve().name)
    evaluation = evaluate_artifact(
        artifact,
        session.dataset,
        load_splits(session),
        out,
        baselines=reference_baselines(session),
        allow_other_data=allow_other_data,
        record_metrics=False,
    )
    print(folder_evaluation_summary(artifact.name, evaluation.report, artifact, out))
    return 0


def run(args: argparse.Namespace) -> int:
    session = open_session(resolve(args))
    if args.artifact:  # a folder that is not an asset
        return evaluate_folder(session, Path(args.artifact), args.allow_other_data)
    name = session.model.model_name
    if not materialized(session, dg.AssetKey("trained_model"), name):
        raise NotMaterializedError(
            f"trained_model[{name}] has not been materialized: run `neuroflux train` first"
        )
    evaluation = {"allow_other_data": args.allow_other_data}
    result = materialize(session, [dg.AssetKey("evaluation_report")], ops={"evaluation_report": evaluation})
    status = report_run(result, session.instance)
    if status == 0:
        print(model_evaluation(session.defs, session.instance, name))
    return status


MODE = Mode("evaluate", "evaluate the saved model on the test split", run, add_arguments)
