"""`neuroflux`: the original project's modes, run as Dagster materializations.

Same flags as the library CLI (`python -m neuroflux_lib.cli`), but every mode that produces something
materializes assets in the project's Dagster instance, so the run, its metadata and its checks show
in `make dev`, and the next mode reads what the previous one stored:

- `preprocess`: raw_images, image_quality, outliers, dataset_splits, balanced_train_set
- `train`: tuned_hyperparameters (without new trials: the study `tune` left, if any), trained_model and
  evaluation_report for the `--model_config` model (the data assets first if never materialized)
- `evaluate`: evaluation_report again (or, with `--artifact`, any model folder, outside Dagster)
- `predict`: `load_predictor(model)`: the trained_model asset, the production model with
  `--production`, or any model folder with `--artifact`
- `tune`: tuned_hyperparameters (the model's Optuna study), `--workers N` processes sharing it
- `runs`: the offline W&B runs as a table; `--sync` uploads them
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd

from neuroflux_assets.resources import TrackingResource
from neuroflux_assets.settings import OPTUNA_STORAGE_ENV
from neuroflux_lib.cli import build_parser, load_configs, print_report, run_cli
from neuroflux_lib.config import DatasetConfig, ModelConfig, load_config, with_overrides
from neuroflux_lib.tracking import TrackingSettings

DATA_KEYS = [
    dg.AssetKey(name)
    for name in ("raw_images", "image_quality", "outliers", "dataset_splits", "balanced_train_set")
]
MODEL_KEYS = [dg.AssetKey(name) for name in ("tuned_hyperparameters", "trained_model", "evaluation_report")]


@dataclass(frozen=True)
class Session:
    """One CLI invocation's resolved configs, definitions and instance."""

    dataset: DatasetConfig
    model: ModelConfig | None
    defs: dg.Definitions
    instance: dg.DagsterInstance


def absolute_folders(dataset: DatasetConfig) -> DatasetConfig:
    """Relative folders in a config given on the command line are relative to where it was run."""
    absolute = {key: str(Path(getattr(dataset, key)).resolve()) for key in ("data_dir", "storage_dir")}
    return with_overrides(dataset, absolute, "working directory")


def definitions_for(dataset: DatasetConfig) -> dg.Definitions:
    """The project's definitions with asset values under the config's `storage_dir`/assets."""
    from neuroflux_assets.definitions import build_definitions
    from neuroflux_assets.io_managers import FolderIOManager, JsonIOManager, ParquetIOManager

    base = str(Path(dataset.storage_dir) / "assets")
    return build_definitions(
        {
            "parquet_io_manager": ParquetIOManager(base_dir=base),
            "json_io_manager": JsonIOManager(base_dir=base),
            "folder_io_manager": FolderIOManager(base_dir=base),
        }
    )


def open_session(args: argparse.Namespace) -> Session:
    from neuroflux_assets.api import project_instance

    dataset, model = load_configs(args)
    dataset = absolute_folders(dataset)
    if model is not None:
        model = with_overrides(model, {"num_classes": len(dataset.class_names)}, "class list")
    return Session(dataset, model, definitions_for(dataset), project_instance(dataset.storage_dir))


def run_config(dataset: DatasetConfig, model: ModelConfig | None, resume: bool = False) -> dict[str, Any]:
    """Launchpad-equivalent run config: the given configs exactly, with no profile applied on top
    (`--profile` was already applied by `load_configs`)."""
    from neuroflux_assets.settings import MODEL_FIXED_KEYS, NO_PROFILE

    config: dict[str, Any] = {
        "resources": {"dataset": {"config": {**dataset.model_dump(mode="json"), "profile": NO_PROFILE}}},
        "loggers": {"console": {"config": {"log_level": "INFO"}}},
    }
    if model is not None:
        values = {k: v for k, v in model.model_dump(mode="json").items() if k not in MODEL_FIXED_KEYS}
        config["ops"] = {
            "tuned_hyperparameters": {"config": {model.model_name: values}},
            "trained_model": {"config": {"resume": resume}},
        }
    return config


def materialize(
    session: Session,
    keys: Sequence[dg.AssetKey],
    resume: bool = False,
    tuning: dict[str, Any] | None = None,
) -> dg.ExecuteInProcessResult:
    """One in-process run of `full_pipeline` limited to `keys` (the model's partition if any)."""
    job = session.defs.resolve_job_def("full_pipeline")
    config = run_config(session.dataset, session.model, resume)
    if tuning:
        config["resources"]["tuning"] = {"config": tuning}
    return job.execute_in_process(
        run_config=config,
        instance=session.instance,
        partition_key=session.model.model_name if session.model else None,
        asset_selection=list(keys),
        raise_on_error=False,
    )


