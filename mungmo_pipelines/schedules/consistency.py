"""The consistency checks on a schedule: every table's rows compared nightly, its row counts hourly.

The nightly rows check is on by default; the hourly count check is off by default (turn it on in
the UI's Automation tab, or ``dagster schedule start``). Both run in Asia/Seoul time, like the
expiry, and skip a tick while the previous run of their job is still going.
"""

from dagster import (
    DefaultScheduleStatus,
    RunRequest,
    RunsFilter,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    SkipReason,
    schedule,
)

from mungmo_pipelines.checks.consistency import COUNT_CHECK_JOB, ROWS_CHECK_JOB
from mungmo_pipelines.schedules.verification_expiry import EXPIRY_TIMEZONE, IN_FLIGHT

ROWS_SCHEDULE = "consistency_rows_check_nightly"
ROWS_CRON = "0 3 * * *"
COUNT_SCHEDULE = "consistency_count_check_hourly"
COUNT_CRON = "30 * * * *"

_SCHEDULES = {
    ROWS_CHECK_JOB: (ROWS_SCHEDULE, ROWS_CRON, DefaultScheduleStatus.RUNNING, "Every night at 03:00"),
    COUNT_CHECK_JOB: (COUNT_SCHEDULE, COUNT_CRON, DefaultScheduleStatus.STOPPED, "Every hour at :30"),
}


def consistency_schedule(job_name: str) -> ScheduleDefinition:
    """The schedule of one of the check jobs (``ROWS_CHECK_JOB`` or ``COUNT_CHECK_JOB``)."""
    name, cron, status, when = _SCHEDULES[job_name]

    @schedule(
        name=name,
        cron_schedule=cron,
        execution_timezone=EXPIRY_TIMEZONE,
        job_name=job_name,
        default_status=status,
        description=f"{when} ({EXPIRY_TIMEZONE}): `{job_name}`; skips while its previous run is in flight.",
    )
    def check_schedule(context: ScheduleEvaluationContext) -> RunRequest | SkipReason:
        in_flight = context.instance.get_run_records(RunsFilter(job_name=job_name, statuses=IN_FLIGHT), limit=1)
        tick = context.scheduled_execution_time
        if in_flight:
            return SkipReason(f"tick {tick.isoformat()} skipped: run {in_flight[0].dagster_run.run_id} is in flight")
        return RunRequest(run_key=tick.isoformat())

    return check_schedule
