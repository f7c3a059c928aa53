"""`neuroflux`: the original project's modes, run through the project's Dagster instance.

Every mode that produces something materializes assets, so the run, its metadata and its checks show
in `make dev`, and the next mode reads what the previous one stored (`<storage_dir>/assets/`):

- `preprocess`: raw_images, image_quality, outliers, dataset_splits, balanced_train_set
- `train`: tuned_hyperparameters (without new trials: the study `tune` left, if any), trained_model and
  evaluation_report for the `--model_config` model (the data assets first if never materialized)
- `evaluate`: evaluation_report again; with `--artifact`, any model folder on the current test split
  (report under `<storage_dir>/reports/<folder name>/`; the folder itself is never written to)
- `predict`: the trained_model asset, the production model with `--production`, or any model folder
  with `--artifact`; `--batch DIR`: the incoming_predictions partition of a folder (production model,
  flags, drift check)
- `tune`: tuned_hyperparameters (the model's Optuna study), `--workers N` processes sharing it
- `runs`: the offline W&B runs as a table; `--sync` uploads them
- `demo-data`, `import-checkpoint`: write a synthetic dataset / convert an original `.pth`
- `export --format onnx`: write `model.onnx` into a model folder; `predict` then runs it in ONNX Runtime

The project's own errors (config, data, image, artifact, nothing materialized yet) are one line and
exit status 2; anything else is a bug and shows its traceback (exit status 1).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd

from neuroflux_lib.config import (
    NO_PROFILE,
    DatasetConfig,
    ModelConfig,
    absolute_folders,
    load_config,
    load_model_config,
    load_profile,
    with_overrides,
)
from neuroflux_lib.errors import NeurofluxError, NotMaterializedError
from neuroflux_lib.paths import StoragePaths

MODEL_KEYS = [dg.AssetKey(name) for name in ("tuned_hyperparameters", "trained_model", "evaluation_report")]
DEFAULT_DATASET_CONFIG = "configs/dataset_config.json"
DEFAULT_MODEL_CONFIG = "configs/models/neuroflux_cnn.json"


@dataclass(frozen=True)
class Session:
    """One CLI invocation's resolved configs, definitions and instance."""

    dataset: DatasetConfig
    model: ModelConfig | None
    defs: dg.Definitions
    instance: dg.DagsterInstance

    @property
    def storage(self) -> StoragePaths:
        return StoragePaths(self.dataset.storage_dir)


def load_configs(args: argparse.Namespace) -> tuple[DatasetConfig, ModelConfig | None]:
    """The config files with `--profile` applied; relative folders are relative to the working directory."""
    dataset = load_config(DatasetConfig, args.dataset_config)
    path = getattr(args, "model_config", None)
    model = load_model_config(path) if path else None
    if getattr(args, "profile", None):
        profile = load_profile(args.profile)
        dataset = profile.apply_dataset(dataset, args.profile)
        model = profile.apply_model(model, args.profile) if model else None
    if model is not None:
        model = with_overrides(model, {"num_classes": len(dataset.class_names)}, "class list")
    return absolute_folders(dataset, Path.cwd()), model


def definitions_for(dataset: DatasetConfig) -> dg.Definitions:
    """The project's definitions with asset values under the config's `storage_dir`/assets."""
    from neuroflux_assets.definitions import build_definitions
    from neuroflux_assets.io_managers import FolderIOManager, JsonIOManager, ParquetIOManager

    base = str(StoragePaths(dataset.storage_dir).assets)
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
    return Session(dataset, model, definitions_for(dataset), project_instance(dataset.storage_dir))


def run_config(dataset: DatasetConfig, model: ModelConfig | None, resume: bool = False) -> dict[str, Any]:
    """Launchpad-equivalent run config: the given configs exactly (every key typed), no profile on top
    (`--profile` was already applied by `load_configs`)."""
    from neuroflux_assets.settings import MODEL_FIXED_KEYS

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


