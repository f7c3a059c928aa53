"""`neuroflux train`: the model stage up to its test report, for the model of `--model_config`."""

from __future__ import annotations

import argparse

from neuroflux_assets.cli.options import STORAGE_HELP, Mode, add_config_options, resolve
from neuroflux_assets.cli.runner import materialize, open_session, report_run, storage_url_in_env
from neuroflux_assets.cli.stages import keys_of, train_stage, with_data_first
from neuroflux_assets.cli.summaries import model_evaluation, training_summary
from neuroflux_lib.config.resolve import ResolvedConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_options(parser)
    parser.add_argument("--resume", action="store_true", help="continue from the last epoch checkpoint")
    parser.add_argument("--storage", default=None, help=STORAGE_HELP)


def train_config(args: argparse.Namespace) -> ResolvedConfig:
    """The command line's configs without new trials: searching is `tune`'s job, training only reads the
    study `tune` left (when use_tuned is true)."""
    return resolve(args, model_values={"tune_trials": 0})


def run(args: argparse.Namespace) -> int:
    session = open_session(train_config(args))
    keys = with_data_first(session, keys_of(session, train_stage))
    with storage_url_in_env(args.storage) as storage:
        result = materialize(
            session,
            keys,
            ops={"trained_model": {"resume": args.resume}},
            resources={"tuning": {"workers": 1, **storage}},
        )
    status = report_run(result, session.instance)
    name = session.model.model_name
    trained = result.asset_materializations_for_node("trained_model")
    if trained:
        print(training_summary(name, trained[-1].metadata))
    if result.asset_materializations_for_node("evaluation_report"):
        print(model_evaluation(session.defs, session.instance, name))
    return status


MODE = Mode("train", "train, select on val, evaluate the best checkpoint on test", run, add_arguments)
