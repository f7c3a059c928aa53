"""The container and deployment files, checked without a Docker engine (none on the dev machines).

What a `docker build` or `docker compose up` would trip over first: a COPY of a file that is missing,
git-ignored or outside the build context, a lock file other than the repo's, an entrypoint that does not
reach the `neuroflux` console script, a compose service pointing at a config file that does not exist,
credentials written into a config, and docs that name files or commands the repo does not have.
"""

from __future__ import annotations

import fnmatch
import importlib
import importlib.metadata
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
APP = "/app"  # WORKDIR in the image: /app/<path> is <repo>/<path>
ENTRYPOINT = REPO / "deploy" / "entrypoint.sh"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
DAGSTER_SERVICES = ("code", "webserver", "daemon")


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs: continuation lines joined, comment lines dropped (as Docker does)."""
    instructions, current = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        current += line
        if current.endswith("\\"):
            current = current[:-1] + " "
            continue
        keyword, _, args = current.partition(" ")
        instructions.append((keyword.upper(), args.strip()))
        current = ""
    return instructions


INSTRUCTIONS = dockerfile_instructions((REPO / "Dockerfile").read_text())


def args_of(keyword: str) -> list[str]:
    return [args for k, args in INSTRUCTIONS if k == keyword]


def exec_form(args: str) -> list[str]:
    """`["a", "b"]` (exec form) or `a b` (shell form) as a list."""
    return json.loads(args) if args.startswith("[") else shlex.split(args)


def copy_sources() -> list[str]:
    sources = []
    for args in args_of("COPY"):
        words = [w for w in exec_form(args) if not w.startswith("--")]
        assert not any(w.startswith("--from") for w in exec_form(args)), "multi-stage COPY: extend this test"
        sources += words[:-1]
    return sources


def repo_path(container_path: str) -> Path:
    assert container_path.startswith(f"{APP}/"), container_path
    return REPO / container_path.removeprefix(f"{APP}/")


def dockerignore_patterns() -> list[str]:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    return [line.strip().lstrip("/") for line in lines if line.strip() and not line.startswith("#")]


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Docker excludes a path when it or one of its parent folders matches a pattern."""
    parts = Path(path.rstrip("/")).parts
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return any(
        fnmatch.fnmatch(prefix, pattern) or fnmatch.fnmatch(prefix, pattern.removeprefix("**/"))
        for prefix in prefixes
        for pattern in patterns
        if not pattern.startswith("!")
    )


def git_ignored(path: str) -> bool:
    """True when a clean clone would not have the file (so CI's `docker build` would fail)."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    result = subprocess.run(["git", "check-ignore", "-q", path], cwd=REPO, check=False)
    return result.returncode == 0


# --- Dockerfile ---------------------------------------------------------------------------------------


def test_base_image_defaults_to_python_311_slim_and_installs_into_a_venv() -> None:
    """`BASE_IMAGE` defaults to python:3.11-slim (CI passes a Debian stand-in); everything is installed
    into a virtual environment, so a base whose system Python is externally managed (PEP 668) works too,
    and no certificate is added by the product image (CI's bundle belongs to its stand-in base)."""
    (base,) = args_of("FROM")
    assert base == "${BASE_IMAGE}", base
    (default,) = [a.split("=", 1)[1] for a in args_of("ARG") if a.startswith("BASE_IMAGE=")]
    assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-[a-z]+)?(@sha256:[0-9a-f]{64})?", default), default
    text = (REPO / "Dockerfile").read_text()
    assert 'python3 -m venv "$VIRTUAL_ENV"' in text and "PATH=/opt/venv/bin:$PATH" in text
    assert ".crt" not in text and "cert" not in text.lower()


def test_every_copied_file_exists_is_tracked_and_in_the_build_context() -> None:
    patterns = dockerignore_patterns()
    sources = copy_sources()
    assert sources
    for source in sources:
        assert (REPO / source).exists(), f"COPY {source}: not in the repo"
        assert not git_ignored(source), f"COPY {source}: git-ignored, so missing from a clean clone"
        assert not dockerignored(source, patterns), f"COPY {source}: excluded by .dockerignore"


def test_dockerignore_keeps_local_state_out_of_the_image() -> None:
    patterns = dockerignore_patterns()
    for path in (".git", ".venv", "data", "storage", "storage/assets/x.parquet", "neuroflux_lib/__pycache__"):
        assert dockerignored(path, patterns), path


