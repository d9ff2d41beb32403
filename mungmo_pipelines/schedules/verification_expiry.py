"""The neighbourhood verification expiry every minute, Seoul time, never piling up runs."""

from dagster import (
    DagsterRunStatus,
    DefaultScheduleStatus,
    RunRequest,
    RunsFilter,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    SkipReason,
    schedule,
)

from mungmo_pipelines.assets.verification import expiry_run_config

EXPIRY_SCHEDULE = "neighbourhood_verification_expiry_every_minute"
EXPIRY_CRON = "* * * * *"
EXPIRY_TIMEZONE = "Asia/Seoul"
# A run in any of these still holds (or waits for) the job's single slot.
IN_FLIGHT = [DagsterRunStatus.QUEUED, DagsterRunStatus.STARTING, DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]


def verification_expiry_schedule(job_name: str) -> ScheduleDefinition:
    @schedule(
        name=EXPIRY_SCHEDULE,
        cron_schedule=EXPIRY_CRON,
        execution_timezone=EXPIRY_TIMEZONE,
        job_name=job_name,
        default_status=DefaultScheduleStatus.RUNNING,
        description="Every minute (Asia/Seoul), with the tick's time as the cut-off; skips while a run is in flight.",
    )
    def every_minute(context: ScheduleEvaluationContext) -> RunRequest | SkipReason:
        """Skip instead of queueing behind a slow run, so the queue never grows (ShedLock skips too)."""
        in_flight = context.instance.get_run_records(
            RunsFilter(job_name=job_name, statuses=IN_FLIGHT), limit=1, ascending=True
        )
        tick = context.scheduled_execution_time
        if in_flight:
            run = in_flight[0].dagster_run
            return SkipReason(f"tick {tick.isoformat()} skipped: run {run.run_id} of {job_name} is {run.status.value}")
        return RunRequest(run_key=tick.isoformat(), run_config=expiry_run_config(as_of=tick))

    return every_minute
