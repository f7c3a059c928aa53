"""`neuroflux runs`: the offline W&B runs as a table; `--sync` uploads them."""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
from pathlib import Path

from neuroflux_assets.cli.options import Mode, add_config_options, resolve
from neuroflux_assets.cli.summaries import runs_summary


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_options(parser, model=False)
    parser.add_argument(
        "--sync",
        action="store_true",
        help="upload offline runs (needs W&B credentials: WANDB_API_KEY or `wandb login`)",
    )
    parser.add_argument("--all", action="store_true", help="also list every tuning trial")
    parser.add_argument("--wandb_dir", default=None, help="runs root (default: <storage_dir>/wandb)")


def run(args: argparse.Namespace) -> int:
    from neuroflux_assets.resources import TrackingResource
    from neuroflux_lib.tracking import TrackingSettings, find_credentials, runs_table, sync_command

    dataset = resolve(args, model=False).dataset
    root = Path(TrackingResource(dir=args.wandb_dir).settings(dataset.storage_dir).root)
    table = runs_table(root)
    if table.empty:
        print(f"No offline W&B runs under {root}/ yet: `make demo` or `neuroflux train` create them.")
        return 0
    listing = runs_summary(table, show_trials=args.all)
    if listing:
        print(listing)
    command = sync_command(root)
    if not args.sync:
        print(f"\n{len(table)} runs in {root}/; upload them with `neuroflux runs --sync`")
        return 0
    if len(command) == 2:
        print("Every offline run is already synced.")
        return 0
    if find_credentials() is None:  # the environment variable or what `wandb login` stored
        print(
            "No W&B credentials: run `wandb login` or set WANDB_API_KEY (https://wandb.ai/authorize), "
            "then:\n  " + shlex.join(command)
        )
        return 2
    env = {**os.environ, **TrackingSettings(mode="online", root=str(root)).environment()}
    return subprocess.run(command, env=env, check=False).returncode


MODE = Mode("runs", "list the offline W&B runs; --sync uploads them", run, add_arguments, library_logs=True)