def failed_checks(result: dg.ExecuteInProcessResult) -> list[str]:
    lines = []
    for evaluation in result.get_asset_check_evaluations():
        if not evaluation.passed:
            details = ", ".join(f"{k} {v.value}" for k, v in evaluation.metadata.items())
            lines.append(f"{evaluation.asset_key.to_user_string()}.{evaluation.check_name}: {details}")
    return lines


def report_run(result: dg.ExecuteInProcessResult, session: Session) -> int:
    """Print where the run is and what went wrong; 1 when a step failed.

    A failed check is reported but is not an error of the command: the asset was materialized, and a
    blocking check already keeps a failing model from becoming `production_model`.
    """
    print(f"Dagster run {result.run_id} in {session.instance.root_directory} (see it with `make dev`)")
    for line in failed_checks(result):
        print(f"check failed: {line}", file=sys.stderr)
    status = 0
    for event in result.all_events:
        error = event.step_failure_data.error if event.is_step_failure and event.step_failure_data else None
        if event.is_step_failure and not (error and error.cls_name == "DagsterAssetCheckFailedError"):
            message = error.message.strip() if error else "see the run log"
            print(f"step {event.step_key} failed: {message}", file=sys.stderr)
            status = 1
    return status


def _materialized(session: Session, key: dg.AssetKey, partition: str | None = None) -> bool:
    from neuroflux_assets.api import has_materialization

    return has_materialization(session.instance, key, partition)


def _preprocess(args: argparse.Namespace) -> int:
    from neuroflux_assets.pipeline import data_summary

    session = open_session(args)
    status = report_run(materialize(session, DATA_KEYS), session)
    if status == 0:
        print(data_summary(session.defs, session.instance, session.dataset))
        print(f"Asset values in {Path(session.dataset.storage_dir) / 'assets'}/")
    return status


def _data_then(session: Session, keys: list[dg.AssetKey]) -> list[dg.AssetKey]:
    """`keys`, preceded by the data assets when those were never materialized in this instance."""
    if all(_materialized(session, key) for key in DATA_KEYS):
        return keys
    print("The data assets have not been materialized yet: preprocessing first")
    return DATA_KEYS + keys


def _print_evaluation(session: Session) -> None:
    name = session.model.model_name
    report_dir = Path(
        session.defs.load_asset_value("evaluation_report", partition_key=name, instance=session.instance)
    )
    print_report(name, json.loads((report_dir / "report.json").read_text()), "best checkpoint")
    print(f"Report and plots: {report_dir}/")


def _train(args: argparse.Namespace) -> int:
    session = open_session(args)
    # Searching is `tune`'s job: training only reads the study `tune` left (when use_tuned is true).
    session = dataclasses.replace(session, model=with_overrides(session.model, {"tune_trials": 0}, "train"))
    result = materialize(
        session, _data_then(session, MODEL_KEYS), resume=args.resume, tuning=tuning_config(args)
    )
    status = report_run(result, session)
    trained = result.asset_materializations_for_node("trained_model")
    if trained:
        meta = {k: v.value for k, v in trained[-1].metadata.items()}
        print(
            f"\n{session.model.model_name}: {meta['epochs_run']} epochs on {meta['device']}, best epoch "
            f"{meta['best_epoch']} ({meta['monitor']}), weights {meta['weights_origin']}\n"
            f"Hyperparameters: {meta['hyperparameters_source']}\nW&B run: {meta['wandb_run']}\n"
            f"Artifact: {meta['stored_at']}"
        )
    if result.asset_materializations_for_node("evaluation_report"):
        _print_evaluation(session)
    return status


def _evaluate(args: argparse.Namespace) -> int:
    if args.artifact:  # an arbitrary folder is not an asset: evaluate it with the library alone
        from neuroflux_lib.cli import _evaluate as library_evaluate

        return library_evaluate(args)
    session = open_session(args)
    name = session.model.model_name
    if not _materialized(session, dg.AssetKey("trained_model"), name):
        raise LookupError(f"trained_model[{name}] has not been materialized: run `neuroflux train` first")
    status = report_run(materialize(session, [dg.AssetKey("evaluation_report")]), session)
    if status == 0:
        _print_evaluation(session)
    return status


def _predict(args: argparse.Namespace) -> int:
    from neuroflux_assets.api import artifact_path
    from neuroflux_lib.cli import print_predictions
    from neuroflux_lib.predictor import Predictor

    if args.artifact:
        artifact = Path(args.artifact)
    else:
        session = open_session(args)
        model = None if args.production else session.model.model_name
        artifact = artifact_path(model, instance=session.instance, defs=session.defs)
    predictor = Predictor.from_artifact(artifact)
    print_predictions(predictor.predict_batch(args.image_path), as_json=args.json)
    return 0


