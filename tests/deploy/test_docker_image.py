"""The image run as docs/deployment.md runs it: demo data, training, a prediction, the UI, the compose stack.

Marked `docker`: these tests need a Docker engine and the image `neuroflux:latest` (`make image` builds it;
`.ci/run` does before the tests). Without them they skip and say why, except with
NEUROFLUX_REQUIRE_DOCKER=1 (CI), where they fail. Each command is a line of docs/deployment.md (checked
verbatim below) with the substitutions a test needs: a temporary folder for `$PWD`, a small scale, a tiny
profile, a free port, `--user` so bind-mounted folders stay writable (as the docs advise), `-d` for the
servers. Every step prints how long it took.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.dagster_helpers import TINY_LEARNER

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs" / "deployment.md"
IMAGE = os.environ.get("NEUROFLUX_IMAGE", "neuroflux:latest")

# The docs' commands these tests run (each must appear verbatim in docs/deployment.md).
DEMO_DATA = 'docker run --rm -v "$PWD/data:/app/data" neuroflux demo-data --out data --scale 1.0'
TRAIN = (
    "docker run --gpus all -v $PWD/data:/app/data neuroflux train "
    "--dataset_config configs/dataset_config.json --model_config configs/models/resnet50.json"
)
UI = "docker run -p 127.0.0.1:3000:3000 neuroflux ui"
GPU_CHECK = "docker run --gpus all --entrypoint python neuroflux benchmarks/bench_gpu.py"
COMPOSE_UP = "docker compose -f deploy/docker-compose.yaml up -d --build"
#: The docs' docker commands not run here, and why (tests/docs/test_doc_commands.py reads both lists).
NOT_RUN_HERE = {
    "docker build -t neuroflux .": "`make image` runs it (with a stand-in BASE_IMAGE when offline)",
    "docker compose -f deploy/docker-compose.yaml -f deploy/docker-compose.gpu.yaml up -d --build": (
        "needs NVIDIA GPUs and the NVIDIA Container Toolkit"
    ),
    "docker build -t REGISTRY/neuroflux:TAG .": "pushes to a registry",
    "docker push REGISTRY/neuroflux:TAG": "pushes to a registry",
}
RUN_HERE = (DEMO_DATA, TRAIN, UI, GPU_CHECK, COMPOSE_UP)

pytestmark = pytest.mark.docker


def _unavailable(reason: str) -> None:
    if os.environ.get("NEUROFLUX_REQUIRE_DOCKER") == "1":
        pytest.fail(f"NEUROFLUX_REQUIRE_DOCKER=1 but {reason}", pytrace=False)
    pytest.skip(f"{reason} (`make image` builds it; .ci/run runs these tests)")


@pytest.fixture(scope="module")
def image() -> str:
    if shutil.which("docker") is None:
        _unavailable("no docker client")
    if subprocess.run(["docker", "info"], capture_output=True, check=False).returncode != 0:
        _unavailable("no Docker engine answers")
    if subprocess.run(["docker", "image", "inspect", IMAGE], capture_output=True, check=False).returncode:
        _unavailable(f"the image {IMAGE} has not been built")
    return IMAGE


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def docker(command: str, workdir: Path, *, replace: dict[str, str] | None = None, timeout: float = 900):
    """Run a docs command: `$PWD` is `workdir`, `neuroflux` the image under test, `--user` this process's
    ids (so the bind-mounted folders stay writable), then `replace`'s substitutions. Prints its time."""
    for old, new in (replace or {}).items():
        assert old in command, (old, command)
        command = command.replace(old, new)
    argv = shlex.split(command.replace("$PWD", str(workdir)))
    at = argv.index("neuroflux")
    argv[at] = IMAGE
    argv[2:2] = ["--user", f"{os.getuid()}:{os.getgid()}"]
    started = time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    print(f"[{time.monotonic() - started:6.1f} s] {shlex.join(argv)}")
    assert done.returncode == 0, f"{shlex.join(argv)}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def test_every_docs_docker_command_is_run_here_or_says_why() -> None:
    text = " ".join(DOCS.read_text().split())
    for command in [*RUN_HERE, *NOT_RUN_HERE]:
        assert command in text, f"not in docs/deployment.md: {command}"


