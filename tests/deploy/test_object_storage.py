"""Asset values in object storage (`asset_store = "s3://bucket/prefix"`) against a real S3 API on 127.0.0.1
(moto in server mode, from the lock): the whole graph stores every value in the bucket and nothing in
`<storage_dir>/assets`, and `load_predictor()` in a new process with the same profile and environment
downloads the production model and predicts.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import boto3
import dagster as dg
import pytest
from moto.server import ThreadedMotoServer
from upath import UPath

from neuroflux_assets.cli.runner import materialize_models
from neuroflux_assets.definitions import defs
from neuroflux_assets.instance import project_instance
from neuroflux_assets.io_managers import MANIFEST, FolderIOManager
from neuroflux_lib.config.resolve import PROFILE_ENV
from tests.dagster_helpers import MATERIALIZED_BY_DEFAULT, TINY_LEARNER, tiny_run_config

pytestmark = pytest.mark.s3

BUCKET, PREFIX = "neuroflux-values", "team/values"
SECRET = "moto-secret-never-stored"
MODEL = "neuroflux_cnn"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def s3() -> Iterator[dict[str, str]]:
    """An empty bucket on a moto server on 127.0.0.1 and the standard AWS variables that reach it."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {
        "AWS_ACCESS_KEY_ID": "moto-key",
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://{host}:{port}",
    }
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        yield env
    server.stop()


def bucket_keys(prefix: str = PREFIX) -> list[str]:
    pages = boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


@pytest.fixture(scope="module")
def s3_pipeline(s3, demo_dataset: Path, tmp_path_factory: pytest.TempPathFactory):
    """The whole graph for one tiny model, configured by a profile file named in $NEUROFLUX_PROFILE (as a
    pod would be), in the Dagster instance of the profile's storage_dir."""
    root = tmp_path_factory.mktemp("s3_pipeline")
    storage = root / "storage"
    profile = root / "tiny-s3.json"
    dataset = {
        "data_dir": str(demo_dataset),
        "storage_dir": str(storage),
        "asset_store": f"s3://{BUCKET}/{PREFIX}/",
        "image_size": 32,
        "num_workers": 1,
        "min_images_per_class": 3,
    }
    profile.write_text(json.dumps({"dataset": dataset, "trains": [MODEL]}))
    run_config = tiny_run_config(demo_dataset, storage)
    run_config["resources"]["dataset"] = {"config": {}}  # everything from the profile in force
    run_config["resources"]["tracking"] = {"config": {"mode": "disabled"}}
    run_config["ops"]["tuned_hyperparameters"]["config"] = {MODEL: dict(TINY_LEARNER)}  # learns in ~1 s
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(PROFILE_ENV, str(profile))
        patch.delenv("DAGSTER_HOME", raising=False)
        with project_instance(storage) as instance:
            (result,) = materialize_models(defs, instance, run_config, [MODEL])
            yield {"result": result, "instance": instance, "storage": storage, "env": dict(os.environ)}


def test_every_value_of_the_graph_is_in_the_bucket_and_none_in_local_storage(s3_pipeline) -> None:
    assert s3_pipeline["result"].success
    keys = bucket_keys()
    for name in MATERIALIZED_BY_DEFAULT:
        assert any(k.startswith((f"{PREFIX}/{name}.", f"{PREFIX}/{name}/")) for k in keys), name
    assert (
        f"{PREFIX}/dataset_splits.parquet" in keys and f"{PREFIX}/tuned_hyperparameters/{MODEL}.json" in keys
    )
    assert f"{PREFIX}/production_model/{MANIFEST}" in keys and f"{PREFIX}/production_model/model.json" in keys
    assert not (s3_pipeline["storage"] / "assets").exists()
    event = s3_pipeline["instance"].get_latest_materialization_event(dg.AssetKey("production_model"))
    metadata = event.asset_materialization.metadata
    assert metadata["stored_at"].value == f"s3://{BUCKET}/{PREFIX}/production_model"
    assert SECRET not in json.dumps({k: str(v.value) for k, v in metadata.items()})


def test_load_predictor_in_a_new_process_downloads_the_production_model(s3_pipeline, demo_dataset) -> None:
    cache = s3_pipeline["storage"] / "cache" / "assets"
    shutil.rmtree(cache)  # what a fresh pod has: nothing local
    image = next(demo_dataset.glob("PTE/*.jpg"))
    code = (
        "import json, sys\nfrom neuroflux_assets.api import artifact_path, load_predictor\n"
        "p = load_predictor().predict(sys.argv[1])\n"
        "print(json.dumps({'label': p.label, 'artifact': str(artifact_path())}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(image)],
        env=s3_pipeline["env"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["label"] in ("PTE", "LO", "EO", "IPTE", "IO")
    artifact = Path(answer["artifact"])
    assert artifact.parent.parent == cache and (artifact / "model.json").is_file()
    assert not list(cache.rglob("*.partial-*"))


def test_a_replaced_remote_folder_is_downloaded_again_and_an_interrupted_download_is_never_used(
    s3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = FolderIOManager(UPath(f"s3://{BUCKET}/folders"), tmp_path / "writer-cache")
    reader = FolderIOManager(UPath(f"s3://{BUCKET}/folders"), tmp_path / "reader-cache")
    path = UPath(f"s3://{BUCKET}/folders/report")

    def publish(text: str) -> None:
        folder = tmp_path / "handed-over"
        (folder / "sub").mkdir(parents=True)
        (folder / "sub" / "report.txt").write_text(text)
        writer.dump_to_path(None, folder, path)
        assert not folder.exists()  # handed over: it became the writer's cached copy

    publish("first")
    first = reader.load_from_path(None, path)
    assert (first / "sub" / "report.txt").read_text() == "first" and not (first / MANIFEST).exists()
    publish("second, longer")
    calls = []

    def broken_get_file(*args, **kwargs):
        calls.append(args)
        raise ConnectionError("network gone")

    with monkeypatch.context() as patch:
        patch.setattr(reader.fs, "get_file", broken_get_file)
        with pytest.raises(ConnectionError):
            reader.load_from_path(None, path)
    assert calls and sorted(p.name for p in first.parent.iterdir()) == [first.name]  # no partial left
    second = reader.load_from_path(None, path)
    assert second != first and (second / "sub" / "report.txt").read_text() == "second, longer"
    assert reader.load_from_path(None, path) == second  # cached: no download while the remote is unchanged
    assert f"folders/report/{MANIFEST}" in bucket_keys("folders/")