@contextlib.contextmanager
def storage_url_in_env(url: str | None) -> Iterator[dict[str, Any]]:
    """The `tuning` resource's `storage` as an EnvVar reference for the duration of a run: run config is
    stored and shown in the UI, and the URL may hold a database password. The variable is restored after."""
    from neuroflux_assets.settings import OPTUNA_STORAGE_ENV

    if not url:
        yield {}
        return
    before = os.environ.get(OPTUNA_STORAGE_ENV)
    os.environ[OPTUNA_STORAGE_ENV] = url
    try:
        yield {"storage": {"env": OPTUNA_STORAGE_ENV}}
    finally:
        if before is None:
            os.environ.pop(OPTUNA_STORAGE_ENV, None)
        else:
            os.environ[OPTUNA_STORAGE_ENV] = before


def materialize(
    session: Session,
    keys: Sequence[dg.AssetKey],
    resume: bool = False,
    storage: str | None = None,
    workers: int = 1,
    evaluation: dict[str, Any] | None = None,
) -> dg.ExecuteInProcessResult:
    """One in-process run of `full_pipeline` limited to `keys` (the model's partition if any)."""
    job = session.defs.resolve_job_def("full_pipeline")
    config = run_config(session.dataset, session.model, resume)
    with storage_url_in_env(storage) as storage_config:
        config["resources"]["tuning"] = {"config": {"workers": workers, **storage_config}}
        if evaluation:
            config.setdefault("ops", {})["evaluation_report"] = {"config": evaluation}
        return job.execute_in_process(
            run_config=config,
            instance=session.instance,
            partition_key=session.model.model_name if session.model else None,
            asset_selection=list(keys),
            raise_on_error=False,
        )


def user_error_names() -> set[str]:
    """Class names of the project's own errors (a step failure carries the name, not the class)."""
    pending, names = [NeurofluxError], set()
    while pending:
        cls = pending.pop()
        names.add(cls.__name__)
        pending.extend(cls.__subclasses__())
    return names


def report_run(result: dg.ExecuteInProcessResult, session: Session) -> int:
    """Print where the run is and what went wrong. 0: every step ran (a model that does not beat its
    baselines is a warning, not an error); 2: a blocking check stopped the graph or a step raised one
    of the project's own errors (bad data, config, image, artifact: something the user can fix);
    1: any other step failure."""
    from neuroflux_assets.pipeline import failed_checks

    print(f"Dagster run {result.run_id} in {session.instance.root_directory} (see it with `make dev`)")
    for line in failed_checks(result):
        print(f"check failed: {line}", file=sys.stderr)
    status, user_errors = 0, user_error_names()
    for event in result.all_events:
        if not event.is_step_failure:
            continue
        error = event.step_failure_data.error if event.step_failure_data else None
        if error and error.cls_name == "DagsterAssetCheckFailedError":
            print(f"step {event.step_key} stopped by a blocking check (above)", file=sys.stderr)
            status = max(status, 2)
            continue
        chain = []  # Dagster wraps the asset's exception: look through the causes
        while error is not None:
            chain.append(error)
            error = error.cause
        user = next((e for e in chain if e.cls_name in user_errors), None)
        message = (user or (chain[-1] if chain else None)).message.strip() if chain else "see the run log"
        print(f"step {event.step_key} failed: {message}", file=sys.stderr)
        status = 2 if user is not None and status != 1 else 1
    return status


def data_keys(session: Session) -> list[dg.AssetKey]:
    """The data assets and the baselines, as the job's `data_stage` selection resolves them."""
    from neuroflux_assets.jobs import data_stage

    return sorted(data_stage.resolve(session.defs.resolve_asset_graph()), key=lambda k: k.to_user_string())


def _materialized(session: Session, key: dg.AssetKey, partition: str | None = None) -> bool:
    from neuroflux_assets.api import has_materialization

    return has_materialization(session.instance, key, partition)


def _data_then(session: Session, keys: list[dg.AssetKey]) -> list[dg.AssetKey]:
    """`keys`, preceded by the data assets when those were never materialized in this instance."""
    data = data_keys(session)
    if all(_materialized(session, key) for key in data):
        return keys
    print("The data assets have not been materialized yet: preprocessing first")
    return data + keys