def tuning_config(args: argparse.Namespace, workers: int = 1) -> dict[str, Any]:
    """The `tuning` resource's run config. A `--storage` URL travels through the environment (run config
    is stored and shown in the UI, and the URL may hold a database password)."""
    config: dict[str, Any] = {"workers": workers}
    if args.storage:
        os.environ[OPTUNA_STORAGE_ENV] = args.storage
        config["storage"] = {"env": OPTUNA_STORAGE_ENV}
    return config


def _tune(args: argparse.Namespace) -> int:
    session = open_session(args)
    overrides = {"tune_trials": args.n_trials, "tune_timeout_s": args.timeout}
    model = with_overrides(
        session.model, {k: v for k, v in overrides.items() if v is not None}, "command line"
    )
    session = dataclasses.replace(session, model=model)
    if model.tune_trials == 0:
        raise ValueError("tune_trials is 0: pass --n_trials N (or set tune_trials in the model config)")
    keys = _data_then(session, [dg.AssetKey("tuned_hyperparameters")])
    result = materialize(session, keys, tuning=tuning_config(args, workers=args.workers))
    status = report_run(result, session)
    if status == 0:
        value = session.defs.load_asset_value(
            "tuned_hyperparameters", partition_key=model.model_name, instance=session.instance
        )
        study = value["study"]
        print(
            f"\nstudy {study['name']} ({study['storage']}): trials {study['trials']}, best trial "
            f"{study['best_trial']} val macro-F1 {study['best_value']}\nbest hyperparameters: "
            f"{json.dumps(value['best_params'], indent=2)}\n{value['source']}"
        )
    return status


def _runs(args: argparse.Namespace) -> int:
    from neuroflux_lib.tracking import runs_table, sync_command

    dataset = absolute_folders(load_config(DatasetConfig, args.dataset_config))
    root = Path(TrackingResource(dir=args.wandb_dir).settings(dataset.storage_dir).root)
    table = runs_table(root)
    if table.empty:
        print(f"No offline W&B runs under {root}/ yet: `make demo` or `neuroflux train` create them.")
        return 0
    trials = table.get("job_type", pd.Series(index=table.index, dtype=object)) == "tune"
    shown = table if args.all else table.loc[~trials]
    if not shown.empty:
        shown = shown.dropna(axis=1, how="all").drop(columns=["group"], errors="ignore")
        with pd.option_context("display.max_rows", None, "display.width", 250, "display.max_colwidth", 70):
            print(shown.to_string(index=False, na_rep=""))
    if trials.any() and not args.all:
        print(f"(and {int(trials.sum())} tuning-trial runs: `--all` lists them)")
    command = sync_command(root)
    if not args.sync:
        print(
            f"\n{len(table)} runs in {root}/; upload them with `neuroflux runs --sync` (needs WANDB_API_KEY)"
        )
        return 0
    if len(command) == 2:
        print("Every offline run is already synced.")
        return 0
    if not os.environ.get("WANDB_API_KEY"):
        print("Set WANDB_API_KEY (https://wandb.ai/authorize), then run:\n  " + shlex.join(command))
        return 2
    env = {**os.environ, **TrackingSettings(mode="online", root=str(root)).environment()}
    return subprocess.run(command, env=env, check=False).returncode


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def build() -> argparse.ArgumentParser:
    cli = build_parser(
        {"preprocess": _preprocess, "train": _train, "evaluate": _evaluate, "predict": _predict},
        description=__doc__,
    )
    cli.commands["predict"].add_argument(
        "--production", action="store_true", help="use production_model instead of --model_config's model"
    )
    tune = cli.model_command("tune", "run or resume the model's Optuna study (tuned_hyperparameters)", _tune)
    tune.add_argument("--workers", type=positive_int, default=1, help="processes sharing the study")
    tune.add_argument("--n_trials", type=int, default=None, help="trials to add (default: tune_trials)")
    tune.add_argument("--timeout", type=float, default=None, help="seconds (default: tune_timeout_s)")
    for command in (tune, cli.commands["train"]):
        command.add_argument(
            "--storage",
            default=None,
            help=f"Optuna storage URL (default: ${OPTUNA_STORAGE_ENV}, else SQLite in storage_dir)",
        )
    runs = cli.subparsers.add_parser("runs", help="list the offline W&B runs; --sync uploads them")
    runs.set_defaults(func=_runs)
    runs.add_argument("--dataset_config", default="configs/dataset_config.json", help="for its storage_dir")
    runs.add_argument("--sync", action="store_true", help="upload offline runs (needs WANDB_API_KEY)")
    runs.add_argument("--all", action="store_true", help="also list every tuning trial")
    runs.add_argument("--wandb_dir", default=None, help="runs root (default: <storage_dir>/wandb)")
    return cli.parser


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(build(), argv, log_to_stderr=False)  # Dagster's console logger shows them


if __name__ == "__main__":
    sys.exit(main())
