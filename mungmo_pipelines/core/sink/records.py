"""Kafka records to row changes: the JDBC sink's ``pk.mode``, ``fields.whitelist`` and tombstones.

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

from mungmo_pipelines.core.config.jdbc_sink import JdbcSinkConfig, PkMode
from mungmo_pipelines.core.connect.json_converter import EnvelopeReader, exact_numbers, struct_fields
from mungmo_pipelines.core.connect.schema import DECIMAL, connect_kind
from mungmo_pipelines.core.connect.sink_types import NULL, string_literal, value_literal
from mungmo_pipelines.core.errors import (
    ConnectValueError,
    MalformedRecord,
    RecordRejected,
    TableNameError,
    UnsupportedColumnType,
)

KAFKA_PK_FIELDS = ("__connect_topic", "__connect_partition", "__connect_offset")
KAFKA_PK_SCHEMAS = (
    {"type": "string", "optional": False},
    {"type": "int32", "optional": False},
    {"type": "int64", "optional": False},
)

# Kafka Connect's ErrantRecordReporter stages, as the __connect.errors.stage header names them.
KEY_CONVERTER = "KEY_CONVERTER"
VALUE_CONVERTER = "VALUE_CONVERTER"
TASK_PUT = "TASK_PUT"


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

    def __init__(self, config: JdbcSinkConfig, zone: dt.tzinfo) -> None:
        self.config = config
        self.zone = zone
        self._keys = EnvelopeReader("key", KEY_CONVERTER)
        self._values = EnvelopeReader("value", VALUE_CONVERTER)
        self._plans: dict[tuple[str, bytes, bytes], RowPlan] = {}
        self._tables: dict[str, str] = {}
        self._shapes: dict[tuple[Any, ...], Shape] = {}
        self._needs_key = config.pk_mode is PkMode.RECORD_KEY

    def table(self, topic: str) -> str:
        table = self._tables.get(topic)
        if table is None:
            problem = self.config.table_problem(topic)
            if problem:
                raise TableNameError(f"connector {self.config.name!r}: table.name.format {problem}")
            table = self._tables[topic] = self.config.table_for(topic)
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
            known = self._plans.get(plan_key)
            if known is None:
                known = self._plans[plan_key] = self._plan(record.topic, key, value)
            return RowChange(record, known.shape, known.build(record, key[2] if key else None, value[2]))
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
        if config.pk_mode is PkMode.RECORD_KEY and (key is None or key[2] is None):
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
        if config.pk_mode is PkMode.RECORD_KEY:
            assert key is not None
            key_columns, key_fields, read_key = self._key_plan(key)
        elif config.pk_mode is PkMode.RECORD_VALUE:
            key_columns = config.pk_fields or reader.names
            key_pick = reader.pick(key_columns, "value", "pk.fields")
            key_fields = tuple(reader.fields[i] for i in key_pick)
        elif config.pk_mode is PkMode.KAFKA:
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

        if config.pk_mode is PkMode.RECORD_KEY:

            def build(record: ConsumerRecord, key_payload: Any, payload: Any) -> tuple[Any, ...]:
                return read_key(record, key_payload) + read_rest(record, payload)

        elif config.pk_mode is PkMode.RECORD_VALUE:
            pick_row = picker((*key_pick, *rest))

            def build(record: ConsumerRecord, key_payload: Any, payload: Any) -> tuple[Any, ...]:
                return pick_row(reader.read(payload, record.value, "value"))

        elif config.pk_mode is PkMode.KAFKA:

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
