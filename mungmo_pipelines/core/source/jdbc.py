"""The JDBC reader: Confluent's JDBC source reading, as a reader of the source runtime.

Per table (or the connector's query) it describes the columns as the protocol does, builds the
record encoder from the source type table, picks the querier of the connector's ``mode``
(``queriers.py``) and streams the rows through a server-side cursor in ``batch.max.rows``
fetches, so memory stays bounded whatever the table's size.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from pymysql.constants import FIELD_TYPE
from sqlalchemy import Engine

from mungmo_pipelines.core.config.jdbc_source import JdbcSourceConfig
from mungmo_pipelines.core.connect.json_converter import RowEncoder
from mungmo_pipelines.core.connect.schema import UTC
from mungmo_pipelines.core.connect.source_types import field_codec
from mungmo_pipelines.core.errors import SourceError
from mungmo_pipelines.core.kafka.clients import KafkaSettings
from mungmo_pipelines.core.kafka.outage import RetryPolicy
from mungmo_pipelines.core.kafka.topics import ensure_topic
from mungmo_pipelines.core.mariadb import catalog
from mungmo_pipelines.core.mariadb.columns import ResultColumn
from mungmo_pipelines.core.mariadb.dialect import is_utc, quote
from mungmo_pipelines.core.mariadb.session import Cursor, dbapi_cursor, release
from mungmo_pipelines.core.source.offsets import SourceOffsetStore, table_partition
from mungmo_pipelines.core.source.queriers import Querier, querier_for
from mungmo_pipelines.core.source.runtime import NO_CUT, Checkpoint, Record, SourceRun, SourceRuntime, database_errors

QUERY_ALIAS = "mungmo_query"
_INTEGER_TYPES = (FIELD_TYPE.TINY, FIELD_TYPE.SHORT, FIELD_TYPE.INT24, FIELD_TYPE.LONG, FIELD_TYPE.LONGLONG)


@dataclass(frozen=True)
class SourceTable:
    """What the source reads: a table of the connection's own database, or the connector's query."""

    database: str
    name: str | None
    columns: tuple[ResultColumn, ...]
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


def resolve_tables(config: JdbcSourceConfig, existing: Sequence[str]) -> list[str]:
    """The tables a connector copies: its whitelist, or every table but the blacklisted ones.

    Names may be qualified with the connection's own database; any other database is refused.
    """
    database = config.database

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
    tables = [t for t in existing if t not in excluded]
    for table in tables:
        problem = config.table_topic_problem(table)
        if problem:
            raise SourceError(
                f"connector {config.name!r}, field 'topic.prefix': {problem} (exclude the table with table.blacklist)"
            )
    return tables


def source_tables(config: JdbcSourceConfig, engine: Engine) -> list[str]:
    """The tables ``config`` copies, resolved against the database (none in query mode)."""
    with engine.connect() as conn, dbapi_cursor(conn) as cursor:
        return resolve_tables(config, catalog.list_tables(cursor))


def from_sql(table: str | None, query: str) -> str:
    """What ``SELECT * FROM`` reads: the table, or the query wrapped so conditions apply to its result."""
    return quote(table) if table is not None else f"({query}) AS {QUERY_ALIAS}"


def describe_source(cursor: Cursor, table: str | None, query: str) -> SourceTable:
    """Columns as the protocol describes them (``SELECT ... LIMIT 0``), and the primary key."""
    columns = catalog.result_columns(cursor, from_sql(table, query))
    database = catalog.current_database(cursor)
    primary_key = catalog.primary_key(cursor, table) if table is not None else ()
    return SourceTable(database, table, columns, primary_key)


def subject(table: str | None) -> str:
    """How errors name what a read was reading."""
    return f"table {table}" if table is not None else "query"


def instant(value: dt.datetime, zone: dt.tzinfo) -> dt.datetime:
    """A wall-clock value read in ``zone`` as a UTC instant."""
    return value.replace(tzinfo=zone).astimezone(dt.UTC)


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
                return instant(value, self.timestamp_zone)
        return None


class JdbcTableRead:
    """One table's read: the querier's rows as records, and the offsets between them."""

    def __init__(self, plan: TablePlan, querier: Querier, cursor: Cursor, stored: dict[str, Any] | None) -> None:
        self.plan = plan
        self.querier = querier
        self.cursor = cursor
        self.stored = stored
        self.label = plan.source.label
        self.topic = plan.topic
        self.partition = plan.partition
        self.held_back = ""
        self._last: Sequence[Any] | None = None
        self._pending: Sequence[Any] | None = None
        self._final: dict[str, Any] | None = None

    def records(self) -> Iterator[Record]:
        querier, topic, encode = self.querier, self.topic, self.plan.encoder.encode
        with database_errors(self.querier.config.name, subject(self.plan.source.name)):
            rows = querier.rows(self.cursor, self.stored)
            admit = querier.admit
            try:
                for row in rows:
                    if not admit(row):
                        break
                    self._pending = row
                    key, value = encode(row)
                    yield topic, key, value, None
                    self._last = row
            finally:
                rows.close()
        offset, self.held_back = querier.finish(self._last)
        self._final = offset.to_value() if offset is not None else None

    def checkpoint(self) -> Checkpoint:
        if self._last is not None and not self.querier.may_cut_between(self._last, self._pending):
            return NO_CUT
        offset = self.querier.offset_after(self._last)
        return offset.to_value() if offset is not None else None

    def offset(self) -> dict[str, Any] | None:
        return self._final

    def written_topics(self) -> tuple[str, ...]:
        return (self.topic,)


class JdbcReader:
    """Reads a JDBC source connector's tables (or query), each from its stored offset."""

    def __init__(self, config: JdbcSourceConfig, engine: Engine, kafka: KafkaSettings) -> None:
        self.config = config
        self.engine = engine
        self.kafka = kafka
        self.zone = ZoneInfo(config.db_timezone)

    def fail(self, what: str, problem: str) -> SourceError:
        return SourceError(f"connector {self.config.name!r}, {what}: {problem}")

    def reads(self, stored: Callable[[dict[str, Any]], dict[str, Any] | None]) -> Iterator[JdbcTableRead]:
        config = self.config
        with database_errors(config.name, f"listing the tables of {config.database}"):
            tables: list[str | None] = [None] if config.query else list(source_tables(config, self.engine))
        for table in tables:
            with database_errors(config.name, subject(table)):
                connection = self.engine.raw_connection()
                try:
                    cursor = connection.cursor()
                    cursor.execute("SET SESSION time_zone = '+00:00', SESSION net_write_timeout = 600")
                    plan = self.plan(cursor, table)
                    ensure_topic(self.kafka, plan.topic, config.topic_partitions, config.topic_replication_factor)
                    yield JdbcTableRead(plan, querier_for(config, plan), cursor, stored(plan.partition))
                    cursor.close()
                finally:
                    release(connection)

    def plan(self, cursor: Cursor, table: str | None) -> TablePlan:
        config = self.config
        source = describe_source(cursor, table, config.query)
        codecs = [field_codec(c, self.zone) for c in source.columns]
        key_positions = [source.position(k, "primary key column", config.name) for k in source.primary_key]
        encoder = RowEncoder(codecs, source.name, key_positions)
        incrementing = self._incrementing_position(source) if config.mode.uses_incrementing else None
        timestamps: tuple[int, ...] = ()
        zone: dt.tzinfo = UTC
        if config.mode.uses_timestamp:
            timestamps = tuple(source.position(c, "timestamp column", config.name) for c in config.timestamp_columns)
            zone = self._timestamp_zone(source, timestamps)
        if config.validate_non_null and source.name is not None:
            self._validate_non_null(source, incrementing, timestamps)
        return TablePlan(
            source,
            from_sql(table, config.query),
            config.topic_for(source.name or ""),
            table_partition(source.database, source.name),
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
        integral = column.type_code in _INTEGER_TYPES or (
            column.type_code == FIELD_TYPE.NEWDECIMAL and column.decimals == 0
        )
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
        if len(kinds) > 1 and not is_utc(self.zone):
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


def run_jdbc_source(config: JdbcSourceConfig, engine: Engine, kafka: KafkaSettings) -> SourceRun:
    """One run of a JDBC source connector: every table once, from its stored offset to what is settled now."""
    offsets = SourceOffsetStore(kafka, config.offsets_topic, config.topic_replication_factor)
    retry = RetryPolicy(config.errors_retry_timeout_ms, config.errors_retry_delay_max_ms)
    runtime = SourceRuntime(config.name, kafka, offsets, config.transactions, retry)
    return runtime.run(JdbcReader(config, engine, kafka))