def print_report(name: str, report: dict, what: str) -> None:
    print(f"{name} on the test set ({report['n_test']} images), {what}:\n{report['classification_report']}")


def print_predictions(predictions: Iterable, as_json: bool = False) -> None:
    """One block per image as it is predicted (label, confidence, every class's probability), or a JSON
    list (rows are small: the images are never all in memory); both say whether they are calibrated."""
    if as_json:
        rows = [
            {
                "image": p.source,
                "label": p.label,
                "probabilities": p.probabilities,
                "calibrated": p.calibrated,
                "temperature": p.temperature,
            }
            for p in predictions
        ]
        print(json.dumps(rows, indent=2))
        return
    for index, p in enumerate(predictions):
        if index == 0:
            print(f"{p.probability_kind}:")
        probabilities = "  ".join(f"{name} {value:.3f}" for name, value in p.probabilities.items())
        print(f"{p.source}: {p.label} ({p.confidence:.1%})\n  {probabilities}", flush=True)


def _print_evaluation(session: Session) -> None:
    from neuroflux_assets.pipeline import evaluation_summary

    name = session.model.model_name
    report_dir = session.defs.load_asset_value(
        "evaluation_report", partition_key=name, instance=session.instance
    )
    print(evaluation_summary(session.defs, session.instance, name))
    print(f"Report and plots: {report_dir}/")


# ------------------------------------------------------------------------------------------ modes


def _preprocess(args: argparse.Namespace) -> int:
    from neuroflux_assets.pipeline import data_summary

    session = open_session(args)
    status = report_run(materialize(session, data_keys(session)), session)
    if status == 0:
        print(data_summary(session.defs, session.instance, session.dataset))
        print(f"Asset values in {session.storage.assets}/")
    return status


def _train(args: argparse.Namespace) -> int:
    session = open_session(args)
    # Searching is `tune`'s job: training only reads the study `tune` left (when use_tuned is true).
    session = dataclasses.replace(session, model=with_overrides(session.model, {"tune_trials": 0}, "train"))
    keys = _data_then(session, MODEL_KEYS)
    result = materialize(session, keys, resume=args.resume, storage=args.storage)
    status = report_run(result, session)
    trained = result.asset_materializations_for_node("trained_model")
    if trained:
        meta = {k: v.value for k, v in trained[-1].metadata.items()}
        print(
            f"\n{session.model.model_name}: {meta['epochs_run']} epochs on {meta['device']} "
            f"({meta['precision']}), best epoch "
            f"{meta['best_epoch']} ({meta['monitor']}), weights {meta['weights_origin']}, frozen layers "
            f"{meta['frozen_layers']}\nNormalization: {meta['normalization']}\n"
            f"Augmentation: {meta['augmentation']}\nFrozen-feature cache: {meta['feature_cache']}\n"
            f"Did it learn? {meta['learn_check']}\n"
            f"Hyperparameters: {meta['hyperparameters_source']}\nW&B run: {meta['wandb_run']}\n"
            f"Artifact: {meta['stored_at']}"
        )
    if result.asset_materializations_for_node("evaluation_report"):
        _print_evaluation(session)
    return status


def _load_splits(session: Session) -> pd.DataFrame:
    key = dg.AssetKey("dataset_splits")
    if not _materialized(session, key):
        raise NotMaterializedError(
            "dataset_splits has not been materialized: run `neuroflux preprocess` first"
        )
    return session.defs.load_asset_value(key, instance=session.instance)


def _reference_baselines(session: Session):
    """The `baselines` asset of the current splits, when it exists (the comparison needs it)."""
    from neuroflux_lib.evaluation.reference import baselines_of

    if not _materialized(session, dg.AssetKey("baselines")):
        return None
    return baselines_of(session.defs.load_asset_value("baselines", instance=session.instance))


