"""`neuroflux demo`: what `make demo` runs: every asset for every model the profile trains, then the reports.

The sensor's plan, in process: the whole job for the first model, the model stage for the others.
"""

from __future__ import annotations

import argparse

import dagster as dg

from neuroflux_assets.cli.options import Mode, add_config_options, resolve
from neuroflux_assets.cli.runner import materialize_models, open_session, run_config
from neuroflux_assets.cli.stages import materialized
from neuroflux_assets.cli.summaries import (
    data_summary,
    evaluation_summary,
    promotion_summary,
    run_outcome,
    tracking_summary,
)
from neuroflux_assets.defs.jobs import profile_models

#: The demo's profile when neither --profile nor $NEUROFLUX_PROFILE names one: sized for a CPU.
DEMO_PROFILE = "cpu-demo"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_options(parser, model=False, default_profile=DEMO_PROFILE)


def run(args: argparse.Namespace) -> int:
    """Exit 0 when every step ran, promoted or not (a run a check stopped is a normal outcome); 1 when a
    step failed."""
    first = resolve(args, model=False, default_profile=DEMO_PROFILE)
    models = profile_models(first.profile)
    configs = [resolve(args, model=name, default_profile=DEMO_PROFILE).model for name in models]
    print(f"profile {first.profile}: training {', '.join(models)}")
    session = open_session(first)
    defs, instance = session.defs, session.instance
    config = run_config(session.dataset, configs, first.profile)
    results = materialize_models(defs, instance, config, models)
    outcomes = [run_outcome(model, result) for model, result in zip(models, results, strict=True)]
    for line, _ in outcomes:
        print(line)
    print(data_summary(defs, instance, session.dataset))
    for model in models:
        if materialized(session, dg.AssetKey("evaluation_report"), model):
            print("\n" + evaluation_summary(defs, instance, model))
    print(tracking_summary(defs, instance, session.dataset.storage_dir))
    print("\n" + promotion_summary(defs, instance))
    return 0 if all(normal for _, normal in outcomes) else 1


MODE = Mode(
    "demo", "every asset for every model the profile trains, then the reports (make demo)", run, add_arguments
)
