"""The JDBC source: table rows to Kafka records, with offsets in a compacted Kafka topic.

Records and the offset that covers them are produced in one Kafka transaction, so after a
crash at any point a ``read_committed`` consumer sees each row once and the next run starts
exactly where the last committed transaction ended (Kafka Connect's KIP-618 exactly-once
source, without Kafka Connect).

Rows are never skipped when transactions commit out of id or timestamp order (the JDBC
source's known loss): before each read the source looks at the server's open write
transactions (``information_schema.INNODB_TRX``) and never moves an offset past a point that
one of them could still fill. ``timestamp`` modes read only below the start of the oldest
open write transaction; ``incrementing`` mode delivers the gap-free run of ids after its
offset, and steps over a gap only once every transaction that was open when the gap's ids
were handed out has ended. The README's "No row is ever skipped" section has the reasoning.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any
from zoneinfo import ZoneInfo

import pymysql
import pymysql.cursors
from pymysql.constants import FIELD_TYPE
from sqlalchemy import Connection, Engine, text

from mungmo_pipelines.core import faults
from mungmo_pipelines.core.config import REQUIRED, SOURCE_OPTIONS, SourceConnectorConfig
from mungmo_pipelines.core.connect_json import RowEncoder, dumps
from mungmo_pipelines.core.kafka_io import (
    KafkaSettings,
    TransactionalProducer,
    ensure_topic,
    read_to_end,
    topic_partitions,
    wait_until_committed_visible,
)
from mungmo_pipelines.core.mariadb_types import EPOCH, UTC, SourceColumn, field_codec

log = logging.getLogger(__name__)

OFFSET_PROTOCOL = "1"
QUERY_PARTITION = {"query": "query"}
QUERY_ALIAS = "mungmo_query"
GAP_HORIZON = "gap_horizon"
OFFSETS_TOPIC_CONFIG = {"cleanup.policy": "compact", "segment.ms": str(3_600_000)}
_ACCESS_DENIED = 1227
_FRESH_TRX_ATTEMPTS = 30


def quote(identifier: str) -> str:
    return "`" + identifier.replace("`", "``") + "`"


class SourceError(RuntimeError):
    """A source run that cannot go on; the message names the connector and table."""


# --- open transactions ---------------------------------------------------------------------


@dataclass(frozen=True)
class OpenTransactions:
    """The server's write transactions as ``INNODB_TRX`` showed them after ``now`` (UTC).

    ``writer_starts`` are the start times (whole seconds, UTC) of transactions that have
    modified rows or are running a statement; idle transactions that wrote nothing cannot
    commit a row older than their next statement, so they do not hold anything back.
    """

    now: dt.datetime
    writer_starts: tuple[dt.datetime, ...]
    writer_threads: tuple[int, ...]

    @property
    def oldest_writer_start(self) -> dt.datetime | None:
        return min(self.writer_starts, default=None)

    def all_started_after(self, moment: dt.datetime) -> bool:
        """True when no writer open now can have started at or before ``moment``."""
        return all(start > moment for start in self.writer_starts)

    def upper_bound(self, delay: dt.timedelta) -> dt.datetime:
        """The instant below which every row that will ever commit is committed now.

        A row's timestamp comes from the clock while its transaction runs, so it is at least
        the transaction's start; ``timestamp.delay.interval.ms`` covers clocks that lag.
        """
        oldest = self.oldest_writer_start
        return (self.now if oldest is None else min(self.now, oldest)) - delay

    def describe(self) -> str:
        if not self.writer_starts:
            return "no open write transactions"
        return (
            f"{len(self.writer_starts)} open write transaction(s), oldest started "
            f"{self.oldest_writer_start:%Y-%m-%d %H:%M:%S} UTC (threads {', '.join(map(str, self.writer_threads))})"
        )


def observe_transactions(cursor: Any, connector: str) -> OpenTransactions:
    """Read ``INNODB_TRX`` so that it is known to reflect a moment after this call began.

    InnoDB serves ``INNODB_TRX`` from a cache refreshed at most every 0.1 s; the snapshot
    transaction opened here, after ``now`` was read, must appear in it, which proves the cache
    is newer than ``now``.
    """
    try:
        for _ in range(_FRESH_TRX_ATTEMPTS):
            cursor.execute("SELECT CONNECTION_ID(), UTC_TIMESTAMP(6)")
            own_thread, now = cursor.fetchone()
            cursor.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
            cursor.execute(
                "SELECT trx_mysql_thread_id, trx_started, trx_is_read_only, trx_autocommit_non_locking, "
                "trx_rows_modified, trx_query IS NOT NULL FROM information_schema.INNODB_TRX"
            )
            rows = cursor.fetchall()
            cursor.execute("COMMIT")
            if any(row[0] == own_thread for row in rows):
                writers = [
                    (row[1].replace(tzinfo=dt.UTC), row[0])
                    for row in rows
                    if row[0] != own_thread and not row[2] and not row[3] and (row[4] > 0 or row[5])
                ]
                return OpenTransactions(
                    now.replace(tzinfo=dt.UTC), tuple(w[0] for w in writers), tuple(w[1] for w in writers)
                )
            time.sleep(0.11)
    except pymysql.err.OperationalError as err:
        if err.args[0] == _ACCESS_DENIED:
            raise SourceError(
                f"connector {connector!r}: the database user needs the PROCESS privilege to read "
                "information_schema.INNODB_TRX, which is how the source avoids skipping rows that commit out "
                "of order (GRANT PROCESS ON *.* TO <user>)"
            ) from None
        raise
    raise SourceError(f"connector {connector!r}: information_schema.INNODB_TRX did not refresh after 3 s")


# --- tables, plans and offsets -------------------------------------------------------------


@dataclass(frozen=True)
class SourceTable:
    """What the source reads: a table of the connection's own database, or the connector's query."""

    database: str
    name: str | None
    columns: tuple[SourceColumn, ...]
    primary_key: tuple[str, ...]

    @property
    def label(self) -> str:
        return self.name if self.name is not None else "query"

    def position(self, column: str, role: str, connector: str) -> int:
        names = [c.name for c in self.columns]
        if column in names:
            return names.index(column)
        folded = [n for n in names if n.lower() == column.lower()]
        if len(folded) == 1:
            return names.index(folded[0])
        raise SourceError(
            f"connector {connector!r}: {role} {column!r} is not a column of {self.label} (columns: {', '.join(names)})"
        )


def list_tables(conn: Connection) -> list[str]:
    """Base tables of the connection's own database only (never same-named tables elsewhere)."""
    rows = conn.execute(
        text(
            "SELECT TABLE_NAME FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME"
        )
    )
    return [row[0] for row in rows]


