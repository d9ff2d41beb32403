"""Repair through Kafka: the source's current rows for chosen keys sent to its topic again, and
deletes for keys it no longer has, so every consumer of the topic is repaired, not one target.

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

The Debezium CDC source's (:class:`CdcRepair`) is Debezium's incremental snapshot with
``additional-conditions`` on the keys or ranges (``SnapshotRequest``: the ``execute-snapshot``
signal without a signal row), run as one run of the source: the watermark windows order each
re-read row against the stream, so no repair lands an older version after a newer change. An
incremental snapshot reads only rows the table has, so keys it no longer has get delete events of
their own (``op`` ``d``, ``before`` the key) and tombstones, sent like the JDBC repair's
tombstones: in the source's transactional id, without an offset record, their absence read after
the producer fenced any run of the source.

A sink applies a repair only if it upserts by key; it applies deletes only with ``delete.enabled``.
Re-sent rows would stop a sink with ``insert.mode=insert`` (duplicate key) or become extra rows in
one without a key, so the repair refuses to send rows while such a sink reads the topic; deletes
are withheld while a sink reads the topic that would stop at one; and the repair says what each
sink cannot apply (:func:`sink_limits`) instead of pretending.
"""

from __future__ import annotations

import datetime as dt
import re
import time
import uuid
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

from mungmo_pipelines.core.config.debezium_source import TLS_OPTIONS, DebeziumSourceConfig
from mungmo_pipelines.core.config.jdbc_source import JdbcSourceConfig
from mungmo_pipelines.core.config.sink import InsertMode, PkMode, SinkConfig
from mungmo_pipelines.core.config.transforms import OnDelete
from mungmo_pipelines.core.connect.debezium import ChangeEventEncoder, DebeziumRecord, SourceInfo, new_run_id
from mungmo_pipelines.core.consistency.ranges import Key, KeyRange, keys_sql, range_sql
from mungmo_pipelines.core.consistency.result import DIFFERENT, EXTRA, MISSING, CheckResult, key_json, key_value
from mungmo_pipelines.core.errors import ConsistencyError
from mungmo_pipelines.core.kafka.clients import KafkaSettings, wait_until_committed_visible
from mungmo_pipelines.core.kafka.topics import ensure_topic
from mungmo_pipelines.core.kafka.transactions import BoundaryPolicy, SourceTransactions, TransactionalProducer
from mungmo_pipelines.core.mariadb import catalog
from mungmo_pipelines.core.mariadb.binlog.checks import head_position
from mungmo_pipelines.core.mariadb.columns import ResultColumn, TableSchema
from mungmo_pipelines.core.mariadb.connection import server_of
from mungmo_pipelines.core.mariadb.dialect import quote
from mungmo_pipelines.core.mariadb.select_values import select_converters
from mungmo_pipelines.core.mariadb.session import Cursor, close_streaming, fetch_one
from mungmo_pipelines.core.source.cdc.incremental import SIGNAL_TABLE_COLUMNS
from mungmo_pipelines.core.source.cdc.reader import SnapshotRequest, connect, run_cdc_source
from mungmo_pipelines.core.source.cdc.tables import TableShapes
from mungmo_pipelines.core.source.jdbc import JdbcReader, TablePlan
from mungmo_pipelines.core.source.runtime import database_errors, source_transactional_id

