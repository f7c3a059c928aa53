"""`neuroflux` command line: the original project's modes plus demo data."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

from neuroflux_lib.config import ConfigError, DatasetConfig, ModelConfig, Profile, load_config


def load_configs(args: argparse.Namespace) -> tuple[DatasetConfig, ModelConfig | None]:
    """Dataset and model configs with the profile (if any) applied: one place for precedence."""
    dataset = load_config(DatasetConfig, args.dataset_config)
    model = load_config(ModelConfig, args.model_config) if getattr(args, "model_config", None) else None
    if getattr(args, "profile", None):
        profile = load_config(Profile, args.profile)
        dataset = profile.apply_dataset(dataset, args.profile)
        model = profile.apply_model(model, args.profile) if model else None
    return dataset, model


def model_paths(dataset: DatasetConfig, model_name: str) -> dict[str, Path]:
    """Where the CLI keeps one model's artifact, report and training checkpoint."""
    root = Path(dataset.storage_dir)
    return {
        "artifact": root / "models" / model_name,
        "report": root / "reports" / model_name,
        "work": root / "runs" / model_name,
    }


def _preprocess(args: argparse.Namespace) -> int:
    from neuroflux_lib.dataset import run_preprocess, summary_text, write_outputs

    config = load_config(DatasetConfig, args.dataset_config)
    started = time.perf_counter()
    result = run_preprocess(config, progress=True)
    written = write_outputs(result, config)
    print(summary_text(result, config))
    print(f"Outputs in {written['images'].parent}/ ({time.perf_counter() - started:.1f} s)")
    return 0


def _load_prepared(dataset: DatasetConfig):
    """Split tables from the last `preprocess`; runs it first when there are none."""
    import pandas as pd

    from neuroflux_lib.dataset import run_preprocess, write_outputs

    folder = Path(dataset.storage_dir) / "preprocess"
    if not (folder / "splits.parquet").exists() or not (folder / "balanced_train.parquet").exists():
        print(f"No preprocessing outputs in {folder}/: running preprocess first")
        write_outputs(run_preprocess(dataset, progress=True), dataset)
    return pd.read_parquet(folder / "balanced_train.parquet"), pd.read_parquet(folder / "splits.parquet")


def _train(args: argparse.Namespace) -> int:
    from neuroflux_lib.modeling import evaluate_artifact, train_model

    dataset, model = load_configs(args)
    balanced, splits = _load_prepared(dataset)
    paths = model_paths(dataset, model.model_name)
    started = time.perf_counter()
    trained = train_model(
        model,
        dataset,
        balanced,
        splits,
        artifact_dir=paths["artifact"],
        work_dir=paths["work"],
        resume=args.resume,
        progress=True,
    )
    fit, seconds = trained.fit, time.perf_counter() - started
    print(
        f"\n{model.model_name}: {len(fit.history)} epochs on {fit.device} in {seconds:.0f} s, best epoch "
        f"{fit.best_epoch} ({model.monitor} {fit.best_metric:.3f}), weights {trained.meta.weights_origin}"
    )
    evaluation = evaluate_artifact(trained.artifact_dir, dataset, splits, paths["report"])
    print_report(model.model_name, evaluation.report, "best checkpoint")
    print(f"Artifact: {trained.artifact_dir}/  Report and plots: {paths['report']}/")
    return 0


def print_report(name: str, report: dict, what: str) -> None:
    print(f"{name} on the test set ({report['n_test']} images), {what}:\n{report['classification_report']}")


def _evaluate(args: argparse.Namespace) -> int:
    from neuroflux_lib.modeling import evaluate_artifact

    dataset, model = load_configs(args)
    paths = model_paths(dataset, model.model_name)
    _, splits = _load_prepared(dataset)
    evaluation = evaluate_artifact(args.artifact or paths["artifact"], dataset, splits, paths["report"])
    print_report(model.model_name, evaluation.report, "saved model")
    print(f"Report and plots: {paths['report']}/")
    return 0


def _predict(args: argparse.Namespace) -> int:
    from neuroflux_lib.predictor import Predictor

    if args.artifact:
        artifact = Path(args.artifact)
    else:
        dataset, model = load_configs(args)
        artifact = model_paths(dataset, model.model_name)["artifact"]
    if not artifact.exists():
        raise FileNotFoundError(f"no trained model at {artifact}/: run `neuroflux train` first")
    print_predictions(Predictor.from_artifact(artifact).predict_batch(args.image_path), as_json=args.json)
    return 0


def print_predictions(predictions: Sequence, as_json: bool = False) -> None:
    """One block per image (label, confidence, every class's probability), or a JSON list."""
    if as_json:
        rows = [{"image": p.source, "label": p.label, "probabilities": p.probabilities} for p in predictions]
        print(json.dumps(rows, indent=2))
        return
    for p in predictions:
        probabilities = "  ".join(f"{name} {value:.3f}" for name, value in p.probabilities.items())
        print(f"{p.source}: {p.label} ({p.confidence:.1%})\n  {probabilities}")


def _import_checkpoint(args: argparse.Namespace) -> int:
    from neuroflux_lib.artifacts import ArtifactMeta, save_artifact
    from neuroflux_lib.models import ORIGINAL_CLASS_NAMES, load_original_checkpoint

    built = load_original_checkpoint(
        args.path, args.model, len(ORIGINAL_CLASS_NAMES), image_size=args.image_size
    )
    mean, std = built.normalization
    meta = ArtifactMeta(
        architecture=built.name,
        class_names=list(ORIGINAL_CLASS_NAMES),
        image_size=args.image_size,
        normalization={"mean": list(mean), "std": list(std)},
        hyperparameters={"source_checkpoint": str(args.path), **_inferred_hyperparameters(built)},
        weights_origin="checkpoint",
        pretrained=True,
    )
    out = save_artifact(args.out, built.model, meta)
    print(f"Imported {args.path} ({built.name}) into {out}/")
    return 0


