"""The replicated tables of the real pipelines, and the points a check compares them at.

A replicated table is a source table whose topic a sink writes into a target table. Its check
compares at what the source has *sent*: the point is the source's stored offset for the table
and the topic's end offsets, read in that order (the offset commits in the Kafka transaction of
the records it covers, so the end offsets read after it include them). The wait is until the
sink has applied the topic up to those end offsets (its positions in ``_connect_sink_offsets``);
when the check may, it runs the sink to get there (the sink's named lock keeps it to one run
at a time), otherwise it waits for whatever runs the sink.

The source is never run by a check: a second run of a source fences the first (one transactional
id per connector), and a check may run beside the source's own runs. Rows the source has not sent
yet are told by its stored offset (:class:`~mungmo_pipelines.core.consistency.jdbc.StoredOffsetRule`)
and reported in flight, so a check under writes reports no false differences.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kafka import TopicPartition
from sqlalchemy import Engine

from mungmo_pipelines.core.config.jdbc_sink import JdbcSinkConfig
from mungmo_pipelines.core.config.jdbc_source import JdbcSourceConfig
from mungmo_pipelines.core.consistency.check import CheckSettings, SyncPoints, TableSpec, check_table
from mungmo_pipelines.core.consistency.jdbc import jdbc_policy, jdbc_table_spec
from mungmo_pipelines.core.consistency.result import CheckResult
from mungmo_pipelines.core.errors import MungmoError
from mungmo_pipelines.core.kafka.clients import KafkaSettings
from mungmo_pipelines.core.sink.offsets import stored_positions
from mungmo_pipelines.core.source.offsets import (
    SourceOffsetStore,
    TimestampIncrementingOffset,
    offset_key,
    table_partition,
)
from mungmo_pipelines.core.topology import Topology

log = logging.getLogger(__name__)

WAIT_S = 30.0
POLL_S = 0.2


@dataclass(frozen=True)
class ReplicatedTable:
    """A source table, the topic the source fills with it, and the sink writing that topic's table."""

    source: JdbcSourceConfig
    sink: JdbcSinkConfig
    table: str

    @property
    def topic(self) -> str:
        return self.source.topic_for(self.table)

    @property
    def spec(self) -> TableSpec:
        return jdbc_table_spec(self.source, self.sink, self.table)

    @property
    def label(self) -> str:
        spec = self.spec
        return f"{spec.source_label} -> {self.topic} -> {spec.target_label}"


def replicated_tables(topology: Topology) -> list[ReplicatedTable]:
    """Every replicated table of the topology's pipelines whose tables are known (JDBC sources and sinks)."""
    found: list[ReplicatedTable] = []
    for node in topology.sources:
        pipeline = topology.pipeline_of(node.config)
        if pipeline is None or not isinstance(node.config, JdbcSourceConfig) or node.config.query:
            continue
        for table in node.tables or ():
            topic = node.config.topic_for(table)
            found.extend(
                ReplicatedTable(node.config, sink, table)
                for sink in pipeline.sinks
                if isinstance(sink, JdbcSinkConfig) and sink.reads_topic(topic)
            )
    return found


def stored_offset(source: JdbcSourceConfig, table: str, kafka: KafkaSettings) -> dict[str, Any] | None:
    """The source's committed offset for ``table`` (None before its first commit)."""
    try:
        stored = SourceOffsetStore(kafka, source.offsets_topic).load(source.name)
    except LookupError:  # no offsets topic yet: nothing was ever sent
        return None
    return stored.get(offset_key(source.name, table_partition(source.database, table)))


def end_offsets(kafka: KafkaSettings, topic: str) -> dict[int, int]:
    """The topic's end offsets as a ``read_committed`` consumer sees them; empty when it does not exist."""
    consumer = kafka.consumer(isolation_level="read_committed", enable_auto_commit=False)
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            return {}
        ends = consumer.end_offsets([TopicPartition(topic, p) for p in partitions])
        return {tp.partition: offset for tp, offset in ends.items()}
    finally:
        consumer.close()


class PipelineSync:
    """The points of one replicated table (:class:`SyncPoints`), and the sink runs waiting made.

    ``apply`` runs the sink (None: only wait, for ``wait_s``, for whatever runs it). A sink run that
    fails is not tried again within the check: its error is kept in ``problems`` and every wait gives
    up at once.
    """

    def __init__(
        self,
        replicated: ReplicatedTable,
        target: Engine,
        kafka: KafkaSettings,
        apply: Callable[[], object] | None = None,
        wait_s: float = WAIT_S,
    ) -> None:
        self.replicated = replicated
        self.target = target
        self.kafka = kafka
        self.apply = apply
        self.wait_s = wait_s
        self.sink_runs = 0
        self.problems: list[str] = []

    @property
    def points(self) -> SyncPoints:
        return SyncPoints(self.source_point, self.wait_until_applied)

    def source_point(self) -> dict[str, Any]:
        """What the source has sent: its stored offset, then the end offsets that include it."""
        source, table = self.replicated.source, self.replicated.table
        offset = stored_offset(source, table, self.kafka)
        ends = end_offsets(self.kafka, self.replicated.topic)
        return {"source_offset": offset, "end_offsets": {str(p): o for p, o in sorted(ends.items())}}

    def applied(self, point: dict[str, Any]) -> bool:
        topic, sink = self.replicated.topic, self.replicated.sink
        positions = stored_positions(self.target, sink.name)
        return all(
            end == 0 or positions.get(TopicPartition(topic, int(partition)), -1) >= end
            for partition, end in point["end_offsets"].items()
        )

    def wait_until_applied(self, point: dict[str, Any]) -> bool:
        deadline = time.monotonic() + self.wait_s
        while not self.applied(point):
            if self.problems or time.monotonic() > deadline:
                return False
            if self.apply is None:
                time.sleep(POLL_S)
                continue
            try:
                self.apply()
                self.sink_runs += 1
            except MungmoError as err:
                self.problems.append(f"running sink {self.replicated.sink.name!r} to apply the point failed: {err}")
                log.warning(self.problems[-1])
        return True


def check_replicated(
    replicated: ReplicatedTable,
    source: Engine,
    target: Engine,
    kafka: KafkaSettings,
    *,
    apply: Callable[[], object] | None = None,
    count_only: bool = False,
    settings: CheckSettings | None = None,
    wait_s: float = WAIT_S,
) -> CheckResult:
    """Check one replicated table at the source's point (see the module docstring). The policy's offset
    is read before the first point, so every row it counts as sent is in the end offsets waited for."""
    offset = TimestampIncrementingOffset.parse(stored_offset(replicated.source, replicated.table, kafka))
    sync = PipelineSync(replicated, target, kafka, apply, wait_s)
    result = check_table(
        source,
        target,
        replicated.spec,
        sync=sync.points,
        policy=jdbc_policy(replicated.source, offset),
        settings=settings,
        count_only=count_only,
    )
    result.notes.extend(sync.problems)
    return result
