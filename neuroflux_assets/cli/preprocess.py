"""`neuroflux preprocess`: discover, check, split and balance the dataset (the data assets, baselines)."""

from __future__ import annotations

import argparse

from neuroflux_assets.cli.options import Mode, add_config_options, resolve
from neuroflux_assets.cli.runner import materialize, open_session, report_run
from neuroflux_assets.cli.stages import data_keys
from neuroflux_assets.cli.summaries import data_summary


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_options(parser, model=False)


def run(args: argparse.Namespace) -> int:
    session = open_session(resolve(args, model=False))
    status = report_run(materialize(session, data_keys(session)), session.instance)
    if status == 0:
        print(data_summary(session.defs, session.instance, session.dataset))
        print(f"Asset values in {session.storage.asset_store(session.dataset.asset_store)}/")
    return status


MODE = Mode("preprocess", "discover, check, split and balance the dataset", run, add_arguments)
