"""Where and how runs are recorded, and the choice between online and offline that `auto` makes.

`auto` follows W&B's own setup: online when wandb itself finds credentials for the server (the
`WANDB_API_KEY` variable, or what `wandb login` stored in the netrc file for `WANDB_BASE_URL`), offline
otherwise. The lookup is wandb's, not a reading of its files here, so it finds what `wandb.init` finds.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from neuroflux_lib.errors import ConfigError

Mode = Literal["offline", "online", "disabled"]
REQUESTABLE = ("auto", "offline", "online", "disabled")
NO_CREDENTIALS = "no W&B credentials (set WANDB_API_KEY or run `wandb login`)"


@dataclass(frozen=True)
class TrackingSettings:
    """Where and how runs are recorded; picklable, so tuning workers build their own runs from it.
    `reason` says why `mode` was chosen (for the step's log)."""

    mode: Mode = "offline"
    root: str = "storage/wandb"
    project: str = "neuroflux"
    entity: str | None = None
    api_key: str | None = field(default=None, repr=False)
    reason: str = field(default="", compare=False)

    def environment(self) -> dict[str, str]:
        """wandb's folders all under `root`: nothing lands in HOME or the working directory."""
        root = Path(self.root).resolve()
        env = {
            "WANDB_DIR": str(root),
            "WANDB_CACHE_DIR": str(root / ".cache"),
            "WANDB_CONFIG_DIR": str(root / ".config"),
            "WANDB_DATA_DIR": str(root / ".data"),
            "WANDB_ARTIFACT_DIR": str(root / ".artifacts"),
            "WANDB_SILENT": "true",
            "WANDB_MODE": self.mode,
        }
        if self.api_key:
            env["WANDB_API_KEY"] = self.api_key
        return env


def wandb_server() -> str:
    """The W&B server `wandb.init` will talk to: its session's, once this process has one, else
    `WANDB_BASE_URL`, else wandb's default. Never loads the session itself: wandb reads its environment
    once per process, and `start_run` sets that environment first (folders under the tracking root)."""
    import wandb
    from wandb import env
    from wandb.sdk import wandb_setup

    session = wandb_setup.singleton().settings_if_loaded
    return session.base_url if session else env.get_base_url(wandb.Settings().base_url)


def find_credentials(base_url: str | None = None) -> str | None:
    """Where wandb finds credentials for `base_url` (default: `wandb_server()`), or None: the sources
    `wandb.init` tries, in its order, each read by wandb's own functions (`WANDB_API_KEY`, an identity
    token file, the netrc file `wandb login` writes, a `wandb.login` in this process). No prompt, no
    network call.

    Raises `wandb.errors.AuthenticationError` for credentials wandb finds but rejects (a malformed key)."""
    from wandb import env
    from wandb.sdk.lib import wbauth

    host = wbauth.HostUrl(base_url or wandb_server())
    server = host.url.split("://", 1)[-1]
    if key := os.environ.get(env.API_KEY):
        wbauth.AuthApiKey(host=host, api_key=key)  # wandb's format check
        return f"{env.API_KEY} for {server}"
    if os.environ.get(env.IDENTITY_TOKEN_FILE):
        return f"{env.IDENTITY_TOKEN_FILE} for {server}"
    if wbauth.read_netrc_auth(host=host):
        return f"{os.environ.get('NETRC') or '~/.netrc'} for {server}"
    if wbauth.session_credentials(host=host):
        return f"this process's wandb.login for {server}"
    return None


def choose_mode(requested: str, api_key: str | None = None, base_url: str | None = None) -> tuple[Mode, str]:
    """The mode to run in and why. `auto`: online with a configured `api_key` or credentials wandb finds
    (`find_credentials`), offline otherwise; the reason names where the credentials came from, so a
    `wandb login` user sees why runs go online (and everyone else why they stay offline)."""
    if requested not in REQUESTABLE:
        raise ConfigError(f"tracking mode must be one of {', '.join(REQUESTABLE)}, got {requested!r}")
    if requested in ("offline", "disabled"):
        return requested, f"{requested}: tracking mode set to {requested}"
    if api_key:
        return "online", "online: W&B API key configured on the tracking resource"
    try:
        source = find_credentials(base_url)
    except Exception as error:  # noqa: BLE001 (a malformed key or server URL: choosing must not fail the step)
        if requested == "online":
            return "online", f"online: requested, but the W&B credentials are not usable ({error})"
        return "offline", f"offline: the W&B credentials are not usable ({error})"
    if requested == "online":
        found = f"credentials from {source}" if source else f"but {NO_CREDENTIALS}"
        return "online", f"online: requested, {found}"
    if source:
        return "online", f"online: credentials from {source}"
    return "offline", f"offline: {NO_CREDENTIALS}"
