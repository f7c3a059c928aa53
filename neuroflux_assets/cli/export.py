"""`neuroflux export`: write a model folder's `model.onnx`, which `predict` then runs in ONNX Runtime."""

from __future__ import annotations

import argparse

from neuroflux_assets.cli.options import ARTIFACT_HELP, Mode, add_config_options
from neuroflux_assets.cli.predict import chosen_artifact


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_options(parser)
    parser.add_argument("--format", choices=["onnx"], default="onnx", help="only onnx so far")
    parser.add_argument("--artifact", default=None, help=ARTIFACT_HELP)
    parser.add_argument(
        "--production", action="store_true", help="export production_model instead of --model_config's model"
    )


def run(args: argparse.Namespace) -> int:
    from neuroflux_lib.serving.export import TOLERANCE, export_onnx

    target = export_onnx(chosen_artifact(args))
    print(
        f"Exported {target} (logits match PyTorch within {TOLERANCE:g}); `neuroflux predict` and "
        "Predictor.from_artifact now run it with ONNX Runtime"
    )
    return 0


MODE = Mode("export", "write the model in a faster format for prediction (ONNX)", run, add_arguments)
