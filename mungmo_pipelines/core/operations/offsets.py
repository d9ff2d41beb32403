"""Connector offsets read, reset and set with Kafka Connect's shapes (KIP-875).

The REST body is ``{"offsets": [{"partition": {...}, "offset": {...}}]}``; a ``null`` offset resets
that partition. Each kind of connector keeps its offsets its own way, so each connector class
registers a :class:`ConnectorOffsets` factory in :data:`OFFSET_KINDS`:

* sources whose runtime stores offsets in an offsets topic (:class:`TopicSourceOffsets`): the
  partition and offset are whatever their reader writes; a reader plugs in by subclassing and
  saying which partitions and offsets are valid and how their keys are ordered (the topic's key
  is the JSON ``["<connector>", partition]`` byte for byte, so key order matters). The JDBC
  source's partition is ``{"protocol": "1", "table": "<db>.<table>"}`` or ``{"query": "query"}``;
* sinks (:class:`SinkOffsets`): partition ``{"kafka_topic": ..., "kafka_partition": ...}``, offset
  ``{"kafka_offset": ...}``, kept in the target database's ``_connect_sink_offsets`` AND the
  consumer group ``connect-<name>``: both move together, so a reset never falls back to the group.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Mapping
from contextlib import closing
from dataclasses import dataclass
from typing import Any, Protocol

from kafka import TopicPartition
from kafka.errors import GroupIdNotFoundError
from kafka.structs import OffsetAndMetadata
from pymysql.err import ProgrammingError
from sqlalchemy import Engine

from mungmo_pipelines.core.config.base import ConnectorConfig
from mungmo_pipelines.core.config.debezium_source import DebeziumSourceConfig
from mungmo_pipelines.core.config.jdbc_source import JdbcSourceConfig, SourceMode
from mungmo_pipelines.core.config.sink import SinkConfig
from mungmo_pipelines.core.connect.json_converter import dumps
from mungmo_pipelines.core.errors import BadRequest
from mungmo_pipelines.core.kafka.clients import KafkaSettings
from mungmo_pipelines.core.mariadb.connection import JdbcConnection
from mungmo_pipelines.core.mariadb.dialect import NO_SUCH_TABLE
from mungmo_pipelines.core.sink.offsets import OFFSETS_TABLE, OffsetStore, stored_positions
from mungmo_pipelines.core.source.cdc.offsets import CdcOffset, server_partition
from mungmo_pipelines.core.source.offsets import (
    GAP_HORIZON,
    OFFSET_PROTOCOL,
    QUERY_PARTITION,
    SourceOffsetStore,
    offset_key,
    table_partition,
)

KAFKA_TOPIC, KAFKA_PARTITION, KAFKA_OFFSET = "kafka_topic", "kafka_partition", "kafka_offset"

EngineFor = Callable[[JdbcConnection], Engine]


@dataclass(frozen=True)
class ConnectorOffset:
    """One partition and its offset (``None``: reset that partition)."""

    partition: dict[str, Any]
    offset: dict[str, Any] | None

    def to_json(self) -> dict[str, Any]:
        return {"partition": self.partition, "offset": self.offset}


def parse_offsets_body(body: Any) -> list[ConnectorOffset]:
    """The body of ``PATCH /connectors/{name}/offsets``, checked for Kafka Connect's shape."""
    if not isinstance(body, dict) or not isinstance(body.get("offsets"), list) or not body["offsets"]:
        raise BadRequest("Partitions / offsets need to be provided for an alter offsets request")
    entries = []
    for entry in body["offsets"]:
        if not isinstance(entry, dict) or not isinstance(entry.get("partition"), dict):
            raise BadRequest(
                'expected each element of "offsets" to be {"partition": {...}, "offset": {...} or null}, '
                f"got {json.dumps(entry)}"
            )
        offset = entry.get("offset")
        if offset is not None and not isinstance(offset, dict):
            raise BadRequest(f'expected "offset" to be a JSON object or null, got {json.dumps(offset)}')
        entries.append(ConnectorOffset(entry["partition"], offset))
    return entries


def offsets_json(offsets: list[ConnectorOffset]) -> dict[str, Any]:
    """``GET /connectors/{name}/offsets``'s body."""
    return {"offsets": [o.to_json() for o in offsets]}


class ConnectorOffsets(Protocol):
    """Where one connector keeps its offsets, with Kafka Connect's partition and offset shapes."""

    def read(self) -> list[ConnectorOffset]: ...

    def reset(self) -> None:
        """Forget every offset: the next run starts from the beginning."""
        ...

    def alter(self, offsets: list[ConnectorOffset]) -> None:
        """Set (or, for a ``None`` offset, reset) the given partitions; checks them all before writing any."""
        ...