def resolve_tables(config: SourceConnectorConfig, existing: Sequence[str]) -> list[str]:
    """The tables a connector copies: its whitelist, or every table but the blacklisted ones.

    Names may be qualified with the connection's own database; any other database is refused.
    """
    database = config.connection.database

    def bare(name: str, option: str) -> str:
        qualifier, dot, table = name.rpartition(".")
        if dot and qualifier.strip("`") != database:
            raise SourceError(
                f"connector {config.name!r}: {option} names {name!r}, but tables are matched only in the "
                f"connection's own database {database!r}"
            )
        return table.strip("`") if dot else name

    if config.query:
        return []
    if config.table_whitelist:
        wanted = [bare(t, "table.whitelist") for t in config.table_whitelist]
        missing = [t for t in wanted if t not in existing]
        if missing:
            raise SourceError(
                f"connector {config.name!r}: table.whitelist names {missing} not found in database {database!r}"
            )
        return wanted
    excluded = {bare(t, "table.blacklist") for t in config.table_blacklist}
    return [t for t in existing if t not in excluded]


def _source_sql(table: str | None, query: str) -> str:
    return quote(table) if table is not None else f"({query}) AS {QUERY_ALIAS}"


def describe_source(cursor: Any, table: str | None, query: str) -> SourceTable:
    """Columns as the protocol describes them (``SELECT ... LIMIT 0``), and the primary key."""
    cursor.execute(f"SELECT * FROM {_source_sql(table, query)} LIMIT 0")
    columns = tuple(SourceColumn.from_field(f) for f in cursor._result.fields)
    cursor.fetchall()
    cursor.execute("SELECT DATABASE()")
    (database,) = cursor.fetchone()
    primary_key: tuple[str, ...] = ()
    if table is not None:
        cursor.execute(
            "SELECT COLUMN_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() "
            "AND TABLE_NAME = %s AND INDEX_NAME = 'PRIMARY' ORDER BY SEQ_IN_INDEX",
            (table,),
        )
        primary_key = tuple(row[0] for row in cursor.fetchall())
    return SourceTable(database, table, columns, primary_key)