def _evaluate_folder(session: Session, artifact: Path, allow_other_data: bool) -> int:
    """Any model folder on the current test split, with the library; the report goes to storage."""
    from neuroflux_lib.evaluation.comparison import comparison_text
    from neuroflux_lib.training.steps import evaluate_artifact

    out = session.storage.report(artifact.resolve().name)
    evaluation = evaluate_artifact(
        artifact,
        session.dataset,
        _load_splits(session),
        out,
        baselines=_reference_baselines(session),
        allow_other_data=allow_other_data,
        record_metrics=False,
    )
    print_report(artifact.name, evaluation.report, f"model folder {artifact}")
    if "comparison" in evaluation.report:
        print(comparison_text(evaluation.report["comparison"], artifact.name))
    print(f"Report and plots: {out}/")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    session = open_session(args)
    if args.artifact:  # a folder that is not an asset
        return _evaluate_folder(session, Path(args.artifact), args.allow_other_data)
    name = session.model.model_name
    if not _materialized(session, dg.AssetKey("trained_model"), name):
        raise NotMaterializedError(
            f"trained_model[{name}] has not been materialized: run `neuroflux train` first"
        )
    evaluation = {"allow_other_data": args.allow_other_data}
    result = materialize(session, [dg.AssetKey("evaluation_report")], evaluation=evaluation)
    status = report_run(result, session)
    if status == 0:
        _print_evaluation(session)
    return status


def _predict_batch(args: argparse.Namespace) -> int:
    """`predict --batch DIR`: the incoming_predictions partition named after DIR (its parent becomes
    `incoming_dir` for the run), scored by production_model with its drift check, like the sensor does."""
    from neuroflux_assets.api import project_instance
    from neuroflux_assets.partitions import incoming_batches
    from neuroflux_lib.errors import DataError
    from neuroflux_lib.incoming import batch_summary, class_counts

    folder = Path(args.batch).resolve()
    if not folder.is_dir():
        raise DataError(f"batch folder not found: {folder}")
    dataset, _ = load_configs(argparse.Namespace(**{**vars(args), "model_config": None}))  # production model
    dataset = with_overrides(dataset, {"incoming_dir": str(folder.parent)}, "--batch")
    session = Session(dataset, None, definitions_for(dataset), project_instance(dataset.storage_dir))
    if not _materialized(session, dg.AssetKey("production_model")):
        raise NotMaterializedError(
            "no production model to score with: run `make demo` (or train and promote) first"
        )
    session.instance.add_dynamic_partitions(incoming_batches.name, [folder.name])
    result = session.defs.resolve_job_def("score_incoming").execute_in_process(
        run_config=run_config(dataset, None),
        instance=session.instance,
        partition_key=folder.name,
        raise_on_error=False,
    )
    status = report_run(result, session)
    if not result.success:
        return status
    table = session.defs.load_asset_value(
        "incoming_predictions", partition_key=folder.name, instance=session.instance
    )
    if args.json:
        print(table.drop(columns=["path"]).to_json(orient="records", indent=2))
        return status
    print(batch_summary(table))
    print(class_counts(table, dataset.class_names).to_string())
    for row in table.loc[table["out_of_distribution"]].itertuples():
        print(f"  flagged {row.file}: {row.ood_kind}: {row.ood_reason}")
    for evaluation in result.get_asset_check_evaluations():
        print(f"{evaluation.check_name}: {evaluation.metadata['verdict'].value}")
    return status


def _chosen_artifact(args: argparse.Namespace) -> Path:
    """--artifact FOLDER, else the production model (--production) or the config's model partition."""
    from neuroflux_assets.api import artifact_path

    if args.artifact:
        return Path(args.artifact)
    session = open_session(args)
    model = None if args.production else session.model.model_name
    return artifact_path(model, instance=session.instance, defs=session.defs)


def _predict(args: argparse.Namespace) -> int:
    from neuroflux_lib.predictor import Predictor

    if args.batch:
        return _predict_batch(args)
    if not args.image_path:
        from neuroflux_lib.errors import ConfigError

        raise ConfigError("give the images (--image_path FILE...) or a folder of them (--batch DIR)")
    predictor = Predictor.from_artifact(_chosen_artifact(args))
    if args.explain:
        from neuroflux_lib.explain import write_explanations

        stream = write_explanations(predictor, args.image_path, args.explain)
    else:
        stream = predictor.predict_stream(args.image_path, args.batch_size, progress=sys.stderr.isatty())
    print_predictions(stream, as_json=args.json)
    if args.explain:
        print(f"Grad-CAM overlays: {Path(args.explain).resolve()}/", file=sys.stderr)
    return 0


