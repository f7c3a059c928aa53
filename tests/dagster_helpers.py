"""Tiny-run settings for the Dagster tests: every knob goes through run config, like the launchpad."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg

from neuroflux_assets.definitions import build_definitions
from neuroflux_assets.resources import DatasetResource

MATERIALIZED_BY_DEFAULT = (
    "raw_images",
    "image_quality",
    "outliers",
    "dataset_splits",
    "balanced_train_set",
    "baselines",
    "tuned_hyperparameters",
    "trained_model",
    "evaluation_report",
    "production_model",
)
# Opt-in assets: in the graph, materialized only when configured (cross_validation: cv_folds >= 3) or
# when new scans arrive (the `incoming` group: job score_incoming, tests/assets/test_incoming_asset.py).
ALL_ASSETS = (*MATERIALIZED_BY_DEFAULT, "cross_validation", "drift_reference", "incoming_predictions")

TINY_MODEL = {
    "image_size": 32,
    "num_epochs": 2,
    "batch_size": 32,
    "device": "cpu",
    "num_workers": 0,
    "tune_trials": 0,
}


#: The partitions the tiny pipeline tests train (resnet50 first: it runs the whole job).
TINY_MODELS = ["resnet50", "neuroflux_cnn"]
#: A CNN that learns on the tiny demo set in about a second (10 epochs at 32 px, measured: training loss
#: 0.72 at the best epoch, well under the "did it learn?" limit of 1.45), so the model stage runs through.
TINY_LEARNER = {
    **TINY_MODEL,
    "num_epochs": 10,
    "batch_size": 16,
    "conv_channels": 16,
    "dropout": 0.0,
    "optimizer": "AdamW",
    "learning_rate": 1e-3,
    "normalization": "per_image",
    "augment": False,
    "early_stopping_patience": 30,
}
#: A ResNet-50 that cannot learn in 2 epochs from random weights: its run stops at `model_learned`.
TINY_STUCK = {**TINY_MODEL, "hidden_size": 8, "pretrained": False}


def tiny_defs(storage: Path, asset_store: str | None = None):
    """The project's definitions with the `dataset` resource (and so the IO managers) on `storage`, so
    values load from there outside a run too (`load_asset_value`, `load_predictor(defs=...)`)."""
    return build_definitions(
        {"dataset": DatasetResource(profile="none", storage_dir=str(storage), asset_store=asset_store)}
    )


def tiny_run_config(data_dir: Path, storage: Path, min_gain: float = -1.0) -> dict[str, Any]:
    """Tiny models on 32 px images cannot beat the baselines: the gate is opened (`min_gain` -1) so the
    promotion mechanics run; the gate's own rule is tested in tests/lib/test_gate.py. neuroflux_cnn
    learns (`TINY_LEARNER`), resnet50 does not (`TINY_STUCK`): both outcomes of the learn check."""
    return {
        "resources": {
            "dataset": {
                "config": {
                    "profile": "none",
                    "data_dir": str(data_dir),
                    "storage_dir": str(storage),
                    "image_size": 32,
                    "num_workers": 1,
                    "min_images_per_class": 3,  # the demo fixture has 7 IO images
                }
            },
            "compute": {"config": {"threads": 1}},  # 2 threads on 2 busy cores is ~5x slower here
            "thresholds": {"config": {"min_gain": min_gain}},
        },
        "ops": {
            "tuned_hyperparameters": {
                "config": {
                    "resnet50": dict(TINY_STUCK),  # copies: tests update them
                    "neuroflux_cnn": dict(TINY_LEARNER),
                }
            }
        },
    }


def table_rows(value: dg.TableMetadataValue) -> list[dict[str, Any]]:
    """A table in asset or check metadata, row by row, as the UI shows it."""
    return [record.data for record in value.records]


def table_column(value: dg.TableMetadataValue, name: str) -> list[Any]:
    assert name in [column.name for column in value.schema.columns], f"no column {name!r}"
    return [row.get(name) for row in table_rows(value)]
