"""Where a run's steps execute, chosen by the code location's environment.

Unset `NEUROFLUX_EXECUTOR`: Dagster's default executor, every step in the run's own process (laptop,
compose stack). `NEUROFLUX_EXECUTOR=k8s` (deploy/k8s/values.yaml): `dagster_k8s.k8s_job_executor`, each
step in its own Kubernetes Job, so the `dagster-k8s/config` op tags of the training steps
(`settings.GPU_OP_TAGS`) size those pods and only those ask for a GPU; the run's own pod orchestrates.

The executor is not configured here: a step pod already gets the run pod's image, pull policy, env,
config maps, secrets, volumes and service account (dagster-k8s merges the run launcher's config and the
code location's container context into it), and an unconfigured executor keeps the per-run overrides
(`execution: config: per_step_k8s_config: ...`, docs/deployment.md) open.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import dagster as dg

EXECUTOR_ENV = "NEUROFLUX_EXECUTOR"


def executor_from_env(environ: Mapping[str, str] = os.environ) -> dg.ExecutorDefinition | None:
    """The executor `NEUROFLUX_EXECUTOR` names, or None for Dagster's default. dagster-k8s is imported
    only here, so installs without the `k8s` extra never need it."""
    choice = environ.get(EXECUTOR_ENV, "")
    if not choice:
        return None
    if choice != "k8s":
        raise ValueError(f"{EXECUTOR_ENV}={choice!r}: the only value is 'k8s' (unset: Dagster's default)")
    try:
        from dagster_k8s import k8s_job_executor
    except ImportError as error:
        raise ImportError(
            f"{EXECUTOR_ENV}=k8s needs dagster-k8s, the `k8s` extra: pip install 'neuroflux[k8s]'"
        ) from error
    return k8s_job_executor