def _integer(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise BadRequest(f"{what} must be an integer, got {json.dumps(value)}")
    try:
        return int(value)
    except ValueError:
        raise BadRequest(f"{what} must be an integer, got {json.dumps(value)}") from None


class TopicSourceOffsets:
    """A source's offsets in its offsets topic, under Kafka Connect's key ``["<connector>", partition]``.

    Subclasses say what a valid partition and offset are for their reader (:meth:`partition_of`,
    :meth:`check_offset`); this class reads, tombstones and writes them.
    """

    def __init__(self, name: str, kafka: KafkaSettings, topic: str) -> None:
        self.name = name
        self.kafka = kafka
        self.store = SourceOffsetStore(kafka, topic)

    def partition_of(self, partition: dict[str, Any]) -> dict[str, Any]:
        """The partition as the reader writes it (its keys in the reader's order); ``BadRequest`` if invalid."""
        return partition

    def check_offset(self, partition: dict[str, Any], offset: dict[str, Any]) -> dict[str, Any]:
        """The offset to store for ``partition``; ``BadRequest`` naming what was expected."""
        return offset

    def _stored(self) -> dict[bytes, dict[str, Any]]:
        try:
            return self.store.load(self.name)
        except LookupError:  # no offsets topic yet: nothing was ever stored
            return {}

    def read(self) -> list[ConnectorOffset]:
        return [ConnectorOffset(json.loads(key)[1], value) for key, value in sorted(self._stored().items())]

    def reset(self) -> None:
        self._write({key: None for key in self._stored()})

    def alter(self, offsets: list[ConnectorOffset]) -> None:
        writes: dict[bytes, bytes | None] = {}
        for entry in offsets:
            partition = self.partition_of(entry.partition)
            value = None if entry.offset is None else dumps(self.check_offset(partition, entry.offset))
            writes[offset_key(self.name, partition)] = value
        self._write(writes)

    def _write(self, records: Mapping[bytes, bytes | None]) -> None:
        if not records:
            return
        self.store.ensure_topic()
        producer = self.kafka.producer(acks="all")
        try:
            for future in [producer.send(self.store.topic, key=key, value=value) for key, value in records.items()]:
                future.get(timeout=30)
        finally:
            producer.close()


class JdbcSourceOffsets(TopicSourceOffsets):
    """The JDBC source's partitions (a table of its database, or its query) and offsets (per ``mode``)."""

    def __init__(self, config: JdbcSourceConfig, kafka: KafkaSettings) -> None:
        super().__init__(config.name, kafka, config.offsets_topic)
        self.config = config

    def partition_of(self, partition: dict[str, Any]) -> dict[str, Any]:
        config = self.config
        if config.query:
            if partition != QUERY_PARTITION:
                raise BadRequest(
                    f"connector {config.name!r} reads a query: expected the partition {json.dumps(QUERY_PARTITION)}, "
                    f"got {json.dumps(partition)}"
                )
            return dict(QUERY_PARTITION)
        table = partition.get("table")
        expected = f'{{"protocol": "{OFFSET_PROTOCOL}", "table": "{config.database}.<table>"}}'
        if set(partition) != {"protocol", "table"} or partition.get("protocol") != OFFSET_PROTOCOL:
            raise BadRequest(
                f"connector {config.name!r}: expected the partition {expected}, got {json.dumps(partition)}"
            )
        database, dot, name = str(table).partition(".")
        if not isinstance(table, str) or not dot or database != config.database or not name:
            raise BadRequest(
                f"connector {config.name!r} reads tables of database {config.database!r}: expected the partition "
                f"{expected}, got {json.dumps(partition)}"
            )
        return table_partition(config.database, name)

    def check_offset(self, partition: dict[str, Any], offset: dict[str, Any]) -> dict[str, Any]:
        mode = self.config.mode
        if mode is SourceMode.BULK:
            raise BadRequest(f"connector {self.config.name!r} is in bulk mode, which keeps no offsets")
        required = {"incrementing"} if mode.uses_incrementing else set()
        if mode.uses_timestamp:
            required.add("timestamp")
        allowed = required | ({"timestamp_nanos"} if mode.uses_timestamp else set())
        allowed |= {GAP_HORIZON} if mode is SourceMode.INCREMENTING else set()
        if not required <= set(offset) <= allowed:
            raise BadRequest(
                f"connector {self.config.name!r} (mode {mode}): expected an offset with {', '.join(sorted(required))}"
                f" (allowed: {', '.join(sorted(allowed))}), got {json.dumps(offset)}"
            )
        checked: dict[str, Any] = {}
        for key, value in offset.items():
            if key == GAP_HORIZON:
                if not isinstance(value, dict) or set(value) != {"incrementing", "timestamp"}:
                    raise BadRequest(f'expected "{GAP_HORIZON}" to be {{"incrementing": ..., "timestamp": ...}}')
                checked[key] = {k: _integer(v, f"{GAP_HORIZON}.{k}") for k, v in value.items()}
            else:
                checked[key] = _integer(value, f"offset {key!r}")
        nanos = checked.get("timestamp_nanos")
        if nanos is not None and not 0 <= nanos <= 999_999_999:
            raise BadRequest(f"offset 'timestamp_nanos' must be 0..999999999, got {nanos}")
        return checked


class CdcSourceOffsets(TopicSourceOffsets):
    """A Debezium MariaDB source's one partition (``{"server": <topic.prefix>}``) and its binlog offset."""

    def __init__(self, config: DebeziumSourceConfig, kafka: KafkaSettings) -> None:
        super().__init__(config.name, kafka, config.offsets_topic)
        self.config = config

    def partition_of(self, partition: dict[str, Any]) -> dict[str, Any]:
        expected = server_partition(self.config.topic_prefix)
        if partition != expected:
            raise BadRequest(
                f"connector {self.config.name!r}: expected the partition {json.dumps(expected)}, "
                f"got {json.dumps(partition)}"
            )
        return expected

    def check_offset(self, partition: dict[str, Any], offset: dict[str, Any]) -> dict[str, Any]:
        try:
            return CdcOffset.parse(offset).to_value()
        except (KeyError, TypeError, ValueError) as err:
            raise BadRequest(
                f"connector {self.config.name!r}: expected a binlog offset as Debezium stores it "
                '({"file": ..., "pos": ..., "gtids": ...}), got '
                f"{json.dumps(offset)} ({err})"
            ) from None


class SinkOffsets:
    """A sink's offsets: rows of ``_connect_sink_offsets`` in its target database, and its consumer group."""

    def __init__(self, config: SinkConfig, kafka: KafkaSettings, engine: Engine) -> None:
        self.config = config
        self.kafka = kafka
        self.engine = engine

    def _group_offsets(self) -> dict[TopicPartition, int]:
        admin = self.kafka.admin()
        try:
            groups = admin.list_group_offsets(self.config.consumer_group)
        except GroupIdNotFoundError:
            return {}
        finally:
            admin.close()
        return {tp: meta.offset for tp, meta in groups.get(self.config.consumer_group, {}).items() if meta.offset >= 0}

    def read(self) -> list[ConnectorOffset]:
        """Where the next run starts: the stored rows, else (for a partition without one) the group's offset."""
        positions = {**self._group_offsets(), **stored_positions(self.engine, self.config.name)}
        return [
            ConnectorOffset({KAFKA_TOPIC: tp.topic, KAFKA_PARTITION: tp.partition}, {KAFKA_OFFSET: offset})
            for tp, offset in sorted(positions.items(), key=lambda item: (item[0].topic, item[0].partition))
        ]

    def reset(self) -> None:
        self._delete_rows(None)
        admin = self.kafka.admin()
        try:
            admin.delete_groups([self.config.consumer_group])  # a group that never committed: nothing to delete
        finally:
            admin.close()

    def alter(self, offsets: list[ConnectorOffset]) -> None:
        positions = {self._partition(entry.partition): self._offset(entry.offset) for entry in offsets}
        self._check_in_log(positions)
        to_set = {tp: offset for tp, offset in positions.items() if offset is not None}
        to_reset = [tp for tp, offset in positions.items() if offset is None]
        conn = self.engine.raw_connection()
        try:
            OffsetStore.ensure_table(conn)
            OffsetStore(self.config.name).store(conn, to_set)
            conn.commit()
        finally:
            conn.close()
        self._delete_rows(to_reset)
        admin = self.kafka.admin()
        try:
            if to_set:
                admin.alter_group_offsets(
                    self.config.consumer_group, {tp: OffsetAndMetadata(o, "", -1) for tp, o in to_set.items()}
                )
            if to_reset:
                with contextlib.suppress(GroupIdNotFoundError):  # never committed: nothing to fall back to
                    admin.delete_group_offsets(self.config.consumer_group, to_reset)
        finally:
            admin.close()

    def _partition(self, partition: dict[str, Any]) -> TopicPartition:
        if KAFKA_TOPIC not in partition or KAFKA_PARTITION not in partition:
            raise BadRequest(
                f"The partition for a sink connector offset must contain the keys '{KAFKA_TOPIC}' and "
                f"'{KAFKA_PARTITION}'"
            )
        topic = partition[KAFKA_TOPIC]
        if not isinstance(topic, str) or not topic:
            raise BadRequest("Kafka topic names must be valid strings and may not be null")
        if not self.config.reads_topic(topic):
            raise BadRequest(f"connector {self.config.name!r} does not read topic {topic!r}")
        number = partition[KAFKA_PARTITION]
        try:
            return TopicPartition(topic, _integer(number, "partition"))
        except BadRequest:
            raise BadRequest(
                f"Failed to parse the following Kafka partition value in the provided offsets: '{number}'. "
                "Partition values for sink connectors need to be integers."
            ) from None

    @staticmethod
    def _offset(offset: dict[str, Any] | None) -> int | None:
        if offset is None:
            return None
        if KAFKA_OFFSET not in offset:
            raise BadRequest(
                f"The offset for a sink connector should either be null or contain the key '{KAFKA_OFFSET}'"
            )
        try:
            return _integer(offset[KAFKA_OFFSET], "offset")
        except BadRequest:
            raise BadRequest(
                f"Failed to parse the following Kafka offset value in the provided offsets: '{offset[KAFKA_OFFSET]}'. "
                "Offset values for sink connectors need to be integers."
            ) from None

    def _check_in_log(self, positions: Mapping[TopicPartition, int | None]) -> None:
        """Every partition exists, and every offset is inside its log (else the next run would stop on it)."""
        consumer = self.kafka.consumer(enable_auto_commit=False)
        try:
            for tp in positions:
                if tp.partition not in (consumer.partitions_for_topic(tp.topic) or set()):
                    raise BadRequest(f"topic {tp.topic!r} has no partition {tp.partition}")
            chosen = [tp for tp, offset in positions.items() if offset is not None]
            beginning, end = consumer.beginning_offsets(chosen), consumer.end_offsets(chosen)
        finally:
            consumer.close()
        for tp in chosen:
            offset = positions[tp]
            if offset is not None and not beginning[tp] <= offset <= end[tp]:
                raise BadRequest(
                    f"offset {offset} of {tp.topic}[{tp.partition}] is outside the topic's log "
                    f"({beginning[tp]}..{end[tp]})"
                )

    def _delete_rows(self, partitions: list[TopicPartition] | None) -> None:
        """This connector's rows (``None``: all of them); nothing to do before the table exists."""
        if partitions == []:
            return
        conn = self.engine.raw_connection()
        try:
            with closing(conn.cursor()) as cursor:
                if partitions is None:
                    cursor.execute(f"DELETE FROM {OFFSETS_TABLE} WHERE connector = %s", (self.config.name,))
                else:
                    cursor.executemany(
                        f"DELETE FROM {OFFSETS_TABLE} WHERE connector = %s AND topic = %s AND kafka_partition = %s",
                        [(self.config.name, tp.topic, tp.partition) for tp in partitions],
                    )
            conn.commit()
        except ProgrammingError as err:
            if not (err.args and err.args[0] == NO_SUCH_TABLE):
                raise
        finally:
            conn.close()


OffsetsFactory = Callable[[Any, KafkaSettings, EngineFor], ConnectorOffsets]

# connector config class -> how its offsets are kept. A new connector class registers its own here.
OFFSET_KINDS: dict[type[ConnectorConfig], OffsetsFactory] = {
    JdbcSourceConfig: lambda config, kafka, engine_for: JdbcSourceOffsets(config, kafka),
    DebeziumSourceConfig: lambda config, kafka, engine_for: CdcSourceOffsets(config, kafka),
    SinkConfig: lambda config, kafka, engine_for: SinkOffsets(config, kafka, engine_for(config.connection)),
}


def offsets_of(config: ConnectorConfig, kafka: KafkaSettings, engine_for: EngineFor) -> ConnectorOffsets:
    for config_class, factory in OFFSET_KINDS.items():
        if isinstance(config, config_class):
            return factory(config, kafka, engine_for)
    raise BadRequest(f"connector {config.name!r}: offsets of {type(config).__name__} are not supported")
