"""Weekly retraining. Stopped by default: turn it on in the UI (Automation -> weekly_retrain -> toggle) or
with `dagster schedule start weekly_retrain -w workspace.yaml`; the daemon (`make dev`) must be running.
The cron comes from $NEUROFLUX_RETRAIN_CRON (default Monday 03:00), read when the definitions are built
(`schedules` below is a `@dg.definitions` function for that reason)."""

import os

import dagster as dg

from neuroflux_assets.defs.jobs import pipeline_run_requests, retrain

CRON_ENV = "NEUROFLUX_RETRAIN_CRON"
DEFAULT_CRON = "0 3 * * 1"


def weekly_retrain_schedule(cron: str | None = None) -> dg.ScheduleDefinition:
    cron = cron or os.environ.get(CRON_ENV) or DEFAULT_CRON

    @dg.schedule(
        name="weekly_retrain",
        job=retrain,
        cron_schedule=cron,
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description=f"Retrain every model from dataset_splits down (cron '{cron}')",
    )
    def weekly_retrain(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest]:
        when = context.scheduled_execution_time
        stamp = when.isoformat() if when else "manual"
        return pipeline_run_requests(f"weekly_retrain:{stamp}", tags={"neuroflux/trigger": "weekly_retrain"})

    return weekly_retrain


@dg.definitions
def schedules() -> dg.Definitions:
    return dg.Definitions(schedules=[weekly_retrain_schedule()])
