"""`neuroflux import-checkpoint`: convert an original-project `.pth` into a model artifact folder."""

from __future__ import annotations

import argparse

from neuroflux_assets.cli.options import Mode


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from neuroflux_lib.models.legacy import ORIGINAL_MODELS

    parser.add_argument("path")
    parser.add_argument("--model", required=True, choices=list(ORIGINAL_MODELS))
    parser.add_argument("--out", required=True)
    parser.add_argument("--image-size", type=int, default=224)


def run(args: argparse.Namespace) -> int:
    from neuroflux_lib.serving.artifacts import import_original_checkpoint

    out = import_original_checkpoint(args.path, args.model, args.out, image_size=args.image_size)
    print(f"Imported {args.path} ({args.model}) into {out}/")
    return 0


MODE = Mode(
    "import-checkpoint",
    "convert an original-project .pth into an artifact",
    run,
    add_arguments,
    library_logs=True,
)