KEYS_PER_QUERY = 500
EXISTS_PER_QUERY = 200
# Keys per additional condition of a CDC repair's incremental snapshot, and condition text per source run:
# the snapshot's state, conditions included, rides in every offset the run commits until it is done.
KEYS_PER_CONDITION = 500
CONDITION_CHARS_PER_RUN = 100_000
# How a key value is typed back from its JSON form, by the source's column type.
_KEY_KINDS_BY_CODE = {
    **dict.fromkeys(
        (FIELD_TYPE.TINY, FIELD_TYPE.SHORT, FIELD_TYPE.INT24, FIELD_TYPE.LONG, FIELD_TYPE.LONGLONG, FIELD_TYPE.YEAR),
        "integer",
    ),
    FIELD_TYPE.NEWDECIMAL: "decimal",
    FIELD_TYPE.DECIMAL: "decimal",
    FIELD_TYPE.DATE: "date",
    FIELD_TYPE.NEWDATE: "date",
    FIELD_TYPE.DATETIME: "datetime",
    FIELD_TYPE.TIMESTAMP: "timestamp",
    FIELD_TYPE.TIME: "time",
}
_KEY_KINDS_BY_TYPE = {
    **dict.fromkeys(("tinyint", "smallint", "mediumint", "int", "bigint", "year"), "integer"),
    "decimal": "decimal",
    "date": "date",
    "datetime": "datetime",
    "timestamp": "timestamp",
    "time": "time",
}

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
    # Keys the source no longer has sent as Debezium delete events (a CDC repair; each with its tombstone).
    rows_deleted: int = 0
    transactions: int = 0
    seconds: float = 0.0
    sinks: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RepairTarget:
    """A sink reading the repaired topic, and its database (whose table a range repair reads for keys)."""

    sink: SinkConfig
    engine: Engine


def sink_limits(sink: SinkConfig, delete_events: bool = False) -> tuple[str, list[str], bool]:
    """(why re-sent rows would harm the sink, "" when they would not; what of a repair it cannot apply;
    whether a repair's delete would stop it). ``delete_events``: deletes are Debezium delete events
    followed by tombstones (a CDC repair), not tombstones alone.

    Debezium's sink skips deletes without ``delete.enabled``; the JDBC sink stops at a null value it
    cannot apply (or dead-letters it), so deletes are withheld while such a sink reads the topic: the
    rows the source no longer has stay in every target. ``ExtractNewRecordState`` decides what reaches
    the JDBC sink: a delete event dropped, turned into a null value, or rewritten as a row."""
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
    unwrap = sink.transform_chain[0] if sink.transform_chain else None
    if sink.reads_change_events:
        null_values = False  # Debezium's sink reads deletes itself
    elif unwrap is None:
        null_values = True
    else:
        events_null = delete_events and unwrap.on_delete in (OnDelete.NULL_VALUE, OnDelete.TOMBSTONE)
        null_values = unwrap.keep_tombstones or events_null
        if delete_events and unwrap.on_delete is OnDelete.REWRITE:
            limits.append(f"transform {unwrap.alias!r} rewrites a delete as a row with __deleted = 'true'")
        elif not null_values:
            limits.append(f"transform {unwrap.alias!r} drops deletes: rows the source no longer has stay in its table")
    stops = null_values and not sink.delete_enabled
    if stops:
        limits.append(
            "delete.enabled=false: it cannot apply a tombstone (it would stop at it), so no tombstone is sent and "
            "rows the source no longer has stay in the targets"
        )
    elif sink.reads_change_events and not sink.delete_enabled:
        limits.append("delete.enabled=false: it skips deletes, so rows the source no longer has stay in its table")
    elif sink.reads_change_events and sink.pk_mode is PkMode.RECORD_VALUE and not delete_events:
        limits.append(
            f"{sink.PK_MODE_OPTION}=record_value: it skips a tombstone (no row to take the key from), so rows the "
            "source no longer has stay in its table"
        )
    return harm, limits, stops


def assess_targets(
    result: RepairResult, targets: Sequence[RepairTarget], delete_events: bool = False
) -> tuple[list[str], bool]:
    """Each target sink's limits into ``result``; (the harms re-sent rows would do, whether deletes may
    be sent: no sink reading the topic would stop at one)."""
    harms, deletes = [], True
    for target in targets:
        harm, result.sinks[target.sink.name], stops = sink_limits(target.sink, delete_events)
        if harm:
            harms.append(f"sink {target.sink.name!r}: {harm}")
        deletes = deletes and not stops
    return harms, deletes


def refused(connector: str, table: str, topic: str, harms: Sequence[str]) -> ConsistencyError:
    return ConsistencyError(
        f"connector {connector!r}: repair of {table} through topic {topic} refused, nothing sent: {'; '.join(harms)}"
    )


def target_keys(
    topic: str, bounds: tuple[JsonKey | None, JsonKey | None], targets: Sequence[RepairTarget]
) -> list[JsonKey]:
    """The keys each target holds in the range (JSON form): those the source lacks get deleted."""
    keys: dict[JsonKey, None] = {}
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


