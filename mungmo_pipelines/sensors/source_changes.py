"""A change sensor per source connector: the Kafka Connect poll loop, as Dagster runs.

Each tick compares the newest value of every table's offset column (one indexed ``MAX()``; for a
CDC source, the binlog head: ``SHOW MASTER STATUS``, no rows read) with the offset stored in the
offsets topic, read incrementally from where the previous tick
stopped (positions and offsets live in the sensor's JSON cursor), and requests one run of
the target job when a table is behind. The ``run_key`` is derived from what was probed, so
one change never triggers two runs; a run that could not catch up (rows held back by an open
transaction, or timestamps still inside ``timestamp.delay.interval.ms``) is retried once per
poll interval with a numbered ``run_key``.

Two runs of one source must never overlap: they would fence each other's transactional
producer. Nothing is requested while a job that runs the source is waiting to start, or while
one other than the target job runs. While a target run is already going, rows that arrived
after it was requested get a run of their own only when the instance's run queue holds it
until the first one ends (``dagster.yaml``: a limit of 1 per value of the ``mungmo/source``
tag); it then starts about a second after, instead of waiting for the next tick.
"""

import hashlib
import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from dagster import (
    DagsterInstance,
    DagsterRunStatus,
    DefaultSensorStatus,
    QueuedRunCoordinator,
    RunRequest,
    RunsFilter,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from mungmo_pipelines.assets.keys import change_sensor_name
from mungmo_pipelines.core.config.debezium_source import DebeziumSourceConfig
from mungmo_pipelines.core.config.jdbc_source import JdbcSourceConfig, SourceMode
from mungmo_pipelines.core.config.loader import SourceConfig
from mungmo_pipelines.core.source.cdc.offsets import server_partition
from mungmo_pipelines.core.source.cdc.probe import probe_binlog
from mungmo_pipelines.core.source.offsets import GAP_HORIZON, SourceOffsetStore, offset_key
from mungmo_pipelines.core.source.probe import probe_changes
from mungmo_pipelines.operations.gate import not_running_reason
from mungmo_pipelines.resources import KafkaResource, MariaDBResource
from mungmo_pipelines.sensors import DAEMON_LOOP_S, RUNNING, WAITING_TO_START, daemon_interval

CONNECTOR_TAG = "mungmo/source"
IN_PROGRESS = WAITING_TO_START + RUNNING


def queue_runs_one_per_source(instance: DagsterInstance) -> bool:
    """Whether the run queue starts at most one run per value of the ``mungmo/source`` tag."""
    queue = instance.get_concurrency_config().run_queue_config
    if not isinstance(instance.run_coordinator, QueuedRunCoordinator) or queue is None:
        return False  # runs launch at once: nothing holds the second one back
    return any(
        limit.get("key") == CONNECTOR_TAG
        and limit.get("value") == {"applyLimitPerUniqueValue": True}
        and limit.get("limit") == 1
        for limit in queue.tag_concurrency_limits
    )


@dataclass
class ChangeCursor:
    """What the sensor keeps between ticks (JSON in Dagster's cursor)."""

    positions: dict[str, int] = field(default_factory=dict)
    offsets: dict[str, dict] = field(default_factory=dict)
    state: str = ""
    attempt: int = 0
    requested_at: float = 0.0

    @classmethod
    def load(cls, text: str | None) -> "ChangeCursor":
        return cls(**json.loads(text)) if text else cls()

    def dump(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def poll_seconds(config: SourceConfig) -> int:
    """``poll.interval.ms`` in whole seconds, no shorter than the daemon's loop."""
    return max(DAEMON_LOOP_S, math.ceil(config.poll_interval_ms / 1000))


def minimum_interval_seconds(config: SourceConfig) -> int:
    """What the sensor asks the daemon for, so that it ticks every ``poll_seconds``."""
    return daemon_interval(poll_seconds(config))


def jdbc_probe(
    config: JdbcSourceConfig, mariadb: MariaDBResource, offsets: dict[bytes, dict], now: float
) -> tuple[list[str], str]:
    """The tables with rows past their offsets (one ``MAX()`` each), and a digest of what was probed."""
    engine = mariadb.engine(config.connection)
    try:
        probes = probe_changes(config, engine, offsets)
    finally:
        engine.dispose()
    behind = [p.table for p in probes if p.behind]
    if config.mode is SourceMode.BULK:
        return behind, f"bulk-{int(now // poll_seconds(config))}"
    # The gap horizon is the source's own note, not progress: a held-back run that only
    # stored one must wait a poll interval like any other retry.
    probed = [(p.table, p.newest, {k: v for k, v in (p.stored or {}).items() if k != GAP_HORIZON}) for p in probes]
    return behind, hashlib.sha256(json.dumps(probed, sort_keys=True).encode()).hexdigest()[:16]


def cdc_probe(
    config: DebeziumSourceConfig, mariadb: MariaDBResource, offsets: dict[bytes, dict]
) -> tuple[list[str], str]:
    """The binlog head against the stored position (no rows read), and a digest of both."""
    stored = offsets.get(offset_key(config.name, server_partition(config.topic_prefix)))
    probe = probe_binlog(config, config.connection.on_server(mariadb.server_url), stored)
    state = hashlib.sha256(json.dumps([str(probe.head.gtids), stored], sort_keys=True).encode()).hexdigest()[:16]
    return ([probe.reason] if probe.behind else []), state


def source_change_sensor(config: SourceConfig, target_job: str, source_jobs: Sequence[str] = ()) -> SensorDefinition:
    """Requests ``target_job`` when ``config``'s tables have rows past their offsets (a CDC source:
    when the binlog head is past its stored position).

    ``source_jobs`` are the other jobs that run this source (its own job, pipelines, all); none of
    them may be queued or running when a run is requested.
    """
    interval, poll = minimum_interval_seconds(config), poll_seconds(config)
    cdc = isinstance(config, DebeziumSourceConfig)
    nothing_to_do = "the binlog head is at the stored position" if cdc else "every table is at its offset"
    what = "binlog of" if cdc else "tables of"
    # Ticks are a poll interval apart give or take the evaluations' own time: a second of slack
    # keeps a retry from slipping to the tick after.
    retry_after_s = poll - 1
    busy_jobs = list(dict.fromkeys([target_job, *source_jobs]))

    @sensor(
        name=change_sensor_name(config),
        job_name=target_job,
        minimum_interval_seconds=interval,
        default_status=DefaultSensorStatus.STOPPED,
        description=f"Polls the {what} source connector `{config.name}` every {poll}s "
        f"(poll.interval.ms={config.poll_interval_ms}) and runs `{target_job}` when it is past the stored offsets.",
    )
    def changes(context: SensorEvaluationContext, mariadb: MariaDBResource, kafka: KafkaResource) -> SensorResult:
        paused = not_running_reason(kafka, config.name)
        if paused is not None:
            return SensorResult(skip_reason=SkipReason(f"{paused}: no runs requested"), cursor=context.cursor)
        cursor = ChangeCursor.load(context.cursor)
        store = SourceOffsetStore(kafka.settings(), config.offsets_topic)
        try:
            known = {k.encode(): v for k, v in cursor.offsets.items()}
            since = {int(p): o for p, o in cursor.positions.items()}
            offsets, positions = store.read(config.name, since, known)
        except LookupError:  # no offsets topic yet: nothing was ever delivered
            offsets, positions = {}, {}
        cursor.offsets = {k.decode(): v for k, v in offsets.items()}
        cursor.positions = {str(p): o for p, o in positions.items()}
        if isinstance(config, DebeziumSourceConfig):
            behind, state = cdc_probe(config, mariadb, offsets)
        else:
            behind, state = jdbc_probe(config, mariadb, offsets, time.time())
        if not behind:
            cursor.state, cursor.attempt = "", 0
            return SensorResult(skip_reason=SkipReason(nothing_to_do), cursor=cursor.dump())
        in_flight = None  # a started run of the target job a new run can queue behind
        for job in busy_jobs:
            running = context.instance.get_runs(filters=RunsFilter(job_name=job, statuses=IN_PROGRESS), limit=1)
            if not running:
                continue
            run = running[0]
            if (
                job == target_job
                and run.status == DagsterRunStatus.STARTED
                and queue_runs_one_per_source(context.instance)
            ):
                in_flight = run
                continue
            return SensorResult(
                skip_reason=SkipReason(f"run {run.run_id} of {job} is {run.status.value.lower()}"), cursor=cursor.dump()
            )
        now = time.time()
        if state == cursor.state:
            if in_flight is not None:
                return SensorResult(
                    skip_reason=SkipReason(f"run {in_flight.run_id} of {target_job} is reading these rows"),
                    cursor=cursor.dump(),
                )
            if now - cursor.requested_at < retry_after_s:
                return SensorResult(
                    skip_reason=SkipReason("waiting a poll interval before retrying"), cursor=cursor.dump()
                )
            cursor.attempt += 1
        else:
            cursor.state, cursor.attempt = state, 0
        cursor.requested_at = now
        request = RunRequest(
            run_key=f"{config.name}:{state}:{cursor.attempt}",
            tags={CONNECTOR_TAG: config.name},
        )
        context.log.info(f"{config.name}: {', '.join(behind)} behind their offsets (attempt {cursor.attempt})")
        return SensorResult(run_requests=[request], cursor=cursor.dump())

    return changes