def _export(args: argparse.Namespace) -> int:
    from neuroflux_lib.export import TOLERANCE, export_onnx

    target = export_onnx(_chosen_artifact(args))
    print(
        f"Exported {target} (logits match PyTorch within {TOLERANCE:g}); `neuroflux predict` and "
        "Predictor.from_artifact now run it with ONNX Runtime"
    )
    return 0


def _tune(args: argparse.Namespace) -> int:
    from neuroflux_lib.errors import ConfigError

    session = open_session(args)
    overrides = {"tune_trials": args.n_trials, "tune_timeout_s": args.timeout}
    model = with_overrides(
        session.model, {k: v for k, v in overrides.items() if v is not None}, "command line"
    )
    session = dataclasses.replace(session, model=model)
    if model.tune_trials == 0:
        raise ConfigError("tune_trials is 0: pass --n_trials N (or set tune_trials in the model config)")
    keys = _data_then(session, [dg.AssetKey("tuned_hyperparameters")])
    result = materialize(session, keys, storage=args.storage, workers=args.workers)
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
    from neuroflux_assets.resources import TrackingResource
    from neuroflux_lib.tracking import TrackingSettings, runs_table, sync_command

    dataset = absolute_folders(load_config(DatasetConfig, args.dataset_config), Path.cwd())
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


def _demo_data(args: argparse.Namespace) -> int:
    from neuroflux_lib.demo.generator import generate_demo_dataset

    summary = generate_demo_dataset(
        args.out,
        scale=args.scale,
        seed=args.seed,
        difficulty=args.difficulty,
        image_size=args.image_size,
        workers=args.workers,
        progress=True,
        confound=args.confound,
    )
    counts = ", ".join(f"{k} {v}" for k, v in summary.counts.items())
    print(
        f"Wrote {sum(summary.counts.values())} images ({counts}) of {summary.n_subjects} subjects, "
        f"{summary.n_bad} deliberately bad, to {summary.out_dir} in {summary.seconds:.1f} s"
    )
    return 0


def _import_checkpoint(args: argparse.Namespace) -> int:
    from neuroflux_lib.artifacts import import_original_checkpoint

    out = import_original_checkpoint(args.path, args.model, args.out, image_size=args.image_size)
    print(f"Imported {args.path} ({args.model}) into {out}/")
    return 0


# ----------------------------------------------------------------------------------------- parser


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


Handler = Callable[[argparse.Namespace], int]
ARTIFACT_HELP = "model folder (default: the trained model of --model_config)"
PROFILE_HELP = "overrides on top of the config files, e.g. cpu-demo or configs/profiles/cpu-demo.json"
STORAGE_HELP = "Optuna storage URL (default: $NEUROFLUX_OPTUNA_STORAGE, else SQLite in storage_dir)"


