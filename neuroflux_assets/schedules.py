"""Weekly retraining. Stopped by default: turn it on in the UI (Automation -> weekly_retrain -> toggle) or
with `dagster schedule start weekly_retrain -m neuroflux_assets.definitions`; the daemon (`make dev`)
must be running. Cron from $NEUROFLUX_RETRAIN_CRON (default Monday 03:00)."""

import os

import dagster as dg

from neuroflux_assets.jobs import pipeline_run_requests, retrain

RETRAIN_CRON = os.environ.get("NEUROFLUX_RETRAIN_CRON", "0 3 * * 1")


@dg.schedule(
    job=retrain,
    cron_schedule=RETRAIN_CRON,
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description=f"Retrain every model from dataset_splits down (cron '{RETRAIN_CRON}')",
)
def weekly_retrain(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest]:
    stamp = context.scheduled_execution_time.isoformat() if context.scheduled_execution_time else "manual"
    return pipeline_run_requests(f"weekly_retrain:{stamp}", tags={"neuroflux/trigger": "weekly_retrain"})
