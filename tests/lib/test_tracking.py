"""W&B tracking: offline runs hold what training logged, disabled writes nothing, failures never
stop a training."""

from pathlib import Path

import pandas as pd
import pytest

from neuroflux_lib.tracking import (
    TrackedRun,
    TrackingSettings,
    read_offline_run,
    runs_table,
    start_run,
    sync_command,
)
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
        result = fit(cnn(), train, val, hyperparameters, CLASSES, inputs=INPUTS, callbacks=[tracked])
        tracked.set_summary({"best_epoch": result.best_epoch})
        link = tracked.link
    assert Path(link).is_dir() and Path(link).is_relative_to(tmp_path / "wandb")

    run = read_offline_run(link)
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

    table = runs_table(tmp_path / "wandb")
    assert table.loc[0, "model"] == "neuroflux_cnn" and table.loc[0, "best_epoch"] == result.best_epoch
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


def test_runs_table_lists_an_unreadable_folder_instead_of_failing(tmp_path):
    folder = tmp_path / "wandb" / "offline-run-20260101_000000-abc"
    folder.mkdir(parents=True)
    (folder / "run-abc.wandb").write_bytes(b"not a log")
    table = runs_table(tmp_path)
    assert isinstance(table, pd.DataFrame) and "unreadable" in table.loc[0, "name"]