def send_as_source(
    kafka: KafkaSettings,
    connector: str,
    transactions_policy: BoundaryPolicy,
    offsets_topic: str,
    records: Iterable[DebeziumRecord],
    before_first: Callable[[], None] = lambda: None,
) -> int:
    """``records`` sent in Kafka transactions of the source's own transactional id, without an offset
    record (the source's offset stays where it is); ``before_first`` runs once the producer has fenced
    any run of the source, before the records are made. Returns the transactions committed."""
    producer = TransactionalProducer(kafka, source_transactional_id(connector))
    transactions = SourceTransactions(producer, transactions_policy, offsets_topic)
    topics: set[str] = set()
    try:
        producer.init_transactions()
        before_first()
        for record in records:
            if transactions.due():
                transactions.commit(b"", None)  # no offset record: the source's offset stays where it is
            transactions.send(record.topic, record.key, record.value, record.headers or None)
            topics.add(record.topic)
        if transactions.open:
            transactions.commit(b"", None)
    except KafkaException as err:
        transactions.abort()
        raise ConsistencyError(
            f"connector {connector!r}: repair's Kafka transaction failed ({err}); read_committed consumers see "
            "none of its uncommitted records: run the repair again"
        ) from err
    except BaseException:
        transactions.abort()
        raise
    finally:
        producer.close()
    wait_until_committed_visible(kafka, topics)
    return transactions.committed


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
        harms, deletes = assess_targets(result, targets)
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
                        raise refused(config.name, table, result.topic, harms)
                    ranges = [batches.key_range(lower, upper) for lower, upper in scope.ranges]
                    extra = [key for r in scope.ranges for key in batches.gone(target_keys(result.topic, r, targets))]
                    gone = [*gone, *extra]
                    if not deletes:
                        result.tombstones_withheld = [[key_json(v) for v in key] for key in gone]
                        gone = []
                    self._send(plan, result, rows, gone, (batches.in_range(r) for r in ranges))
            finally:
                connection.close()
        result.seconds = round(time.monotonic() - started, 3)
        return result

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
        encoder, topic = plan.encoder, plan.topic

        def records() -> Iterator[DebeziumRecord]:
            for row in (*rows, *(row for stream in ranges for row in stream)):
                yield DebeziumRecord(topic, *encoder.encode(row), ())
                result.rows_sent += 1
            for key in gone:
                yield DebeziumRecord(topic, encoder.encode_key(key), None, ())
                result.tombstones_sent += 1

        result.transactions = send_as_source(
            self.kafka, config.name, config.transactions, config.offsets_topic, records()
        )


class SourceKeys:
    """A source table's keys as the source reads them (``time_zone`` +00:00): JSON-form keys typed
    back, key ranges, and which keys the table has (under its own collations)."""

    def __init__(
        self, cursor: Cursor, from_sql: str, label: str, key_names: Sequence[str], kinds: Sequence[str], zone: str
    ) -> None:
        self.cursor = cursor
        self.from_sql = from_sql
        self.label = label
        self.key_names = tuple(key_names)
        self.kinds = tuple(kinds)
        self.zone = ZoneInfo(zone)
        self.refs = [quote(name) for name in key_names]

    def typed(self, key: JsonKey) -> Key:
        """A JSON-form key as the source's key values (what a read of the row would return)."""
        if len(key) != len(self.key_names):
            raise ConsistencyError(
                f"key {list(key)} has {len(key)} values; the primary key of {self.label} is "
                f"({', '.join(self.key_names)})"
            )
        return tuple(
            _typed(value, kind, name, self.zone)
            for value, kind, name in zip(key, self.kinds, self.key_names, strict=True)
        )

    def key_range(self, lower: JsonKey | None, upper: JsonKey | None) -> KeyRange:
        return KeyRange(*(self.typed(bound) if bound is not None else None for bound in (lower, upper)))

    def gone(self, keys: Sequence[JsonKey]) -> list[Key]:
        """Of ``keys`` (JSON form), those the table does not have."""
        return self.absent(list(dict.fromkeys(self.typed(k) for k in keys)))

    def absent(self, keys: Sequence[Key]) -> list[Key]:
        """Of typed ``keys``, those the table does not have."""
        absent: list[Key] = []
        for start in range(0, len(keys), EXISTS_PER_QUERY):
            batch = keys[start : start + EXISTS_PER_QUERY]
            tests, params = [], []
            for key in batch:
                where, values = keys_sql(self.refs, [key])
                tests.append(f"EXISTS (SELECT 1 FROM {self.from_sql} WHERE {where})")
                params.extend(values)
            self.cursor.execute(f"SELECT {', '.join(tests)}", params)
            found = self.cursor.fetchone() or ()
            absent.extend(key for key, exists in zip(batch, found, strict=True) if not exists)
        return absent


