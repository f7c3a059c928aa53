"""`neuroflux tune`: run or resume the model's Optuna study (the `tuned_hyperparameters` asset)."""

from __future__ import annotations

import argparse

import dagster as dg

from neuroflux_assets.cli.options import STORAGE_HELP, Mode, add_config_options, positive_int, resolve
from neuroflux_assets.cli.runner import materialize, open_session, report_run, storage_url_in_env
from neuroflux_assets.cli.stages import with_data_first
from neuroflux_assets.cli.summaries import study_summary
from neuroflux_lib.errors import ConfigError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_options(parser)
    parser.add_argument("--workers", type=positive_int, default=1, help="processes sharing the study")
    parser.add_argument("--n_trials", type=int, default=None, help="trials to add (default: tune_trials)")
    parser.add_argument("--timeout", type=float, default=None, help="seconds (default: tune_timeout_s)")
    parser.add_argument("--storage", default=None, help=STORAGE_HELP)


def run(args: argparse.Namespace) -> int:
    config = resolve(args, model_values={"tune_trials": args.n_trials, "tune_timeout_s": args.timeout})
    if config.model.tune_trials == 0:
        raise ConfigError("tune_trials is 0: pass --n_trials N (or set tune_trials in the model config)")
    session = open_session(config)
    keys = with_data_first(session, [dg.AssetKey("tuned_hyperparameters")])
    with storage_url_in_env(args.storage) as storage:
        result = materialize(session, keys, resources={"tuning": {"workers": args.workers, **storage}})
    status = report_run(result, session.instance)
    if status == 0:
        value = session.defs.load_asset_value(
            "tuned_hyperparameters", partition_key=config.model.model_name, instance=session.instance
        )
        print(study_summary(value))
    return status


MODE = Mode("tune", "run or resume the model's Optuna study (tuned_hyperparameters)", run, add_arguments)