def _instant(value: dt.datetime, zone: dt.tzinfo) -> dt.datetime:
    return value.replace(tzinfo=zone).astimezone(dt.UTC)


def _wall_clock(instant: dt.datetime, zone: dt.tzinfo) -> dt.datetime:
    return instant.astimezone(zone).replace(tzinfo=None)


def _from_millis(millis: int, nanos: int | None = None) -> dt.datetime:
    seconds, remainder = divmod(millis, 1000)
    micros = remainder * 1000 if nanos is None else nanos // 1000
    return EPOCH + dt.timedelta(seconds=seconds, microseconds=micros)


@dataclass(frozen=True)
class GapHorizon:
    """Every id up to ``incrementing`` was handed out before ``observed`` (UTC)."""

    incrementing: int
    observed: dt.datetime


@dataclass(frozen=True)
class SourceOffset:
    """Kafka Connect's ``TimestampIncrementingOffset``, plus the incrementing mode's gap horizon."""

    incrementing: int | None = None
    timestamp: dt.datetime | None = None
    horizon: GapHorizon | None = None

    @classmethod
    def parse(cls, value: dict[str, Any] | None) -> SourceOffset | None:
        if value is None:
            return None
        millis = value.get("timestamp")
        horizon = value.get(GAP_HORIZON)
        return cls(
            value.get("incrementing"),
            _from_millis(millis, value.get("timestamp_nanos")) if millis is not None else None,
            GapHorizon(horizon["incrementing"], _from_millis(horizon["timestamp"])) if horizon else None,
        )

    def to_value(self) -> dict[str, Any]:
        """The stored map, keys in the order Kafka Connect's ``HashMap`` writes them."""
        value: dict[str, Any] = {}
        if self.timestamp is not None:
            value["timestamp_nanos"] = self.timestamp.microsecond * 1000
        if self.incrementing is not None:
            value["incrementing"] = self.incrementing
        if self.timestamp is not None:
            value["timestamp"] = (self.timestamp - EPOCH) // dt.timedelta(milliseconds=1)
        if self.horizon is not None:
            value[GAP_HORIZON] = {
                "incrementing": self.horizon.incrementing,
                "timestamp": (self.horizon.observed - EPOCH) // dt.timedelta(milliseconds=1),
            }
        return value


