"""The Kubernetes Jobs a `full_pipeline` run creates on the shipped Helm values, built without a cluster by
dagster-k8s's own code, so the GPU request is checked where it takes effect: in the pods.

The chart turns deploy/k8s/values.yaml into two inputs of dagster-k8s: the run launcher's config in the
instance's dagster.yaml (`helpers/instance/_run-launcher.tpl`) and the code location's container context
(`includeConfigInLaunchedRuns`, the user-deployments helper `k8sContainerContext`).
`chart_run_launcher_config` and `chart_container_context` do what those templates do for the keys the
values use, and refuse any other key. From there on everything is dagster-k8s: the instance builds its
`K8sRunLauncher` from that config and `launch_run` renders the run's Job; the run worker's executor,
created from the project's definitions with NEUROFLUX_EXECUTOR=k8s as the run pod creates it, renders
each step's Job with its `K8sStepHandler.launch_step` from the step's op tags. Only the API call is
replaced: `create_namespaced_job` records the Job it is given. The run worker's side uses Dagster's
internal execution API as dagster-k8s's own tests do; the exact dagster pins keep it stable.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg
import kubernetes
import pytest
import yaml
from dagster._core.definitions.reconstruct import ReconstructableRepository
from dagster._core.execution.api import create_execution_plan
from dagster._core.execution.context.system import PlanOrchestrationContext
from dagster._core.execution.context_creation_job import (
    create_context_creation_data,
    create_context_free_log_manager,
    create_executor,
    create_plan_data,
)
from dagster._core.execution.step_dependency_config import StepDependencyConfig
from dagster._core.executor.step_delegating import StepDelegatingExecutor, StepHandlerContext
from dagster._core.launcher import LaunchRunContext
from dagster._core.test_utils import create_run_for_test
from dagster._grpc.types import ExecuteStepArgs
from dagster_k8s import k8s_job_executor

from neuroflux_assets.definitions import build_definitions
from neuroflux_assets.executors import EXECUTOR_ENV, executor_from_env

REPO = Path(__file__).resolve().parents[2]
VALUES = yaml.safe_load((REPO / "deploy" / "k8s" / "values.yaml").read_text())
# `helm upgrade --install neuroflux dagster/dagster ...` (values.yaml's header) into the default namespace.
RELEASE, NAMESPACE = "neuroflux", "default"
DAGSTER_HOME = "/opt/dagster/dagster_home"  # the chart's `global.dagsterHome` default
JOB, PARTITION = "full_pipeline", "resnet50"
TRAINING_STEPS = {"tuned_hyperparameters", "trained_model", "cross_validation"}
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
GPU_NODE_SELECTOR = {"nvidia.com/gpu.present": "true"}


def names(sources: list[Mapping[str, str]]) -> list[str]:
    return [source["name"] for source in sources]


def chart_run_launcher_config(values: Mapping[str, Any]) -> dict[str, Any]:
    """`runLauncher.config.k8sRunLauncher` as the chart writes it into dagster.yaml, with what the chart
    adds itself: namespace, service account, DAGSTER_HOME, instance ConfigMap, PostgreSQL secret."""
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    verbatim = {"envVars": "env_vars", "volumeMounts": "volume_mounts", "volumes": "volumes"}
    named = {"envConfigMaps": "env_config_maps", "envSecrets": "env_secrets"}
    unknown = set(launcher) - {*verbatim, *named, "imagePullPolicy", "runK8sConfig"}
    assert not unknown, f"teach chart_run_launcher_config the chart's rendering of {sorted(unknown)}"
    fullname = f"{RELEASE}-dagster"
    return {
        "load_incluster_config": True,
        "job_namespace": NAMESPACE,
        "image_pull_policy": launcher.get("imagePullPolicy", "Always"),
        "service_account_name": fullname,
        "dagster_home": DAGSTER_HOME,
        "instance_config_map": f"{fullname}-instance",
        "postgres_password_secret": values["global"]["postgresqlSecretName"],
        **{key: launcher[field] for field, key in verbatim.items() if launcher.get(field)},
        **{key: names(launcher[field]) for field, key in named.items() if launcher.get(field)},
        # containerConfig -> container_config, podSpecConfig -> pod_spec_config, ...
        "run_k8s_config": {
            re.sub(r"[A-Z]", lambda upper: f"_{upper[0].lower()}", part): config
            for part, config in launcher.get("runK8sConfig", {}).items()
        },
    }


def chart_container_context(deployment: Mapping[str, Any]) -> dict[str, Any]:
    """The code location's container context that `includeConfigInLaunchedRuns` hands to run and step pods."""
    assert deployment["includeConfigInLaunchedRuns"]["enabled"]
    verbatim = {"volumeMounts": "volume_mounts", "volumes": "volumes", "resources": "resources", "env": "env"}
    outside = {"name", "image", "dagsterApiGrpcArgs", "port", "includeConfigInLaunchedRuns"}
    unknown = set(deployment) - {*verbatim, *outside, "envConfigMaps", "envSecrets"}
    assert not unknown, f"teach chart_container_context the chart's rendering of {sorted(unknown)}"
    subchart = f"{RELEASE}-dagster-user-deployments"
    k8s = {
        "image_pull_policy": deployment["image"]["pullPolicy"],
        "env_config_maps": [
            f"{subchart}-{deployment['name']}-user-env",
            *names(deployment.get("envConfigMaps", [])),
        ],
        "namespace": NAMESPACE,
        "service_account_name": f"{subchart}-user-deployments",
        **{key: deployment[field] for field, key in verbatim.items() if deployment.get(field)},
    }
    if deployment.get("envSecrets"):
        k8s["env_secrets"] = names(deployment["envSecrets"])
    return {"k8s": k8s}