@pytest.fixture(scope="module")
def workdir(image: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The docs' demo-data command at 5% scale into a bind-mounted data/."""
    root = tmp_path_factory.mktemp("docker")
    (root / "data").mkdir()
    docker(DEMO_DATA, root, replace={"--scale 1.0": "--scale 0.05 --image-size 64"})
    return root


def test_demo_data_lands_in_the_bind_mounted_folder(workdir: Path) -> None:
    classes = {path.parent.name for path in (workdir / "data").glob("*/*.jpg")}
    assert classes == {"PTE", "LO", "EO", "IPTE", "IO"}


def test_train_then_predict_from_the_produced_artifact(workdir: Path) -> None:
    """The docs' train command on the CPU with a tiny profile; then `predict` of one image from the
    artifact it stored (a new container: only the bind-mounted storage carries it over)."""
    (workdir / "storage").mkdir()
    profile = {"dataset": {"image_size": 32, "min_images_per_class": 3}, "neuroflux_cnn": TINY_LEARNER}
    (workdir / "tiny.json").write_text(json.dumps(profile))
    mounts = "-v $PWD/storage:/app/storage -v $PWD/tiny.json:/app/tiny.json:ro -v $PWD/data:/app/data"
    docker(
        TRAIN,
        workdir,
        replace={
            "--gpus all -v $PWD/data:/app/data": f"--rm {mounts}",
            "configs/models/resnet50.json": "configs/models/neuroflux_cnn.json --profile tiny.json",
        },
    )
    artifact = workdir / "storage" / "assets" / "trained_model" / "neuroflux_cnn"
    assert (artifact / "model.json").is_file(), sorted(p.name for p in artifact.parent.glob("*"))
    image = sorted((workdir / "data" / "EO").glob("*.jpg"))[0]
    predicted = docker(
        "docker run --rm -v $PWD/storage:/app/storage -v $PWD/data:/app/data neuroflux predict "
        f"--artifact storage/assets/trained_model/neuroflux_cnn --image_path data/EO/{image.name} --json",
        workdir,
    )
    rows = json.loads(predicted.stdout)
    assert len(rows) == 1 and rows[0]["label"] in {"PTE", "LO", "EO", "IPTE", "IO"}
    assert abs(sum(rows[0]["probabilities"].values()) - 1) < 1e-3


def test_the_gpu_check_says_there_is_no_gpu_and_exits_0(image: str, tmp_path: Path) -> None:
    done = docker(GPU_CHECK, tmp_path, replace={"--gpus all ": "--rm "})
    assert "GPU" in done.stdout + done.stderr


def _wait_for(url: str, seconds: float) -> bytes:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.read()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(2)


@pytest.fixture
def container_name() -> Iterator[str]:
    name = f"neuroflux-test-{uuid.uuid4().hex[:8]}"
    yield name
    subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)


