"""The neighbourhood verification expiry every minute, Seoul time: a run only when a verification is due.

Each tick first looks for a run in flight (and skips, so runs never pile up behind a slow one),
then reads one entry of the members table's verification index: no verification due at the
tick's cut-off, or no members table yet, is a skip with the reason; only a due verification
asks for a run, with the tick's time as its cut-off. On an idle table that is no run at all,
where running every minute made 1,440 runs a day.
"""

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

from mungmo_pipelines.assets.verification import expiry_run_config, iso
from mungmo_pipelines.core.expiry.members import probe_due
from mungmo_pipelines.resources import MariaDBResource, VerificationExpiryResource

EXPIRY_SCHEDULE = "neighbourhood_verification_expiry_every_minute"
EXPIRY_CRON = "* * * * *"
EXPIRY_TIMEZONE = "Asia/Seoul"
# A run in any of these still holds (or waits for) the job's single slot.
IN_FLIGHT = [DagsterRunStatus.QUEUED, DagsterRunStatus.STARTING, DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]
OLDEST_DUE_TAG = "mungmo/oldest_due"


def verification_expiry_schedule(job_name: str) -> ScheduleDefinition:
    @schedule(
        name=EXPIRY_SCHEDULE,
        cron_schedule=EXPIRY_CRON,
        execution_timezone=EXPIRY_TIMEZONE,
        job_name=job_name,
        default_status=DefaultScheduleStatus.RUNNING,
        description="Every minute (Asia/Seoul), with the tick's time as the cut-off; runs only when a "
        "verification is due, and skips while a run is in flight.",
    )
    def every_minute(
        context: ScheduleEvaluationContext, mariadb: MariaDBResource, verification: VerificationExpiryResource
    ) -> RunRequest | SkipReason:
        """Skip instead of queueing behind a slow run, so the queue never grows (ShedLock skips too)."""
        tick = context.scheduled_execution_time
        in_flight = context.instance.get_run_records(
            RunsFilter(job_name=job_name, statuses=IN_FLIGHT), limit=1, ascending=True
        )
        if in_flight:
            run = in_flight[0].dagster_run
            return SkipReason(f"tick {tick.isoformat()} skipped: run {run.run_id} of {job_name} is {run.status.value}")
        table = verification.members_table()
        probe = probe_due(mariadb.kept_engine(verification.connection()), table, tick)
        if probe.absent:
            return SkipReason(f"tick {tick.isoformat()} skipped: {probe.absent}")
        if probe.oldest_due is None:
            return SkipReason(
                f"tick {tick.isoformat()}: nothing to expire (no verification granted at or before "
                f"{iso(table.cutoff(tick))} is still active)"
            )
        return RunRequest(
            run_key=tick.isoformat(),
            run_config=expiry_run_config(as_of=tick),
            tags={OLDEST_DUE_TAG: iso(probe.oldest_due)},
        )

    return every_minute