@dataclass(frozen=True)
class TablePlan:
    """How one table (or the query) is read: SQL, offset columns, encoding, topic."""

    source: SourceTable
    from_sql: str
    topic: str
    partition: dict[str, str]
    encoder: RowEncoder
    incrementing: int | None
    timestamps: tuple[int, ...]
    timestamp_zone: dt.tzinfo

    def column_sql(self, position: int) -> str:
        return quote(self.source.columns[position].name)

    @property
    def timestamp_sql(self) -> str:
        names = [self.column_sql(p) for p in self.timestamps]
        return names[0] if len(names) == 1 else f"COALESCE({', '.join(names)})"

    def row_timestamp(self, row: Sequence[Any]) -> dt.datetime | None:
        """The first non-null timestamp column of a row, as an instant (the JDBC source's rule)."""
        for position in self.timestamps:
            value = row[position]
            if isinstance(value, dt.datetime):
                return _instant(value, self.timestamp_zone)
        return None


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
    held_back: str = ""
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

    Key ``["<connector>", {"protocol": "1", "table": "<db>.<table>"}]`` (``{"query": "query"}``
    in query mode), value e.g. ``{"incrementing": 42}`` — the JDBC source's own shapes.
    """

    def __init__(self, kafka: KafkaSettings, topic: str, replication_factor: int = 1) -> None:
        self.kafka = kafka
        self.topic = topic
        self.replication_factor = replication_factor

    def ensure_topic(self) -> None:
        ensure_topic(self.kafka, self.topic, 1, self.replication_factor, OFFSETS_TOPIC_CONFIG)

    @staticmethod
    def key(connector: str, partition: dict[str, str]) -> bytes:
        return dumps([connector, partition])

    def load(self, connector: str) -> dict[bytes, dict[str, Any]]:
        """Latest committed offset per partition key of ``connector``."""
        offsets, _ = self.read(connector)
        return offsets

    def read(
        self,
        connector: str,
        since: dict[int, int] | None = None,
        known: dict[bytes, dict[str, Any]] | None = None,
    ) -> tuple[dict[bytes, dict[str, Any]], dict[int, int]]:
        """Offsets of ``connector`` and the positions read up to; pass both back to read only what is new.

        A position beyond the topic's end (the topic was recreated) starts over from the beginning.
        """
        consumer = self.kafka.consumer(isolation_level="read_committed", enable_auto_commit=False)
        try:
            partitions = topic_partitions(consumer, self.topic)
            end = consumer.end_offsets(partitions)
            start = {tp: since[tp.partition] for tp in partitions if since and tp.partition in since}
            if any(position > end[tp] for tp, position in start.items()):
                start, known = {}, None
            offsets = dict(known or {})
            prefix = dumps([connector])[:-1] + b","
            for record in read_to_end(consumer, partitions, start):
                if record.key is None or not record.key.startswith(prefix):
                    continue
                if record.value is None:
                    offsets.pop(record.key, None)
                else:
                    offsets[record.key] = json.loads(record.value)
            return offsets, {tp.partition: max(consumer.position(tp), start.get(tp, 0)) for tp in partitions}
        finally:
            consumer.close()


# --- the run -------------------------------------------------------------------------------


class _Transactions:
    """Kafka transactions of one table's run, cut by ``transaction.boundary``."""

    def __init__(
        self, producer: TransactionalProducer, config: SourceConnectorConfig, offsets_topic: str, offset_key: bytes
    ) -> None:
        self.producer = producer
        self.config = config
        self.offsets_topic = offsets_topic
        self.offset_key = offset_key
        self.open = False
        self.rows = 0
        self.started = 0.0
        self.committed = 0

    def due(self) -> bool:
        if not self.open:
            return False
        if self.config.transaction_boundary == "poll":
            return self.rows >= self.config.batch_max_rows
        return time.monotonic() - self.started >= self.config.transaction_interval_ms / 1000

    def send(self, topic: str, key: bytes | None, value: bytes) -> None:
        if not self.open:
            self.producer.begin_transaction()
            self.open, self.rows, self.started = True, 0, time.monotonic()
        self.producer.send(topic, key, value)
        self.rows += 1

    def commit(self, offset: SourceOffset | None) -> None:
        if not self.open:
            self.producer.begin_transaction()
            self.open = True
        if offset is not None:
            self.producer.send(self.offsets_topic, self.offset_key, dumps(offset.to_value()))
        # The records reach the brokers here either way (committing flushes them first); the crash
        # tests stop the process at this point, with the transaction's records written, uncommitted.
        self.producer.flush()
        faults.reached("source.before_commit")
        self.producer.commit_transaction()
        self.open = False
        self.committed += 1


