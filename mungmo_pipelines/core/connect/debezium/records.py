"""Debezium's change-event records for one table shape: key and value bytes as Kafka Connect's
JsonConverter (``schemas.enable=true``) writes them, plus the headers Debezium adds.

Schemas are serialized once per shape; a row costs one dict of pre-compiled column encoders and
one ``orjson`` call per image. Processing timestamps (the envelope's ``ts_ms``/``ts_us``/``ts_ns``)
come from an injectable clock.
"""

from __future__ import annotations

import functools
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from mungmo_pipelines.core.connect.debezium.columns import ColumnCodec, ColumnValueError, column_codec, same
from mungmo_pipelines.core.connect.debezium.options import DebeziumOptions
from mungmo_pipelines.core.connect.json_converter import jackson_json
from mungmo_pipelines.core.mariadb.columns import TableSchema

DEBEZIUM_VERSION = "3.5.0.Final"
CONNECTOR_NAME = "mariadb"
SOURCE_SCHEMA_NAME = "io.debezium.connector.mariadb.Source"
HEARTBEAT_TOPIC_PREFIX = "__debezium-heartbeat"
SNAPSHOT_MARKERS = ("true", "first", "first_in_data_collection", "last_in_data_collection", "last", "false",
                    "incremental")  # fmt: skip

Headers = tuple[tuple[str, bytes], ...]