def k8s_definitions() -> dg.Definitions:
    """The project's definitions as a code location with NEUROFLUX_EXECUTOR=k8s loads them (a reconstructable
    target must take no arguments)."""
    return build_definitions()


@pytest.fixture(scope="module")
def rendered() -> dict[str, dict]:
    """The Jobs of one `full_pipeline` run of partition resnet50, keyed by step (`run` for the run's own), as
    the API server would receive them."""
    jobs: dict[str, dict] = {}
    serialize = kubernetes.client.ApiClient().sanitize_for_serialization

    def create_namespaced_job(
        _api: object, namespace: str, body: kubernetes.client.V1Job, **_: object
    ) -> None:
        assert namespace == NAMESPACE
        jobs[body.metadata.labels.get("dagster/op", "run")] = serialize(body)

    (deployment,) = VALUES["dagster-user-deployments"]["deployments"]
    image = f"{deployment['image']['repository']}:{deployment['image']['tag']}"
    launcher = {
        "module": "dagster_k8s",
        "class": "K8sRunLauncher",
        "config": chart_run_launcher_config(VALUES),
    }
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(EXECUTOR_ENV, "k8s")
        patch.setattr(kubernetes.config, "load_incluster_config", lambda *_, **__: None)  # no cluster token
        patch.setattr(kubernetes.client.BatchV1Api, "create_namespaced_job", create_namespaced_job)
        with dg.instance_for_test(overrides={"run_launcher": launcher}) as instance:
            # What the code server reports as the location's origin: its image (DAGSTER_CURRENT_IMAGE) and
            # container context, recorded on every run it creates.
            repository = ReconstructableRepository.for_module(
                __name__, k8s_definitions.__name__, working_directory=str(REPO)
            )._replace(container_image=image, container_context=chart_container_context(deployment))
            job = repository.get_reconstructable_job(JOB)
            tags = {"dagster/partition": PARTITION}
            run = create_run_for_test(
                instance, job_name=JOB, tags=tags, job_code_origin=job.get_python_origin()
            )
            instance.run_launcher.launch_run(LaunchRunContext(dagster_run=run, workspace=None))

            # Inside the run pod: the executor and plan context `dagster api execute_run` builds, and for
            # each step the context StepDelegatingExecutor gives its step handler. Other executors run
            # every step inside the run pod: no step Jobs.
            plan = create_execution_plan(job, tags=tags)
            creation = create_context_creation_data(job, plan, {}, run, instance)
            executor = create_executor(creation)
            if isinstance(executor, StepDelegatingExecutor):
                plan_context = PlanOrchestrationContext(
                    plan_data=create_plan_data(
                        creation, True, executor.retries, StepDependencyConfig.default()
                    ),
                    log_manager=create_context_free_log_manager(instance, run),
                    executor=executor,
                    output_capture=None,
                )
                for step_key in ("trained_model", "raw_images"):
                    execute_step_args = ExecuteStepArgs(
                        job_origin=plan_context.reconstructable_job.get_python_origin(),
                        run_id=run.run_id,
                        step_keys_to_execute=[step_key],
                        instance_ref=instance.get_ref(),
                        retry_mode=executor.retries.for_inner_plan(),
                    )
                    steps = [plan.get_step_by_key(step_key)]
                    context = StepHandlerContext(instance, plan_context, steps, execute_step_args, run)
                    list(executor._step_handler.launch_step(context))  # the executor's own K8sStepHandler
    return jobs


def step_job(rendered: Mapping[str, dict], step: str) -> dict[str, Any]:
    assert step in rendered, f"no pod of its own for {step}: the run's executor runs it inside the run pod"
    return rendered[step]


def pod_spec(job: Mapping[str, Any]) -> dict[str, Any]:
    return job["spec"]["template"]["spec"]


def container(job: Mapping[str, Any]) -> dict[str, Any]:
    (only,) = pod_spec(job)["containers"]
    return only


