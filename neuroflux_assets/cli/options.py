"""What a mode is (name, help, options, handler), the options modes share, and their resolution.

Every mode that reads configs resolves them here, through the library's one resolver, so a setting means
the same on the command line as on the launchpad, in a schedule or a sensor.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from neuroflux_lib.config.resolve import (
    NO_PROFILE,
    PROFILE_ENV,
    ResolvedConfig,
    profile_in_force,
    resolve_config,
)

#: The model of the modes that take `--model_config` when none is given.
DEFAULT_MODEL = "neuroflux_cnn"
ARTIFACT_HELP = "model folder (default: the trained model of --model_config)"
STORAGE_HELP = "Optuna storage URL (default: $NEUROFLUX_OPTUNA_STORAGE, else SQLite in storage_dir)"


@dataclass(frozen=True)
class Mode:
    """One subcommand: `add_arguments` declares its options, `run` does it and returns the exit status.
    `library_logs`: the mode calls the library outside a Dagster run, so its log lines go to stderr."""

    name: str
    help: str
    run: Callable[[argparse.Namespace], int]
    add_arguments: Callable[[argparse.ArgumentParser], None]
    library_logs: bool = False


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_config_options(
    parser: argparse.ArgumentParser, model: bool = True, default_profile: str = NO_PROFILE
) -> None:
    """`--dataset_config`, `--profile` and, for a mode about one model, `--model_config`."""
    parser.add_argument(
        "--dataset_config",
        default=None,
        metavar="FILE",
        help="dataset config (default: the project's configs/dataset_config.json); its relative folders "
        "are relative to the directory you run the command in",
    )
    if model:
        parser.add_argument(
            "--model_config",
            default=None,
            metavar="FILE",
            help=f"model config (default: configs/models/{DEFAULT_MODEL}.json; the original project's "
            "configs/resnet50_config.json and configs/neuroflux_config.json work too)",
        )
    parser.add_argument(
        "--profile",
        default=None,
        metavar="NAME_OR_FILE",
        help="overrides on top of the config files, e.g. cpu-demo or configs/profiles/cpu-demo.json "
        f"(default: ${PROFILE_ENV} when set, else {default_profile})",
    )


def resolve(
    args: argparse.Namespace,
    *,
    model: bool | str = True,
    dataset_values: Mapping[str, object] | None = None,
    model_values: Mapping[str, object] | None = None,
    default_profile: str = NO_PROFILE,
) -> ResolvedConfig:
    """The configs of the command line: its files < its profile < `dataset_values`/`model_values` (what
    the mode sets from its own flags). `model`: True for `--model_config`'s model (default
    neuroflux_cnn), a registry name for that model, False for data only. Relative folders are made
    absolute against the working directory, as they always were on the command line."""
    if model is True:
        model_file = getattr(args, "model_config", None)
        name = None if model_file else DEFAULT_MODEL
    else:
        model_file, name = None, model or None
    return resolve_config(
        profile=profile_in_force(args.profile, default=default_profile),
        model=name,
        model_file=model_file,
        dataset_file=args.dataset_config,
        dataset_values=dataset_values,
        model_values=model_values,
        root=Path.cwd(),
    )
