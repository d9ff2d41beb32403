"""Kafka records to row writes: the JDBC sink's ``pk.mode``, ``fields.whitelist`` and tombstones.

Every distinct (topic, key schema, value schema) gets a ``RowPlan`` once; after that a record
costs one JSON parse and one checked conversion per field. A record that cannot become a row
raises ``RecordRejected`` with the Kafka Connect error stage it failed in, which is what the
dead-letter headers report.
"""

from __future__ import annotations

import datetime as dt
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson
from kafka.consumer.fetcher import ConsumerRecord

from mungmo_pipelines.core.config import SinkConnectorConfig
from mungmo_pipelines.core.connect_json import (
    MalformedRecord,
    decode_envelope,
    exact_numbers,
    struct_fields,
)
from mungmo_pipelines.core.mariadb_types import (
    DECIMAL,
    NULL,
    ConnectValueError,
    UnsupportedColumnType,
    connect_kind,
    string_literal,
    value_literal,
)

KAFKA_PK_FIELDS = ("__connect_topic", "__connect_partition", "__connect_offset")
KAFKA_PK_SCHEMAS = (
    {"type": "string", "optional": False},
    {"type": "int32", "optional": False},
    {"type": "int64", "optional": False},
)
MAX_TABLE_NAME = 64

# Kafka Connect's ErrantRecordReporter stages, as the __connect.errors.stage header names them.
KEY_CONVERTER = "KEY_CONVERTER"
VALUE_CONVERTER = "VALUE_CONVERTER"
TASK_PUT = "TASK_PUT"


class RecordRejected(Exception):
    """A record this sink cannot write; ``stage`` says where it failed, as Kafka Connect would."""

    def __init__(self, stage: str, message: str, cause: BaseException | None = None) -> None:
        super().__init__(message)
        self.stage = stage
        self.cause = cause


class SinkError(RuntimeError):
    """Stops a sink run: a problem no retry or dead-letter topic can fix, named with its connector."""


class TableNameError(SinkError):
    """``table.name.format`` made a name MariaDB cannot have."""


@dataclass(frozen=True, eq=False)
class Shape:
    """What one statement writes: same table, same columns, same operation.

    ``RecordDecoder`` interns shapes, so equal shapes are one object and compare by identity.
    """

    table: str
    delete: bool
    columns: tuple[str, ...]
    key_columns: tuple[str, ...]
    fields: tuple[dict[str, Any], ...]  # the Connect field schema of each column, for DDL and type checks


class RowChange(NamedTuple):
    """A record as the row it writes (or, for a delete, the key it removes)."""

    record: ConsumerRecord
    shape: Shape
    row: tuple[Any, ...]


def where(record: ConsumerRecord) -> str:
    """``topic[partition]@offset``: how errors and logs name a record."""
    return f"{record.topic}[{record.partition}]@{record.offset}"


def target_table(config: SinkConnectorConfig, topic: str) -> str:
    table = config.table_for(topic)
    if not 0 < len(table) <= MAX_TABLE_NAME:
        raise TableNameError(
            f"connector {config.name!r}: table.name.format {config.table_name_format!r} makes table name {table!r} "
            f"for topic {topic!r}, expected 1 to {MAX_TABLE_NAME} characters"
        )
    return table


