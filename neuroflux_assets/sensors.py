"""Sensors: run the pipeline when the image folder changes; log failed runs."""

import hashlib
import os
from pathlib import Path

import dagster as dg

from neuroflux_assets.jobs import full_pipeline, pipeline_run_requests
from neuroflux_assets.resources import DatasetResource
from neuroflux_lib.data.discovery import IMAGE_EXTENSIONS


def folder_fingerprint(data_dir: str | Path) -> tuple[str, int]:
    """(digest of every image's relative path, size and mtime, file count): cheap, no file is read."""
    root = Path(data_dir)
    entries = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            path = Path(folder) / name
            if name.startswith(".") or path.suffix.lower() not in IMAGE_EXTENSIONS:
                continue
            stat = path.stat()
            entries.append(f"{path.relative_to(root)}\t{stat.st_size}\t{stat.st_mtime_ns}")
    return hashlib.sha256("\n".join(entries).encode()).hexdigest()[:16], len(entries)


@dg.sensor(
    job=full_pipeline,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Launches full_pipeline when images are added, removed or changed under the data folder",
)
def new_images(
    context: dg.SensorEvaluationContext, dataset: DatasetResource
) -> dg.SensorResult | dg.SkipReason:
    """The first tick records the folder as it is (baseline); later ticks launch a run when it changed."""
    data_dir = dataset.dataset_config().data_dir
    if not Path(data_dir).is_dir():
        return dg.SkipReason(f"data folder {data_dir} does not exist")
    digest, count = folder_fingerprint(data_dir)
    if context.cursor is None:
        return dg.SensorResult(skip_reason=f"baseline recorded: {count} images ({digest})", cursor=digest)
    if digest == context.cursor:
        return dg.SkipReason(f"no change under {data_dir} ({count} images)")
    if count == 0:
        return dg.SensorResult(skip_reason=f"{data_dir} holds no images", cursor=digest)
    context.log.info(
        f"{data_dir} changed ({context.cursor} -> {digest}, {count} images): launching full_pipeline"
    )
    requests = pipeline_run_requests(f"new_images:{digest}", tags={"neuroflux/trigger": "new_images"})
    return dg.SensorResult(run_requests=requests, cursor=digest)


@dg.run_failure_sensor(default_status=dg.DefaultSensorStatus.RUNNING, description="Logs every failed run")
def log_run_failure(context: dg.RunFailureSensorContext) -> None:
    run = context.dagster_run
    context.log.error(
        f"run {run.run_id} of {run.job_name} (partition {run.tags.get('dagster/partition', '-')}) failed: "
        f"{context.failure_event.message}"
    )