class _SourceRows(SourceKeys):
    """A JDBC source's rows by key and by range, read with its reader plan."""

    def __init__(self, cursor: Cursor, plan: TablePlan, zone: str) -> None:
        names = [c.name for c in plan.source.columns]
        self.key_positions = [names.index(k) for k in plan.source.primary_key]
        columns: list[ResultColumn] = [plan.source.columns[i] for i in self.key_positions]
        kinds = [_KEY_KINDS_BY_CODE.get(c.type_code, "") for c in columns]
        super().__init__(cursor, plan.from_sql, plan.source.label, [c.name for c in columns], kinds, zone)

    def by_keys(self, keys: Sequence[JsonKey]) -> tuple[list[Sequence[Any]], list[Key]]:
        """The rows of ``keys`` the table has, and the keys it has not (under its own collations)."""
        wanted = list(dict.fromkeys(self.typed(k) for k in keys))
        rows: dict[Key, Sequence[Any]] = {}
        for start in range(0, len(wanted), KEYS_PER_QUERY):
            where, params = keys_sql(self.refs, wanted[start : start + KEYS_PER_QUERY])
            self.cursor.execute(f"SELECT * FROM {self.from_sql} WHERE {where}", params)
            for row in self.cursor.fetchall():
                rows[tuple(row[i] for i in self.key_positions)] = row
        # A key matching no row exactly may still match one under the column's collation (case, pad).
        unmatched = [key for key in wanted if key not in rows]
        return list(rows.values()), self.absent(unmatched)

    def in_range(self, key_range: KeyRange) -> Iterator[Sequence[Any]]:
        """The range's rows, streamed (bounded memory)."""
        where, params = range_sql(self.refs, key_range)
        connection = self.cursor.connection  # type: ignore[attr-defined]
        streaming = connection.cursor(pymysql.cursors.SSCursor)
        try:
            streaming.execute(f"SELECT * FROM {self.from_sql} WHERE {where}", params)
            while batch := streaming.fetchmany(1000):
                yield from batch
        finally:
            close_streaming(streaming)


def _typed(value: Any, kind: str, name: str, zone: dt.tzinfo) -> Any:
    """One JSON-form key value as the Python value the source's read returns for a column of ``kind``."""
    try:
        if kind == "integer":
            if isinstance(value, bool) or not isinstance(value, (int, str)):
                raise ValueError("expected an integer")
            return int(value)
        if kind == "decimal":
            return Decimal(value["decimal"] if isinstance(value, dict) else str(value))
        if kind == "date":
            return dt.date.fromisoformat(value)
        if kind == "datetime":
            return dt.datetime.fromisoformat(value)
        if kind == "timestamp":  # compared in the check's zone; read by the source in UTC
            wall = dt.datetime.fromisoformat(value)
            return wall.replace(tzinfo=zone).astimezone(dt.UTC).replace(tzinfo=None)
        if kind == "time":
            return _duration(value)
    except (ValueError, TypeError, KeyError, ArithmeticError) as err:
        raise ConsistencyError(f"key value {value!r} for column {name!r}: {err}") from None
    return key_value(value)


def _duration(text: str) -> dt.timedelta:
    """A TIME value as :func:`key_json` writes it: ``[-]HH:MM:SS.ffffff``, hours beyond 24 allowed."""
    sign = -1 if text.startswith("-") else 1
    hours, minutes, seconds = text.lstrip("-").split(":")
    whole, _, fraction = seconds.partition(".")
    micros = int(fraction.ljust(6, "0")[:6]) if fraction else 0
    return sign * dt.timedelta(hours=int(hours), minutes=int(minutes), seconds=int(whole), microseconds=micros)