class JdbcSource:
    """Runs one source connector: every table once, from its stored offset to what is settled now."""

    def __init__(self, config: SourceConnectorConfig, engine: Engine, kafka: KafkaSettings) -> None:
        self.config = config
        self.engine = engine
        self.kafka = kafka
        self.offsets = SourceOffsetStore(kafka, config.offsets_topic, config.topic_replication_factor)
        self.zone = ZoneInfo(config.db_timezone)

    def fail(self, what: str, problem: str) -> SourceError:
        return SourceError(f"connector {self.config.name!r}, {what}: {problem}")

    def tables(self) -> list[str]:
        """The tables this connector copies, resolved against the database (none in query mode)."""
        with self.engine.connect() as conn:
            return resolve_tables(self.config, list_tables(conn))

    def plan(self, cursor: Any, table: str | None) -> TablePlan:
        config = self.config
        source = describe_source(cursor, table, config.query)
        codecs = [field_codec(c, self.zone) for c in source.columns]
        key_positions = [source.position(k, "primary key column", config.name) for k in source.primary_key]
        encoder = RowEncoder(codecs, source.name, key_positions)
        incrementing = None
        if config.uses_incrementing:
            incrementing = self._incrementing_position(source)
        timestamps: tuple[int, ...] = ()
        zone: dt.tzinfo = UTC
        if config.uses_timestamp:
            timestamps = tuple(source.position(c, "timestamp column", config.name) for c in config.timestamp_columns)
            zone = self._timestamp_zone(source, timestamps)
        if config.validate_non_null and source.name is not None:
            self._validate_non_null(source, incrementing, timestamps)
        if source.name is None:
            partition = dict(QUERY_PARTITION)
        else:
            partition = {"protocol": OFFSET_PROTOCOL, "table": f"{source.database}.{source.name}"}
        return TablePlan(
            source,
            _source_sql(table, config.query),
            config.topic_for(source.name or ""),
            partition,
            encoder,
            incrementing,
            timestamps,
            zone,
        )

    def _incrementing_position(self, source: SourceTable) -> int:
        name = self.config.incrementing_column or next((c.name for c in source.columns if c.auto_increment), "")
        if not name:
            raise self.fail(source.label, "no AUTO_INCREMENT column; set incrementing.column.name")
        position = source.position(name, "incrementing column", self.config.name)
        column = source.columns[position]
        integral = column.type_code in (
            FIELD_TYPE.TINY,
            FIELD_TYPE.SHORT,
            FIELD_TYPE.INT24,
            FIELD_TYPE.LONG,
            FIELD_TYPE.LONGLONG,
        ) or (column.type_code == FIELD_TYPE.NEWDECIMAL and column.decimals == 0)
        if not integral:
            raise self.fail(source.label, f"incrementing column {column.name!r} must be an integer column")
        return position

    def _timestamp_zone(self, source: SourceTable, positions: tuple[int, ...]) -> dt.tzinfo:
        """DATETIME columns hold wall-clock times in db.timezone; TIMESTAMP columns read as UTC here."""
        kinds = set()
        for position in positions:
            column = source.columns[position]
            if column.type_code not in (FIELD_TYPE.DATETIME, FIELD_TYPE.TIMESTAMP):
                raise self.fail(source.label, f"timestamp column {column.name!r} must be DATETIME or TIMESTAMP")
            kinds.add(column.type_code)
        if kinds == {FIELD_TYPE.TIMESTAMP}:
            return UTC
        if len(kinds) > 1 and not _is_utc(self.zone):
            raise self.fail(
                source.label,
                "timestamp.column.name mixes DATETIME and TIMESTAMP columns, which only compare in one "
                f"COALESCE when db.timezone is UTC (it is {self.config.db_timezone})",
            )
        return self.zone

    def _validate_non_null(self, source: SourceTable, incrementing: int | None, timestamps: tuple[int, ...]) -> None:
        if incrementing is not None and source.columns[incrementing].nullable:
            raise self.fail(
                source.label,
                f"incrementing column {source.columns[incrementing].name!r} is nullable "
                "(validate.non.null=true requires NOT NULL)",
            )
        if timestamps and all(source.columns[p].nullable for p in timestamps):
            raise self.fail(
                source.label,
                f"timestamp columns {[source.columns[p].name for p in timestamps]} are all nullable "
                "(validate.non.null=true requires at least one NOT NULL)",
            )

    def run(self) -> SourceRun:
        config = self.config
        self.offsets.ensure_topic()
        stored = self.offsets.load(config.name)
        producer = TransactionalProducer(self.kafka, f"mungmo-source-{config.name}")
        producer.init_transactions()
        result = SourceRun(config.name)
        for table in [None] if config.query else self.tables():
            result.tables.append(self._run_table(producer, table, stored))
        written = [run.topic for run in result.tables if run.rows]
        if not wait_until_committed_visible(self.kafka, written):
            log.warning(
                "connector %r: another producer's open transaction holds %s back from read_committed readers",
                config.name,
                ", ".join(written),
            )
        return result

    def _run_table(
        self, producer: TransactionalProducer, table: str | None, stored: dict[bytes, dict[str, Any]]
    ) -> TableRun:
        started = time.monotonic()
        connection = self.engine.raw_connection()
        try:
            cursor = connection.cursor()
            cursor.execute("SET SESSION time_zone = '+00:00', SESSION net_write_timeout = 600")
            plan = self.plan(cursor, table)
            ensure_topic(self.kafka, plan.topic, self.config.topic_partitions, self.config.topic_replication_factor)
            offset_key = SourceOffsetStore.key(self.config.name, plan.partition)
            stored_offset = SourceOffset.parse(stored.get(offset_key))
            run = TableRun(plan.source.label, plan.topic, offset_before=stored.get(offset_key))
            transactions = _Transactions(producer, self.config, self.offsets.topic, offset_key)
            try:
                final = self._deliver(cursor, plan, stored_offset, transactions, run)
                if final is not None and final != stored_offset:
                    transactions.commit(final)
                elif transactions.open:
                    transactions.commit(None)
            except BaseException:
                if transactions.open:
                    producer.abort_transaction()
                raise
            cursor.close()
        finally:
            connection.close()
        run.transactions = transactions.committed
        run.offset_after = final.to_value() if final is not None else None
        run.seconds = time.monotonic() - started
        return run

    def _deliver(
        self,
        cursor: Any,
        plan: TablePlan,
        offset: SourceOffset | None,
        transactions: _Transactions,
        run: TableRun,
    ) -> SourceOffset | None:
        """Stream what may be delivered now and produce it; returns the offset after the last row."""
        config = self.config
        gate: _GapGate | None = None
        if config.mode == "bulk":
            rows = self._stream(cursor, f"SELECT * FROM {plan.from_sql}", ())
        elif config.mode == "incrementing":
            rows, gate = self._incrementing_read(cursor, plan, offset)
        else:
            rows, offset = self._timestamp_read(cursor, plan, offset, run)
        start = offset
        tracks_offset = config.mode != "bulk"

        def offset_after(row: Sequence[Any] | None) -> SourceOffset | None:
            """The offset once ``row`` (the last delivered) is in Kafka; built only when committing."""
            if row is None or not tracks_offset:
                return start
            return replace(
                start or SourceOffset(),
                incrementing=int(row[plan.incrementing]) if plan.incrementing is not None else None,
                timestamp=plan.row_timestamp(row) if plan.timestamps else None,
            )

        last_row: Sequence[Any] | None = None
        encode, topic, send = plan.encoder.encode, plan.topic, transactions.send
        size = 0
        try:
            for row in rows:
                if gate is not None and not gate(row):
                    break
                # A timestamp-mode offset is a time: never cut between rows of the same time.
                if transactions.due() and (
                    config.mode != "timestamp"
                    or last_row is None
                    or plan.row_timestamp(row) != plan.row_timestamp(last_row)
                ):
                    transactions.commit(offset_after(last_row))
                key, value = encode(row)
                send(topic, key, value)
                size += len(value) + (len(key) if key else 0)
                last_row = row
                run.rows += 1
        finally:
            rows.close()
        run.bytes += size
        offset = offset_after(last_row)
        if gate is not None:
            offset = gate.finish(offset, run)
        return offset

    def _stream(self, cursor: Any, sql: str, params: Sequence[Any]) -> Generator[Sequence[Any], None, None]:
        """Rows through a server-side cursor, fetched ``batch.max.rows`` at a time (bounded memory)."""
        streaming = cursor.connection.cursor(pymysql.cursors.SSCursor)
        try:
            streaming.execute(sql, params)
            while batch := streaming.fetchmany(self.config.batch_max_rows):
                yield from batch
        finally:
            streaming.close()

    def _timestamp_read(
        self, cursor: Any, plan: TablePlan, offset: SourceOffset | None, run: TableRun
    ) -> tuple[Generator[Sequence[Any], None, None], SourceOffset | None]:
        """Rows after the offset and below the settled bound, in (timestamp[, id]) order."""
        config = self.config
        open_transactions = observe_transactions(cursor, config.name)
        if offset is None and config.timestamp_initial is not None:
            initial = open_transactions.now
            if config.timestamp_initial != -1:
                initial = _from_millis(config.timestamp_initial)
            offset = SourceOffset(timestamp=initial)
        delay = dt.timedelta(milliseconds=config.timestamp_delay_interval_ms)
        bound = open_transactions.upper_bound(delay)
        if bound < open_transactions.now - delay:
            run.held_back = f"rows at or after {bound:%Y-%m-%d %H:%M:%S} UTC: {open_transactions.describe()}"
        ts = plan.timestamp_sql
        conditions = [f"{ts} < %s"]
        params: list[Any] = [_wall_clock(bound, plan.timestamp_zone)]
        order = ts
        if plan.incrementing is not None:
            order = f"{ts}, {plan.column_sql(plan.incrementing)}"
        if offset is not None and offset.timestamp is not None:
            begin = _wall_clock(offset.timestamp, plan.timestamp_zone)
            if plan.incrementing is not None and offset.incrementing is not None:
                conditions.append(f"(({ts} = %s AND {plan.column_sql(plan.incrementing)} > %s) OR {ts} > %s)")
                params += [begin, offset.incrementing, begin]
            elif plan.incrementing is not None:
                conditions.append(f"{ts} >= %s")
                params.append(begin)
            else:
                conditions.append(f"{ts} > %s")
                params.append(begin)
        sql = f"SELECT * FROM {plan.from_sql} WHERE {' AND '.join(conditions)} ORDER BY {order} ASC"
        return self._stream(cursor, sql, params), offset

    def _incrementing_read(
        self, cursor: Any, plan: TablePlan, offset: SourceOffset | None
    ) -> tuple[Generator[Sequence[Any], None, None], _GapGate]:
        """Rows after the offset in id order, gated so that no id an open transaction may fill is passed."""
        assert plan.incrementing is not None
        column = plan.column_sql(plan.incrementing)
        after = offset.incrementing if offset else None
        where, params = (f" WHERE {column} > %s", (after,)) if after is not None else ("", ())
        cursor.execute(f"SELECT MAX({column}), UTC_TIMESTAMP(6) FROM {plan.from_sql}{where}", params)
        newest, observed = cursor.fetchone()
        candidate = GapHorizon(int(newest), observed.replace(tzinfo=dt.UTC)) if newest is not None else None
        open_transactions = observe_transactions(cursor, self.config.name)
        gate = _GapGate(plan.incrementing, after, offset.horizon if offset else None, candidate, open_transactions)
        sql = f"SELECT * FROM {plan.from_sql}{where} ORDER BY {column} ASC"
        return self._stream(cursor, sql, params), gate