def test_installs_the_repo_lock_file_then_the_project() -> None:
    commands = [shlex.split(c) for run in args_of("RUN") for c in re.split(r"&&|;", run) if c.strip()]
    pip = [(i, words) for i, words in enumerate(commands) if words[:2] == ["pip", "install"]]
    lock = [(i, words[words.index("-r") + 1]) for i, words in pip if "-r" in words]
    assert [file for _, file in lock] == ["requirements.lock"], "exactly one lock install, the repo's"
    assert "requirements.lock" in copy_sources()
    project = [i for i, words in pip if "--no-deps" in words and "." in words]
    assert len(project) == 1 and project[0] > lock[0][0], "the project, without dependencies, after the lock"
    assert not [w for i, words in pip for w in words[2:] if i not in project and i != lock[0][0]], (
        "no other pip install: everything comes from the lock"
    )
    assert {"pyproject.toml", "neuroflux_lib/", "neuroflux_assets/", "configs/"} <= set(copy_sources())


def test_the_lock_holds_the_pinned_cuda_torch_and_the_deploy_extras() -> None:
    """The image is the lock: pyproject's exact pins and the `postgres` and `k8s` extras (the Helm
    deployment's per-step pods) must be in it."""
    lock = {}
    for line in (REPO / "requirements.lock").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==", 1)
            lock[re.sub(r"[-_.]+", "-", name.lower())] = version.strip()
    extras = PYPROJECT["project"]["optional-dependencies"]
    requirements = PYPROJECT["project"]["dependencies"] + extras["postgres"] + extras["k8s"]
    for requirement in requirements:
        name = re.sub(r"[-_.]+", "-", re.split(r"[<>=!~\[ ]", requirement, maxsplit=1)[0].lower())
        assert name in lock, f"{requirement} is not in requirements.lock"
        if "==" in requirement:
            assert lock[name] == requirement.split("==")[1], requirement
    assert lock["torch"] == "2.14.1" and any(name.startswith("nvidia-cu") for name in lock), "CUDA build"


def test_runtime_settings() -> None:
    env = " ".join(args_of("ENV"))
    assert re.search(r"(^|\s)DAGSTER_HOME=/app/storage(\s|$)", env), env
    users = args_of("USER")
    assert users and users[-1].split(":")[0] not in {"root", "0"}, "must not run as root"
    volumes = {v for args in args_of("VOLUME") for v in exec_form(args)}
    assert {"/app/data", "/app/storage"} <= volumes
    assert args_of("WORKDIR")[-1] == APP
    (healthcheck,) = args_of("HEALTHCHECK")
    assert " CMD " in f" {healthcheck} " and "NONE" not in healthcheck.split()
    assert exec_form(healthcheck.split("CMD", 1)[1].strip()) == [f"{APP}/deploy/entrypoint.sh", "healthcheck"]


