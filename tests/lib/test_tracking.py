"""W&B tracking: offline runs hold what training logged, disabled writes nothing, failures never
stop a training; `auto` goes online exactly when wandb finds credentials; runs are listed from our own
records, never from wandb's log files."""

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest

from neuroflux_lib.errors import ConfigError
from neuroflux_lib.tracking import (
    TrackedRun,
    TrackingSettings,
    choose_mode,
    read_run,
    runs_table,
    start_run,
    sync_command,
)
from neuroflux_lib.tracking.index import INDEX_FILE
from neuroflux_lib.training.loop import fit
from tests.lib.test_training import CLASSES, INPUTS, cnn, config, datasets

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_offline_run_holds_config_per_epoch_history_and_summary(tmp_path, isolated_wandb_env):
    settings = TrackingSettings(mode="offline", root=str(tmp_path / "wandb"))
    hyperparameters = config(num_epochs=3)
    train, val = datasets()
    with start_run(
        settings,
        name="cnn-train-test",
        job_type="train",
        group="dagster-run-1",
        tags=["neuroflux_cnn", "test"],
        config={**hyperparameters.model_dump(mode="json"), "data_version": "abc"},
    ) as tracked:
        assert read_run(tracked.link).state == "running"  # recorded when it starts: a crash leaves it listed
        result = fit(cnn(), train, val, hyperparameters, CLASSES, inputs=INPUTS, callbacks=[tracked])
        tracked.set_summary({"best_epoch": result.best_epoch})
        link = tracked.link
    assert Path(link).is_dir() and Path(link).is_relative_to(tmp_path / "wandb")

    run = read_run(link)
    assert run.state == "finished" and run.finished >= run.started
    assert run.name == "cnn-train-test" and run.job_type == "train" and run.group == "dagster-run-1"
    assert run.tags == ["neuroflux_cnn", "test"]
    assert (
        run.config["learning_rate"] == hyperparameters.learning_rate and run.config["data_version"] == "abc"
    )
    epochs = [row for row in run.history if "epoch" in row]
    assert [row["epoch"] for row in epochs] == [1, 2, 3]
    for key in (
        "train_loss",
        "val_loss",
        "val_accuracy",
        "val_macro_f1",
        "lr",
        "train_images_per_s",
        "val_f1_A",
    ):
        assert key in epochs[0], key
    assert epochs[-1]["val_macro_f1"] == pytest.approx(result.history[-1]["val_macro_f1"])
    assert run.summary["best_epoch"] == result.best_epoch

    assert not list(Path(link).glob(f".{INDEX_FILE}.*"))  # written atomically: no temporary file left

    table = runs_table(tmp_path / "wandb")
    assert list(table.columns) == [
        "started",
        "job_type",
        "model",
        "name",
        "group",
        "test_macro_f1",
        "test_accuracy",
        "best_val_macro_f1",
        "best_epoch",
        "best_value",
        "synced",
        "folder",
    ]
    row = table.loc[0]
    assert row["model"] == "neuroflux_cnn" and row["best_epoch"] == result.best_epoch
    assert (row["job_type"], row["name"], row["group"]) == ("train", "cnn-train-test", "dagster-run-1")
    assert row["started"] == run.started.strftime("%Y-%m-%d %H:%M") and not row["synced"]
    assert sync_command(tmp_path / "wandb") == ["wandb", "sync", link]
    # Nothing lands outside the tracking root (HOME, working directory).
    assert not (Path.cwd() / "wandb").exists()
    assert (
        not (Path.home() / ".config" / "wandb").exists() and not (Path.home() / ".cache" / "wandb").exists()
    )


def test_disabled_mode_writes_nothing(tmp_path, isolated_wandb_env):
    tracked = start_run(
        TrackingSettings(mode="disabled", root=str(tmp_path / "wandb")), name="x", job_type="train"
    )
    tracked.on_epoch_end(1, {"train_loss": 1.0})
    tracked.set_summary({"a": 1})
    assert not tracked.active and tracked.finish() == ""
    assert not (tmp_path / "wandb").exists()


