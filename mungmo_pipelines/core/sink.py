"""The JDBC sink: Kafka records into MariaDB tables, exactly once.

Each batch of rows and the topic/partition offsets it covers are committed in one database
transaction (table ``_connect_sink_offsets`` in the target database), and the next run resumes
from there, so a crash at any point leaves neither a duplicate nor a gap. The offsets are also
committed to the consumer group ``connect-<name>`` afterwards, so lag tools keep working.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from kafka import TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.structs import OffsetAndMetadata
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from mungmo_pipelines.core.config import SinkConnectorConfig
from mungmo_pipelines.core.connect_json import Envelope, MalformedRecord, decode_envelope, dumps, struct_fields
from mungmo_pipelines.core.kafka_io import KafkaSettings, ensure_topic, read_to_end, topic_partitions
from mungmo_pipelines.core.mariadb_types import column_ddl, sink_type
from mungmo_pipelines.core.source import quote

OFFSETS_TABLE = "_connect_sink_offsets"
KAFKA_PK_FIELDS = ("__connect_topic", "__connect_partition", "__connect_offset")
KAFKA_PK_SCHEMAS = (
    {"type": "string", "optional": False},
    {"type": "int32", "optional": False},
    {"type": "int64", "optional": False},
)


class SinkError(RuntimeError):
    """A record that cannot be written; names the topic, partition and offset."""


@dataclass(frozen=True)
class RowChange:
    """One record turned into a row write (or a delete) for a table."""

    table: str
    fields: tuple[dict[str, Any], ...]
    key_fields: tuple[str, ...]
    values: dict[str, Any] | None
    key_values: dict[str, Any]

    @property
    def shape(self) -> tuple[Any, ...]:
        return (self.table, self.values is None, tuple((f["field"], f["type"], f.get("name")) for f in self.fields))


@dataclass
class TableStats:
    """What one run did to one target table; shown as Dagster metadata."""

    table: str
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    dead_lettered: int = 0


@dataclass
class SinkRun:
    connector: str
    tables: dict[str, TableStats] = field(default_factory=dict)
    records: int = 0
    lag_before: int = 0
    lag_after: int = 0
    end_offsets: dict[str, dict[int, int]] = field(default_factory=dict)
    seconds: float = 0.0

    def stats(self, table: str) -> TableStats:
        return self.tables.setdefault(table, TableStats(table))


def _key_fields_from(
    envelope: Envelope | None, config: SinkConnectorConfig, where: str
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    if envelope is None or envelope.payload is None:
        raise MalformedRecord(f"{where}: pk.mode=record_key needs a record key, got null")
    schema = envelope.schema or {}
    if schema.get("type") == "struct":
        fields = struct_fields(envelope, "key")
        if config.pk_fields:
            fields = [f for f in fields if f["field"] in config.pk_fields]
        return fields, {f["field"]: envelope.payload.get(f["field"]) for f in fields}
    if len(config.pk_fields) != 1:
        raise MalformedRecord(f"{where}: a primitive key needs exactly one name in pk.fields")
    return [dict(schema, field=config.pk_fields[0], optional=False)], {config.pk_fields[0]: envelope.payload}


class JdbcSink:
    """Runs one sink connector: drains its topics up to the end offsets seen at start."""

    def __init__(self, config: SinkConnectorConfig, engine: Engine, kafka: KafkaSettings) -> None:
        self.config = config
        self.engine = engine
        self.kafka = kafka
        self.zone = ZoneInfo(config.db_timezone)
        self._columns: dict[str, dict[str, str]] = {}

    # --- records to row changes ------------------------------------------------------------

    def change_for(self, record: ConsumerRecord) -> RowChange:
        """Decode a record into the row it writes; raises ``MalformedRecord`` naming what is wrong."""
        config = self.config
        where = f"{record.topic}[{record.partition}]@{record.offset}"
        table = config.table_for(record.topic)
        key = decode_envelope(record.key, "key") if config.pk_mode == "record_key" else None
        value = decode_envelope(record.value, "value")
        if value is None or value.payload is None:
            if not config.delete_enabled:
                raise MalformedRecord(f"{where}: null value (a tombstone) with delete.enabled=false")
            key_fields, key_values = _key_fields_from(key, config, where)
            return RowChange(table, tuple(key_fields), tuple(key_values), None, key_values)
        fields = struct_fields(value)
        if config.fields_whitelist:
            fields = [f for f in fields if f["field"] in config.fields_whitelist]
        values = {f["field"]: self._decode(value.payload.get(f["field"]), f, where) for f in fields}
        key_fields: list[dict[str, Any]] = []
        key_values: dict[str, Any] = {}
        if config.pk_mode == "kafka":
            names = config.pk_fields or KAFKA_PK_FIELDS
            key_fields = [dict(s, field=n) for s, n in zip(KAFKA_PK_SCHEMAS, names, strict=True)]
            key_values = dict(zip(names, (record.topic, record.partition, record.offset), strict=True))
        elif config.pk_mode == "record_key":
            key_fields, raw = _key_fields_from(key, config, where)
            key_values = {f["field"]: self._decode(raw[f["field"]], f, where) for f in key_fields}
        elif config.pk_mode == "record_value":
            names = config.pk_fields or tuple(values)
            missing = [n for n in names if n not in values]
            if missing:
                raise MalformedRecord(f"{where}: pk.fields {missing} are not fields of the value")
            key_fields = [f for f in fields if f["field"] in names]
            key_values = {n: values[n] for n in names}
        value_fields = [f for f in fields if f["field"] not in key_values]
        row = {**key_values, **{f["field"]: values[f["field"]] for f in value_fields}}
        return RowChange(table, tuple(key_fields) + tuple(value_fields), tuple(key_values), row, key_values)

    def _decode(self, value: Any, schema: dict[str, Any], where: str) -> Any:
        if value is None:
            return None
        try:
            return sink_type(schema).decode(value, schema, self.zone)
        except (ValueError, TypeError) as err:
            raise MalformedRecord(f"{where}: field {schema.get('field')!r}: {err}") from None

    # --- tables ----------------------------------------------------------------------------

    def _existing_columns(self, conn: Connection, table: str) -> dict[str, str]:
        rows = conn.execute(
            text(
                "SELECT COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS "
                "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = :t ORDER BY ORDINAL_POSITION"
            ),
            {"t": table},
        )
        return {r[0]: r[1] for r in rows}

    def ensure_table(self, conn: Connection, change: RowChange) -> None:
        """Create or evolve the target table for a change's fields (``auto.create``/``auto.evolve``)."""
        table = change.table
        columns = self._columns.get(table)
        if columns is None:
            columns = self._existing_columns(conn, table)
        if not columns:
            if not self.config.auto_create:
                raise SinkError(
                    f"table {table!r} does not exist in {self.config.connection.database!r} and auto.create=false"
                )
            definitions = [self._column_sql(f, f["field"] in change.key_fields) for f in change.fields]
            if change.key_fields:
                definitions.append(f"PRIMARY KEY ({', '.join(quote(k) for k in change.key_fields)})")
            conn.exec_driver_sql(
                f"CREATE TABLE IF NOT EXISTS {quote(table)} ({', '.join(definitions)}) "
                "DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci"
            )
            columns = self._existing_columns(conn, table)
        missing = [f for f in change.fields if f["field"] not in columns]
        if missing:
            if not self.config.auto_evolve:
                names = ", ".join(f["field"] for f in missing)
                raise SinkError(f"table {table!r} lacks columns {names} and auto.evolve=false")
            for f in missing:
                if not f.get("optional", False) and "default" not in f:
                    raise SinkError(
                        f"table {table!r}: cannot add column {f['field']!r} ({column_ddl(f, False)}): "
                        "the field is required and has no default"
                    )
                conn.exec_driver_sql(f"ALTER TABLE {quote(table)} ADD COLUMN {self._column_sql(f, False)}")
            columns = self._existing_columns(conn, table)
        self._columns[table] = columns

    @staticmethod
    def _column_sql(schema: dict[str, Any], is_key: bool) -> str:
        nullable = schema.get("optional", False) and not is_key
        sql = f"{quote(schema['field'])} {column_ddl(schema, is_key)} {'NULL' if nullable else 'NOT NULL'}"
        return sql

    # --- writing ---------------------------------------------------------------------------

    def _write(self, conn: Connection, changes: Sequence[RowChange], run: SinkRun) -> None:
        first = changes[0]
        stats = run.stats(first.table)
        cursor = conn.connection.dbapi_connection.cursor()
        try:
            if first.values is None:
                condition = " AND ".join(f"{quote(k)} = %s" for k in first.key_fields)
                sql = f"DELETE FROM {quote(first.table)} WHERE {condition}"
                for change in changes:
                    stats.deleted += cursor.execute(sql, tuple(change.key_values[k] for k in first.key_fields))
                return
            names = list(first.values)
            placeholders = ", ".join(["%s"] * len(names))
            columns = ", ".join(quote(n) for n in names)
            rows = [tuple(c.values[n] for n in names) for c in changes]  # type: ignore[index]
            if self.config.insert_mode == "update":
                assignments = ", ".join(f"{quote(n)} = %s" for n in names if n not in first.key_fields)
                condition = " AND ".join(f"{quote(k)} = %s" for k in first.key_fields)
                sql = f"UPDATE {quote(first.table)} SET {assignments} WHERE {condition}"
                for change in changes:
                    params = [change.values[n] for n in names if n not in first.key_fields]  # type: ignore[index]
                    stats.updated += cursor.execute(sql, (*params, *(change.key_values[k] for k in first.key_fields)))
                return
            sql = f"INSERT INTO {quote(first.table)} ({columns}) VALUES ({placeholders})"
            if self.config.insert_mode == "upsert":
                updates = [n for n in names if n not in first.key_fields] or list(first.key_fields)
                sql += " ON DUPLICATE KEY UPDATE " + ", ".join(f"{quote(n)} = VALUES({quote(n)})" for n in updates)
                affected = cursor.executemany(sql, rows) or 0
                # MariaDB counts 1 per inserted row and 2 per updated row.
                updated = max(0, affected - len(rows))
                stats.updated += updated
                stats.inserted += len(rows) - updated
            else:
                cursor.executemany(sql, rows)
                stats.inserted += len(rows)
        finally:
            cursor.close()

    def _store_offsets(self, conn: Connection, positions: dict[TopicPartition, int]) -> None:
        conn.execute(
            text(
                f"INSERT INTO {OFFSETS_TABLE} (connector, topic, kafka_partition, next_offset) "
                "VALUES (:c, :t, :p, :o) ON DUPLICATE KEY UPDATE next_offset = VALUES(next_offset)"
            ),
            [{"c": self.config.name, "t": tp.topic, "p": tp.partition, "o": o} for tp, o in positions.items()],
        )

    def _stored_offsets(self) -> dict[TopicPartition, int]:
        with self.engine.begin() as conn:
            conn.exec_driver_sql(
                f"CREATE TABLE IF NOT EXISTS {OFFSETS_TABLE} ("
                "connector VARCHAR(255) NOT NULL, topic VARCHAR(249) NOT NULL, kafka_partition INT NOT NULL, "
                "next_offset BIGINT NOT NULL, updated_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) "
                "ON UPDATE CURRENT_TIMESTAMP(3), PRIMARY KEY (connector, topic, kafka_partition)) "
                "DEFAULT CHARSET=utf8mb4"
            )
            rows = conn.execute(
                text(f"SELECT topic, kafka_partition, next_offset FROM {OFFSETS_TABLE} WHERE connector = :c"),
                {"c": self.config.name},
            )
            return {TopicPartition(r[0], r[1]): r[2] for r in rows}

    def topics(self, available: Iterable[str]) -> list[str]:
        if self.config.topics:
            return list(self.config.topics)
        pattern = re.compile(self.config.topics_regex)
        return sorted(t for t in available if pattern.fullmatch(t))

    def run(self) -> SinkRun:
        started = time.monotonic()
        config = self.config
        result = SinkRun(config.name)
        consumer = self.kafka.consumer(
            group_id=config.consumer_group,
            isolation_level="read_committed",
            enable_auto_commit=False,
            max_partition_fetch_bytes=8 * 1024 * 1024,
        )
        dead_letters = None
        try:
            partitions = [tp for topic in self.topics(consumer.topics()) for tp in topic_partitions(consumer, topic)]
            stored = self._stored_offsets()
            start = {tp: stored[tp] for tp in partitions if tp in stored}
            for tp in partitions:
                if tp not in start:
                    committed = consumer.committed(tp)
                    if committed is not None:
                        start[tp] = committed
            end = consumer.end_offsets(partitions)
            beginning = consumer.beginning_offsets(partitions)
            result.lag_before = sum(end[tp] - start.get(tp, beginning[tp]) for tp in partitions)
            for tp in partitions:
                result.end_offsets.setdefault(tp.topic, {})[tp.partition] = end[tp]
            if config.errors_tolerance == "all":
                ensure_topic(self.kafka, config.dlq_topic, 1, config.dlq_replication_factor)
                dead_letters = self.kafka.producer(acks="all")
            batch: list[ConsumerRecord] = []
            positions: dict[TopicPartition, int] = {}
            for record in read_to_end(consumer, partitions, start):
                batch.append(record)
                if len(batch) >= config.batch_size:
                    self._flush(batch, positions, result, dead_letters)
                    batch = []
            self._flush(batch, positions, result, dead_letters)
            # Control records (transaction markers) sit after the last data record.
            final = {tp: consumer.position(tp) for tp in partitions}
            if final != {tp: start.get(tp, -1) for tp in partitions}:
                with self.engine.begin() as conn:
                    self._store_offsets(conn, final)
                consumer.commit({tp: OffsetAndMetadata(o, "", -1) for tp, o in final.items()})
            result.lag_after = sum(max(0, end[tp] - final[tp]) for tp in partitions)
        finally:
            if dead_letters is not None:
                dead_letters.close()
            consumer.close()
        result.seconds = time.monotonic() - started
        return result

    def _flush(
        self,
        batch: list[ConsumerRecord],
        positions: dict[TopicPartition, int],
        result: SinkRun,
        dead_letters: Any,
    ) -> None:
        if not batch:
            return
        changes: list[RowChange] = []
        for record in batch:
            try:
                changes.append(self.change_for(record))
            except MalformedRecord as err:
                self._reject(record, str(err), result, dead_letters)
        if dead_letters is not None:
            dead_letters.flush()
        with self.engine.begin() as conn:
            group: list[RowChange] = []
            for change in changes:
                if group and change.shape != group[0].shape:
                    self._write_group(conn, group, result)
                    group = []
                group.append(change)
            if group:
                self._write_group(conn, group, result)
            for record in batch:
                positions[TopicPartition(record.topic, record.partition)] = record.offset + 1
            self._store_offsets(conn, positions)
        result.records += len(batch)

    def _write_group(self, conn: Connection, group: list[RowChange], result: SinkRun) -> None:
        try:
            self.ensure_table(conn, group[0])
            self._write(conn, group, result)
        except DBAPIError as err:
            raise SinkError(
                f"connector {self.config.name!r}: writing {len(group)} rows to {group[0].table!r} failed: {err.orig}"
            ) from err

    def _reject(self, record: ConsumerRecord, error: str, result: SinkRun, dead_letters: Any) -> None:
        where = f"{record.topic}[{record.partition}]@{record.offset}"
        if dead_letters is None:
            raise SinkError(f"connector {self.config.name!r}: record {where} rejected: {error} (errors.tolerance=none)")
        headers = [
            ("__connect.errors.topic", record.topic.encode()),
            ("__connect.errors.partition", str(record.partition).encode()),
            ("__connect.errors.offset", str(record.offset).encode()),
            ("__connect.errors.connector.name", self.config.name.encode()),
            ("__connect.errors.exception.message", error.encode()),
            ("__connect.errors.context", dumps({"stage": "VALUE_CONVERTER"})),
        ]
        dead_letters.send(self.config.dlq_topic, key=record.key, value=record.value, headers=headers)
        result.stats(self.config.table_for(record.topic)).dead_lettered += 1