class _GapGate:
    """Lets rows through while they continue the gap-free run of ids, or lie below a settled horizon.

    A horizon (``M``, ``t``) says every id up to ``M`` was handed out before ``t``; once no write
    transaction that started at or before ``t`` is open any more, each id up to ``M`` that is
    still missing was rolled back or deleted, so the gap can be stepped over.
    """

    def __init__(
        self,
        position: int,
        last: int | None,
        stored: GapHorizon | None,
        candidate: GapHorizon | None,
        open_transactions: OpenTransactions,
    ) -> None:
        self.position = position
        self.last = last
        self.stored = stored
        self.candidate = candidate
        self.open_transactions = open_transactions
        settled = [h for h in (stored, candidate) if h is not None and open_transactions.all_started_after(h.observed)]
        self.settled_up_to = max((h.incrementing for h in settled), default=None)
        self.stopped_at: int | None = None

    def __call__(self, row: Sequence[Any]) -> bool:
        current = int(row[self.position])
        contiguous = self.last is not None and current == self.last + 1
        if contiguous or (self.settled_up_to is not None and current <= self.settled_up_to):
            self.last = current
            return True
        self.stopped_at = current
        return False

    def finish(self, offset: SourceOffset | None, run: TableRun) -> SourceOffset | None:
        """The offset to store: with a horizon to settle later when rows were held back."""
        if self.stopped_at is None:
            return replace(offset, horizon=None) if offset is not None else None
        stored_pending = self.stored is not None and not self.open_transactions.all_started_after(self.stored.observed)
        horizon = self.stored if stored_pending else self.candidate
        run.held_back = (
            f"ids after {self.last if self.last is not None else 'the start'} up to {self.stopped_at}: "
            f"a write transaction open since before the gap may still fill it ({self.open_transactions.describe()})"
        )
        return replace(offset or SourceOffset(), horizon=horizon)