class DebeziumRecord(NamedTuple):
    """One Kafka record: a ``None`` value is a tombstone; a ``None`` key a table without a key."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: Headers


@dataclass(frozen=True)
class SourceInfo:
    """The ``source`` block's per-event facts.

    ``ts_ns`` is the event's time (binlog event header, in whole seconds, or the snapshot's
    start); ``snapshot`` one of :data:`SNAPSHOT_MARKERS` (``"false"`` while streaming). During
    a snapshot Debezium writes ``server_id`` 0 and no ``gtid``, with the binlog position the
    snapshot was taken at.
    """

    ts_ns: int
    snapshot: str = "false"
    server_id: int = 0
    gtid: str | None = None
    file: str = ""
    pos: int = 0
    row: int = 0
    thread: int | None = None
    query: str | None = None
    sequence: str | None = None


def snapshot_marker(first_table: bool, last_table: bool, first_row: bool, last_row: bool) -> str:
    """The ``source.snapshot`` value of a snapshot row, by Debezium's precedence: last of the
    snapshot, first of the snapshot, last of its table, first of its table, else ``true``."""
    if last_row and last_table:
        return "last"
    if first_row and first_table:
        return "first"
    if last_row:
        return "last_in_data_collection"
    if first_row:
        return "first_in_data_collection"
    return "true"


def new_run_id() -> str:
    """A time-ordered UUID (version 7), like the ``__debezium.context.runId`` of a task start."""
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10), "big")
    value = value & ~(0xF << 76) | 0x7 << 76
    value = value & ~(0x3 << 62) | 0x2 << 62
    text = f"{value:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def _field(connect_type: str, name: str, optional: bool) -> dict[str, Any]:
    return {"type": connect_type, "optional": optional, "field": name}


SOURCE_SCHEMA: dict[str, Any] = {
    "type": "struct",
    "fields": [
        _field("string", "version", False),
        _field("string", "connector", False),
        _field("string", "name", False),
        _field("int64", "ts_ms", False),
        {"type": "string", "optional": True, "name": "io.debezium.data.Enum", "version": 1,
         "parameters": {"allowed": ",".join(SNAPSHOT_MARKERS)}, "default": "false", "field": "snapshot"},
        _field("string", "db", False),
        _field("string", "sequence", True),
        _field("int64", "ts_us", True),
        _field("int64", "ts_ns", True),
        _field("string", "table", True),
        _field("int64", "server_id", False),
        _field("string", "gtid", True),
        _field("string", "file", False),
        _field("int64", "pos", False),
        _field("int32", "row", False),
        _field("int64", "thread", True),
        _field("string", "query", True),
    ],
    "optional": False,
    "name": SOURCE_SCHEMA_NAME,
    "version": 1,
    "field": "source",
}  # fmt: skip
TRANSACTION_SCHEMA: dict[str, Any] = {
    "type": "struct",
    "fields": [_field("string", "id", False), _field("int64", "total_order", False),
               _field("int64", "data_collection_order", False)],
    "optional": True,
    "name": "event.block",
    "version": 1,
    "field": "transaction",
}  # fmt: skip

# Topic names keep letters, digits, ".", "_" and "-"; Debezium replaces anything else with "_".
_TOPIC_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def data_topic(topic_prefix: str, database: str, table: str) -> str:
    return _TOPIC_UNSAFE.sub("_", f"{topic_prefix}.{database}.{table}")


def context_headers(topic_prefix: str, run_id: str, task_id: str = "0") -> Headers:
    """The headers Debezium 3.5 puts on every change event (not on heartbeats)."""
    return (
        ("__debezium.context.connectorLogicalName", topic_prefix.encode()),
        ("__debezium.context.taskId", task_id.encode()),
        ("__debezium.context.connectorName", CONNECTOR_NAME.encode()),
        ("__debezium.context.runId", run_id.encode()),
    )


@functools.lru_cache(maxsize=4096)
def _json_text(value: str | None) -> bytes:
    """A source string (gtid, file, query) as JSON; the same few repeat for every row of an event."""
    return b"null" if value is None else jackson_json(value)


def _literal(value: str) -> bytes:
    """A JSON string for a bytes ``%`` template."""
    return jackson_json(value).replace(b"%", b"%%")


_MARKERS = {marker: marker.encode() for marker in SNAPSHOT_MARKERS}
_Encoders = tuple[tuple[int, str, Callable[[Any], Any]], ...]


class ChangeEventEncoder:
    """Key, value and headers of every change event of one table shape (build a new one after DDL).

    ``read`` (op ``r``, snapshot and incremental-snapshot rows), ``create``, ``update`` and
    ``delete`` take rows in the value contract of :mod:`mungmo_pipelines.core.mariadb.values`,
    in ``table.columns`` order, and return the records in topic order: a delete is followed by
    its tombstone (``tombstones.on.delete``), and an update that changes the primary key becomes
    delete, tombstone, create with Debezium's ``__debezium.newkey``/``oldkey`` headers.
    """

    def __init__(
        self,
        table: TableSchema,
        options: DebeziumOptions,
        *,
        run_id: str,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.table = table
        self.options = options
        self.topic = data_topic(options.topic_prefix, table.database, table.name)
        self._clock = clock
        codecs = [column_codec(column, options) for column in table.columns]
        self._names = tuple(column.name for column in table.columns)
        # Only columns whose payload differs from the row value need an encoder call.
        self._snapshot = tuple((i, self._names[i], c.snapshot) for i, c in enumerate(codecs) if c.snapshot is not same)
        self._binlog = tuple((i, self._names[i], c.binlog) for i, c in enumerate(codecs) if c.binlog is not same)
        positions = {name: i for i, name in enumerate(self._names)}
        missing = [name for name in table.primary_key if name not in positions]
        if missing:
            raise ValueError(f"table {table.database}.{table.name}: primary key column(s) {missing} are not columns")
        self._key_positions = tuple(positions[name] for name in table.primary_key)
        self._key_codecs: tuple[ColumnCodec, ...] = tuple(codecs[i] for i in self._key_positions)
        self._headers = context_headers(options.topic_prefix, run_id)
        self._tombstones = options.tombstones_on_delete

        name = f"{options.topic_prefix}.{table.database}.{table.name}"
        row_fields = [codec.schema for codec in codecs]
        image = {"type": "struct", "fields": row_fields, "optional": True, "name": f"{name}.Value"}
        after_on: list[dict[str, Any]] = [
            {**image, "field": "after"},
            SOURCE_SCHEMA,
            TRANSACTION_SCHEMA,
            _field("string", "op", False),
            _field("int64", "ts_ms", True),
            _field("int64", "ts_us", True),
            _field("int64", "ts_ns", True),
        ]
        envelope = {
            "type": "struct",
            "fields": [{**image, "field": "before"}, *after_on],
            "optional": False,
            "name": f"{name}.Envelope",
            "version": 2,
        }
        self._value_prefix = b'{"schema":' + jackson_json(envelope) + b',"payload":{"before":'
        if self._key_positions:
            key_schema = {
                "type": "struct",
                "fields": [codec.schema for codec in self._key_codecs],
                "optional": False,
                "name": f"{name}.Key",
            }
            self._key_prefix = b'{"schema":' + jackson_json(key_schema) + b',"payload":'
            # A delete known by its key alone: the same envelope, its ``before`` the key struct.
            keyed_envelope = {**envelope, "fields": [{**key_schema, "optional": True, "field": "before"}, *after_on]}
            self._key_delete_prefix = b'{"schema":' + jackson_json(keyed_envelope) + b',"payload":{"before":'
        self._key_names = tuple(self._names[i] for i in self._key_positions)
        # The common single integer key skips the dict and the JSON call.
        self._int_key = self._key_names[0] if len(self._key_names) == 1 else None
        if self._int_key is not None:
            self._int_key_template = self._key_prefix.replace(b"%", b"%%") + b"{" + _literal(self._int_key) + b":%d}}"
        self._tail = (
            b',"source":{"version":"' + DEBEZIUM_VERSION.encode() + b'","connector":"' + CONNECTOR_NAME.encode()
            + b'","name":' + _literal(options.topic_prefix) + b',"ts_ms":%d,"snapshot":"%s","db":'
            + _literal(table.database) + b',"sequence":%s,"ts_us":%d,"ts_ns":%d,"table":' + _literal(table.name)
            + b',"server_id":%d,"gtid":%s,"file":%s,"pos":%d,"row":%d,"thread":%s,"query":%s},'
            b'"transaction":null,"op":"%s","ts_ms":%d,"ts_us":%d,"ts_ns":%d}}'
        )  # fmt: skip

    # -- payload pieces -----------------------------------------------------------------------

    def _image(self, encoders: _Encoders, row: Sequence[Any]) -> dict[str, Any]:
        if len(row) != len(self._names):
            raise ValueError(
                f"table {self.table.database}.{self.table.name}: a row of {len(row)} values for "
                f"{len(self._names)} columns {list(self._names)}"
            )
        image = dict(zip(self._names, row, strict=False))  # lengths checked above
        for position, name, encode in encoders:
            value = row[position]
            if value is not None:
                try:
                    image[name] = encode(value)
                except ColumnValueError as err:
                    raise ColumnValueError(f"table {self.table.database}.{self.table.name}: {err}") from None
                except (TypeError, ValueError, AttributeError, OverflowError) as err:
                    raise ColumnValueError(
                        f"table {self.table.database}.{self.table.name}, column {name!r}: cannot encode "
                        f"{value!r} ({type(value).__name__}, not the value contract's type for "
                        f"{self.table.columns[position].column_type}): {err}"
                    ) from err
        return image

    def _value(self, before: bytes, after: bytes, op: bytes, source: SourceInfo, prefix: bytes = b"") -> bytes:
        ts_ns = self._clock()
        event_ns = source.ts_ns
        tail = self._tail % (
            event_ns // 1_000_000,
            _MARKERS[source.snapshot],
            _json_text(source.sequence),
            event_ns // 1000,
            event_ns,
            source.server_id,
            _json_text(source.gtid),
            _json_text(source.file),
            source.pos,
            source.row,
            b"null" if source.thread is None else b"%d" % source.thread,
            _json_text(source.query),
            op,
            ts_ns // 1_000_000,
            ts_ns // 1000,
            ts_ns,
        )
        return b"".join((prefix or self._value_prefix, before, b',"after":', after, tail))  # one copy of the ~4 KB

    def _key(self, image: dict[str, Any]) -> bytes | None:
        if not self._key_positions:
            return None
        if self._int_key is not None:
            value = image[self._int_key]
            if type(value) is int:
                return self._int_key_template % value
        return self._key_prefix + jackson_json({name: image[name] for name in self._key_names}) + b"}"

    def _key_header(self, image: dict[str, Any], row: Sequence[Any]) -> bytes:
        """The key as Kafka Connect's ``Values`` prints a Struct (SimpleHeaderConverter)."""
        parts = []
        for codec, position in zip(self._key_codecs, self._key_positions, strict=True):
            name = self._names[position]
            value = image[name]
            text = "null" if value is None else codec.header(value, row[position])
            parts.append(f'"{name}":{text}')
        return ("{" + ",".join(parts) + "}").encode()

    # -- operations ---------------------------------------------------------------------------

    def _single(self, op: bytes, encoders: _Encoders, row: Sequence[Any],
                source: SourceInfo) -> DebeziumRecord:  # fmt: skip
        image = self._image(encoders, row)
        key = self._key(image)
        after = jackson_json(image)
        before, after = (after, b"null") if op == b"d" else (b"null", after)
        return DebeziumRecord(self.topic, key, self._value(before, after, op, source), self._headers)

    def read(self, row: Sequence[Any], source: SourceInfo) -> list[DebeziumRecord]:
        """A snapshot row (op ``r``), encoded the way Debezium's JDBC reads encode it."""
        return [self._single(b"r", self._snapshot, row, source)]

    def create(self, row: Sequence[Any], source: SourceInfo) -> list[DebeziumRecord]:
        return [self._single(b"c", self._binlog, row, source)]

    def delete(self, row: Sequence[Any], source: SourceInfo) -> list[DebeziumRecord]:
        record = self._single(b"d", self._binlog, row, source)
        if not self._tombstones:
            return [record]
        return [record, DebeziumRecord(self.topic, record.key, None, self._headers)]

    def delete_key(self, key: Sequence[Any], source: SourceInfo) -> list[DebeziumRecord]:
        """A delete of a row known by its key alone (primary-key values in key order, value contract):
        ``op`` ``d`` whose ``before`` is the key struct (Debezium's own deletes carry the whole row,
        which a row the table no longer has cannot give), then its tombstone. Debezium's JDBC sink
        deletes by it with either ``primary.key.mode``; ``ExtractNewRecordState`` turns it into a
        delete (or a key-only ``__deleted`` row when rewriting)."""
        if not self._key_positions:
            raise ValueError(f"table {self.table.database}.{self.table.name} has no primary key to delete by")
        if len(key) != len(self._key_codecs):
            raise ValueError(
                f"table {self.table.database}.{self.table.name}: a key of {len(key)} values for primary key "
                f"{list(self._key_names)}"
            )
        image = {
            name: None if value is None else codec.binlog(value)
            for name, codec, value in zip(self._key_names, self._key_codecs, key, strict=True)
        }
        value = self._value(jackson_json(image), b"null", b"d", source, self._key_delete_prefix)
        record = DebeziumRecord(self.topic, self._key(image), value, self._headers)
        if not self._tombstones:
            return [record]
        return [record, DebeziumRecord(self.topic, record.key, None, self._headers)]

    def update(self, before: Sequence[Any], after: Sequence[Any], source: SourceInfo) -> list[DebeziumRecord]:
        old_image = self._image(self._binlog, before)
        new_image = self._image(self._binlog, after)
        old_key, new_key = self._key(old_image), self._key(new_image)
        old_json, new_json = jackson_json(old_image), jackson_json(new_image)
        if old_key == new_key:
            return [DebeziumRecord(self.topic, new_key, self._value(old_json, new_json, b"u", source), self._headers)]
        new_key_header = (("__debezium.newkey", self._key_header(new_image, after)), *self._headers)
        old_key_header = (("__debezium.oldkey", self._key_header(old_image, before)), *self._headers)
        records = [DebeziumRecord(self.topic, old_key, self._value(old_json, b"null", b"d", source), new_key_header)]
        if self._tombstones:
            records.append(DebeziumRecord(self.topic, old_key, None, new_key_header))
        records.append(
            DebeziumRecord(self.topic, new_key, self._value(b"null", new_json, b"c", source), old_key_header)
        )
        return records


_HEARTBEAT_KEY_SCHEMA = (
    b'{"schema":{"type":"struct","fields":[{"type":"string","optional":false,"field":"serverName"}],'
    b'"optional":false,"name":"io.debezium.connector.common.ServerNameKey","version":1},"payload":'
)
_HEARTBEAT_VALUE_SCHEMA = (
    b'{"schema":{"type":"struct","fields":[{"type":"int64","optional":false,"field":"ts_ms"}],'
    b'"optional":false,"name":"io.debezium.connector.common.Heartbeat","version":1},"payload":'
)


def heartbeat_record(topic_prefix: str, ts_ms: int) -> DebeziumRecord:
    """A heartbeat (``heartbeat.interval.ms``) on ``__debezium-heartbeat.<prefix>``; no headers."""
    key = _HEARTBEAT_KEY_SCHEMA + jackson_json({"serverName": topic_prefix}) + b"}"
    value = _HEARTBEAT_VALUE_SCHEMA + b'{"ts_ms":' + str(ts_ms).encode() + b"}}"
    return DebeziumRecord(f"{HEARTBEAT_TOPIC_PREFIX}.{topic_prefix}", key, value, ())
