"""The asset graph with Dagster's run, event and schedule storage in PostgreSQL, configured by
deploy/dagster.yaml exactly as the compose stack uses it (credentials from DAGSTER_POSTGRES_*).

Needs a server (tests/conftest.py: NEUROFLUX_PG_*); `.ci/run` starts one, elsewhere these tests skip.
"""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest

from neuroflux_assets.cli.runner import materialize_models
from tests.conftest import PostgresDatabase
from tests.dagster_helpers import MATERIALIZED_BY_DEFAULT, TINY_MODELS, tiny_defs, tiny_run_config

pytestmark = pytest.mark.postgres

REPO = Path(__file__).resolve().parents[2]
MODELS = {"resnet50", "neuroflux_cnn"}


def rows(db: PostgresDatabase, sql: str) -> list[tuple]:
    with db.connect() as connection, connection.cursor() as cursor:
        cursor.execute(sql)
        result = cursor.fetchall()
    connection.close()  # `with` only ends the transaction
    return result


def test_full_graph_materializes_with_postgres_storage(
    postgres_db: PostgresDatabase, demo_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").symlink_to(REPO / "deploy" / "dagster.yaml")  # what deploy/entrypoint.sh does
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    for key, value in postgres_db.env().items():
        monkeypatch.setenv(key, value)
    storage = tmp_path / "storage"
    defs = tiny_defs(storage)

    with dg.DagsterInstance.from_config(str(home)) as instance:
        storages = (instance.run_storage, instance.event_log_storage, instance.schedule_storage)
        assert [type(s).__name__ for s in storages] == [
            "PostgresRunStorage",
            "PostgresEventLogStorage",
            "PostgresScheduleStorage",
        ]
        results = materialize_models(defs, instance, tiny_run_config(demo_dataset, storage), TINY_MODELS)
        assert [r.success for r in results] == [False, True]  # resnet50 stopped by model_learned
        assert instance.get_latest_materialization_event(dg.AssetKey("production_model")) is not None

    # Read back from PostgreSQL itself, not through Dagster: this is what the webserver and daemon see.
    runs = rows(postgres_db, "SELECT run_id, status FROM runs")
    assert sorted(status for _, status in runs) == ["FAILURE", "SUCCESS"]
    assert {r.run_id for r in results} == {run_id for run_id, _ in runs}

    materialized = rows(
        postgres_db,
        "SELECT DISTINCT asset_key, partition FROM event_logs"
        " WHERE dagster_event_type = 'ASSET_MATERIALIZATION'",
    )
    keys = {(json.loads(key)[0], partition) for key, partition in materialized}
    assert {key for key, _ in keys} == set(MATERIALIZED_BY_DEFAULT)
    for asset in ("tuned_hyperparameters", "trained_model"):
        assert {p for key, p in keys if key == asset} == MODELS, asset
    assert {p for key, p in keys if key == "evaluation_report"} == {"neuroflux_cnn"}

    checks = rows(postgres_db, "SELECT asset_key, check_name, execution_status FROM asset_check_executions")
    executed = {(json.loads(key)[0], name) for key, name, _ in checks}
    expected = {
        (check.asset_key.to_user_string(), check.name)
        for check in defs.resolve_asset_graph().asset_check_keys
        if check.asset_key.to_user_string() in MATERIALIZED_BY_DEFAULT  # not incoming batches' checks
    }
    assert executed == expected
    statuses: dict[tuple[str, str], set[str]] = {}
    for key, name, status in checks:
        statuses.setdefault((json.loads(key)[0], name), set()).add(status)
    # resnet50 did not learn, as intended: its learn check failed and stopped its evaluation (whose check
    # then never ran); everything else succeeded.
    assert statuses.pop(("trained_model", "model_learned")) == {"SUCCEEDED", "FAILED"}
    assert "FAILED" not in statuses.pop(("evaluation_report", "beats_best_baseline"))
    assert set().union(*statuses.values()) == {"SUCCEEDED"}


def test_optuna_study_on_postgres_is_shared_by_two_workers(postgres_db: PostgresDatabase, prepared) -> None:
    """`neuroflux tune --workers 2 --storage postgresql://…`: both processes add to one study."""
    import optuna

    from neuroflux_lib.training.tuning import open_storage, run_study
    from tests.lib.test_tuning import spec_for

    url = postgres_db.url()
    spec = spec_for(prepared, url, name="pg-study", tune_pruner="none", tune_epochs=1)
    result = run_study(spec, n_trials=4, workers=2)
    study = optuna.load_study(study_name="pg-study", storage=open_storage(url))
    assert sorted(t.number for t in study.trials) == [0, 1, 2, 3]
    assert result.counts == {"complete": 4}
    trials = rows(postgres_db, "SELECT number, state FROM trials ORDER BY number")
    assert trials == [(n, "COMPLETE") for n in range(4)]
