"""Shared fixtures: tiny images so the suite stays fast on 2 cores."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import quote

import pytest


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """Tiny CPU forwards are slower multi-threaded, badly so when other processes share the cores."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(autouse=True)
def quiet_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No W&B runs and no downloads unless a test asks for them, and nothing from a real deployment's
    environment (a shared Optuna database, a W&B key, a profile) reaches a test. Settings read the
    environment when they are used, so this works after every import."""
    monkeypatch.setenv("NEUROFLUX_TRACKING", "disabled")
    monkeypatch.setenv("NEUROFLUX_OFFLINE", "1")  # tests never need the internet
    for name in ("NEUROFLUX_OPTUNA_STORAGE", "WANDB_API_KEY", "WANDB_MODE", "WANDB_DIR", "NEUROFLUX_PROFILE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def isolated_wandb_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """`start_run` exports WANDB_* for wandb's own processes: undo that after the test."""
    from neuroflux_lib.tracking import TrackingSettings

    for name in [*TrackingSettings(api_key="x").environment(), "WANDB_API_KEY"]:
        monkeypatch.setenv(name, "")  # recorded, so the original state (often: unset) comes back
        monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def prepared(demo_dataset: Path, tmp_path_factory: pytest.TempPathFactory):
    """(dataset config, balanced train table, split table) of the demo set at 32 px, for tuning tests."""
    from neuroflux_lib.config import DatasetConfig, with_overrides
    from neuroflux_lib.config.resolve import load_config
    from neuroflux_lib.data.pipeline import run_preprocess

    storage = tmp_path_factory.mktemp("prepared")
    dataset = with_overrides(
        load_config(DatasetConfig, Path(__file__).resolve().parents[1] / "configs" / "dataset_config.json"),
        {
            "data_dir": str(demo_dataset),
            "storage_dir": str(storage),
            "image_size": 32,
            "num_workers": 1,
            "min_images_per_class": 3,
        },
    )
    result = run_preprocess(dataset)
    return dataset, result.balanced, result.splits


@pytest.fixture(scope="session")
def demo_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small demo dataset from the real generator (scale 0.1, 48 px), shared by the session."""
    from neuroflux_lib.demo.generator import generate_demo_dataset

    out = tmp_path_factory.mktemp("demo") / "data"
    generate_demo_dataset(out, scale=0.1, seed=0, image_size=48, workers=1)
    return out


# --- PostgreSQL (tests marked `postgres`) -------------------------------------------------------------
# Where the server is, from the environment (.ci/run starts a throwaway cluster and sets all of them):
#   NEUROFLUX_PG_HOST (127.0.0.1)  NEUROFLUX_PG_PORT (5432)  NEUROFLUX_PG_USER (postgres)
#   NEUROFLUX_PG_PASSWORD ("")      NEUROFLUX_PG_DB (postgres: the database to connect to first)
# The role needs CREATEDB: every test gets a database of its own, dropped afterwards. Without a reachable
# server these tests skip and say why, except with NEUROFLUX_REQUIRE_POSTGRES=1 (CI), where they fail.


@dataclass(frozen=True)
class PostgresDatabase:
    """Connection settings for one database, in the forms Dagster, SQLAlchemy/Optuna and psycopg2 take."""

    host: str
    port: int
    user: str
    password: str
    dbname: str

    def url(self, scheme: str = "postgresql") -> str:
        """SQLAlchemy URL, e.g. an Optuna storage shared by several worker processes."""
        auth = quote(self.user, safe="") + (f":{quote(self.password, safe='')}" if self.password else "")
        return f"{scheme}://{auth}@{self.host}:{self.port}/{self.dbname}"

    def dagster_storage(self) -> dict[str, Any]:
        """The `storage:` block of a dagster.yaml (instance_for_test overrides) for this database."""
        return {
            "postgres": {
                "postgres_db": {
                    "hostname": self.host,
                    "port": self.port,
                    "username": self.user,
                    "password": self.password,
                    "db_name": self.dbname,
                }
            }
        }

    def env(self) -> dict[str, str]:
        """deploy/dagster.yaml's variables (DAGSTER_POSTGRES_*) pointing at this database."""
        return {
            "DAGSTER_POSTGRES_HOSTNAME": self.host,
            "DAGSTER_POSTGRES_PORT": str(self.port),
            "DAGSTER_POSTGRES_USER": self.user,
            "DAGSTER_POSTGRES_PASSWORD": self.password,
            "DAGSTER_POSTGRES_DB": self.dbname,
        }

    def connect(self):
        import psycopg2

        return psycopg2.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            dbname=self.dbname,
            connect_timeout=5,
        )


def postgres_from_env(environ: Mapping[str, str] = os.environ) -> PostgresDatabase:
    return PostgresDatabase(
        host=environ.get("NEUROFLUX_PG_HOST", "127.0.0.1"),
        port=int(environ.get("NEUROFLUX_PG_PORT", "5432")),
        user=environ.get("NEUROFLUX_PG_USER", "postgres"),
        password=environ.get("NEUROFLUX_PG_PASSWORD", ""),
        dbname=environ.get("NEUROFLUX_PG_DB", "postgres"),
    )


def _unavailable(reason: str) -> NoReturn:
    """Skip locally, fail in CI: a CI run must not pass because its database never came up."""
    if os.environ.get("NEUROFLUX_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"NEUROFLUX_REQUIRE_POSTGRES=1 but {reason}", pytrace=False)
    pytest.skip(f"{reason} (set NEUROFLUX_PG_HOST/PORT/USER/PASSWORD/DB, or run .ci/run)")


@pytest.fixture(scope="session")
def postgres_server() -> PostgresDatabase:
    """The server's maintenance database, checked once per session."""
    server = postgres_from_env()
    try:
        import psycopg2  # noqa: F401 (the `postgres` extra)
    except ImportError as error:
        _unavailable(f"psycopg2 is not installed ({error}); install the `postgres` extra")
    try:
        server.connect().close()
    except Exception as error:  # any connection failure means "no server here"
        detail = (str(error).strip() or type(error).__name__).splitlines()[0]
        _unavailable(f"no PostgreSQL at {server.user}@{server.host}:{server.port}/{server.dbname}: {detail}")
    return server


@pytest.fixture
def postgres_db(postgres_server: PostgresDatabase) -> Iterator[PostgresDatabase]:
    """A fresh, empty database for one test, so it sees only its own runs; dropped afterwards."""
    name = f"neuroflux_test_{uuid.uuid4().hex[:12]}"
    admin = postgres_server.connect()
    admin.autocommit = True  # CREATE/DROP DATABASE cannot run inside a transaction
    try:
        with admin.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')
    except Exception as error:
        admin.close()
        _unavailable(f"cannot create a test database as {postgres_server.user}: {error}")
    try:
        yield replace(postgres_server, dbname=name)
    finally:
        with admin.cursor() as cursor:
            # WITH (FORCE) (PostgreSQL 13+): a pooled connection the test left open must not keep it alive.
            try:
                cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            except Exception:
                cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.close()
