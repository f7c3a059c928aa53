"""The one way the command line runs Dagster: in process, in the project's instance, from resolved configs.

Every mode that materializes, and `neuroflux demo`, goes through `execute`, so how a run starts (and,
later, queueing and locking) is decided here once; `report_run` turns a run's outcome into an exit status.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dagster as dg

from neuroflux_assets.cli.summaries import failed_checks
from neuroflux_assets.defs.jobs import MODEL_STAGE_KEYS
from neuroflux_assets.instance import project_instance
from neuroflux_assets.locking import LOCK_TIMEOUT_ENV, LOCK_TIMEOUT_TAG
from neuroflux_lib.config import DatasetConfig, ModelConfig
from neuroflux_lib.config.resolve import NO_PROFILE, ResolvedConfig
from neuroflux_lib.errors import NeurofluxError
from neuroflux_lib.paths import StoragePaths

PIPELINE_JOB = "full_pipeline"


@dataclass(frozen=True)
class Session:
    """One invocation's resolved configs, the definitions storing values under its `storage_dir`, and
    the project's instance."""

    config: ResolvedConfig
    defs: dg.Definitions
    instance: dg.DagsterInstance

    @property
    def dataset(self) -> DatasetConfig:
        return self.config.dataset

    @property
    def model(self) -> ModelConfig | None:
        return self.config.model

    @property
    def storage(self) -> StoragePaths:
        return StoragePaths(self.dataset.storage_dir)


def definitions_for(dataset: DatasetConfig) -> dg.Definitions:
    """The project's definitions with the `dataset` resource set to the config, so values are stored in
    and loaded from its asset store (`asset_store`, default `<storage_dir>/assets`)."""
    from neuroflux_assets.definitions import build_definitions
    from neuroflux_assets.resources import DatasetResource

    return build_definitions(
        {"dataset": DatasetResource(**dataset.model_dump(mode="json"), profile=NO_PROFILE)}
    )


def open_session(config: ResolvedConfig) -> Session:
    return Session(config, definitions_for(config.dataset), project_instance(config.dataset.storage_dir))


def run_config(
    dataset: DatasetConfig, models: Sequence[ModelConfig] = (), profile: str = NO_PROFILE
) -> dict[str, Any]:
    """The run config that hands resolved configs to a run: every dataset key as a `dataset` resource
    field and every model key as that model's `tuned_hyperparameters` settings, as a launchpad would.

    Why run config and not resource instances: the run then records what it used, the UI shows it, and
    re-executing the run from the UI repeats it. The assets still resolve (file < profile < typed values),
    but with every key typed the result is these values; the profile's name rides along only so W&B tags
    and asset metadata name it. One limit of typed values: None means "not given", so a key a
    `--dataset_config`/`--model_config` file sets to null takes the project file's value in the run.
    """
    from neuroflux_assets.settings import MODEL_FIXED_KEYS

    config: dict[str, Any] = {
        "resources": {"dataset": {"config": {**dataset.model_dump(mode="json"), "profile": profile}}},
        # The terminal shows progress (epochs, trials, checks), not every engine event; the UI has all.
        "loggers": {"console": {"config": {"log_level": "INFO"}}},
    }
    if models:
        settings = {
            model.model_name: {
                k: v for k, v in model.model_dump(mode="json").items() if k not in MODEL_FIXED_KEYS
            }
            for model in models
        }
        config["ops"] = {"tuned_hyperparameters": {"config": settings}}
    return config


def execute(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    config: Mapping[str, Any],
    *,
    job: str = PIPELINE_JOB,
    partition: str | None = None,
    selection: Sequence[dg.AssetKey] | None = None,
) -> dg.ExecuteInProcessResult:
    """One in-process run of `job` (limited to `selection`, None = the whole job). Failures are returned,
    not raised: a blocking check that stops a run is a legitimate outcome, which `report_run` reads.

    The run queue does not see in-process runs; the writer locks (`neuroflux_assets.locking`) still apply,
    and a CLI run is refused at once when another run writes its model ($NEUROFLUX_LOCK_TIMEOUT_S seconds of
    waiting instead, when set)."""
    return defs.resolve_job_def(job).execute_in_process(
        run_config=dict(config),
        instance=instance,
        partition_key=partition,
        asset_selection=None if selection is None else list(selection),
        tags={LOCK_TIMEOUT_TAG: os.environ.get(LOCK_TIMEOUT_ENV) or "0"},
        raise_on_error=False,
    )