class CdcRepair:
    """The Debezium CDC source's repair (see the module docstring): delete events for the keys the
    table no longer has, then one run of the source whose incremental snapshot re-reads the keys and
    ranges it has (several runs for many keys: the snapshot's conditions ride in every offset the run
    commits). The run streams from the stored offset as any run does, so the offset it leaves is the
    one a run would have left: no change skipped or sent twice, the snapshot's state gone once done."""

    def __init__(self, config: DebeziumSourceConfig, engine: Engine, kafka: KafkaSettings) -> None:
        self.config = config
        self.kafka = kafka
        # The server and account ``engine`` connects with (MUNGMO_MARIADB_URL's override included).
        self.connection = server_of(engine)

    def repair(self, table: str, scope: RepairScope, targets: Sequence[RepairTarget]) -> RepairResult:
        started = time.monotonic()
        config = self.config
        result = RepairResult(config.name, table, config.topic_for(table), len(scope.keys), len(scope.ranges))
        if config.signal_table is None:
            raise ConsistencyError(
                f"connector {config.name!r}: a repair re-reads rows with an incremental snapshot, whose windows are "
                f"written to the signal table: set signal.data.collection (a table ({SIGNAL_TABLE_COLUMNS}) the "
                "connector's user may insert into and delete from)"
            )
        database, _, name = table.partition(".")
        if not config.captures(database, name):
            raise ConsistencyError(f"connector {config.name!r} does not capture table {table}")
        harms, deletes = assess_targets(result, targets, delete_events=True)
        with database_errors(config.name, f"table {table}", TLS_OPTIONS):
            control = connect(self.connection, config)
            try:
                with control.cursor() as cursor:
                    full = catalog.read_table_schema(cursor, database, name)
                    captured = TableShapes(config, new_run_id()).captured(full)
                    schema = captured.schema
                    if not schema.primary_key:
                        raise ConsistencyError(
                            f"connector {config.name!r}: table {table} has no primary key, so its records have no "
                            "key: a repair cannot address rows, nor delete them (an incremental snapshot skips it)"
                        )
                    keys = _cdc_keys(cursor, schema, scope.zone)
                    wanted = list(dict.fromkeys(keys.typed(k) for k in scope.keys))
                    absent = keys.absent(wanted)
                    present = [key for key in wanted if key not in absent]
                    ranges = [keys.key_range(lower, upper) for lower, upper in scope.ranges]
                    if (present or ranges) and harms:
                        raise refused(config.name, table, result.topic, harms)
                    conditions = _conditions(cursor, keys, present, ranges)
                    in_ranges = [key for r in scope.ranges for key in target_keys(result.topic, r, targets)]
                    maybe_gone = [*scope.keys, *in_ranges]
                    if deletes:
                        self._delete(control, keys, captured.encoder, maybe_gone, result)
                    else:
                        result.tombstones_withheld = [[key_json(v) for v in k] for k in keys.gone(maybe_gone)]
            finally:
                control.close()
        self._snapshot(f"{schema.database}.{schema.name}", conditions, result)
        result.seconds = round(time.monotonic() - started, 3)
        return result

    def _delete(
        self,
        control: pymysql.Connection,
        keys: SourceKeys,
        encoder: ChangeEventEncoder,
        candidates: Sequence[JsonKey],
        result: RepairResult,
    ) -> None:
        """Delete events and tombstones for the ``candidates`` the table does not have, read once the
        producer has fenced any run of the source (so no run can send the key's return before them)."""
        if not candidates:
            return
        config = self.config
        gone: list[Key] = []
        sources: list[SourceInfo] = []

        def read_absence() -> None:
            gone.extend(keys.gone(candidates))
            with control.cursor() as cursor:
                cursor.execute("SELECT @@server_id")
                (server_id,) = fetch_one(cursor)
            head = head_position(control)
            sources.append(
                SourceInfo(time.time_ns(), "incremental", int(server_id), None, head.file or "", head.pos or 0)
            )

        converters = select_converters(encoder.table)
        names = [column.name for column in encoder.table.columns]
        positions = [names.index(k) for k in encoder.table.primary_key]

        def records() -> Iterator[DebeziumRecord]:
            for key in gone:
                contract = [None if v is None else converters[i](v) for i, v in zip(positions, key, strict=True)]
                for record in encoder.delete_key(contract, sources[0]):
                    yield record
                    result.tombstones_sent += record.value is None
                result.rows_deleted += 1

        ensure_topic(self.kafka, encoder.topic, config.topic_partitions, config.topic_replication_factor)
        result.transactions += send_as_source(
            self.kafka, config.name, config.transactions, config.offsets_topic, records(), read_absence
        )

    def _snapshot(self, table: str, conditions: Sequence[str], result: RepairResult) -> None:
        """The incremental snapshot of ``table`` (``db.table``) under ``conditions``, in as few source runs
        as the conditions' size allows."""
        config = self.config
        for batch in _condition_batches(conditions):
            requests = tuple(
                SnapshotRequest((re.escape(table),), {table: condition}, f"mungmo-repair-{uuid.uuid4()}")
                for condition in batch
            )
            stats = run_cdc_source(config, self.connection, self.kafka, requests).stats
            done = stats.incremental.tables_done.count(table)
            if done < len(requests):
                raise ConsistencyError(
                    f"connector {config.name!r}: the repair's source run ended before its incremental snapshot of "
                    f"{table} was done ({done} of {len(requests)} conditions read; the run "
                    f"{stats.stopped_because or stats.started_with}): run the source, which finishes it, or the "
                    "repair again"
                )
            result.rows_sent += stats.incremental.rows
            result.notes.append(
                f"source run: {stats.started_with}; {dict(stats.events)} in {stats.transactions} transactions; "
                f"{stats.stopped_because}; offset {stats.position_before} -> {stats.position_after}"
            )


