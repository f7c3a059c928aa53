"""`neuroflux predict`: classify images with a saved model, or score a folder of new scans through Dagster."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import dagster as dg

from neuroflux_assets.cli.options import ARTIFACT_HELP, Mode, add_config_options, resolve
from neuroflux_assets.cli.runner import materialize, open_session, report_run
from neuroflux_assets.cli.stages import materialized
from neuroflux_assets.cli.summaries import incoming_summary, print_predictions
from neuroflux_assets.partitions import incoming_batches
from neuroflux_lib.errors import ConfigError, DataError, NotMaterializedError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from neuroflux_lib.serving.predictor import DEFAULT_BATCH

    add_config_options(parser)
    parser.add_argument("--image_path", nargs="+", default=None, help="image files (or --batch)")
    parser.add_argument(
        "--batch",
        default=None,
        metavar="DIR",
        help="score a folder of new scans through Dagster (incoming_predictions partition DIR's name, with "
        "its drift check), flagging broken and out-of-distribution images",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULT_BATCH,
        help="images decoded and predicted at a time: memory stays constant for any number of files",
    )
    parser.add_argument("--artifact", default=None, help=ARTIFACT_HELP)
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument(
        "--explain",
        default=None,
        metavar="DIR",
        help="also write DIR/<image name>.png: the image and its Grad-CAM heatmap for the predicted class",
    )
    parser.add_argument(
        "--production", action="store_true", help="use production_model instead of --model_config's model"
    )


def chosen_artifact(args: argparse.Namespace) -> Path:
    """--artifact FOLDER, else the production model (--production) or the config's model partition."""
    from neuroflux_assets.api import artifact_path

    if args.artifact:
        return Path(args.artifact)
    session = open_session(resolve(args))
    model = None if args.production else session.model.model_name
    return artifact_path(model, instance=session.instance, defs=session.defs)


def predict_batch(args: argparse.Namespace) -> int:
    """`predict --batch DIR`: the incoming_predictions partition named after DIR (its parent becomes
    `incoming_dir` for the run), scored by production_model with its drift check, like the sensor does."""
    folder = Path(args.batch).resolve()
    if not folder.is_dir():
        raise DataError(f"batch folder not found: {folder}")
    session = open_session(resolve(args, model=False, dataset_values={"incoming_dir": str(folder.parent)}))
    if not materialized(session, dg.AssetKey("production_model")):
        raise NotMaterializedError(
            "no production model to score with: run `make demo` (or train and promote) first"
        )
    session.instance.add_dynamic_partitions(incoming_batches.name, [folder.name])
    result = materialize(session, job="score_incoming", partition=folder.name)
    status = report_run(result, session.instance)
    if not result.success:
        return status
    table = session.defs.load_asset_value(
        "incoming_predictions", partition_key=folder.name, instance=session.instance
    )
    if args.json:
        print(table.drop(columns=["path"]).to_json(orient="records", indent=2))
    else:
        print(incoming_summary(table, session.dataset.class_names, result))
    return status


def run(args: argparse.Namespace) -> int:
    from neuroflux_lib.serving.predictor import Predictor

    if args.batch:
        return predict_batch(args)
    if not args.image_path:
        raise ConfigError("give the images (--image_path FILE...) or a folder of them (--batch DIR)")
    predictor = Predictor.from_artifact(chosen_artifact(args))
    if args.explain:
        from neuroflux_lib.serving.explain import write_explanations

        stream = write_explanations(predictor, args.image_path, args.explain)
    else:
        stream = predictor.predict_stream(args.image_path, args.batch_size, progress=sys.stderr.isatty())
    print_predictions(stream, as_json=args.json)
    if args.explain:
        print(f"Grad-CAM overlays: {Path(args.explain).resolve()}/", file=sys.stderr)
    return 0


MODE = Mode(
    "predict", "classify images with a saved model (no dataset needed)", run, add_arguments, library_logs=True
)
