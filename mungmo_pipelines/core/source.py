"""The JDBC source: table rows to Kafka records, with offsets in a compacted Kafka topic.

Records and the offset that covers them are produced in one Kafka transaction, so after a
crash at any point a ``read_committed`` consumer sees each row once and the next run starts
exactly where the last committed transaction ended (Kafka Connect's KIP-618 exactly-once
source, without Kafka Connect).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import pymysql.cursors
from sqlalchemy import Connection, Engine, text

from mungmo_pipelines.core.config import SourceConnectorConfig
from mungmo_pipelines.core.connect_json import RowEncoder, dumps
from mungmo_pipelines.core.kafka_io import KafkaSettings, ensure_topic, read_to_end, topic_partitions
from mungmo_pipelines.core.mariadb_types import Column, field_codec

OFFSET_PROTOCOL = "1"


def quote(identifier: str) -> str:
    return "`" + identifier.replace("`", "``") + "`"


@dataclass(frozen=True)
class SourceTable:
    """A table of the connection's own database, as the source reads it."""

    database: str
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    auto_increment: str | None

    def column(self, name: str) -> Column:
        for column in self.columns:
            if column.name == name:
                return column
        raise LookupError(f"table {self.database}.{self.name} has no column {name!r}")


def list_tables(conn: Connection) -> list[str]:
    """Base tables of the connection's own database only (never same-named tables elsewhere)."""
    rows = conn.execute(
        text(
            "SELECT TABLE_NAME FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME"
        )
    )
    return [row[0] for row in rows]


def describe_table(conn: Connection, table: str) -> SourceTable:
    rows = conn.execute(
        text(
            "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, NUMERIC_PRECISION, NUMERIC_SCALE, "
            "COLUMN_KEY, EXTRA, DATABASE() FROM information_schema.COLUMNS "
            "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = :table ORDER BY ORDINAL_POSITION"
        ),
        {"table": table},
    ).all()
    if not rows:
        raise LookupError(
            f"table {table!r} does not exist in database {conn.execute(text('SELECT DATABASE()')).scalar()!r}"
        )
    columns = tuple(Column(r[0], r[1].lower(), r[2], r[3] == "YES", r[4], r[5]) for r in rows)
    key_rows = conn.execute(
        text(
            "SELECT COLUMN_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() "
            "AND TABLE_NAME = :table AND INDEX_NAME = 'PRIMARY' ORDER BY SEQ_IN_INDEX"
        ),
        {"table": table},
    )
    auto_increment = next((r[0] for r in rows if "auto_increment" in (r[7] or "").lower()), None)
    return SourceTable(rows[0][8], table, columns, tuple(r[0] for r in key_rows), auto_increment)


@dataclass(frozen=True)
class TablePlan:
    """What one table's read looks like: the SQL, its offset column and how rows are encoded."""

    table: SourceTable
    topic: str
    partition: dict[str, str]
    encoder: RowEncoder
    select: str
    incrementing_position: int | None


@dataclass
class TableRun:
    """What one run did for one table; shown as Dagster metadata."""

    table: str
    topic: str
    rows: int = 0
    bytes: int = 0
    transactions: int = 0
    offset_before: dict[str, Any] | None = None
    offset_after: dict[str, Any] | None = None
    seconds: float = 0.0


@dataclass
class SourceRun:
    connector: str
    tables: list[TableRun] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)


class SourceOffsetStore:
    """Source offsets in a compacted topic, keyed like Kafka Connect's offsets topic.

    Key ``["<connector>", {"protocol": "1", "table": "<db>.<table>"}]``, value e.g.
    ``{"incrementing": 42}`` — the same shape Kafka Connect's JDBC source stored.
    """

    def __init__(self, kafka: KafkaSettings, topic: str, replication_factor: int = 1) -> None:
        self.kafka = kafka
        self.topic = topic
        self.replication_factor = replication_factor

    def ensure_topic(self) -> None:
        ensure_topic(self.kafka, self.topic, 1, self.replication_factor, {"cleanup.policy": "compact"})

    @staticmethod
    def key(connector: str, partition: dict[str, str]) -> bytes:
        return dumps([connector, partition])

    def load(self, connector: str) -> dict[bytes, dict[str, Any]]:
        """Latest committed offset per partition key of ``connector``."""
        consumer = self.kafka.consumer(isolation_level="read_committed", enable_auto_commit=False)
        try:
            offsets: dict[bytes, dict[str, Any]] = {}
            prefix = dumps([connector])[:-1] + b","
            for record in read_to_end(consumer, topic_partitions(consumer, self.topic)):
                if record.key is None or not record.key.startswith(prefix):
                    continue
                if record.value is None:
                    offsets.pop(record.key, None)
                else:
                    offsets[record.key] = json.loads(record.value)
            return offsets
        finally:
            consumer.close()