def _cdc_keys(cursor: Cursor, schema: TableSchema, zone: str) -> SourceKeys:
    columns = {column.name: column for column in schema.columns}
    kinds = [_KEY_KINDS_BY_TYPE.get(columns[name].data_type, "") for name in schema.primary_key]
    label = f"{schema.database}.{schema.name}"
    from_sql = f"{quote(schema.database)}.{quote(schema.name)}"
    return SourceKeys(cursor, from_sql, label, schema.primary_key, kinds, zone)


def _conditions(
    cursor: pymysql.cursors.Cursor, keys: SourceKeys, present: Sequence[Key], ranges: Sequence[KeyRange]
) -> list[str]:
    """The incremental snapshot's additional conditions (SQL text, values quoted) for the keys and ranges."""
    conditions = []
    for start in range(0, len(present), KEYS_PER_CONDITION):
        where, params = keys_sql(keys.refs, present[start : start + KEYS_PER_CONDITION])
        conditions.append(cursor.mogrify(where, params))
    for key_range in ranges:
        where, params = range_sql(keys.refs, key_range)
        conditions.append(cursor.mogrify(where, params))
    return conditions


def _condition_batches(conditions: Sequence[str]) -> Iterator[list[str]]:
    """Conditions grouped into source runs of at most ``CONDITION_CHARS_PER_RUN`` characters (one at least)."""
    batch: list[str] = []
    size = 0
    for condition in conditions:
        if batch and size + len(condition) > CONDITION_CHARS_PER_RUN:
            yield batch
            batch, size = [], 0
        batch.append(condition)
        size += len(condition)
    if batch:
        yield batch


# Source connector config class -> its repair. A new kind of source registers its own here.
REPAIRS: dict[type, Callable[[Any, Engine, KafkaSettings], RepairStrategy]] = {
    JdbcSourceConfig: JdbcRepair,
    DebeziumSourceConfig: CdcRepair,
}


def repair_strategy(config: Any, engine: Engine, kafka: KafkaSettings) -> RepairStrategy:
    for kind, make in REPAIRS.items():
        if isinstance(config, kind):
            return make(config, engine, kafka)
    raise ConsistencyError(
        f"connector {config.name!r} ({type(config).__name__}): no repair for this kind of source yet"
    )
