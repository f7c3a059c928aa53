"""The writer locks (`neuroflux_lib.locks`) as the assets take them, held by the Dagster run: one per model
partition (tuning, training, cross-validation and evaluation of one model never overlap across runs:
evaluation reads the artifact a training replaces) and one for `production_model`.

Assets take the lock around their body and yield their value inside it, so the IO manager stores the value
while the lock is still held.

How long a run waits for a busy lock: its tag `neuroflux/lock_timeout_s`, else $NEUROFLUX_LOCK_TIMEOUT_S,
else an hour. Runs the daemon launches (UI, schedule, sensor) wait: nobody is there to launch a refused run
again, and a run holding the lock usually ends within the hour. The CLI tags its runs with the variable's
value, else 0: refused at once, since a person at the terminal can read who holds the lock and decide,
where a silent wait would look like a hang.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from contextlib import AbstractContextManager

import dagster as dg

from neuroflux_lib.errors import ConfigError
from neuroflux_lib.locks import Holder, hold

LOCK_TIMEOUT_TAG = "neuroflux/lock_timeout_s"
LOCK_TIMEOUT_ENV = "NEUROFLUX_LOCK_TIMEOUT_S"
DEFAULT_LOCK_TIMEOUT_S = 3600.0


def lock_timeout_s(tags: Mapping[str, str]) -> float:
    value = tags.get(LOCK_TIMEOUT_TAG) or os.environ.get(LOCK_TIMEOUT_ENV) or DEFAULT_LOCK_TIMEOUT_S
    try:
        return float(value)
    except ValueError:
        raise ConfigError(
            f"{LOCK_TIMEOUT_TAG} / ${LOCK_TIMEOUT_ENV}: not a number of seconds: {value!r}"
        ) from None


def writing(
    context: dg.AssetExecutionContext, storage_dir: str, name: str, what: str
) -> AbstractContextManager[Holder]:
    """Hold the lock `name` of `storage_dir` as this run."""
    timeout = lock_timeout_s(context.run.tags)
    return hold(storage_dir, name, run_id=context.run.run_id, what=what, timeout_s=timeout)


def writing_model(
    context: dg.AssetExecutionContext, storage_dir: str, doing: str
) -> AbstractContextManager[Holder]:
    """Hold the lock of the run's model partition, e.g. `doing` "training"."""
    model = context.partition_key
    return writing(context, storage_dir, f"model-{model}", f"{doing} {model}")
