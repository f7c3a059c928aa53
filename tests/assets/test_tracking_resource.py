"""The `tracking` resource: `auto` follows wandb's credentials (an API key or `wandb login`), and each
step's log says which mode it chose and why."""

from pathlib import Path
from types import SimpleNamespace

import pytest

from neuroflux_assets.resources import TRACKING_ENV, TrackingResource
from neuroflux_lib.tracking import read_run

SERVER = "127.0.0.1:9"  # nothing listens there: choosing a mode makes no network call


@pytest.fixture
def no_login(tmp_path, monkeypatch, isolated_wandb_env) -> Path:
    """An empty HOME (no `wandb login` of the developer's), no key, W&B server `SERVER`, and a fresh wandb
    session (wandb reads its environment once per session); returns HOME."""
    import wandb

    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name in ("NETRC", "WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE", TRACKING_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WANDB_BASE_URL", f"http://{SERVER}")
    wandb.teardown()
    yield home
    wandb.teardown()


def test_auto_is_online_for_a_wandb_login_user(no_login, tmp_path) -> None:
    (no_login / ".netrc").write_text(f"machine {SERVER}\n  login user\n  password {'k' * 40}\n")
    settings = TrackingResource().settings(str(tmp_path))
    assert settings.mode == "online" and settings.reason == f"online: credentials from ~/.netrc for {SERVER}"


def test_each_step_logs_the_mode_it_chose_and_why(no_login, tmp_path) -> None:
    messages: list[str] = []
    context = SimpleNamespace(
        run=SimpleNamespace(run_id="0123456789abcdef"),
        partition_key="neuroflux_cnn",
        log=SimpleNamespace(info=messages.append, warning=messages.append),
    )
    dataset = SimpleNamespace(
        dataset_config=lambda: SimpleNamespace(storage_dir=str(tmp_path)), profile_name="cpu-demo"
    )
    tracked = TrackingResource().start(context, dataset, "train", {"model_name": "neuroflux_cnn"})
    tracked.finish()
    assert messages == ["W&B tracking offline: no W&B credentials (set WANDB_API_KEY or run `wandb login`)"]
    assert read_run(tracked.link).name == "neuroflux_cnn-train-01234567"
