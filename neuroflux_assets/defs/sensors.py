"""Sensors: run the pipeline when the image folder changes, score new batch folders, log failed runs, and
evaluate drift_reference's automation condition.

The sensors that launch training or scoring start stopped (a person decides when the machine is busy);
`drift_reference_automation` starts running: it only refreshes a small JSON summary, no model is trained
or run, and without it drift_reference would lag behind a newly promoted model until the next batch.
"""

import hashlib
import os
from pathlib import Path

import dagster as dg

# The module, not its jobs: a job imported by name would be found (and registered) here a second time.
from neuroflux_assets.defs import jobs
from neuroflux_assets.instance import has_materialization
from neuroflux_assets.partitions import incoming_batches
from neuroflux_assets.resources import DatasetResource
from neuroflux_lib.data.discovery import IMAGE_EXTENSIONS
from neuroflux_lib.serving.incoming import batch_folders


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
    job=jobs.full_pipeline,
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
    requests = jobs.pipeline_run_requests(f"new_images:{digest}", tags={"neuroflux/trigger": "new_images"})
    return dg.SensorResult(run_requests=requests, cursor=digest)


@dg.sensor(
    job=jobs.score_incoming,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Adds a partition of incoming_predictions for each new batch folder under incoming_dir and "
    "scores it",
)
def new_incoming_batches(
    context: dg.SensorEvaluationContext, dataset: DatasetResource
) -> dg.SensorResult | dg.SkipReason:
    """A batch folder is new when it has no partition yet (copy a batch under a hidden `.name` and rename
    it when complete: hidden folders are not batches). Waits, without forgetting the folders, until a
    production model exists."""
    incoming_dir = dataset.dataset_config().incoming_dir
    known = set(context.instance.get_dynamic_partitions(incoming_batches.name))
    new = [name for name in batch_folders(incoming_dir) if name not in known]
    if not new:
        return dg.SkipReason(f"no new batch folder with images under {incoming_dir}")
    if not has_materialization(context.instance, dg.AssetKey("production_model"), None):
        return dg.SkipReason(f"{len(new)} new batch(es) waiting: no production_model to score them with yet")
    context.log.info(f"new batches under {incoming_dir}: {', '.join(new)}")
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=f"incoming:{name}", partition_key=name) for name in new],
        dynamic_partitions_requests=[incoming_batches.build_add_request(new)],
    )


@dg.run_failure_sensor(default_status=dg.DefaultSensorStatus.RUNNING, description="Logs every failed run")
def log_run_failure(context: dg.RunFailureSensorContext) -> None:
    run = context.dagster_run
    context.log.error(
        f"run {run.run_id} of {run.job_name} (partition {run.tags.get('dagster/partition', '-')}) failed: "
        f"{context.failure_event.message}"
    )


drift_reference_automation = dg.AutomationConditionSensorDefinition(
    "drift_reference_automation",
    target=dg.AssetSelection.assets("drift_reference"),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Rematerializes drift_reference when production_model or the data it summarizes changes "
    "(its eager() automation condition); running by default, see the module docstring",
)