class StructReader:
    """Reads one struct schema's payloads into column values, checking each against its field type.

    A null or missing value takes the field's default (Kafka Connect's ``replace.null.with.default``);
    a null in a field that is neither optional nor defaulted is rejected.
    """

    def __init__(self, fields: Sequence[dict[str, Any]], zone: dt.tzinfo, primitive: bool = False) -> None:
        """``primitive``: one field whose payload is the message's whole payload (a primitive key)."""
        self.fields = tuple(fields)
        self.primitive = primitive
        self.names = tuple(f["field"] for f in self.fields)
        self._steps = tuple(
            (f["field"], bool(f.get("optional", False)), f.get("default"), value_literal(f, zone)) for f in self.fields
        )
        self._decimals = tuple(f["field"] for f in self.fields if connect_kind(f) == DECIMAL)

    def pick(self, names: Sequence[str], what: str, hint: str) -> tuple[int, ...]:
        missing = [n for n in names if n not in self.names]
        if missing:
            raise MalformedRecord(f"{hint} names {missing}, which the {what} schema lacks (it has {list(self.names)})")
        return tuple(self.names.index(n) for n in names)

    def read(self, payload: Any, raw: bytes | None, what: str) -> list[Any]:
        """Column values of ``payload``; ``raw`` is the record's JSON, parsed again if Decimals came as numbers."""
        if type(payload) is not dict:
            raise MalformedRecord(f"{what} payload must be an object for a struct schema, got {type(payload).__name__}")
        for name in self._decimals:
            if type(payload.get(name)) is float:
                # decimal.format=NUMERIC: parse again without rounding the fraction through a float.
                exact = exact_numbers(raw or b"null")["payload"]
                payload = {self.names[0]: exact} if self.primitive else exact
                break
        values: list[Any] = []
        append = values.append
        get = payload.get
        name = ""
        try:
            for name, optional, default, convert in self._steps:
                value = get(name)
                if value is None:
                    if default is None:
                        if not optional:
                            raise MalformedRecord(
                                f"{what} field {name!r} is null but its schema is neither optional nor defaulted"
                            )
                        append(NULL)
                        continue
                    value = default
                append(convert(value))
        except ConnectValueError as err:
            raise MalformedRecord(f"{what} field {name!r}: {err}") from None
        return values


PAYLOAD_MARK = b',"payload":'
SCHEMA_OPEN = b'{"schema":'
KNOWN_SCHEMAS_LIMIT = 1024


class EnvelopeReader:
    """Parses JsonConverter messages, and only their payload once their schema bytes are known.

    A message is ``{"schema":S,"payload":P}``. Its bytes up to the first ``,"payload":`` are
    remembered once proven to be exactly ``{"schema":`` + S + ``,"payload":`` (S parsed alone
    equals the schema of the fully parsed message); a later message that starts with the same
    bytes then has the same schema, and only P is parsed. The prefix that matched last is tried
    first, with one byte comparison instead of a search and a lookup. Anything else takes the
    full path, whose errors name what is wrong.
    """

    def __init__(self, what: str, stage: str) -> None:
        self.what = what
        self.stage = stage
        self._known: dict[bytes, tuple[bytes, dict[str, Any] | None]] = {}
        self._last: tuple[bytes, bytes, dict[str, Any] | None] | None = None

    def read(self, data: bytes | None) -> tuple[bytes, dict[str, Any] | None, Any] | None:
        """``(schema identity, schema, payload)``, or ``None`` for a null message."""
        if data is None:
            return None
        last = self._last
        if last is not None and data.startswith(last[0]) and data.endswith(b"}"):
            prefix, identity, schema = last
        else:
            mark = data.find(PAYLOAD_MARK)
            known = self._known.get(data[: mark + len(PAYLOAD_MARK)]) if mark > 0 and data.endswith(b"}") else None
            if known is None:
                return self._read_in_full(data, mark)
            prefix = data[: mark + len(PAYLOAD_MARK)]
            identity, schema = known
            self._last = (prefix, identity, schema)
        try:
            return identity, schema, orjson.loads(memoryview(data)[len(prefix) : -1])
        except orjson.JSONDecodeError:
            return self._read_in_full(data, data.find(PAYLOAD_MARK))

    def _read_in_full(self, data: bytes, mark: int) -> tuple[bytes, dict[str, Any] | None, Any] | None:
        try:
            envelope = decode_envelope(data, self.what)
        except MalformedRecord as err:
            raise RecordRejected(self.stage, str(err), err) from None
        if envelope is None:
            return None
        identity = orjson.dumps(envelope.schema, option=orjson.OPT_SORT_KEYS)
        self._learn(data, mark, envelope.schema, identity)
        return identity, envelope.schema, envelope.payload

    def _learn(self, data: bytes, mark: int, schema: dict[str, Any] | None, identity: bytes) -> None:
        if mark <= len(SCHEMA_OPEN) or not data.startswith(SCHEMA_OPEN) or not data.endswith(b"}"):
            return
        try:
            proven = orjson.loads(data[len(SCHEMA_OPEN) : mark]) == schema
        except orjson.JSONDecodeError:
            proven = False
        if proven:
            if len(self._known) >= KNOWN_SCHEMAS_LIMIT:
                self._known.clear()
            self._known[data[: mark + len(PAYLOAD_MARK)]] = (identity, schema)