def test_entrypoint_script_exists_is_executable_and_parses() -> None:
    (entrypoint,) = args_of("ENTRYPOINT")
    command = exec_form(entrypoint)
    assert command == [f"{APP}/deploy/entrypoint.sh"]
    assert repo_path(command[0]) == ENTRYPOINT and "deploy/entrypoint.sh" in copy_sources()
    assert os.access(ENTRYPOINT, os.X_OK), "chmod +x deploy/entrypoint.sh"
    tracked = subprocess.run(
        ["git", "ls-files", "-s", "deploy/entrypoint.sh"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    assert not tracked or tracked.startswith("100755"), (
        "git must keep the executable bit (git add --chmod=+x)"
    )
    subprocess.run(["sh", "-n", str(ENTRYPOINT)], check=True)


def test_entrypoint_neuroflux_is_the_projects_console_script() -> None:
    """`exec neuroflux` in the script must be what `pip install .` puts on PATH."""
    assert re.search(r"^\s*exec neuroflux \"\$@\"", ENTRYPOINT.read_text(), re.MULTILINE)
    target = PYPROJECT["project"]["scripts"]["neuroflux"]
    module, _, function = target.partition(":")
    assert callable(getattr(importlib.import_module(module), function))
    installed = importlib.metadata.entry_points(group="console_scripts", name="neuroflux")
    assert [e.value for e in installed] == [target], "reinstall the project: pip install --no-deps -e ."


# --- deploy/entrypoint.sh, run for real with stand-ins for the commands it execs -----------------------


@pytest.fixture
def fake_commands(tmp_path: Path) -> Path:
    """`neuroflux`, `dagster`, ... that print how they were called, first on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("neuroflux", "dagster", "dagster-webserver", "dagster-daemon"):
        script = bin_dir / name
        script.write_text(f'#!/bin/sh\necho "{name} $*"; echo "cwd $(pwd)"\n')
        script.chmod(0o755)
    return bin_dir


def run_entrypoint(tmp_path: Path, path: str, *args: str) -> subprocess.CompletedProcess[str]:
    home = tmp_path / "dagster_home"
    home.mkdir(exist_ok=True)
    env = {
        "PATH": f"{path}:{os.environ['PATH']}",
        "NEUROFLUX_ROOT": str(REPO),
        "DAGSTER_HOME": str(home),
        "NEUROFLUX_ROLE_FILE": str(tmp_path / "role"),
        "HOME": str(tmp_path),
    }
    return subprocess.run(
        [str(ENTRYPOINT), *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_entrypoint_runs_the_cli_for_any_other_mode(tmp_path: Path, fake_commands: Path) -> None:
    result = run_entrypoint(tmp_path, str(fake_commands), "train", "--model_config", "configs/x.json")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "neuroflux train --model_config configs/x.json"
    link = tmp_path / "dagster_home" / "dagster.yaml"
    assert link.is_symlink() and link.resolve() == REPO / "dagster.yaml"


def test_entrypoint_serves_the_ui_on_all_interfaces(tmp_path: Path, fake_commands: Path) -> None:
    result = run_entrypoint(tmp_path, str(fake_commands), "ui")
    assert result.returncode == 0, result.stderr
    command, cwd = result.stdout.splitlines()
    assert command == f"dagster dev -h 0.0.0.0 -p 3000 -w {REPO}/workspace.yaml"
    assert cwd == f"cwd {tmp_path / 'dagster_home'}"  # no warning about the repo's dagster.yaml
    assert (tmp_path / "role").read_text().strip() == "webserver"


def test_entrypoint_code_server_serves_the_projects_definitions(tmp_path: Path, fake_commands: Path) -> None:
    result = run_entrypoint(tmp_path, str(fake_commands), "code-server")
    assert result.returncode == 0, result.stderr
    dagster = PYPROJECT["tool"]["dagster"]
    assert result.stdout.splitlines()[0] == (
        "dagster code-server start -h 0.0.0.0 -p 4000 "
        f"-m {dagster['module_name']} --location-name {dagster['code_location_name']}"
    )


def test_entrypoint_passes_dagster_commands_through(tmp_path: Path, fake_commands: Path) -> None:
    """The Helm chart and run launchers call the image with `dagster api ...` as arguments."""
    result = run_entrypoint(tmp_path, str(fake_commands), "dagster", "api", "grpc", "-p", "3030")
    assert result.stdout.splitlines()[0] == "dagster api grpc -p 3030"
    daemon = run_entrypoint(tmp_path, str(fake_commands), "daemon")
    assert daemon.stdout.splitlines()[0] == f"dagster-daemon run -w {REPO}/workspace.yaml"


def test_entrypoint_keeps_a_real_dagster_yaml_and_healthcheck_passes_for_cli(
    tmp_path: Path, fake_commands: Path
) -> None:
    own = tmp_path / "dagster_home" / "dagster.yaml"
    own.parent.mkdir()
    own.write_text("telemetry:\n  enabled: false\n")
    run_entrypoint(tmp_path, str(fake_commands), "preprocess")
    assert not own.is_symlink() and "telemetry" in own.read_text()
    assert run_entrypoint(tmp_path, str(fake_commands), "healthcheck").returncode == 0


def test_entrypoint_reaches_the_installed_console_script(tmp_path: Path) -> None:
    """Without stand-ins: the venv's real `neuroflux` answers, as in the image after `pip install`."""
    result = run_entrypoint(tmp_path, str(Path(sys.executable).parent), "--help")
    assert result.returncode == 0, result.stderr
    assert all(mode in result.stdout for mode in ("preprocess", "train", "evaluate", "predict"))


# --- deploy/docker-compose.yaml, deploy/dagster.yaml -------------------------------------------------

COMPOSE = yaml.safe_load((REPO / "deploy" / "docker-compose.yaml").read_text())
DEPLOY_INSTANCE = yaml.safe_load((REPO / "deploy" / "dagster.yaml").read_text())


def test_compose_has_the_standard_dagster_layout() -> None:
    services = COMPOSE["services"]
    assert set(services) == {"postgresql", *DAGSTER_SERVICES}
    commands = {name: services[name]["command"] for name in DAGSTER_SERVICES}
    assert commands == {"code": ["code-server"], "webserver": ["webserver"], "daemon": ["daemon"]}
    for name in DAGSTER_SERVICES:
        build = services[name]["build"]
        assert (REPO / "deploy" / build["context"] / build["dockerfile"]).resolve() == REPO / "Dockerfile"
        assert "storage:/app/storage" in services[name]["volumes"]
    # The UI has no authentication: published on the host's loopback only.
    assert all(p.startswith("127.0.0.1:") for p in services["webserver"]["ports"])
    assert "ports" not in services["postgresql"] and "ports" not in services["code"]


def test_compose_config_files_exist_and_are_in_the_image() -> None:
    copied = set(copy_sources())
    for name in DAGSTER_SERVICES:
        env = COMPOSE["services"][name]["environment"]
        for key in ("NEUROFLUX_INSTANCE_CONFIG", "NEUROFLUX_WORKSPACE"):
            path = repo_path(env[key])
            assert path.is_file(), f"{name}: {key}={env[key]} does not exist"
            assert str(path.relative_to(REPO)) in copied, f"{path} is not copied into the image"
        assert repo_path(env["NEUROFLUX_INSTANCE_CONFIG"]) == REPO / "deploy" / "dagster.yaml"


def test_compose_workspace_points_at_the_code_service() -> None:
    workspace = yaml.safe_load((REPO / "deploy" / "workspace.yaml").read_text())
    (location,) = workspace["load_from"]
    server = location["grpc_server"]
    code_port = int(re.search(r"^CODE_PORT=(\d+)$", ENTRYPOINT.read_text(), re.MULTILINE).group(1))
    assert server["host"] == "code" and server["port"] == code_port
    assert server["location_name"] == PYPROJECT["tool"]["dagster"]["code_location_name"]


def test_deploy_instance_reads_credentials_from_the_environment() -> None:
    db = DEPLOY_INSTANCE["storage"]["postgres"]["postgres_db"]
    assert set(db) == {"hostname", "port", "username", "password", "db_name"}
    variables = {field: value["env"] for field, value in db.items()}  # every field is {env: NAME}
    for name in DAGSTER_SERVICES:
        assert set(variables.values()) <= set(COMPOSE["services"][name]["environment"]), name
    password = COMPOSE["services"]["code"]["environment"][variables["password"]]
    assert re.fullmatch(r"\$\{POSTGRES_PASSWORD:\?[^}]*\}", password), "required, with no default value"
    assert re.fullmatch(
        r"\$\{POSTGRES_PASSWORD:\?[^}]*\}",
        COMPOSE["services"]["postgresql"]["environment"]["POSTGRES_PASSWORD"],
    )
    assert git_ignored("deploy/.env") and not git_ignored("deploy/.env.example")


def test_deploy_instance_is_valid_and_matches_the_repo_instance(monkeypatch: pytest.MonkeyPatch) -> None:
    """Everything but the storage is the repo's dagster.yaml: the same pools, run limits and monitoring."""
    from dagster._core.instance.config import dagster_instance_config

    for field in DEPLOY_INSTANCE["storage"]["postgres"]["postgres_db"].values():
        monkeypatch.setenv(field["env"], "5432")
    dagster_instance_config(str(REPO / "deploy"))  # raises on a schema error
    repo_instance = yaml.safe_load((REPO / "dagster.yaml").read_text())
    assert {k: v for k, v in DEPLOY_INSTANCE.items() if k != "storage"} == repo_instance


def test_compose_creates_the_optuna_database_its_url_names() -> None:
    """Optuna gets its own database (it and Dagster both keep an alembic_version table)."""
    (init,) = [v for v in COMPOSE["services"]["postgresql"]["volumes"] if "docker-entrypoint-initdb.d" in v]
    folder = REPO / "deploy" / init.split(":")[0]
    created = {
        m.lower() for f in folder.glob("*.sql") for m in re.findall(r"CREATE DATABASE (\w+)", f.read_text())
    }
    for name in DAGSTER_SERVICES:
        url = COMPOSE["services"][name]["environment"]["NEUROFLUX_OPTUNA_STORAGE"]
        database = url.rsplit("/", 1)[1]
        assert url.startswith("postgresql://") and database in created and database != "dagster", url


def test_gpu_override_reserves_gpus_for_the_code_service() -> None:
    gpu = yaml.safe_load((REPO / "deploy" / "docker-compose.gpu.yaml").read_text())
    assert set(gpu["services"]) == {"code"}  # runs execute in the code container
    (device,) = gpu["services"]["code"]["deploy"]["resources"]["reservations"]["devices"]
    assert device["capabilities"] == ["gpu"]


# --- deploy/k8s/values.yaml ---------------------------------------------------------------------------


def test_helm_values_serve_the_projects_definitions() -> None:
    values = yaml.safe_load((REPO / "deploy" / "k8s" / "values.yaml").read_text())
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    assert deployment["name"] == PYPROJECT["tool"]["dagster"]["code_location_name"]
    args = deployment["dagsterApiGrpcArgs"]
    assert args[args.index("-m") + 1] == PYPROJECT["tool"]["dagster"]["module_name"]
    mounts = {m["mountPath"] for m in deployment["volumeMounts"]}
    assert {"/app/data", "/app/storage"} <= mounts
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert "postgresqlPassword" not in values.get("postgresql", {}), "the password lives in a Secret"
    assert "dagster-k8s/config" in (REPO / "deploy" / "k8s" / "values.yaml").read_text()


# --- docs/deployment.md -------------------------------------------------------------------------------

DOC = (REPO / "docs" / "deployment.md").read_text()
# `neuroflux MODE` where neuroflux is the CLI or the image: at the start of a snippet, after `docker run
# [flags]` (not with --entrypoint: then what follows is another program's arguments), after
# `compose exec|run SERVICE`, or inside `sh -c '...'`.
DOC_MODE = re.compile(
    r"(?:docker run (?:(?!--entrypoint)\S+ )*?|(?:exec|run --rm) \w+ |^|[`'\"])neuroflux ([a-z][a-z-]*)",
    re.MULTILINE,
)


def test_deployment_doc_names_only_files_that_exist() -> None:
    path = r"(?<![\w/.$-])((?:deploy|configs|benchmarks|tests|docs|neuroflux_\w+|\.ci)/[\w./-]+)"
    named = {p.rstrip(".") for p in re.findall(path, DOC)} - {"deploy/.env"}  # .env: made by the user
    named |= set(re.findall(r"`(Dockerfile|dagster\.yaml|workspace\.yaml|requirements\.lock)`", DOC))
    assert {"deploy/docker-compose.yaml", "deploy/dagster.yaml", "deploy/k8s/values.yaml"} <= named
    missing = sorted(p for p in named if not (REPO / p).exists())
    assert not missing, f"docs/deployment.md names files that do not exist: {missing}"


def test_deployment_doc_commands_match_the_repo() -> None:
    from neuroflux_assets.cli import MODES

    modes = {mode.name for mode in MODES}
    entry_modes = set(re.findall(r"^    ([a-z-]+)\)$", ENTRYPOINT.read_text(), re.MULTILINE))
    documented = set(DOC_MODE.findall(DOC))
    assert {"train", "ui", "tune"} <= documented
    unknown = documented - modes - entry_modes
    assert not unknown, f"docs/deployment.md uses modes neither the CLI nor the entrypoint has: {unknown}"
    makefile = (REPO / "Makefile").read_text()
    for target in set(re.findall(r"`make ([a-z-]+)", DOC)):
        assert re.search(rf"^{target}:", makefile, re.MULTILINE), f"make {target}"
    compose_files = set(re.findall(r"-f (\S+\.ya?ml)", DOC))
    assert "deploy/docker-compose.gpu.yaml" in compose_files
    for compose_file in compose_files:
        assert (REPO / compose_file).is_file(), compose_file
    services = set(COMPOSE["services"])
    for service in re.findall(r"docker compose (?:-f \S+ )+(?:exec|run --rm) (\w+)", DOC):
        assert service in services, service