def _is_utc(zone: dt.tzinfo) -> bool:
    samples = (dt.datetime(year, month, 1, tzinfo=dt.UTC) for year in (1970, 2000, 2030) for month in (1, 7))
    return all(zone.utcoffset(sample.astimezone(zone).replace(tzinfo=None)) == dt.timedelta(0) for sample in samples)


# --- change probe (for the Dagster sensor) ---------------------------------------------------


@dataclass(frozen=True)
class TableProbe:
    """The newest offset-column value of one table against its stored offset."""

    table: str
    newest: int | None
    stored: dict[str, Any] | None
    behind: bool


def probe_changes(
    config: SourceConnectorConfig, engine: Engine, stored: dict[bytes, dict[str, Any]]
) -> list[TableProbe]:
    """Whether each table has rows past its offset: one ``MAX()`` per offset column, cheap with an index.

    ``newest`` is the largest id, or the newest timestamp in epoch milliseconds. Bulk mode has no
    offset, so every table is always behind (it is copied every poll interval). An offset that
    holds a gap horizon is behind too: rows wait for a transaction, and the next run may pass.
    """
    zone = ZoneInfo(config.db_timezone)
    probes = []
    with engine.connect() as conn:
        conn.exec_driver_sql("SET SESSION time_zone = '+00:00'")
        tables: list[str | None] = [None] if config.query else list(resolve_tables(config, list_tables(conn)))
        for table in tables:
            source = _source_sql(table, config.query)
            key = SourceOffsetStore.key(
                config.name,
                dict(QUERY_PARTITION)
                if table is None
                else {"protocol": OFFSET_PROTOCOL, "table": f"{config.connection.database}.{table}"},
            )
            value = stored.get(key)
            offset = SourceOffset.parse(value)
            label = table if table is not None else "query"
            if config.mode == "bulk":
                probes.append(TableProbe(label, None, value, True))
            elif config.mode == "incrementing":
                column = config.incrementing_column or _auto_increment_column(conn, table)
                newest = conn.exec_driver_sql(f"SELECT MAX({quote(column)}) FROM {source}").scalar()
                newest = int(newest) if newest is not None else None
                last = offset.incrementing if offset else None
                pending = offset is not None and offset.horizon is not None
                behind = newest is not None and (last is None or newest > last or pending)
                probes.append(TableProbe(label, newest, value, behind))
            else:
                newest_ms = _newest_timestamp(conn, table, config.query, config.timestamp_columns, zone)
                last_ms = (
                    (offset.timestamp - EPOCH) // dt.timedelta(milliseconds=1) if offset and offset.timestamp else None
                )
                behind = newest_ms is not None and (last_ms is None or newest_ms > last_ms)
                probes.append(TableProbe(label, newest_ms, value, behind))
    return probes