def materialize(
    session: Session,
    selection: Sequence[dg.AssetKey] | None = None,
    *,
    job: str = PIPELINE_JOB,
    partition: str | None = None,
    ops: Mapping[str, dict] | None = None,
    resources: Mapping[str, dict] | None = None,
) -> dg.ExecuteInProcessResult:
    """A mode's run: the session's configs (`run_config`) plus the mode's own op and resource settings;
    `partition` defaults to the session's model."""
    model = session.model
    config = run_config(session.dataset, [model] if model else [], session.config.profile)
    for name, values in (ops or {}).items():
        config.setdefault("ops", {})[name] = {"config": values}
    for name, values in (resources or {}).items():
        config["resources"][name] = {"config": values}
    if partition is None and model is not None:
        partition = model.model_name
    return execute(session.defs, session.instance, config, job=job, partition=partition, selection=selection)


def materialize_models(
    defs: dg.Definitions, instance: dg.DagsterInstance, config: Mapping[str, Any], models: Sequence[str]
) -> list[dg.ExecuteInProcessResult]:
    """The sensor's plan in process: the whole job for the first model, the model stage for the others
    (the data is shared), one run per model partition."""
    return [
        execute(defs, instance, config, partition=model, selection=None if index == 0 else MODEL_STAGE_KEYS)
        for index, model in enumerate(models)
    ]


@contextlib.contextmanager
def storage_url_in_env(url: str | None) -> Iterator[dict[str, Any]]:
    """The `tuning` resource's `storage` as an EnvVar reference for the duration of a run: run config is
    stored and shown in the UI, and the URL may hold a database password. The variable is restored after."""
    from neuroflux_assets.settings import OPTUNA_STORAGE_ENV

    if not url:
        yield {}
        return
    before = os.environ.get(OPTUNA_STORAGE_ENV)
    os.environ[OPTUNA_STORAGE_ENV] = url
    try:
        yield {"storage": {"env": OPTUNA_STORAGE_ENV}}
    finally:
        if before is None:
            os.environ.pop(OPTUNA_STORAGE_ENV, None)
        else:
            os.environ[OPTUNA_STORAGE_ENV] = before


def user_error_names() -> set[str]:
    """Class names of the project's own errors (a step failure carries the name, not the class)."""
    pending, names = [NeurofluxError], set()
    while pending:
        cls = pending.pop()
        names.add(cls.__name__)
        pending.extend(cls.__subclasses__())
    return names


def report_run(result: dg.ExecuteInProcessResult, instance: dg.DagsterInstance) -> int:
    """Print where the run is and what went wrong. 0: every step ran (a model that does not beat its
    baselines is a warning, not an error); 2: a blocking check stopped the graph or a step raised one
    of the project's own errors (bad data, config, image, artifact: something the user can fix);
    1: any other step failure."""
    print(f"Dagster run {result.run_id} in {instance.root_directory} (see it with `make dev`)")
    for line in failed_checks(result):
        print(f"check failed: {line}", file=sys.stderr)
    status, user_errors = 0, user_error_names()
    for event in result.all_events:
        if not event.is_step_failure:
            continue
        error = event.step_failure_data.error if event.step_failure_data else None
        if error and error.cls_name == "DagsterAssetCheckFailedError":
            print(f"step {event.step_key} stopped by a blocking check (above)", file=sys.stderr)
            status = max(status, 2)
            continue
        chain = []  # Dagster wraps the asset's exception: look through the causes
        while error is not None:
            chain.append(error)
            error = error.cause
        user = next((e for e in chain if e.cls_name in user_errors), None)
        message = (user or (chain[-1] if chain else None)).message.strip() if chain else "see the run log"
        if user is not None:  # the user's message as the CLI prints it, without "neuroflux_lib.errors.X: "
            message = message.partition(f"{user.cls_name}: ")[2] or message
        print(f"step {event.step_key} failed: {message}", file=sys.stderr)
        status = 2 if user is not None and status != 1 else 1
    return status
