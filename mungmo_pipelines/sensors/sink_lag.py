"""One lag sensor per sink connector: it requests the connector's job while records wait in its topics.

Lag is measured the way the sink resumes: offsets stored in the target database (else the
consumer group's, else the topic's beginning) against the end offsets a ``read_committed``
consumer sees. The run key is derived from those end offsets, so one backlog never starts two
runs (Dagster drops a repeated run key). The sensor stays quiet while a run that writes this
connector's tables is about to start, and while a pipeline job (source, then this sink) runs,
since its sink step takes what its source step published. While the connector's own job runs,
records that arrived after it started get a run of their own, which waits for the first one on
the connector's database lock: its process starts meanwhile, which saves seconds of latency.
The cursor keeps the last measurement as JSON. A failed run is requested again at once when
new records arrive (new end offsets, new key); for the same backlog, after a backoff that
doubles with each failed attempt, under a numbered run key.
"""

import hashlib
import json
import math
import time
from collections.abc import Sequence

from dagster import (
    DagsterInstance,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from mungmo_pipelines.assets.keys import lag_sensor_name
from mungmo_pipelines.core.config.sink import SinkConfig
from mungmo_pipelines.core.sink.lag import SinkLag, measure_lag
from mungmo_pipelines.operations.gate import not_running_reason
from mungmo_pipelines.resources import KafkaResource, MariaDBResource
from mungmo_pipelines.sensors import DAEMON_LOOP_S, RUNNING, WAITING_TO_START, daemon_interval

BACKLOG_TAG = "mungmo/backlog"
RETRY_BACKOFF_S = 30
RETRY_BACKOFF_MAX_S = 600


def lag_run_key(lag: SinkLag) -> str:
    """Stable for one set of end offsets: the same backlog always gets the same key."""
    ends = json.dumps(lag.end_offsets(), sort_keys=True, separators=(",", ":"))
    return f"{lag.connector}@{hashlib.sha1(ends.encode()).hexdigest()[:16]}"


def backlog_run_key(instance: DagsterInstance, job: str, key: str) -> tuple[str, str | None]:
    """The run key to request for the backlog ``key`` now, or why to wait.

    A failed run of this backlog is retried once its backoff has passed; after anything else
    (no run yet, one in flight, one that succeeded) the backlog's own key is right, and
    Dagster starts a run for it only once.
    """
    backlog = RunsFilter(job_name=job, tags={BACKLOG_TAG: key})
    latest = instance.get_run_records(filters=backlog, limit=1)
    if not latest or latest[0].dagster_run.status != DagsterRunStatus.FAILURE:
        return key, None
    attempts = instance.get_runs_count(filters=backlog)
    failed_at = latest[0].end_time or latest[0].update_timestamp.timestamp()
    wait = min(RETRY_BACKOFF_S * 2 ** (attempts - 1), RETRY_BACKOFF_MAX_S) - (time.time() - failed_at)
    if wait > 0:
        return key, f"run {latest[0].dagster_run.run_id} for this backlog failed; next attempt in {math.ceil(wait)}s"
    return f"{key}:retry-{attempts}", None


def lag_cursor(lag: SinkLag) -> str:
    return json.dumps(
        {"lag": lag.total, "end_offsets": lag.end_offsets(), "positions": lag.positions()},
        sort_keys=True,
        separators=(",", ":"),
    )


def sink_lag_sensor(config: SinkConfig, job: str, other_writers: Sequence[str]) -> SensorDefinition:
    """``job`` is the connector's own job; ``other_writers`` the other jobs that run it (pipelines, all)."""

    @sensor(
        name=lag_sensor_name(config),
        job_name=job,
        minimum_interval_seconds=daemon_interval(DAEMON_LOOP_S),  # every daemon loop
        default_status=DefaultSensorStatus.STOPPED,
        description=f"Requests `{job}` while sink connector `{config.name}` has consumer lag.",
    )
    def lag_sensor(context: SensorEvaluationContext, mariadb: MariaDBResource, kafka: KafkaResource) -> SensorResult:
        paused = not_running_reason(kafka, config.name)
        if paused is not None:
            return SensorResult(skip_reason=SkipReason(f"{paused}: no runs requested"), cursor=context.cursor)
        watched = [(job, WAITING_TO_START), *((other, WAITING_TO_START + RUNNING) for other in other_writers)]
        for writer, statuses in watched:
            busy = context.instance.get_runs(filters=RunsFilter(job_name=writer, statuses=statuses), limit=1)
            if busy:
                state = busy[0].status.value.lower()
                return SensorResult(skip_reason=SkipReason(f"run {busy[0].run_id} of {writer} is {state}"))
        lag = measure_lag(config, mariadb.engine(config.connection), kafka.settings())
        cursor = lag_cursor(lag)
        if lag.total == 0:
            missing = f"; topics not created yet: {', '.join(lag.missing_topics)}" if lag.missing_topics else ""
            return SensorResult(skip_reason=SkipReason(f"no lag{missing}"), cursor=cursor)
        backlog = lag_run_key(lag)
        run_key, wait = backlog_run_key(context.instance, job, backlog)
        if wait is not None:
            return SensorResult(skip_reason=SkipReason(wait), cursor=cursor)
        return SensorResult(
            run_requests=[RunRequest(run_key=run_key, tags={"mungmo/lag": str(lag.total), BACKLOG_TAG: backlog})],
            cursor=cursor,
        )

    return lag_sensor