def env(job: Mapping[str, Any]) -> dict[str, Any]:
    return {var["name"]: var.get("value", var.get("valueFrom")) for var in container(job)["env"]}


def asks_for_a_gpu(job: Mapping[str, Any]) -> bool:
    resources = container(job).get("resources") or {}
    spec = pod_spec(job)
    return (
        any("nvidia.com/gpu" in (resources.get(kind) or {}) for kind in ("limits", "requests"))
        or GPU_TOLERATION in (spec.get("tolerations") or [])
        or bool(spec.get("nodeSelector"))
    )


# --- which executor --------------------------------------------------------------------------------------


def test_without_the_variable_runs_keep_dagsters_default_executor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(EXECUTOR_ENV, raising=False)
    assert executor_from_env() is None
    assert build_definitions().resolve_job_def(JOB).executor_def is dg.multi_or_in_process_executor


def test_the_variable_selects_the_k8s_job_executor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(EXECUTOR_ENV, "k8s")
    assert build_definitions().resolve_job_def(JOB).executor_def is k8s_job_executor


def test_an_unknown_executor_is_refused() -> None:
    with pytest.raises(ValueError, match="the only value is 'k8s'"):
        executor_from_env({EXECUTOR_ENV: "celery"})


def test_without_dagster_k8s_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "dagster_k8s", None)  # what `import dagster_k8s` meets when absent
    with pytest.raises(ImportError, match=r"the `k8s` extra: pip install 'neuroflux\[k8s\]'"):
        executor_from_env({EXECUTOR_ENV: "k8s"})


def test_only_the_training_steps_carry_the_gpu_tag() -> None:
    job = build_definitions().resolve_job_def(JOB)
    tags = {node.name: node.tags.get("dagster-k8s/config", "") for node in job.graph.nodes}
    tagged = {name for name, config in tags.items() if "nvidia.com/gpu" in config}
    assert tagged == TRAINING_STEPS


# --- step pods -------------------------------------------------------------------------------------------


def test_the_training_step_pod_asks_for_one_gpu_on_a_gpu_node(rendered: dict[str, dict]) -> None:
    job = step_job(rendered, "trained_model")
    assert container(job)["args"][:3] == ["dagster", "api", "execute_step"]
    assert container(job)["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert GPU_TOLERATION in pod_spec(job)["tolerations"]
    assert pod_spec(job)["nodeSelector"] == GPU_NODE_SELECTOR


def test_a_step_that_does_not_train_asks_for_no_gpu(rendered: dict[str, dict]) -> None:
    job = step_job(rendered, "raw_images")
    assert container(job)["args"][:3] == ["dagster", "api", "execute_step"]
    assert not asks_for_a_gpu(job)


@pytest.mark.parametrize("step", ["trained_model", "raw_images"])
def test_step_pods_get_the_image_postgres_and_storage(rendered: dict[str, dict], step: str) -> None:
    check_image_postgres_and_storage(step_job(rendered, step))
    assert (
        env(step_job(rendered, step))["NEUROFLUX_PROFILE"] == "full"
    )  # the code location's env reaches the steps


# --- the run pod -----------------------------------------------------------------------------------------


def test_the_run_pod_starts_step_pods_and_asks_for_no_gpu(rendered: dict[str, dict]) -> None:
    job = rendered["run"]
    assert container(job)["args"][:3] == ["dagster", "api", "execute_run"]
    assert env(job)[EXECUTOR_ENV] == "k8s"
    assert not asks_for_a_gpu(job)
    check_image_postgres_and_storage(job)


def check_image_postgres_and_storage(job: Mapping[str, Any]) -> None:
    (deployment,) = VALUES["dagster-user-deployments"]["deployments"]
    assert container(job)["image"] == f"{deployment['image']['repository']}:{deployment['image']['tag']}"
    assert container(job)["imagePullPolicy"] == deployment["image"]["pullPolicy"]
    variables = env(job)
    assert len(variables) == len(container(job)["env"]), "a variable twice"
    assert variables["DAGSTER_HOME"] == DAGSTER_HOME
    # The chart's instance (run storage in the PostgreSQL of `postgresql`) reads its password from here.
    password = {"name": VALUES["global"]["postgresqlSecretName"], "key": "postgresql-password"}
    assert variables["DAGSTER_PG_PASSWORD"] == {"secretKeyRef": password}
    assert variables[EXECUTOR_ENV] == "k8s"
    mounts = {mount["mountPath"]: mount["name"] for mount in container(job)["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in pod_spec(job)["volumes"]}
    assert len(volumes) == len(pod_spec(job)["volumes"]), "a volume twice: the API refuses the pod"
    assert volumes[mounts["/app/storage"]]["persistentVolumeClaim"] == {"claimName": "neuroflux-storage"}
    assert volumes[mounts["/app/data"]]["persistentVolumeClaim"] == {"claimName": "neuroflux-data"}
