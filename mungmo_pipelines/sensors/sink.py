"""One lag sensor per sink connector: it requests the connector's job while records wait in its topics.

Lag is measured the way the sink resumes: offsets stored in the target database (else the
consumer group's, else the topic's beginning) against the end offsets a ``read_committed``
consumer sees. The run key is derived from those end offsets, so one backlog never starts two
runs (Dagster drops a repeated run key). The sensor stays quiet while a run that writes this
connector's tables is about to start, and while a pipeline job (source, then this sink) runs,
since its sink step takes what its source step published. While the connector's own job runs,
records that arrived after it started get a run of their own, which waits for the first one on
the connector's database lock: its process starts meanwhile, which saves seconds of latency.
The cursor keeps the last measurement as JSON. A failed run is requested again once new
records arrive, or retried from the UI.
"""

import hashlib
import json
from collections.abc import Sequence

from dagster import (
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
from mungmo_pipelines.core.config import SinkConnectorConfig
from mungmo_pipelines.core.sink_offsets import SinkLag, measure_lag
from mungmo_pipelines.resources import KafkaResource, MariaDBResource
from mungmo_pipelines.sensors import DAEMON_LOOP_S, daemon_interval

STARTING = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING]
RUNNING = [DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]


def lag_run_key(lag: SinkLag) -> str:
    """Stable for one set of end offsets: the same backlog always gets the same key."""
    ends = json.dumps(lag.end_offsets(), sort_keys=True, separators=(",", ":"))
    return f"{lag.connector}@{hashlib.sha1(ends.encode()).hexdigest()[:16]}"


def lag_cursor(lag: SinkLag) -> str:
    return json.dumps(
        {"lag": lag.total, "end_offsets": lag.end_offsets(), "positions": lag.positions()},
        sort_keys=True,
        separators=(",", ":"),
    )


def sink_lag_sensor(config: SinkConnectorConfig, job: str, other_writers: Sequence[str]) -> SensorDefinition:
    """``job`` is the connector's own job; ``other_writers`` the other jobs that run it (pipelines, all)."""

    @sensor(
        name=lag_sensor_name(config),
        job_name=job,
        minimum_interval_seconds=daemon_interval(DAEMON_LOOP_S),  # every daemon loop
        default_status=DefaultSensorStatus.STOPPED,
        description=f"Requests `{job}` while sink connector `{config.name}` has consumer lag.",
    )
    def lag_sensor(context: SensorEvaluationContext, mariadb: MariaDBResource, kafka: KafkaResource) -> SensorResult:
        for writer, statuses in [(job, STARTING), *((other, STARTING + RUNNING) for other in other_writers)]:
            busy = context.instance.get_runs(filters=RunsFilter(job_name=writer, statuses=statuses), limit=1)
            if busy:
                state = busy[0].status.value.lower()
                return SensorResult(skip_reason=SkipReason(f"run {busy[0].run_id} of {writer} is {state}"))
        lag = measure_lag(config, mariadb.engine(config.connection), kafka.settings())
        cursor = lag_cursor(lag)
        if lag.total == 0:
            missing = f"; topics not created yet: {', '.join(lag.missing_topics)}" if lag.missing_topics else ""
            return SensorResult(skip_reason=SkipReason(f"no lag{missing}"), cursor=cursor)
        return SensorResult(
            run_requests=[RunRequest(run_key=lag_run_key(lag), tags={"mungmo/lag": str(lag.total)})],
            cursor=cursor,
        )

    return lag_sensor