class JdbcSource:
    """Runs one source connector: every table once, from its stored offset to the current end."""

    def __init__(self, config: SourceConnectorConfig, engine: Engine, kafka: KafkaSettings) -> None:
        self.config = config
        self.engine = engine
        self.kafka = kafka
        self.offsets = SourceOffsetStore(kafka, config.offsets_topic, config.topic_replication_factor)
        self.zone = ZoneInfo(config.db_timezone)

    def tables(self) -> list[str]:
        """The tables this connector copies, resolved against the database."""
        with self.engine.connect() as conn:
            existing = list_tables(conn)
        if self.config.table_whitelist:
            missing = [t for t in self.config.table_whitelist if t not in existing]
            if missing:
                raise LookupError(
                    f"connector {self.config.name!r}: table.whitelist names {missing} "
                    f"not found in database {self.config.connection.database!r}"
                )
            return list(self.config.table_whitelist)
        return [t for t in existing if t not in self.config.table_blacklist]

    def plan(self, conn: Connection, table: str) -> TablePlan:
        described = describe_table(conn, table)
        config = self.config
        codecs = [field_codec(c, config.numeric_mapping, self.zone) for c in described.columns]
        names = [c.name for c in described.columns]
        key_positions = [names.index(k) for k in described.primary_key]
        encoder = RowEncoder(codecs, table, key_positions)
        select = f"SELECT {', '.join(quote(n) for n in names)} FROM {quote(table)}"
        incrementing_position = None
        if config.uses_incrementing:
            column_name = config.incrementing_column or described.auto_increment
            if not column_name:
                raise LookupError(
                    f"connector {config.name!r}: table {table!r} has no AUTO_INCREMENT column; "
                    "set incrementing.column.name"
                )
            column = described.column(column_name)
            if config.validate_non_null and column.nullable:
                raise ValueError(
                    f"connector {config.name!r}: incrementing column {table}.{column_name} is nullable "
                    "(validate.non.null=true requires NOT NULL)"
                )
            incrementing_position = names.index(column_name)
        partition = {"protocol": OFFSET_PROTOCOL, "table": f"{described.database}.{table}"}
        return TablePlan(described, config.topic_for(table), partition, encoder, select, incrementing_position)

    def _rows(self, conn: Connection, plan: TablePlan, offset: dict[str, Any] | None) -> Iterator[Sequence[Any]]:
        """Stream rows after ``offset`` through a server-side cursor, in ``batch.max.rows`` fetches."""
        sql, params = plan.select, ()
        if plan.incrementing_position is not None:
            column = quote(plan.table.columns[plan.incrementing_position].name)
            last = (offset or {}).get("incrementing", -1)
            sql = f"{sql} WHERE {column} > %s ORDER BY {column} ASC"
            params = (last,)
        cursor = conn.connection.dbapi_connection.cursor(pymysql.cursors.SSCursor)
        try:
            cursor.execute(sql, params)
            while batch := cursor.fetchmany(self.config.batch_max_rows):
                yield from batch
        finally:
            cursor.close()

    def run(self) -> SourceRun:
        config = self.config
        self.offsets.ensure_topic()
        stored = self.offsets.load(config.name)
        producer = self.kafka.producer(
            transactional_id=f"mungmo-source-{config.name}",
            acks="all",
            linger_ms=5,
            batch_size=512 * 1024,
            max_request_size=16 * 1024 * 1024,
        )
        result = SourceRun(config.name)
        try:
            producer.init_transactions()
            for table in self.tables():
                result.tables.append(self._run_table(producer, table, stored))
        finally:
            producer.close()
        return result

    def _run_table(self, producer: Any, table: str, stored: dict[bytes, dict[str, Any]]) -> TableRun:
        started = time.monotonic()
        with self.engine.connect() as conn:
            conn.exec_driver_sql("SET time_zone = '+00:00', net_write_timeout = 600")
            plan = self.plan(conn, table)
            ensure_topic(self.kafka, plan.topic, self.config.topic_partitions, self.config.topic_replication_factor)
            offset_key = SourceOffsetStore.key(self.config.name, plan.partition)
            offset = stored.get(offset_key)
            run = TableRun(table, plan.topic, offset_before=offset, offset_after=offset)
            pending = 0
            for row in self._rows(conn, plan, offset):
                if pending == 0:
                    producer.begin_transaction()
                key, value = plan.encoder.encode(row)
                producer.send(plan.topic, key=key, value=value)
                run.rows += 1
                run.bytes += len(value) + (len(key) if key else 0)
                pending += 1
                if plan.incrementing_position is not None:
                    offset = {"incrementing": row[plan.incrementing_position]}
                if pending >= self.config.batch_max_rows:
                    self._commit(producer, offset_key, offset)
                    run.transactions += 1
                    pending = 0
            if pending:
                self._commit(producer, offset_key, offset)
                run.transactions += 1
        run.offset_after = offset
        run.seconds = time.monotonic() - started
        return run

    def _commit(self, producer: Any, offset_key: bytes, offset: dict[str, Any] | None) -> None:
        if offset is not None:
            producer.send(self.offsets.topic, key=offset_key, value=dumps(offset))
        producer.commit_transaction()
