"""Repair through Kafka: the source's current rows for chosen keys sent to its topic again, and
tombstones for keys it no longer has, so every consumer of the topic is repaired, not one target.

What to repair (:class:`RepairScope`): keys, key ranges, or the differences a stored check found.
Keys and range bounds are in the JSON form a :class:`CheckResult` holds them in, in key-column
order; TIMESTAMP key values are wall-clock times in the zone the check compared in (the sink's
``db.timezone``).

Each kind of source repairs its own way (:data:`REPAIRS`, by connector config class). The JDBC
source's (:class:`JdbcRepair`) reads the rows by key with the source's own reader plan, encodes
them with its record encoder (so a repaired record is byte for byte what a source run sends), and
sends them, with a key and a null value for each key the table no longer has, in Kafka
transactions of the source's own transactional id and without an offset record: the stored offset
does not move, so an incrementing source re-sends rows whose ids are below it and carries on from
where it was. Sharing the transactional id keeps a repair and a source run from interleaving: the
later one to start fences the earlier, so no repair can land a row's older version after the
newer one a source run sent (in Dagster the repair job also queues behind the source's runs).

A sink applies a repair only if it upserts by key; it applies tombstones only with
``delete.enabled``. Re-sent rows would stop a sink with ``insert.mode=insert`` (duplicate key) or
become extra rows in one without a key, so the repair refuses to send rows while such a sink reads
the topic, and says what each sink cannot apply (:func:`sink_limits`) instead of pretending.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import closing
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import pymysql.cursors
from confluent_kafka import KafkaException
from pymysql.constants import FIELD_TYPE
from sqlalchemy import Engine

from mungmo_pipelines.core.config.jdbc_source import JdbcSourceConfig
from mungmo_pipelines.core.config.sink import InsertMode, PkMode, SinkConfig
from mungmo_pipelines.core.consistency.ranges import Key, KeyRange, keys_sql, range_sql
from mungmo_pipelines.core.consistency.result import DIFFERENT, EXTRA, MISSING, CheckResult, key_json, key_value
from mungmo_pipelines.core.errors import ConsistencyError
from mungmo_pipelines.core.kafka.clients import KafkaSettings, wait_until_committed_visible
from mungmo_pipelines.core.kafka.topics import ensure_topic
from mungmo_pipelines.core.kafka.transactions import SourceTransactions, TransactionalProducer
from mungmo_pipelines.core.mariadb import catalog
from mungmo_pipelines.core.mariadb.columns import ResultColumn
from mungmo_pipelines.core.mariadb.dialect import quote
from mungmo_pipelines.core.mariadb.session import Cursor, close_streaming
from mungmo_pipelines.core.source.jdbc import JdbcReader, TablePlan, database_errors
from mungmo_pipelines.core.source.runtime import source_transactional_id

KEYS_PER_QUERY = 500
EXISTS_PER_QUERY = 200
_INTEGERS = (FIELD_TYPE.TINY, FIELD_TYPE.SHORT, FIELD_TYPE.INT24, FIELD_TYPE.LONG, FIELD_TYPE.LONGLONG, FIELD_TYPE.YEAR)

JsonKey = tuple[Any, ...]


@dataclass(frozen=True)
class RepairScope:
    """Keys and ``[from, to)`` key ranges (either bound None: unbounded), JSON form; ``zone``: the zone
    TIMESTAMP key values are wall-clock times in."""

    keys: tuple[JsonKey, ...] = ()
    ranges: tuple[tuple[JsonKey | None, JsonKey | None], ...] = ()
    zone: str = "UTC"

    @classmethod
    def of_differences(cls, result: CheckResult, explained: bool = False) -> RepairScope:
        """The keys ``result`` found different (with ``explained``, also those the mode explains, such
        as an incrementing source's updates); rows in flight are left to the pipeline."""
        kinds = (MISSING, EXTRA, DIFFERENT)
        rows = [*result.differences, *(result.explained if explained else [])]
        keys = dict.fromkeys(tuple(d.key) for d in rows if d.kind in kinds)
        return cls(keys=tuple(keys))

    def __bool__(self) -> bool:
        return bool(self.keys or self.ranges)


@dataclass
class RepairResult:
    """What a repair sent, and what each sink reading the topic cannot apply of it (empty: everything)."""

    connector: str
    table: str
    topic: str
    keys_requested: int = 0
    ranges: int = 0
    rows_sent: int = 0
    tombstones_sent: int = 0
    # Keys the source no longer has whose tombstones were not sent: a sink reading the topic cannot apply them.
    tombstones_withheld: list[list[Any]] = field(default_factory=list)
    transactions: int = 0
    seconds: float = 0.0
    sinks: dict[str, list[str]] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RepairTarget:
    """A sink reading the repaired topic, and its database (whose table a range repair reads for keys)."""

    sink: SinkConfig
    engine: Engine


def sink_limits(sink: SinkConfig) -> tuple[str, list[str]]:
    """(why re-sent rows would harm the sink, "" when they would not; what of a repair it cannot apply).

    A sink without ``delete.enabled`` stops at a tombstone (or dead-letters it), so tombstones are
    withheld while such a sink reads the topic: the rows the source no longer has stay in every target."""
    harm = ""
    if sink.pk_mode in (PkMode.NONE, PkMode.KAFKA):
        harm = (
            f"{sink.PK_MODE_OPTION}={sink.pk_mode} writes each re-sent row as one more row; a repair needs "
            f"{sink.PK_MODE_OPTION}=record_key (or record_value) and insert.mode=upsert"
        )
    elif sink.insert_mode is InsertMode.INSERT:
        harm = (
            "insert.mode=insert stops at a re-sent row its table already has (duplicate key); a repair needs "
            "insert.mode=upsert"
        )
    limits = []
    if sink.insert_mode is InsertMode.UPDATE:
        limits.append("insert.mode=update: rows missing from its table are not inserted")
    if not sink.delete_enabled:
        limits.append(
            "delete.enabled=false: it cannot apply a tombstone (it would stop at it), so no tombstone is sent and "
            "rows the source no longer has stay in the targets"
        )
    return harm, limits


class RepairStrategy(Protocol):
    def repair(self, table: str, scope: RepairScope, targets: Sequence[RepairTarget]) -> RepairResult:
        """Send ``scope``'s rows of ``table`` again; ``targets``: the sinks reading its topic."""
        ...


class JdbcRepair:
    """The JDBC source's repair (see the module docstring)."""

    def __init__(self, config: JdbcSourceConfig, engine: Engine, kafka: KafkaSettings) -> None:
        self.config = config
        self.engine = engine
        self.kafka = kafka

    def repair(self, table: str, scope: RepairScope, targets: Sequence[RepairTarget]) -> RepairResult:
        started = time.monotonic()
        config = self.config
        result = RepairResult(config.name, table, config.topic_for(table), len(scope.keys), len(scope.ranges))
        harms = []
        for target in targets:
            harm, result.sinks[target.sink.name] = sink_limits(target.sink)
            if harm:
                harms.append(f"sink {target.sink.name!r}: {harm}")
        deletes = all(target.sink.delete_enabled for target in targets)
        with database_errors(config.name, f"table {table}"):
            connection = self.engine.raw_connection()
            try:
                with closing(connection.cursor()) as cursor:
                    cursor.execute("SET SESSION time_zone = '+00:00'")  # as the source reads
                    plan = JdbcReader(config, self.engine, self.kafka).plan(cursor, table)
                    if not plan.source.primary_key:
                        raise ConsistencyError(
                            f"connector {config.name!r}: table {table} has no primary key, so its records have no "
                            "key: a repair cannot address rows, nor delete them"
                        )
                    batches = _SourceRows(cursor, plan, scope.zone)
                    rows, gone = batches.by_keys(scope.keys)
                    if (rows or scope.ranges) and harms:
                        raise ConsistencyError(
                            f"connector {config.name!r}: repair of {table} through topic {result.topic} refused, "
                            f"nothing sent: {'; '.join(harms)}"
                        )
                    ranges = [batches.key_range(lower, upper) for lower, upper in scope.ranges]
                    extra = [key for r in scope.ranges for key in batches.gone(self._target_keys(table, r, targets))]
                    gone = [*gone, *extra]
                    if not deletes:
                        result.tombstones_withheld = [[key_json(v) for v in key] for key in gone]
                        gone = []
                    self._send(plan, result, rows, gone, (batches.in_range(r) for r in ranges))
            finally:
                connection.close()
        result.seconds = round(time.monotonic() - started, 3)
        return result

    def _target_keys(
        self, table: str, bounds: tuple[JsonKey | None, JsonKey | None], targets: Sequence[RepairTarget]
    ) -> list[JsonKey]:
        """The keys each target holds in the range (JSON form): those the source lacks get tombstones."""
        keys: dict[JsonKey, None] = {}
        topic = self.config.topic_for(table)
        for target in targets:
            sink = target.sink
            database, target_table = sink.database, sink.table_for(topic)
            key_names = sink.pk_fields if sink.pk_mode in (PkMode.RECORD_KEY, PkMode.RECORD_VALUE) else ()
            connection = target.engine.raw_connection()
            try:
                with closing(connection.cursor()) as cursor:
                    key_names = key_names or catalog.primary_key(cursor, target_table, database)
                    if not key_names:
                        continue  # not there yet, or no key to address rows by
                    refs = [quote(name) for name in key_names]
                    lower, upper = (tuple(key_value(v) for v in b) if b is not None else None for b in bounds)
                    where, params = range_sql(refs, KeyRange(lower, upper))
                    cursor.execute(
                        f"SELECT {', '.join(refs)} FROM {quote(database)}.{quote(target_table)} WHERE {where}", params
                    )
                    keys.update(dict.fromkeys(tuple(key_json(v) for v in row) for row in cursor.fetchall()))
            finally:
                connection.close()
        return list(keys)

    def _send(
        self,
        plan: TablePlan,
        result: RepairResult,
        rows: Sequence[Sequence[Any]],
        gone: Sequence[Key],
        ranges: Iterable[Iterator[Sequence[Any]]],
    ) -> None:
        config = self.config
        ensure_topic(self.kafka, plan.topic, config.topic_partitions, config.topic_replication_factor)
        producer = TransactionalProducer(self.kafka, source_transactional_id(config.name))
        transactions = SourceTransactions(producer, config.transactions, config.offsets_topic)
        encode, topic = plan.encoder.encode, plan.topic

        def send(key: bytes | None, value: bytes | None) -> None:
            if transactions.due():
                transactions.commit(b"", None)  # no offset record: the source's offset stays where it is
            transactions.send(topic, key, value)

        try:
            producer.init_transactions()
            for row in (*rows, *(row for stream in ranges for row in stream)):
                send(*encode(row))
                result.rows_sent += 1
            for key in gone:
                send(plan.encoder.encode_key(key), None)
                result.tombstones_sent += 1
            if transactions.open:
                transactions.commit(b"", None)
        except KafkaException as err:
            transactions.abort()
            raise ConsistencyError(
                f"connector {config.name!r}: repair's Kafka transaction failed ({err}); read_committed consumers see "
                "none of its uncommitted records: run the repair again"
            ) from err
        except BaseException:
            transactions.abort()
            raise
        finally:
            producer.close()
        result.transactions = transactions.committed
        wait_until_committed_visible(self.kafka, [topic])


class _SourceRows:
    """Source rows by key and by range, read as the source reads them (``time_zone`` +00:00)."""

    def __init__(self, cursor: Cursor, plan: TablePlan, zone: str) -> None:
        self.cursor = cursor
        self.plan = plan
        self.zone = ZoneInfo(zone)
        names = [c.name for c in plan.source.columns]
        self.key_positions = [names.index(k) for k in plan.source.primary_key]
        self.key_columns = [plan.source.columns[i] for i in self.key_positions]
        self.refs = [quote(c.name) for c in self.key_columns]

    def typed(self, key: JsonKey) -> Key:
        """A JSON-form key as the source's key values (what a read of the row would return)."""
        if len(key) != len(self.key_columns):
            raise ConsistencyError(
                f"key {list(key)} has {len(key)} values; the primary key of {self.plan.source.label} is "
                f"({', '.join(c.name for c in self.key_columns)})"
            )
        return tuple(_typed(value, column, self.zone) for value, column in zip(key, self.key_columns, strict=True))

    def key_range(self, lower: JsonKey | None, upper: JsonKey | None) -> KeyRange:
        return KeyRange(*(self.typed(bound) if bound is not None else None for bound in (lower, upper)))

    def by_keys(self, keys: Sequence[JsonKey]) -> tuple[list[Sequence[Any]], list[Key]]:
        """The rows of ``keys`` the table has, and the keys it has not (under its own collations)."""
        wanted = list(dict.fromkeys(self.typed(k) for k in keys))
        rows: dict[Key, Sequence[Any]] = {}
        for start in range(0, len(wanted), KEYS_PER_QUERY):
            where, params = keys_sql(self.refs, wanted[start : start + KEYS_PER_QUERY])
            self.cursor.execute(f"SELECT * FROM {self.plan.from_sql} WHERE {where}", params)
            for row in self.cursor.fetchall():
                rows[tuple(row[i] for i in self.key_positions)] = row
        # A key matching no row exactly may still match one under the column's collation (case, pad).
        unmatched = [key for key in wanted if key not in rows]
        return list(rows.values()), self._absent(unmatched)

    def gone(self, keys: Sequence[JsonKey]) -> list[Key]:
        """Of ``keys`` (JSON form), those the table does not have."""
        return self._absent(list(dict.fromkeys(self.typed(k) for k in keys)))

    def _absent(self, keys: Sequence[Key]) -> list[Key]:
        absent: list[Key] = []
        for start in range(0, len(keys), EXISTS_PER_QUERY):
            batch = keys[start : start + EXISTS_PER_QUERY]
            tests, params = [], []
            for key in batch:
                where, values = keys_sql(self.refs, [key])
                tests.append(f"EXISTS (SELECT 1 FROM {self.plan.from_sql} WHERE {where})")
                params.extend(values)
            self.cursor.execute(f"SELECT {', '.join(tests)}", params)
            found = self.cursor.fetchone() or ()
            absent.extend(key for key, exists in zip(batch, found, strict=True) if not exists)
        return absent

    def in_range(self, key_range: KeyRange) -> Iterator[Sequence[Any]]:
        """The range's rows, streamed (bounded memory)."""
        where, params = range_sql(self.refs, key_range)
        connection = self.cursor.connection  # type: ignore[attr-defined]
        streaming = connection.cursor(pymysql.cursors.SSCursor)
        try:
            streaming.execute(f"SELECT * FROM {self.plan.from_sql} WHERE {where}", params)
            while batch := streaming.fetchmany(1000):
                yield from batch
        finally:
            close_streaming(streaming)


def _typed(value: Any, column: ResultColumn, zone: dt.tzinfo) -> Any:
    """One JSON-form key value as the Python value the source's read returns for ``column``."""
    code = column.type_code
    try:
        if code in _INTEGERS:
            if isinstance(value, bool) or not isinstance(value, (int, str)):
                raise ValueError("expected an integer")
            return int(value)
        if code in (FIELD_TYPE.NEWDECIMAL, FIELD_TYPE.DECIMAL):
            return Decimal(value["decimal"] if isinstance(value, dict) else str(value))
        if code in (FIELD_TYPE.DATE, FIELD_TYPE.NEWDATE):
            return dt.date.fromisoformat(value)
        if code == FIELD_TYPE.DATETIME:
            return dt.datetime.fromisoformat(value)
        if code == FIELD_TYPE.TIMESTAMP:  # compared in the check's zone; read by the source in UTC
            wall = dt.datetime.fromisoformat(value)
            return wall.replace(tzinfo=zone).astimezone(dt.UTC).replace(tzinfo=None)
        if code == FIELD_TYPE.TIME:
            return _duration(value)
    except (ValueError, TypeError, KeyError, ArithmeticError) as err:
        raise ConsistencyError(f"key value {value!r} for column {column.name!r}: {err}") from None
    return key_value(value)


def _duration(text: str) -> dt.timedelta:
    """A TIME value as :func:`key_json` writes it: ``[-]HH:MM:SS.ffffff``, hours beyond 24 allowed."""
    sign = -1 if text.startswith("-") else 1
    hours, minutes, seconds = text.lstrip("-").split(":")
    whole, _, fraction = seconds.partition(".")
    micros = int(fraction.ljust(6, "0")[:6]) if fraction else 0
    return sign * dt.timedelta(hours=int(hours), minutes=int(minutes), seconds=int(whole), microseconds=micros)


# Source connector config class -> its repair. A new kind of source registers its own here (the
# Debezium CDC source's is its incremental snapshot with additional-conditions: not yet).
REPAIRS: dict[type, Callable[[Any, Engine, KafkaSettings], RepairStrategy]] = {JdbcSourceConfig: JdbcRepair}


def repair_strategy(config: Any, engine: Engine, kafka: KafkaSettings) -> RepairStrategy:
    for kind, make in REPAIRS.items():
        if isinstance(config, kind):
            return make(config, engine, kafka)
    raise ConsistencyError(
        f"connector {config.name!r} ({type(config).__name__}): no repair for this kind of source yet"
    )