def test_wandb_that_cannot_start_leaves_training_alone(tmp_path, isolated_wandb_env, monkeypatch):
    import wandb

    def refuse(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(wandb, "init", refuse)
    tracked = start_run(TrackingSettings(mode="offline", root=str(tmp_path)), name="x", job_type="train")
    assert not tracked.active and "No space left" in tracked.error
    train, val = datasets()
    result = fit(cnn(), train, val, config(num_epochs=2), CLASSES, inputs=INPUTS, callbacks=[tracked])
    assert len(result.history) == 2


class BrokenRun:
    """A run whose every call fails, like a full disk or a network gone in online mode."""

    def log(self, *args, **kwargs):
        raise ConnectionError("network is down")

    def finish(self, *args, **kwargs):
        raise ConnectionError("network is down")


def test_wandb_failing_mid_training_stops_tracking_not_training(caplog):
    tracked = TrackedRun(run=BrokenRun())
    train, val = datasets()
    result = fit(cnn(), train, val, config(num_epochs=3), CLASSES, inputs=INPUTS, callbacks=[tracked])
    assert len(result.history) == 3
    assert not tracked.active and "network is down" in tracked.error
    assert sum("tracking stops" in message for message in caplog.messages) == 1
    assert tracked.finish() == ""  # already closed (best effort) when it failed: no second error


def test_runs_table_lists_an_unreadable_record_instead_of_failing(tmp_path):
    folder = tmp_path / "wandb" / "offline-run-20260101_000000-abc"
    folder.mkdir(parents=True)
    (folder / INDEX_FILE).write_text("{not json")
    table = runs_table(tmp_path)
    assert isinstance(table, pd.DataFrame) and "unreadable" in table.loc[0, "name"]
    assert INDEX_FILE in table.loc[0, "name"]


def test_a_folder_without_our_record_is_listed_by_its_name_and_its_wandb_log_is_not_read(tmp_path):
    """A run folder another tool made: its date and synced state come from names, never from `.wandb`."""
    folder = tmp_path / "wandb" / "offline-run-20260102_030405-abc123"
    folder.mkdir(parents=True)
    (folder / "run-abc123.wandb").write_bytes(b":W&B" + bytes(range(256)))  # wandb's log: not ours to read
    (folder / "run-abc123.wandb.synced").touch()  # the marker `wandb sync` leaves
    row = runs_table(tmp_path).loc[0]
    assert row["started"] == "2026-01-02 03:04" and row["synced"] and row["folder"] == str(folder)
    assert "not a neuroflux run" in row["name"] and "unreadable" not in row["name"]
    assert sync_command(tmp_path) == ["wandb", "sync"]  # already synced


def test_a_record_from_a_run_that_never_finished_is_listed(tmp_path, isolated_wandb_env):
    """A run killed mid-training keeps the record written when it started: listed, metrics empty."""
    tracked = start_run(
        TrackingSettings(mode="offline", root=str(tmp_path)),
        name="neuroflux_cnn-train-1",
        job_type="train",
        config={"model_name": "neuroflux_cnn"},
    )
    started = json.loads((Path(tracked.link) / INDEX_FILE).read_text())
    tracked.set_summary({"best_epoch": 4})
    tracked.finish()
    (Path(tracked.link) / INDEX_FILE).write_text(json.dumps(started))  # as if the process died before finish
    row = runs_table(tmp_path).loc[0]
    assert (row["job_type"], row["model"], row["name"]) == ("train", "neuroflux_cnn", "neuroflux_cnn-train-1")
    assert row["started"] and pd.isna(row["best_epoch"]) and read_run(tracked.link).state == "running"


# ------------------------------------------------------------------------------------ auto mode


@pytest.fixture
def wandb_server(tmp_path, monkeypatch, isolated_wandb_env):
    """A stand-in W&B server on 127.0.0.1 (WANDB_BASE_URL) that records each request and refuses it, an
    empty HOME (no real `wandb login`), short wandb timeouts, and a fresh wandb session (wandb reads its
    environment once per session): (host, recorded requests)."""
    import wandb

    requests: list[dict] = []

    class Refuse(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            requests.append({"path": self.path, "auth": self.headers.get("Authorization", ""), "body": body})
            self.send_response(401)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"errors": [{"message": "unauthorized"}]}')

        do_GET = do_POST

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Refuse)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host = f"127.0.0.1:{server.server_port}"
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name in ("NETRC", "WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WANDB_BASE_URL", f"http://{host}")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv("WANDB_INIT_TIMEOUT", "30")
    monkeypatch.setenv("WANDB_HTTP_TIMEOUT", "5")
    wandb.teardown()
    yield host, requests
    wandb.teardown()  # stops wandb's service and forgets this session's server and credentials
    server.shutdown()
    server.server_close()


def test_auto_is_online_with_wandb_login_credentials_and_wandb_uses_them(tmp_path, wandb_server):
    """`wandb login` stores the key in ~/.netrc: `auto` finds it through wandb and goes online, and the
    run wandb then starts talks to that server with that key (the stand-in refuses it: no tracking, no
    failure)."""
    host, requests = wandb_server
    key = "k" * 40
    (Path.home() / ".netrc").write_text(f"machine {host}\n  login user\n  password {key}\n")
    mode, reason = choose_mode("auto")
    assert (mode, reason) == ("online", f"online: credentials from ~/.netrc for {host}")
    tracked = start_run(TrackingSettings(mode=mode, root=str(tmp_path / "wandb")), name="x", job_type="train")
    assert not tracked.active and "unauthorized" in tracked.error
    graphql = [r for r in requests if r["path"] == "/graphql"]
    assert graphql and b"UpsertBucket" in graphql[0]["body"]
    assert base64.b64decode(graphql[0]["auth"].split()[1]) == f"api:{key}".encode()


def test_auto_is_offline_without_credentials_and_wandb_calls_no_server(tmp_path, wandb_server):
    _, requests = wandb_server
    mode, reason = choose_mode("auto")
    assert (mode, reason) == (
        "offline",
        "offline: no W&B credentials (set WANDB_API_KEY or run `wandb login`)",
    )
    with start_run(
        TrackingSettings(mode=mode, root=str(tmp_path / "wandb")), name="x", job_type="train"
    ) as tracked:
        tracked.on_epoch_end(1, {"train_loss": 1.0})
    assert tracked.error is None and read_run(tracked.link).history == [{"train_loss": 1.0}]
    assert requests == []


def test_choose_mode_takes_an_explicit_choice_or_a_configured_key_as_it_is(wandb_server, monkeypatch):
    host, _ = wandb_server
    assert choose_mode("offline") == ("offline", "offline: tracking mode set to offline")
    assert choose_mode("disabled")[0] == "disabled"
    assert choose_mode("auto", api_key="k" * 40)[0] == "online"
    assert choose_mode("online")[1].startswith("online: requested, but no W&B credentials")
    monkeypatch.setenv("WANDB_API_KEY", "k" * 40)
    assert choose_mode("auto") == ("online", f"online: credentials from WANDB_API_KEY for {host}")
    monkeypatch.setenv("WANDB_API_KEY", "short")  # wandb rejects it: offline, and the reason says why
    mode, reason = choose_mode("auto")
    assert mode == "offline" and "40+ characters" in reason
    with pytest.raises(ConfigError, match="tracking mode must be one of"):
        choose_mode("sometimes")
