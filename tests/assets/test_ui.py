"""The UI: dagster-webserver serves the asset graph (GraphQL) and the page renders (headless Chromium)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from neuroflux_lib.paths import project_root
from tests.dagster_helpers import ALL_ASSETS

PROJECT_ROOT = project_root()

EXPECTED = set(ALL_ASSETS)
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--window-size=1600,1000",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def graphql(url: str, query: str) -> dict:
    request = urllib.request.Request(
        f"{url}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def webserver(tmp_path_factory: pytest.TempPathFactory):
    """dagster-webserver on a free 127.0.0.1 port with the repo's dagster.yaml in a temporary DAGSTER_HOME."""
    home = tmp_path_factory.mktemp("dagster_home")
    (home / "dagster.yaml").symlink_to(PROJECT_ROOT / "dagster.yaml")
    port = free_port()
    log = (home / "webserver.log").open("w")
    process = subprocess.Popen(
        [
            Path(sys.executable).parent / "dagster-webserver",
            "-w",
            "workspace.yaml",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        cwd=PROJECT_ROOT,
        env={**os.environ, "DAGSTER_HOME": str(home)},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 150
        while True:
            try:
                status = graphql(url, LOCATION_STATUS)
                entries = status["data"]["workspaceOrError"]["locationEntries"]
                if entries and all(e["loadStatus"] == "LOADED" for e in entries):
                    errors = [e["locationOrLoadError"].get("message") for e in entries]
                    assert not any(errors), f"code location failed to load: {errors}"
                    break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"webserver did not come up: {(home / 'webserver.log').read_text()[-3000:]}"
                )
            time.sleep(1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


LOCATION_STATUS = """{ workspaceOrError { __typename ... on Workspace { locationEntries {
    loadStatus locationOrLoadError { __typename ... on PythonError { message } } } } } }"""


def test_graphql_lists_every_asset(webserver: str) -> None:
    data = graphql(webserver, "{ assetNodes { assetKey { path } groupName } }")["data"]["assetNodes"]
    keys = {"/".join(node["assetKey"]["path"]) for node in data}
    assert keys == EXPECTED
    groups = {node["groupName"] for node in data}
    assert groups == {"data_quality", "dataset", "evaluation", "modeling", "deployment", "incoming"}


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    return None


def test_asset_graph_page_renders(webserver: str, tmp_path: Path) -> None:
    chromium = find_chromium()
    if chromium is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("chromium is required in CI (apt-get install -y chromium)")
        pytest.skip("chromium not installed (apt-get install -y chromium); the screenshot check needs it")
    shot = tmp_path / "asset_graph.png"
    subprocess.run(
        [
            chromium,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=20000",
            f"--screenshot={shot}",
            f"{webserver}/asset-groups",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    keep = os.environ.get("NEUROFLUX_SCREENSHOT")
    if keep:
        shutil.copy(shot, keep)
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    assert pixels.shape[:2] == (1000, 1600)
    colours = len(np.unique(pixels.reshape(-1, 3), axis=0))
    assert pixels.std() > 10 and colours > 50, (
        f"screenshot looks blank (std {pixels.std():.1f}, {colours} colours)"
    )