def test_ui_reports_healthy_and_serves_server_info(image: str, tmp_path: Path, container_name: str) -> None:
    """`ui` on a loopback port: the image's own HEALTHCHECK command turns healthy (checked every 3 s here
    instead of 30 s) and /server_info answers from the host."""
    port = free_port()
    started = time.monotonic()
    docker(
        UI,
        tmp_path,
        replace={
            "docker run": f"docker run -d --name {container_name} --health-interval 3s",
            "127.0.0.1:3000:3000": f"127.0.0.1:{port}:3000",
        },
    )
    deadline = time.monotonic() + 240
    status = ""
    while time.monotonic() < deadline:
        status = subprocess.run(
            ["docker", "inspect", "--format", "{{.State.Health.Status}}", container_name],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        if status in ("healthy", "unhealthy"):
            break
        time.sleep(2)
    logs = subprocess.run(["docker", "logs", container_name], capture_output=True, text=True, check=False)
    assert status == "healthy", f"health {status!r}\n{logs.stdout[-2000:]}\n{logs.stderr[-2000:]}"
    info = json.loads(_wait_for(f"http://127.0.0.1:{port}/server_info", 30))
    version = info.get("dagster_webserver_version")
    print(f"[{time.monotonic() - started:6.1f} s] ui healthy, /server_info: webserver {version}")
    assert "dagster_webserver_version" in info


def compose_command() -> list[str]:
    """`docker compose` (v2) where the plugin exists, else Debian's `docker-compose` (v1): same file."""
    if subprocess.run(["docker", "compose", "version"], capture_output=True, check=False).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    _unavailable("neither `docker compose` nor `docker-compose` is installed")
    return []


def test_compose_stack_runs_a_launched_run_and_keeps_its_events_in_postgresql(workdir: Path) -> None:
    """The docs' compose command with PostgreSQL (postgres:16, or CI's stand-in from Debian's package via
    NEUROFLUX_POSTGRES_IMAGE): one run launched through the webserver's GraphQL API is queued by the daemon,
    executed by the code server, succeeds, and its events are rows in PostgreSQL."""
    from dagster_graphql import DagsterGraphQLClient, DagsterGraphQLClientError

    compose = compose_command()
    project = f"neuroflux-test-{uuid.uuid4().hex[:8]}"
    port = free_port()
    env = {
        **os.environ,
        "POSTGRES_PASSWORD": uuid.uuid4().hex,
        "NEUROFLUX_DATA_DIR": str(workdir / "data"),
        "DAGSTER_PORT": str(port),
    }
    argv = shlex.split(COMPOSE_UP)
    base = [*compose, "-p", project, *argv[argv.index("-f") : argv.index("up")]]

    def stack(*args: str, timeout: float) -> subprocess.CompletedProcess:
        """`docker compose <args>` on this test's project, from the repo, with its environment."""
        return subprocess.run(
            [*base, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )

    started = time.monotonic()
    try:
        up = stack("up", "-d", "--build", timeout=900)
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        _wait_for(f"http://127.0.0.1:{port}/server_info", 240)
        print(f"[{time.monotonic() - started:6.1f} s] compose stack up (project {project})")
        client = DagsterGraphQLClient("127.0.0.1", port_number=port)
        deadline = time.monotonic() + 120
        while True:  # the webserver answers before the code location has loaded
            try:
                run_id = client.submit_job_execution(
                    "full_pipeline",
                    # The launchpad's way to set a dataset key: the 5% demo set has < 10 IO images.
                    run_config={"resources": {"dataset": {"config": {"min_images_per_class": 3}}}},
                    tags={"dagster/partition": "neuroflux_cnn"},
                    asset_selection=["raw_images"],
                )
                break
            except DagsterGraphQLClientError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(3)
        status, deadline = "", time.monotonic() + 300
        while time.monotonic() < deadline:
            status = client.get_run_status(run_id).value
            if status in ("SUCCESS", "FAILURE", "CANCELED"):
                break
            time.sleep(3)
        print(f"[{time.monotonic() - started:6.1f} s] run {run_id}: {status}")
        if status != "SUCCESS":  # the services' logs say why
            logs = stack("logs", "--tail", "60", timeout=120)
            pytest.fail(f"run {run_id}: {status}\n{logs.stdout[-6000:]}{logs.stderr[-2000:]}")
        query = f"select count(*) from event_logs where run_id = '{run_id}'"
        events = stack(
            "exec", "-T", "postgresql", "psql", "-U", "neuroflux", "-d", "dagster", "-tAc", query, timeout=60
        )
        assert events.returncode == 0 and int(events.stdout.strip()) > 10, events.stdout + events.stderr
    finally:
        stack("down", "-v", "--remove-orphans", timeout=300)