def _inferred_hyperparameters(built) -> dict[str, int | float]:
    model = built.model
    if built.name == "neuroflux_cnn":
        return {"conv_channels": model.conv1.out_channels, "dropout": model.dropout.p}
    return {"hidden_size": model.fc[0].out_features, "dropout": model.fc[3].p, "freeze_until": "none"}


def _demo_data(args: argparse.Namespace) -> int:
    from neuroflux_lib.demo_data import generate_demo_dataset

    summary = generate_demo_dataset(
        args.out,
        scale=args.scale,
        seed=args.seed,
        difficulty=args.difficulty,
        image_size=args.image_size,
        workers=args.workers,
        progress=True,
    )
    counts = ", ".join(f"{k} {v}" for k, v in summary.counts.items())
    print(
        f"Wrote {sum(summary.counts.values())} images ({counts}) of {summary.n_subjects} subjects, "
        f"{summary.n_bad} deliberately bad, to {summary.out_dir} in {summary.seconds:.1f} s"
    )
    return 0


Handler = Callable[[argparse.Namespace], int]
ARTIFACT_HELP = "model folder (default: the trained model of --model_config)"


class Cli(NamedTuple):
    parser: argparse.ArgumentParser
    commands: dict[str, argparse.ArgumentParser]
    subparsers: argparse._SubParsersAction  # to add modes with other flags
    # model_command(name, help, func): a new mode with the shared --dataset_config/--model_config/--profile.
    model_command: Callable[[str, str, Handler], argparse.ArgumentParser]


def build_parser(handlers: Mapping[str, Handler] | None = None, description: str | None = None) -> Cli:
    """The CLI's modes and flags. `handlers` replaces how a mode runs: the Dagster layer runs
    preprocess/train/evaluate/predict as asset materializations with exactly these flags."""
    handlers = dict(handlers or {})
    parser = argparse.ArgumentParser(
        prog="neuroflux",
        description=description or __doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="mode", required=True)

    pre = sub.add_parser("preprocess", help="discover, check, split and balance the dataset")
    pre.add_argument("--dataset_config", default="configs/dataset_config.json")
    pre.set_defaults(func=handlers.get("preprocess", _preprocess))

    demo = sub.add_parser("demo-data", help="write a synthetic dataset shaped like the real one")
    demo.add_argument("--out", default="data")
    demo.add_argument("--scale", type=float, default=1.0, help="fraction of the real class counts")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--difficulty", type=float, default=1.0, help="higher = subtler class signal")
    demo.add_argument("--image-size", type=int, default=256)
    demo.add_argument("--workers", type=int, default=None)
    demo.set_defaults(func=_demo_data)

    def model_command(name: str, help: str, func) -> argparse.ArgumentParser:
        command = sub.add_parser(name, help=help)
        command.add_argument("--dataset_config", default="configs/dataset_config.json")
        command.add_argument("--model_config", default="configs/neuroflux_config.json")
        command.add_argument("--profile", default=None, help="overrides, e.g. configs/profiles/cpu-demo.json")
        command.set_defaults(func=handlers.get(name, func))
        return command

    train = model_command("train", "train, select on val, evaluate the best checkpoint on test", _train)
    train.add_argument("--resume", action="store_true", help="continue from the last epoch checkpoint")
    evaluate = model_command("evaluate", "evaluate the saved model on the test split", _evaluate)
    evaluate.add_argument("--artifact", default=None, help=ARTIFACT_HELP)
    predict = model_command("predict", "classify images with a saved model (no dataset needed)", _predict)
    predict.add_argument("--image_path", nargs="+", required=True)
    predict.add_argument("--artifact", default=None, help=ARTIFACT_HELP)
    predict.add_argument("--json", action="store_true", help="machine-readable output")

    imp = sub.add_parser("import-checkpoint", help="convert an original-project .pth into an artifact")
    imp.add_argument("path")
    imp.add_argument("--model", required=True, choices=["neuroflux_cnn", "resnet50"])
    imp.add_argument("--out", required=True)
    imp.add_argument("--image-size", type=int, default=224)
    imp.set_defaults(func=_import_checkpoint)
    return Cli(parser, dict(sub.choices), sub, model_command)


# Errors a user can fix (bad config, missing file, nothing trained yet): one line, exit status 2.
USER_ERRORS = (ConfigError, FileNotFoundError, FileExistsError, LookupError, ValueError, RuntimeError)


def run_cli(parser: argparse.ArgumentParser, argv: Sequence[str] | None, log_to_stderr: bool = True) -> int:
    """Parse and run a mode. `log_to_stderr` False when something else shows the library's log lines
    (Dagster's managed loggers, see dagster.yaml), so they are not printed twice."""
    if log_to_stderr:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except USER_ERRORS as error:
        print(f"neuroflux {args.mode}: error: {error}", file=sys.stderr)
        return 2


def main(argv: Sequence[str] | None = None) -> int:
    """The library alone (`python -m neuroflux_lib.cli`): no Dagster instance involved."""
    return run_cli(build_parser().parser, argv)


if __name__ == "__main__":
    sys.exit(main())
