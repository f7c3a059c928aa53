"""`neuroflux`: the original project's modes, run through the project's Dagster instance.

Every mode that produces something materializes assets, so the run, its metadata and its checks show
in `make dev`, and the next mode reads what the previous one stored (`<storage_dir>/assets/`):

- `preprocess`: raw_images, image_quality, outliers, dataset_splits, balanced_train_set, baselines
- `train`: tuned_hyperparameters (without new trials: the study `tune` left, if any), trained_model and
  evaluation_report for the `--model_config` model (the data assets first if never materialized)
- `evaluate`: evaluation_report again; with `--artifact`, any model folder on the current test split
  (report under `<storage_dir>/reports/<folder name>/`; the folder itself is never written to)
- `predict`: the trained_model asset, the production model with `--production`, or any model folder
  with `--artifact`; `--batch DIR`: the incoming_predictions partition of a folder (production model,
  flags, drift check)
- `tune`: tuned_hyperparameters (the model's Optuna study), `--workers N` processes sharing it
- `runs`: the offline W&B runs as a table; `--sync` uploads them
- `demo`: what `make demo` runs: every asset for every model the profile trains, then the reports
- `demo-data`, `import-checkpoint`: write a synthetic dataset / convert an original `.pth`
- `export --format onnx`: write `model.onnx` into a model folder; `predict` then runs it in ONNX Runtime

Configs: the `--dataset_config` and `--model_config` files (default: the project's), then `--profile`
(default: $NEUROFLUX_PROFILE when set, else none; `demo`: else cpu-demo); relative folders in them are
relative to the directory you run the command in.

The project's own errors (config, data, image, artifact, nothing materialized yet) are one line and
exit status 2; anything else is a bug and shows its traceback (exit status 1).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from neuroflux_assets.cli import (
    demo,
    demo_data,
    evaluate,
    export,
    import_checkpoint,
    predict,
    preprocess,
    runs,
    train,
    tune,
)
from neuroflux_assets.cli.options import Mode
from neuroflux_lib.errors import NeurofluxError

#: Every subcommand, in the order `neuroflux --help` lists them; the parser is built from this list.
MODES: list[Mode] = [
    preprocess.MODE,
    train.MODE,
    evaluate.MODE,
    predict.MODE,
    tune.MODE,
    runs.MODE,
    demo.MODE,
    demo_data.MODE,
    import_checkpoint.MODE,
    export.MODE,
]


def parser() -> argparse.ArgumentParser:
    """The `neuroflux` parser: one subcommand per entry of `MODES`."""
    built = argparse.ArgumentParser(
        prog="neuroflux", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = built.add_subparsers(dest="mode", required=True)
    for mode in MODES:
        mode.add_arguments(sub.add_parser(mode.name, help=mode.help, description=mode.help))
    return built


def main(argv: Sequence[str] | None = None) -> int:
    """Run one mode. Library log lines reach the terminal through Dagster's console logger during runs
    (dagster.yaml); outside runs (demo-data, predict) they go to stderr."""
    args = parser().parse_args(argv)
    mode = next(mode for mode in MODES if mode.name == args.mode)
    if mode.library_logs:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return mode.run(args)
    except NeurofluxError as error:
        print(f"neuroflux {mode.name}: error: {error}", file=sys.stderr)
        return 2


__all__ = ["MODES", "Mode", "main", "parser"]
