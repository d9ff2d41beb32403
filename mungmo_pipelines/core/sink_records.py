"""Kafka records to row writes: the JDBC sink's ``pk.mode``, ``fields.whitelist`` and tombstones.

Every distinct (topic, key schema, value schema) gets a ``RowPlan`` once; after that a record
costs one JSON parse and one checked conversion per field. A record that cannot become a row
raises ``RecordRejected`` with the Kafka Connect error stage it failed in, which is what the
dead-letter headers report.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from kafka.consumer.fetcher import ConsumerRecord

from mungmo_pipelines.core.config import SinkConnectorConfig
from mungmo_pipelines.core.connect_json import (
    Envelope,
    MalformedRecord,
    decode_envelope,
    exact_numbers,
    struct_fields,
)
from mungmo_pipelines.core.mariadb_types import (
    DECIMAL,
    ConnectValueError,
    UnsupportedColumnType,
    connect_kind,
    value_converter,
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


@dataclass(frozen=True, slots=True)
class RowChange:
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

    def __init__(self, fields: Sequence[dict[str, Any]], zone: dt.tzinfo) -> None:
        self.fields = tuple(fields)
        self._steps: list[tuple[str, bool, Any, Callable[[Any], Any]]] = []
        for field in self.fields:
            convert = value_converter(field, zone)
            default = field.get("default")
            self._steps.append((field["field"], bool(field.get("optional", False)), default, convert))
        self._decimals = tuple(f["field"] for f in self.fields if connect_kind(f) == DECIMAL)

    def read(self, payload: Any, exact_payload: Callable[[], Any], what: str) -> list[Any]:
        """Column values of ``payload``; ``exact_payload`` parses it again with exact fractions."""
        if not isinstance(payload, dict):
            raise MalformedRecord(f"{what} payload must be an object for a struct schema, got {type(payload).__name__}")
        if self._decimals and any(type(payload.get(name)) is float for name in self._decimals):
            # Decimals written as JSON numbers (decimal.format=NUMERIC): parse again without float rounding.
            payload = exact_payload()
        values: list[Any] = []
        for name, optional, default, convert in self._steps:
            value = payload.get(name)
            if value is None:
                value = default
                if value is None:
                    if not optional:
                        raise MalformedRecord(
                            f"{what} field {name!r} is null but its schema is neither optional nor defaulted"
                        )
                    values.append(None)
                    continue
            try:
                values.append(convert(value))
            except ConnectValueError as err:
                raise MalformedRecord(f"{what} field {name!r}: {err}") from None
        return values


@dataclass(frozen=True)
class RowPlan:
    """How records of one (topic, key schema, value schema) become rows of one shape."""

    shape: Shape
    build: Callable[[ConsumerRecord, Any, bytes | None, Any, bytes], tuple[Any, ...]]


def _select(reader: StructReader, names: Sequence[str], what: str, hint: str) -> list[int]:
    available = [f["field"] for f in reader.fields]
    missing = [n for n in names if n not in available]
    if missing:
        raise MalformedRecord(f"{hint} names {missing}, which the {what} schema lacks (it has {available})")
    return [available.index(n) for n in names]


class RecordDecoder:
    """Turns records into ``RowChange``s for one sink connector."""

    def __init__(self, config: SinkConnectorConfig, zone: dt.tzinfo) -> None:
        self.config = config
        self.zone = zone
        self._plans: dict[tuple[str, bytes, bytes], RowPlan] = {}
        self._delete_plans: dict[tuple[str, bytes], RowPlan] = {}
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
        key = self._envelope(record.key, "key", KEY_CONVERTER) if self._needs_key else None
        value = self._envelope(record.value, "value", VALUE_CONVERTER)
        try:
            if value is None or (value.payload is None):
                return self._delete(record, key)
            plan_key = (
                record.topic,
                orjson.dumps(key.schema) if key is not None else b"",
                orjson.dumps(value.schema),
            )
            plan = self._plans.get(plan_key)
            if plan is None:
                plan = self._plans[plan_key] = self._plan(record.topic, key, value)
            row = plan.build(record, key.payload if key else None, record.key, value.payload, record.value)
            return RowChange(record, plan.shape, row)
        except (MalformedRecord, UnsupportedColumnType, ConnectValueError) as err:
            raise RecordRejected(TASK_PUT, f"record {where(record)}: {err}", err) from None

    def _intern(self, shape: Shape) -> Shape:
        identity = (shape.table, shape.delete, shape.columns, shape.key_columns, orjson.dumps(shape.fields))
        return self._shapes.setdefault(identity, shape)

    @staticmethod
    def _envelope(data: bytes | None, what: str, stage: str) -> Envelope | None:
        try:
            return decode_envelope(data, what)
        except MalformedRecord as err:
            raise RecordRejected(stage, str(err), err) from None

    def _delete(self, record: ConsumerRecord, key: Envelope | None) -> RowChange:
        if not self.config.delete_enabled:
            raise MalformedRecord("null value (a tombstone) but delete.enabled=false: nothing to write")
        if key is None or key.payload is None:
            raise MalformedRecord("a tombstone needs a key to delete by, and this record's key is null")
        plan_key = (record.topic, orjson.dumps(key.schema))
        plan = self._delete_plans.get(plan_key)
        if plan is None:
            key_reader, key_columns, key_pick = self._key_reader(key)
            fields = key_reader_fields(key_reader, key_pick)
            shape = self._intern(Shape(self.table(record.topic), True, key_columns, key_columns, fields))
            plan = self._delete_plans[plan_key] = RowPlan(shape, _key_row(key_reader, key_pick))
        return RowChange(record, plan.shape, plan.build(record, key.payload, record.key, None, b""))

    def _key_reader(self, key: Envelope) -> tuple[StructReader, tuple[str, ...], list[int] | None]:
        """The key's reader, its column names and which of its fields they are (None: a primitive key)."""
        schema = key.schema or {}
        pk_fields = self.config.pk_fields
        if schema.get("type") == "struct":
            reader = StructReader(struct_fields(schema, "key"), self.zone)
            names = pk_fields or tuple(f["field"] for f in reader.fields)
            return reader, tuple(names), _select(reader, names, "key", "pk.fields")
        if len(pk_fields) != 1:
            raise MalformedRecord(
                f"the key is a primitive {schema.get('type')!r}, so pk.fields must name exactly one column for it "
                f"(got {list(pk_fields)})"
            )
        reader = StructReader([dict(schema, field=pk_fields[0])], self.zone)
        return reader, (pk_fields[0],), None

    def _plan(self, topic: str, key: Envelope | None, value: Envelope) -> RowPlan:
        config = self.config
        value_reader = StructReader(struct_fields(value.schema, "value"), self.zone)
        value_names = [f["field"] for f in value_reader.fields]
        whitelist = config.fields_whitelist

        if config.pk_mode == "record_key":
            if key is None or key.payload is None:
                raise MalformedRecord("pk.mode=record_key but the record key is null")
            key_reader, key_columns, key_pick = self._key_reader(key)
            key_fields = key_reader_fields(key_reader, key_pick)
        elif config.pk_mode == "record_value":
            key_columns = config.pk_fields or tuple(value_names)
            key_pick = _select(value_reader, key_columns, "value", "pk.fields")
            key_fields = tuple(value_reader.fields[i] for i in key_pick)
        elif config.pk_mode == "kafka":
            key_columns = config.pk_fields or KAFKA_PK_FIELDS
            key_fields = tuple(dict(s, field=n) for s, n in zip(KAFKA_PK_SCHEMAS, key_columns, strict=True))
        else:
            key_columns, key_fields = (), ()

        rest = [i for i, n in enumerate(value_names) if n not in key_columns and (not whitelist or n in whitelist)]
        shape = self._intern(
            Shape(
                self.table(topic),
                False,
                (*key_columns, *(value_names[i] for i in rest)),
                tuple(key_columns),
                (*key_fields, *(value_reader.fields[i] for i in rest)),
            )
        )

        key_row = _key_row(key_reader, key_pick) if config.pk_mode == "record_key" else None

        def build(record: ConsumerRecord, key_payload: Any, key_raw: bytes | None, payload: Any, raw: bytes) -> tuple:
            values = value_reader.read(payload, lambda: exact_numbers(raw)["payload"], "value")
            tail = tuple(values[i] for i in rest)
            if key_row is not None:
                return (*key_row(record, key_payload, key_raw, None, b""), *tail)
            if config.pk_mode == "record_value":
                return (*(values[i] for i in key_pick), *tail)
            if config.pk_mode == "kafka":
                return (record.topic, record.partition, record.offset, *tail)
            return tail

        return RowPlan(shape, build)


def key_reader_fields(reader: StructReader, pick: list[int] | None) -> tuple[dict[str, Any], ...]:
    return reader.fields if pick is None else tuple(reader.fields[i] for i in pick)


def _key_row(reader: StructReader, pick: list[int] | None) -> Callable[..., tuple[Any, ...]]:
    def build(record: ConsumerRecord, key_payload: Any, key_raw: bytes | None, payload: Any, raw: bytes) -> tuple:
        if pick is None:  # a primitive key: the payload is the value itself
            name = reader.fields[0]["field"]
            return tuple(
                reader.read({name: key_payload}, lambda: {name: exact_numbers(key_raw or b"")["payload"]}, "key")
            )
        values = reader.read(key_payload, lambda: exact_numbers(key_raw or b"")["payload"], "key")
        return tuple(values[i] for i in pick)

    return build
