"""Jobs. Both are partitioned by model; one run trains one model.

The data assets are not partitioned, so a "whole pipeline" is: one run for the first model with every
asset, then one run per further model with only the model stage (`pipeline_run_requests`). Runs carry
the tag `neuroflux/pipeline`, limited to one at a time in dagster.yaml, so the later runs wait for the
data the first one writes.
"""

import functools
from collections.abc import Sequence

import dagster as dg

from neuroflux_lib.config.resolve import profile_in_force
from neuroflux_lib.config.resolve import profile_models as models_of_profile

PIPELINE_TAG = {"neuroflux/pipeline": "run"}

# Scoring new scans: partitioned by batch folder, not by model, so never part of the model jobs.
incoming_stage = dg.AssetSelection.groups("incoming")
# What a pipeline runs for each model after the first: tuning to promotion, without the shared data stages.
model_stage = dg.AssetSelection.assets("tuned_hyperparameters").downstream() - incoming_stage
# What `neuroflux preprocess` materializes: the data stages and the baselines of the splits they make.
data_stage = dg.AssetSelection.groups("data_quality", "dataset") | dg.AssetSelection.assets("baselines")
retrain_selection = dg.AssetSelection.assets("dataset_splits").downstream() - incoming_stage

full_pipeline = dg.define_asset_job(
    "full_pipeline",
    selection=dg.AssetSelection.all() - incoming_stage,
    tags=PIPELINE_TAG,
    description="Everything, from the image folder to production_model, for one model partition.",
)

retrain = dg.define_asset_job(
    "retrain",
    selection=retrain_selection,
    tags=PIPELINE_TAG,
    description="From dataset_splits down: re-split, re-balance, retrain, re-evaluate, re-promote.",
)

score_incoming = dg.define_asset_job(
    "score_incoming",
    selection=incoming_stage,
    description="Score one batch folder of new scans with production_model and check it for drift.",
)


@functools.cache
def model_stage_keys() -> list[dg.AssetKey]:
    """`model_stage` resolved over the assets of every defs module (a run request takes keys, not a
    selection). On first use, not at import: the graph is complete only once every defs module is."""
    from neuroflux_assets import defs

    return sorted(
        model_stage.resolve(dg.load_assets_from_package_module(defs)), key=dg.AssetKey.to_user_string
    )


def __getattr__(name: str) -> list[dg.AssetKey]:
    """`MODEL_STAGE_KEYS`: `model_stage_keys()` under the name the CLI and the tests import (PEP 562)."""
    if name == "MODEL_STAGE_KEYS":
        return model_stage_keys()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def profile_models(profile: str | None = None) -> list[str]:
    """The model partitions the profile trains (its `trains`, registry order)."""
    return models_of_profile(profile_in_force(profile))


def pipeline_run_requests(
    run_key: str | None, tags: dict[str, str] | None = None, models: Sequence[str] | None = None
) -> list[dg.RunRequest]:
    """Whole job for the first model, model stage only for the others (the data is shared). `models`
    defaults to those the active profile trains."""
    first, *others = models or profile_models()
    requests = [
        dg.RunRequest(run_key=f"{run_key}:{first}" if run_key else None, partition_key=first, tags=tags)
    ]
    requests += [
        dg.RunRequest(
            run_key=f"{run_key}:{key}" if run_key else None,
            partition_key=key,
            asset_selection=model_stage_keys(),
            tags=tags,
        )
        for key in others
    ]
    return requests