def build() -> argparse.ArgumentParser:
    from neuroflux_lib.models.legacy import ORIGINAL_MODELS
    from neuroflux_lib.predictor import DEFAULT_BATCH

    parser = argparse.ArgumentParser(
        prog="neuroflux", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="mode", required=True)

    def command(name: str, help: str, func: Handler, model: bool = True) -> argparse.ArgumentParser:
        mode = sub.add_parser(name, help=help)
        mode.add_argument("--dataset_config", default=DEFAULT_DATASET_CONFIG)
        if model:
            mode.add_argument("--model_config", default=DEFAULT_MODEL_CONFIG)
            mode.add_argument("--profile", default=None, help=PROFILE_HELP)
        mode.set_defaults(func=func)
        return mode

    pre = command("preprocess", "discover, check, split and balance the dataset", _preprocess, model=False)
    pre.add_argument("--profile", default=None, help=PROFILE_HELP)
    train = command("train", "train, select on val, evaluate the best checkpoint on test", _train)
    train.add_argument("--resume", action="store_true", help="continue from the last epoch checkpoint")
    train.add_argument("--storage", default=None, help=STORAGE_HELP)
    evaluate = command("evaluate", "evaluate the saved model on the test split", _evaluate)
    evaluate.add_argument("--artifact", default=None, help=ARTIFACT_HELP)
    evaluate.add_argument(
        "--allow-other-data",
        action="store_true",
        help="evaluate a model trained on other splits anyway (its report says: test set not held out)",
    )
    predict = command("predict", "classify images with a saved model (no dataset needed)", _predict)
    predict.add_argument("--image_path", nargs="+", default=None, help="image files (or --batch)")
    predict.add_argument(
        "--batch",
        default=None,
        metavar="DIR",
        help="score a folder of new scans through Dagster (incoming_predictions partition DIR's name, with "
        "its drift check), flagging broken and out-of-distribution images",
    )
    predict.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULT_BATCH,
        help="images decoded and predicted at a time: memory stays constant for any number of files",
    )
    predict.add_argument("--artifact", default=None, help=ARTIFACT_HELP)
    predict.add_argument("--json", action="store_true", help="machine-readable output")
    predict.add_argument(
        "--explain",
        default=None,
        metavar="DIR",
        help="also write DIR/<image name>.png: the image and its Grad-CAM heatmap for the predicted class",
    )
    predict.add_argument(
        "--production", action="store_true", help="use production_model instead of --model_config's model"
    )
    tune = command("tune", "run or resume the model's Optuna study (tuned_hyperparameters)", _tune)
    tune.add_argument("--workers", type=positive_int, default=1, help="processes sharing the study")
    tune.add_argument("--n_trials", type=int, default=None, help="trials to add (default: tune_trials)")
    tune.add_argument("--timeout", type=float, default=None, help="seconds (default: tune_timeout_s)")
    tune.add_argument("--storage", default=None, help=STORAGE_HELP)

    runs = command("runs", "list the offline W&B runs; --sync uploads them", _runs, model=False)
    runs.add_argument("--sync", action="store_true", help="upload offline runs (needs WANDB_API_KEY)")
    runs.add_argument("--all", action="store_true", help="also list every tuning trial")
    runs.add_argument("--wandb_dir", default=None, help="runs root (default: <storage_dir>/wandb)")

    demo = sub.add_parser("demo-data", help="write a synthetic dataset shaped like the real one")
    demo.add_argument("--out", default="data")
    demo.add_argument("--scale", type=float, default=1.0, help="fraction of the real class counts")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--difficulty", type=float, default=1.0, help="higher = subtler class signal")
    demo.add_argument("--image-size", type=int, default=256)
    demo.add_argument("--workers", type=int, default=None)
    demo.add_argument(
        "--confound",
        type=float,
        default=1.0,
        help="how strongly scan year, sequence and site in the file names depend on the class "
        "(1 = like the real data, 0 = independent)",
    )
    demo.set_defaults(func=_demo_data)

    imp = sub.add_parser("import-checkpoint", help="convert an original-project .pth into an artifact")
    imp.add_argument("path")
    imp.add_argument("--model", required=True, choices=list(ORIGINAL_MODELS))
    imp.add_argument("--out", required=True)
    imp.add_argument("--image-size", type=int, default=224)
    imp.set_defaults(func=_import_checkpoint)

    export = command("export", "write the model in a faster format for prediction (ONNX)", _export)
    export.add_argument("--format", choices=["onnx"], default="onnx", help="only onnx so far")
    export.add_argument("--artifact", default=None, help=ARTIFACT_HELP)
    export.add_argument(
        "--production", action="store_true", help="export production_model instead of --model_config's model"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one mode. Library log lines reach the terminal through Dagster's console logger during runs
    (dagster.yaml); outside runs (demo-data, predict) they go to stderr."""
    args = build().parse_args(argv)
    if args.mode in ("demo-data", "import-checkpoint", "predict", "runs"):
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except NeurofluxError as error:
        print(f"neuroflux {args.mode}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
