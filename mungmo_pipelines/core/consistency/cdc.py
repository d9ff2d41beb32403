"""A Debezium MariaDB (CDC) source and a sink writing one of its topics, as a comparison: which
tables, columns and key, carried how (:func:`debezium_forms`), and what the source has sent.

The forms follow what Debezium's records carry per type and value-handling mode (tests/fixtures/
debezium/README.md) and what the sink makes of them. Where Debezium's snapshot and its stream carry
one value two ways, the comparison is the one both paths satisfy: FLOAT and (M,D) floating-point
columns as the server prints them (the snapshot reads that text), a zero TIMESTAMP in a nullable
column alike to NULL. What is not modelled is said in docs/consistency.md.

The sink is Debezium's JDBC sink (change events) or the JDBC sink behind ``ExtractNewRecordState``
(rows); its columns are the captured ones it writes (``column.include.list``/``exclude.list`` of the
source, ``field.include.list``/``exclude.list`` or ``fields.whitelist`` of the sink) plus the key.

What the source has sent is its stored offset, a binlog position: unlike a JDBC offset it is no
test over a row, so it is told by key (:class:`BinlogChanges`): the keys of the table the binary log
changed after that position, read from the position to the binlog's end as ``mariadb-binlog``
reads (server id 0: the source's own dump is never ended).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import pymysql

from mungmo_pipelines.core.config.debezium_source import DebeziumSourceConfig
from mungmo_pipelines.core.config.sink import PkMode, SinkConfig
from mungmo_pipelines.core.config.transforms import OnDelete
from mungmo_pipelines.core.consistency.expressions import BINARIES, INTEGERS, Domain, UncomparableColumn, ValueForm
from mungmo_pipelines.core.consistency.plan import TableSpec
from mungmo_pipelines.core.consistency.policy import ModePolicy, UnsentKeys
from mungmo_pipelines.core.errors import ConsistencyError
from mungmo_pipelines.core.mariadb.binlog import READER_ID, BinlogError, BinlogReader, ReplicaSettings, RowChange
from mungmo_pipelines.core.mariadb.columns import TableColumn
from mungmo_pipelines.core.mariadb.connection import JdbcConnection
from mungmo_pipelines.core.mariadb.values import InvalidTemporal
from mungmo_pipelines.core.source.cdc.offsets import CdcOffset

_TEXTS = frozenset({"char", "varchar", "tinytext", "text", "mediumtext", "longtext", "json", "enum", "set"})
_GEOMETRIES = frozenset(
    {"geometry", "point", "linestring", "polygon", "multipoint", "multilinestring", "multipolygon",
     "geometrycollection"}
)  # fmt: skip
# time.precision.mode -> the most fraction digits DATETIME and TIME values keep.
_MILLISECONDS = frozenset({"connect"})
# Modes whose TIME is a time of day: other times are null (a NOT NULL column stops the source).
_TIMES_OF_DAY = frozenset({"connect", "isostring"})
# Keys read from the binlog before a check gives up listing them and takes every key as not sent.
MAX_CHANGED_KEYS = 1_000_000


def debezium_forms(source: DebeziumSourceConfig) -> Callable[[TableColumn], ValueForm]:
    """What ``source`` (a Debezium MariaDB connector body) carries for each column, by its
    ``decimal.handling.mode``, ``time.precision.mode``, ``bigint.unsigned.handling.mode`` and
    ``binary.handling.mode``."""
    options = source.record_options
    time_mode = options.time_precision_mode

    def digits(column: TableColumn) -> int:
        fsp = column.datetime_precision or 0
        return min(fsp, 3) if time_mode in _MILLISECONDS else fsp

    def form_of(column: TableColumn) -> ValueForm:
        data_type = column.data_type
        if data_type in INTEGERS:
            wraps = options.bigint_unsigned_handling_mode == "long" and options.unsigned_overflow == "wrap"
            return ValueForm(Domain.NUMBER, wraps_to_signed=wraps)
        if data_type == "decimal":
            return {"double": ValueForm(Domain.FLOAT64), "string": ValueForm(Domain.TEXT)}.get(
                options.decimal_handling_mode, ValueForm(Domain.NUMBER)
            )
        if data_type in ("float", "double"):
            if column.numeric_scale is not None:  # (M,D): the snapshot reads D places, the stream every bit
                return ValueForm(Domain.FLOAT64, fraction_digits=column.numeric_scale, printed=True)
            if data_type == "float":  # the snapshot reads 6 significant digits
                return ValueForm(Domain.FLOAT32, printed=True)
            return ValueForm(Domain.FLOAT64)
        if data_type == "bit":
            return ValueForm(Domain.NUMBER, byte_order="little")  # BIT(n) as Debezium's little-endian Bits
        if data_type == "year":
            return ValueForm(Domain.NUMBER)
        if data_type in _TEXTS:
            return ValueForm(Domain.TEXT)
        if data_type in BINARIES:
            encoding = options.binary_handling_mode
            return ValueForm(Domain.BYTES, text_encoding="" if encoding == "bytes" else encoding)
        if data_type in _GEOMETRIES:
            return ValueForm(Domain.BYTES)
        if data_type in ("date", "datetime"):
            domain = Domain.DATE if data_type == "date" else Domain.DATETIME
            invalid = "null" if column.nullable else "epoch"
            return ValueForm(domain, fraction_digits=digits(column), invalid_dates=invalid, two_digit_years=True)
        if data_type == "time":
            return ValueForm(Domain.TIME, fraction_digits=digits(column), time_of_day=time_mode in _TIMES_OF_DAY)
        if data_type == "timestamp":
            # A ZonedTimestamp in UTC in every mode, with every fraction digit. A zero TIMESTAMP is null from
            # the snapshot of a nullable column; otherwise the epoch, which no TIMESTAMP column takes.
            return ValueForm(
                Domain.INSTANT, fraction_digits=column.datetime_precision or 0, zero_date_as_null=column.nullable
            )
        raise UncomparableColumn(
            f"column {column.name!r} ({column.column_type}): Debezium's MariaDB connector carries no value of this "
            "type (the source stops at the table)"
        )

    return form_of


def readable_sink(sink: SinkConfig) -> bool:
    """Whether ``sink`` writes rows from change events: Debezium's sink reads them, the JDBC sink
    only behind ``ExtractNewRecordState``."""
    return sink.reads_change_events or bool(sink.transform_chain)


def cdc_table_spec(source: DebeziumSourceConfig, sink: SinkConfig, table: str) -> TableSpec:
    """The comparison of ``table`` (``db.table``, captured by ``source``) with the table ``sink`` writes
    its topic to."""
    database, _, name = table.partition(".")
    topic = source.topic_for(table)
    captured = source.column_filter()

    def written(column: str) -> bool:
        return (captured is None or captured(database, name, column)) and sink.field_written(topic, column, False)

    key = sink.pk_fields if sink.pk_mode in (PkMode.RECORD_VALUE, PkMode.RECORD_KEY) else ()
    return TableSpec(
        source_database=database,
        source_table=name,
        target_database=sink.connection.database,
        target_table=sink.table_for(topic),
        key=tuple(key),
        zone=sink.db_timezone,
        forms=debezium_forms(source),
        written=written,
    )


def cdc_notes(source: DebeziumSourceConfig, sink: SinkConfig) -> list[str]:
    """What the pair does not carry, which the check reports as differences (the CDC mode explains nothing)."""
    notes = []
    skipped = {"c": "inserts", "u": "updates", "d": "deletes"}
    for op in sorted(source.skipped_operations & skipped.keys()):
        notes.append(f"source {source.name!r} skips {skipped[op]} (skipped.operations): they show as differences")
    unwrap = sink.transform_chain[0] if sink.transform_chain else None
    if unwrap is not None and unwrap.on_delete is OnDelete.DROP:
        notes.append(
            f"sink {sink.name!r}: transform {unwrap.alias!r} drops delete events: rows deleted from the source stay in "
            "the target and show as extra"
        )
    elif unwrap is not None and unwrap.rewrite:
        notes.append(
            f"sink {sink.name!r}: transform {unwrap.alias!r} rewrites deletes as rows with __deleted: rows deleted "
            "from the source stay in the target and show as extra"
        )
    elif not sink.delete_enabled:
        notes.append(
            f"sink {sink.name!r} has delete.enabled=false: rows deleted from the source stay in the target and show "
            "as extra"
        )
    return notes


@dataclass(frozen=True)
class BinlogChanges:
    """The CDC source's stored offset as a :class:`~mungmo_pipelines.core.consistency.policy.KeyedSentRule`:
    a point's ``source_offset`` (Debezium's offset value) and the keys of ``database.table`` the binary
    log changed after its position, read on ``server`` (keys in the check's ``zone``, as its sessions
    read TIMESTAMP values)."""

    server: JdbcConnection
    database: str
    table: str
    zone: str = "UTC"
    max_keys: int = MAX_CHANGED_KEYS

    def unsent_keys(self, point: Any, key_columns: Sequence[str]) -> UnsentKeys:
        stored = point.get("source_offset") if isinstance(point, dict) else None
        if stored is None:
            return UnsentKeys("the source has stored no binlog position yet: it has sent nothing", every_key=True)
        offset = CdcOffset.parse(stored)
        if offset.snapshot_running:
            return UnsentKeys(
                "the source's initial snapshot is under way: the rows it has not read are not sent", every_key=True
            )
        position = offset.position
        at = f"gtids {position.gtids or '-'}, {position.file}:{position.pos}"
        keys = self._changed_keys(offset, key_columns)
        if keys is None:
            return UnsentKeys(
                f"more than {self.max_keys} keys changed after the source's stored position ({at}): every key is "
                "taken as not sent",
                every_key=True,
            )
        return UnsentKeys(f"changed in the binary log after the source's stored position ({at}): not sent yet", keys)

    def _changed_keys(self, offset: CdcOffset, key_columns: Sequence[str]) -> frozenset[tuple[Any, ...]] | None:
        replica = ReplicaSettings.of(self.server, READER_ID)
        wanted = (self.database, self.table)
        reader = BinlogReader(replica, offset.position, include=lambda db, table: (db, table) == wanted, blocking=False)
        zone = ZoneInfo(self.zone) if self.zone not in ("UTC", "Etc/UTC") else dt.UTC
        keys: set[tuple[Any, ...]] = set()
        try:
            for change in reader:
                if type(change) is not RowChange:
                    continue
                assert isinstance(change, RowChange)
                columns = change.table.columns
                positions = _key_positions(columns, key_columns, f"{self.database}.{self.table}")
                for image in (change.before, change.after):
                    if image is not None:
                        keys.add(tuple(_as_read(image[i], columns[i], zone) for i in positions))
                if len(keys) > self.max_keys:
                    return None
        except (BinlogError, pymysql.MySQLError, OSError) as err:
            raise ConsistencyError(
                f"reading the binary log of {self.server.host}:{self.server.port} after the source's stored position "
                f"{offset.position} for the keys it has not sent: {err}"
            ) from err
        finally:
            reader.close()
        return frozenset(keys)


def _key_positions(columns: Sequence[TableColumn], key_columns: Sequence[str], table: str) -> list[int]:
    """Where the key columns are in a binlog row of the table (every column for a table without a key)."""
    where = {column.name: i for i, column in enumerate(columns)}
    missing = [name for name in key_columns if name not in where]
    if missing:
        raise ConsistencyError(f"a row of {table} in the binary log has no key column {missing[0]!r}")
    return [where[name] for name in key_columns] if key_columns else list(range(len(columns)))


def _as_read(value: Any, column: TableColumn, zone: dt.tzinfo) -> Any:
    """A binlog value (the value contract) as the check's session reads the column (PyMySQL, ``time_zone``
    the check's zone): TIMESTAMP as a naive wall time there, BIT as big-endian bytes, invalid dates as text."""
    if isinstance(value, InvalidTemporal):
        return value.text
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(zone).replace(tzinfo=None)
    if column.data_type == "bit" and isinstance(value, int):
        return value.to_bytes(((column.numeric_precision or 1) + 7) // 8, "big")
    return value


def cdc_policy(server: JdbcConnection, table: str, zone: str) -> ModePolicy:
    """The CDC mode (nothing explained) with the binlog rule for ``table`` (``db.table``) on ``server``."""
    database, _, name = table.partition(".")
    return ModePolicy("cdc", keyed=BinlogChanges(server, database, name, zone))