Message = tuple[bytes, dict[str, Any] | None, Any]
Build = Callable[[ConsumerRecord, Any, Any], tuple[Any, ...]]


@dataclass(frozen=True)
class RowPlan:
    """How records of one (topic, key schema, value schema) become rows of one shape."""

    shape: Shape
    build: Build  # (record, key payload, value payload) -> row


def picker(indices: Sequence[int]) -> Callable[[Sequence[Any]], tuple[Any, ...]]:
    """``values -> tuple(values[i] for i in indices)``, at C speed."""
    if len(indices) == 1:
        (index,) = indices
        return lambda values: (values[index],)
    if not indices:
        return lambda values: ()
    return operator.itemgetter(*indices)


class RecordDecoder:
    """Turns records into ``RowChange``s for one sink connector."""

    def __init__(self, config: SinkConnectorConfig, zone: dt.tzinfo) -> None:
        self.config = config
        self.zone = zone
        self._keys = EnvelopeReader("key", KEY_CONVERTER)
        self._values = EnvelopeReader("value", VALUE_CONVERTER)
        self._plans: dict[tuple[str, bytes, bytes], RowPlan] = {}
        self._tables: dict[str, str] = {}
        self._shapes: dict[tuple[Any, ...], Shape] = {}
        self._needs_key = config.pk_mode == "record_key"

    def table(self, topic: str) -> str:
        table = self._tables.get(topic)
        if table is None:
            table = self._tables[topic] = target_table(self.config, topic)
        return table

    def decode(self, record: ConsumerRecord) -> RowChange:
        """The row change a record makes; raises ``RecordRejected`` naming what is wrong."""
        key = self._keys.read(record.key) if self._needs_key else None
        value = self._values.read(record.value)
        try:
            if value is None or value[2] is None:
                plan = self._plan(record.topic, key, None)
                return RowChange(record, plan.shape, plan.build(record, key[2] if key else None, None))
            plan_key = (record.topic, key[0] if key else b"", value[0])
            plan = self._plans.get(plan_key)
            if plan is None:
                plan = self._plans[plan_key] = self._plan(record.topic, key, value)
            return RowChange(record, plan.shape, plan.build(record, key[2] if key else None, value[2]))
        except (MalformedRecord, UnsupportedColumnType, ConnectValueError) as err:
            raise RecordRejected(TASK_PUT, str(err), err) from None

    def _intern(self, shape: Shape) -> Shape:
        identity = (shape.table, shape.delete, shape.columns, shape.key_columns, orjson.dumps(shape.fields))
        return self._shapes.setdefault(identity, shape)

    def _plan(self, topic: str, key: Message | None, value: Message | None) -> RowPlan:
        """The plan for a row (``value``) or, with ``value`` None, for a tombstone's delete."""
        config = self.config
        if value is None and not config.delete_enabled:
            raise MalformedRecord("null value (a tombstone) but delete.enabled=false: nothing to write")
        if config.pk_mode == "record_key" and (key is None or key[2] is None):
            raise MalformedRecord(
                "a tombstone needs a key to delete by, and this record's key is null"
                if value is None
                else "pk.mode=record_key but the record key is null"
            )
        if value is None:
            assert key is not None
            plan_key = (topic, key[0], b"")
            if plan_key not in self._plans:
                key_columns, key_fields, read_key = self._key_plan(key)
                shape = self._intern(Shape(self.table(topic), True, key_columns, key_columns, key_fields))
                self._plans[plan_key] = RowPlan(
                    shape, lambda record, key_payload, payload: read_key(record, key_payload)
                )
            return self._plans[plan_key]

        reader = StructReader(struct_fields(value[1], "value"), self.zone)
        whitelist = config.fields_whitelist
        build: Build
        if config.pk_mode == "record_key":
            assert key is not None
            key_columns, key_fields, read_key = self._key_plan(key)
        elif config.pk_mode == "record_value":
            key_columns = config.pk_fields or reader.names
            key_pick = reader.pick(key_columns, "value", "pk.fields")
            key_fields = tuple(reader.fields[i] for i in key_pick)
        elif config.pk_mode == "kafka":
            key_columns = config.pk_fields or KAFKA_PK_FIELDS
            key_fields = tuple(dict(s, field=n) for s, n in zip(KAFKA_PK_SCHEMAS, key_columns, strict=True))
        else:
            key_columns, key_fields = (), ()
        rest = tuple(
            i for i, n in enumerate(reader.names) if n not in key_columns and (not whitelist or n in whitelist)
        )
        shape = self._intern(
            Shape(
                self.table(topic),
                False,
                (*key_columns, *(reader.names[i] for i in rest)),
                tuple(key_columns),
                (*key_fields, *(reader.fields[i] for i in rest)),
            )
        )
        pick_rest = picker(rest)

        def read_rest(record: ConsumerRecord, payload: Any) -> tuple[Any, ...]:
            return pick_rest(reader.read(payload, record.value, "value"))

        if config.pk_mode == "record_key":

            def build(record: ConsumerRecord, key_payload: Any, payload: Any) -> tuple[Any, ...]:
                return read_key(record, key_payload) + read_rest(record, payload)

        elif config.pk_mode == "record_value":
            pick_row = picker((*key_pick, *rest))

            def build(record: ConsumerRecord, key_payload: Any, payload: Any) -> tuple[Any, ...]:
                return pick_row(reader.read(payload, record.value, "value"))

        elif config.pk_mode == "kafka":

            def build(record: ConsumerRecord, key_payload: Any, payload: Any) -> tuple[Any, ...]:
                return (
                    string_literal(record.topic),
                    str(record.partition),
                    str(record.offset),
                    *read_rest(record, payload),
                )

        else:

            def build(record: ConsumerRecord, key_payload: Any, payload: Any) -> tuple[Any, ...]:
                return read_rest(record, payload)

        return RowPlan(shape, build)

    def _key_plan(
        self, key: Message
    ) -> tuple[tuple[str, ...], tuple[dict[str, Any], ...], Callable[[ConsumerRecord, Any], tuple[Any, ...]]]:
        """The key's column names, their field schemas, and how to read them from a key payload."""
        schema = key[1] or {}
        pk_fields = self.config.pk_fields
        if schema.get("type") == "struct":
            reader = StructReader(struct_fields(schema, "key"), self.zone)
            names = pk_fields or reader.names
            pick = reader.pick(names, "key", "pk.fields")
            pick_key = picker(pick)

            def read_struct(record: ConsumerRecord, key_payload: Any) -> tuple[Any, ...]:
                return pick_key(reader.read(key_payload, record.key, "key"))

            return tuple(names), tuple(reader.fields[i] for i in pick), read_struct
        if len(pk_fields) != 1:
            raise MalformedRecord(
                f"the key is a primitive {schema.get('type')!r}, so pk.fields must name exactly one column for it "
                f"(got {list(pk_fields)})"
            )
        name = pk_fields[0]
        reader = StructReader([dict(schema, field=name)], self.zone, primitive=True)

        def read_primitive(record: ConsumerRecord, key_payload: Any) -> tuple[Any, ...]:
            return tuple(reader.read({name: key_payload}, record.key, "key"))

        return (name,), reader.fields, read_primitive
