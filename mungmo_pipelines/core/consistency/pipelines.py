"""The replicated tables of the real pipelines, and the points a check compares them at.

A replicated table is a source table whose topic a sink writes into a target table: a JDBC source's
table and a JDBC sink, or a table a Debezium CDC source captures and a sink that writes its change
events (Debezium's JDBC sink, or the JDBC sink behind ``ExtractNewRecordState``). Its check
compares at what the source has *sent*: the point is the source's stored offset (a JDBC source's
for the table, a CDC source's binlog position) and the topic's end offsets, read in that order (the
offset commits in the Kafka transaction of the records it covers, so the end offsets read after it
include them). The wait is until the sink has applied the topic up to those end offsets (its
positions in ``_connect_sink_offsets``); when the check may, it runs the sink to get there (the
sink's named lock keeps it to one run at a time), otherwise it waits for whatever runs the sink.

The source is never run by a check: a second run of a source fences the first (one transactional
id per connector), and a check may run beside the source's own runs. Rows the source has not sent
yet are told by its stored offset (a JDBC source's as SQL over its rows,
:class:`~mungmo_pipelines.core.consistency.jdbc.StoredOffsetRule`; a CDC source's by the keys its
binary log changed after the position, :class:`~mungmo_pipelines.core.consistency.cdc.BinlogChanges`)
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

from mungmo_pipelines.core.config.debezium_source import DebeziumSourceConfig
from mungmo_pipelines.core.config.jdbc_sink import JdbcSinkConfig
from mungmo_pipelines.core.config.jdbc_source import JdbcSourceConfig
from mungmo_pipelines.core.config.sink import SinkConfig
from mungmo_pipelines.core.consistency.cdc import cdc_notes, cdc_policy, cdc_table_spec, readable_sink
from mungmo_pipelines.core.consistency.check import CheckSettings, SyncPoints, TableSpec, check_table
from mungmo_pipelines.core.consistency.jdbc import jdbc_policy, jdbc_table_spec
from mungmo_pipelines.core.consistency.policy import ModePolicy
from mungmo_pipelines.core.consistency.result import CheckResult
from mungmo_pipelines.core.errors import MungmoError
from mungmo_pipelines.core.kafka.clients import KafkaSettings
from mungmo_pipelines.core.mariadb.connection import server_of
from mungmo_pipelines.core.sink.offsets import stored_positions
from mungmo_pipelines.core.source.cdc.offsets import server_partition
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
    """A source table, the topic the source fills with it, and the sink writing that topic's table
    (``table``: a JDBC source's table name, a CDC source's ``db.table``)."""

    source: JdbcSourceConfig | DebeziumSourceConfig
    sink: SinkConfig
    table: str

    @property
    def topic(self) -> str:
        return self.source.topic_for(self.table)

    @property
    def spec(self) -> TableSpec:
        if isinstance(self.source, DebeziumSourceConfig):
            return cdc_table_spec(self.source, self.sink, self.table)
        assert isinstance(self.sink, JdbcSinkConfig)
        return jdbc_table_spec(self.source, self.sink, self.table)

    @property
    def mode(self) -> str:
        """The source's replication mode, as the policy names it ("cdc" for the binlog source)."""
        return "cdc" if isinstance(self.source, DebeziumSourceConfig) else str(self.source.mode)

    @property
    def label(self) -> str:
        spec = self.spec
        return f"{spec.source_label} -> {self.topic} -> {spec.target_label}"

    def policy(self, source: Engine, kafka: KafkaSettings) -> ModePolicy:
        """The source's mode and what it has sent: a JDBC source's offset read now (before the first
        point, so every row it counts as sent is in the end offsets waited for); a CDC source's binary
        log, read on the server ``source`` connects to, from each point's position."""
        if isinstance(self.source, DebeziumSourceConfig):
            return cdc_policy(server_of(source), self.table, self.spec.zone)
        offset = stored_offset(self.source, self.table, kafka)
        return jdbc_policy(self.source, TimestampIncrementingOffset.parse(offset))

    def notes(self) -> list[str]:
        """What the pair does not carry, for the result."""
        if isinstance(self.source, DebeziumSourceConfig):
            return cdc_notes(self.source, self.sink)
        return []


def replicated_tables(topology: Topology) -> list[ReplicatedTable]:
    """Every replicated table of the topology's pipelines whose tables are known: JDBC sources and
    sinks, CDC sources and the sinks that write their change events."""
    found: list[ReplicatedTable] = []
    for node in topology.sources:
        source = node.config
        pipeline = topology.pipeline_of(source)
        if pipeline is None or (isinstance(source, JdbcSourceConfig) and source.query):
            continue
        for table in node.tables or ():
            topic = source.topic_for(table)
            found.extend(
                ReplicatedTable(source, sink, table)
                for sink in pipeline.sinks
                if sink.reads_topic(topic) and _writes_rows_of(source, sink)
            )
    return found


def _writes_rows_of(source: JdbcSourceConfig | DebeziumSourceConfig, sink: SinkConfig) -> bool:
    if isinstance(source, DebeziumSourceConfig):
        return readable_sink(sink)
    return isinstance(sink, JdbcSinkConfig)


def stored_offset(
    source: JdbcSourceConfig | DebeziumSourceConfig, table: str, kafka: KafkaSettings
) -> dict[str, Any] | None:
    """The source's committed offset for ``table``: a JDBC source's per table, a CDC source's one binlog
    position for every table (None before its first commit)."""
    if isinstance(source, DebeziumSourceConfig):
        partition = server_partition(source.topic_prefix)
    else:
        partition = table_partition(source.database, table)
    try:
        stored = SourceOffsetStore(kafka, source.offsets_topic).load(source.name)
    except LookupError:  # no offsets topic yet: nothing was ever sent
        return None
    return stored.get(offset_key(source.name, partition))


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
    """Check one replicated table at the source's point (see the module docstring and
    :meth:`ReplicatedTable.policy`)."""
    policy = replicated.policy(source, kafka)
    sync = PipelineSync(replicated, target, kafka, apply, wait_s)
    result = check_table(
        source,
        target,
        replicated.spec,
        sync=sync.points,
        policy=policy,
        settings=settings,
        count_only=count_only,
    )
    result.notes.extend([*replicated.notes(), *sync.problems])
    return result