def _auto_increment_column(conn: Connection, table: str | None) -> str:
    name = conn.execute(
        text(
            "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() "
            "AND TABLE_NAME = :t AND EXTRA LIKE '%auto_increment%'"
        ),
        {"t": table},
    ).scalar()
    if name is None:
        raise SourceError(f"table {table!r} has no AUTO_INCREMENT column; set incrementing.column.name")
    return name


def _newest_timestamp(
    conn: Connection, table: str | None, query: str, columns: Sequence[str], zone: dt.tzinfo
) -> int | None:
    """The newest value over the timestamp columns, in epoch ms (DATETIME read in ``zone``, TIMESTAMP as UTC)."""
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        described = describe_source(cursor, table, query)
        kinds = {c.name.lower(): c.type_code for c in described.columns}
        cursor.execute(f"SELECT {', '.join(f'MAX({quote(c)})' for c in columns)} FROM {_source_sql(table, query)}")
        values = cursor.fetchone()
    finally:
        cursor.close()
    newest = None
    for column, value in zip(columns, values, strict=True):
        if isinstance(value, dt.datetime):
            as_zone = UTC if kinds.get(column.lower()) == FIELD_TYPE.TIMESTAMP else zone
            millis = (_instant(value, as_zone) - EPOCH) // dt.timedelta(milliseconds=1)
            newest = millis if newest is None else max(newest, millis)
    return newest


def source_options_markdown() -> str:
    """``SOURCE_OPTIONS`` as the README's table (name, default, what it does here)."""
    lines = ["| option | default | here |", "| --- | --- | --- |"]
    for option in SOURCE_OPTIONS.values():
        default = option.default
        if default is REQUIRED:
            shown = "required"
        elif default in ("", (), None):
            shown = "—"
        elif isinstance(default, bool):
            shown = str(default).lower()
        elif isinstance(default, tuple):
            shown = ",".join(default)
        else:
            shown = str(default)
        lines.append(f"| `{option.name}` | {shown} | {option.doc} |")
    return "\n".join(lines)
