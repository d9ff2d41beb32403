"""Kafka records to row changes: primary key modes, field selection, tombstones and change events.

A record goes through the connector's transforms (``ExtractNewRecordState``), then, for
Debezium's sink, through ``ChangeEventReader`` (an event writes ``after``, deletes, truncates
or is skipped), and becomes a ``RowChange``. Every distinct (topic, table, key schema, row
schema) gets a ``RowPlan`` once; after that a record costs one JSON parse and one checked
conversion per field. A record that cannot become a row raises ``RecordRejected`` with the
Kafka Connect error stage it failed in, which is what the dead-letter headers report.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson
from kafka.consumer.fetcher import ConsumerRecord

from mungmo_pipelines.core.config.sink import PkMode, SinkConfig
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
from mungmo_pipelines.core.mariadb.dialect import identifier_problem
from mungmo_pipelines.core.sink.change_events import ChangeEventReader, Dropped, Event, Message, Op, UnwrapTransform

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
    A truncate (a Debezium ``op=t`` with ``truncate.enabled``) has no columns.
    """

    table: str
    delete: bool
    columns: tuple[str, ...]
    key_columns: tuple[str, ...]
    fields: tuple[dict[str, Any], ...]  # the Connect field schema of each column, for DDL and type checks
    truncate: bool = False


class RowChange(NamedTuple):
    """A record as the row it writes (or, for a delete, the key it removes)."""

    record: ConsumerRecord
    shape: Shape
    row: tuple[Any, ...]


class StructReader:
    """Reads one struct schema's payloads into column values, checking each against its field type.

    A null or missing value takes the field's default (Kafka Connect's ``replace.null.with.default``);
    a null in a field that is neither optional nor defaulted is rejected. ``keep_nulls``: a null in an
    optional field stays null, as the row of a change event must (its source column held NULL).
    """

    def __init__(
        self, fields: Sequence[dict[str, Any]], zone: dt.tzinfo, primitive: bool = False, keep_nulls: bool = False
    ) -> None:
        """``primitive``: one field whose payload is the message's whole payload (a primitive key)."""
        self.fields = tuple(fields)
        self.primitive = primitive
        self.names = tuple(f["field"] for f in self.fields)
        self._steps = tuple(
            (
                f["field"],
                bool(f.get("optional", False)),
                None if keep_nulls and f.get("optional", False) else f.get("default"),
                value_literal(f, zone),
            )
            for f in self.fields
        )
        self._decimals = tuple(f["field"] for f in self.fields if connect_kind(f) == DECIMAL)

    def read(self, payload: Any, raw: bytes | None, what: str) -> list[Any]:
        """Column values of ``payload``; ``raw`` is the record's JSON whose payload ``payload`` is, parsed again
        if Decimals came as numbers (``None``: ``payload`` is part of a change event)."""
        if type(payload) is not dict:
            raise MalformedRecord(f"{what} payload must be an object for a struct schema, got {type(payload).__name__}")
        for name in self._decimals:
            if type(payload.get(name)) is float:
                # decimal.format=NUMERIC: parse again without rounding the fraction through a float.
                if raw is None:
                    raise MalformedRecord(
                        f"{what} field {name!r}: a Decimal written as a JSON number inside a change event cannot be "
                        "read without rounding here; use the converter's decimal.format=BASE64 (its default)"
                    )
                exact = exact_numbers(raw)["payload"]
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


Build = Callable[[ConsumerRecord, Any, Any], tuple[Any, ...]]
KeyPlan = tuple[tuple[str, ...], tuple[dict[str, Any], ...], Callable[[ConsumerRecord, Any], tuple[Any, ...]]]


@dataclass(frozen=True)
class RowPlan:
    """How records of one (topic, key schema, value schema) become rows of one shape."""

    shape: Shape
    build: Build  # (record, key payload, row payload) -> row


def positions(names: Sequence[str], wanted: Sequence[str], hint: str, what: str = "value") -> tuple[int, ...]:
    """Where each of ``wanted`` is in ``names``; a missing one is a bad record naming ``hint``'s option."""
    missing = [n for n in wanted if n not in names]
    if missing:
        raise MalformedRecord(f"{hint} names {missing}, which the {what} schema lacks (it has {list(names)})")
    return tuple(names.index(n) for n in wanted)


class RecordDecoder:
    """Turns records into ``RowChange``s for one sink connector (``None``: the record changes nothing)."""

    def __init__(self, config: SinkConfig, zone: dt.tzinfo) -> None:
        self.config = config
        self.zone = zone
        self._keys = EnvelopeReader("key", KEY_CONVERTER)
        self._values = EnvelopeReader("value", VALUE_CONVERTER)
        self._transforms = tuple(UnwrapTransform(settings) for settings in config.transform_chain)
        self._events = ChangeEventReader(config) if config.reads_change_events else None
        self._tables_from_events = config.table_from_events
        self._plans: dict[tuple[str, str, bytes, bytes], RowPlan] = {}
        self._tables: dict[str, str] = {}
        self._checked_tables: set[str] = set()
        self._shapes: dict[tuple[Any, ...], Shape] = {}
        self._needs_key = config.pk_mode is PkMode.RECORD_KEY

    def table(self, topic: str) -> str:
        """The table of ``topic``'s records (named per event when ``${source.*}`` is in the format)."""
        table = self._tables.get(topic)
        if table is None:
            problem = self.config.table_problem(topic)
            if problem:
                raise TableNameError(f"connector {self.config.name!r}: {problem}")
            table = self._tables[topic] = self.config.table_for(topic)
        return table

    def decode(self, record: ConsumerRecord) -> RowChange | None:
        """The row change a record makes (``None``: none); raises ``RecordRejected`` naming what is wrong."""
        key = self._keys.read(record.key) if self._needs_key else None
        value: Message | None = self._values.read(record.value)
        try:
            for transform in self._transforms:
                transformed = transform.apply(value)
                if isinstance(transformed, Dropped):
                    return None
                value = transformed
            event = self._event(value)
            if event.op is Op.SKIP:
                return None
            table = self._table_of(record.topic, event)
            if table is None:
                return None
            if event.op is Op.TRUNCATE:
                return RowChange(record, self._intern(Shape(table, False, (), (), (), truncate=True)), ())
            if event.op is Op.DELETE and event.row is None:
                return self._key_delete(record, table, key)
            assert event.row is not None
            row_identity = event.row[0] + (b"-" if event.op is Op.DELETE else b"")
            plan_key = (record.topic, table, key[0] if key else b"", row_identity)
            plan = self._plans.get(plan_key)
            if plan is None:
                plan = self._plans[plan_key] = self._row_plan(record.topic, table, key, event)
            return RowChange(record, plan.shape, plan.build(record, key[2] if key else None, event.row[2]))
        except (MalformedRecord, UnsupportedColumnType, ConnectValueError) as err:
            raise RecordRejected(TASK_PUT, str(err), err) from None

    def _event(self, value: Message | None) -> Event:
        """What the record does: Debezium's sink reads change events; the JDBC sink, rows and tombstones."""
        if self._events is not None:
            return self._events.read(value)
        if value is None or value[2] is None:
            if not self.config.delete_enabled:
                raise MalformedRecord("null value (a tombstone) but delete.enabled=false: nothing to write")
            return Event(Op.DELETE)
        return Event(Op.WRITE, value)

    def _table_of(self, topic: str, event: Event) -> str | None:
        if not self._tables_from_events:
            return self.table(topic)
        if event.source is None:
            return None  # not a change event: Debezium's sink finds no table name for it and skips it
        config = self.config
        try:
            table = config.table_name(topic, event.source)
        except ValueError as err:
            raise MalformedRecord(str(err)) from None
        if table not in self._checked_tables:
            problem = identifier_problem(table)
            if problem:
                raise TableNameError(
                    f"connector {config.name!r}: {config.TABLE_FORMAT_OPTION} {config.table_format!r} makes table "
                    f"name {table!r}: {problem}"
                )
            self._checked_tables.add(table)
        return table

    def _intern(self, shape: Shape) -> Shape:
        identity = (
            shape.table,
            shape.delete,
            shape.truncate,
            shape.columns,
            shape.key_columns,
            orjson.dumps(shape.fields),
        )
        return self._shapes.setdefault(identity, shape)

    def _record_key(self, key: Message | None, deleting: bool = False) -> Message:
        if key is None or key[2] is None:
            raise MalformedRecord(
                "a delete needs a key to delete by, and this record's key is null"
                if deleting
                else f"{self.config.PK_MODE_OPTION}=record_key but the record key is null"
            )
        return key

    def _key_delete(self, record: ConsumerRecord, table: str, key: Message | None) -> RowChange:
        """A delete by the record key (a tombstone, or a Debezium delete event with record_key)."""
        key = self._record_key(key, deleting=True)
        plan_key = (record.topic, table, key[0], b"")
        plan = self._plans.get(plan_key)
        if plan is None:
            key_columns, key_fields, read_key = self._key_plan(record.topic, key)
            shape = self._intern(Shape(table, True, key_columns, key_columns, key_fields))
            plan = self._plans[plan_key] = RowPlan(
                shape, lambda record, key_payload, payload: read_key(record, key_payload)
            )
        return RowChange(record, plan.shape, plan.build(record, key[2], None))

    def _row_plan(self, topic: str, table: str, key: Message | None, event: Event) -> RowPlan:
        """The plan for a row to write or, for a delete by the row's key fields, to delete.

        Only the fields that become columns are read (and checked): a field the connector leaves out
        (``fields.whitelist``, ``field.exclude.list``) is never converted.
        """
        config = self.config
        assert event.row is not None
        fields = struct_fields(event.row[1], "value")
        names = tuple(f["field"] for f in fields)
        raw_value = self._events is None and not self._transforms  # the payload is the record's own value
        # A change event's row is the source row: a NULL stays NULL even where the column has a default.
        change_event = not raw_value

        def reader_of(wanted: Sequence[str]) -> Callable[[ConsumerRecord, Any], tuple[Any, ...]]:
            wanted_fields = [fields[i] for i in positions(names, wanted, config.PK_FIELDS_OPTION)]
            reader = StructReader(wanted_fields, self.zone, keep_nulls=change_event)

            def read(record: ConsumerRecord, payload: Any) -> tuple[Any, ...]:
                return tuple(reader.read(payload, record.value if raw_value else None, "value"))

            return read

        if event.op is Op.DELETE:  # primary.key.mode=record_value: the key fields of the row before
            key_columns = config.pk_fields or names
            read_key_fields = reader_of(key_columns)
            key_fields = tuple(fields[names.index(n)] for n in key_columns)
            shape = self._intern(Shape(table, True, tuple(key_columns), tuple(key_columns), key_fields))
            return RowPlan(shape, lambda record, key_payload, payload: read_key_fields(record, payload))
        build: Build
        if config.pk_mode is PkMode.RECORD_KEY:
            key_columns, key_fields, read_key = self._key_plan(topic, self._record_key(key))
        elif config.pk_mode is PkMode.RECORD_VALUE:
            key_columns = config.pk_fields or tuple(n for n in names if config.field_written(topic, n, True))
            positions(names, key_columns, config.PK_FIELDS_OPTION)
            key_fields = tuple(fields[names.index(n)] for n in key_columns)
        elif config.pk_mode is PkMode.KAFKA:
            key_columns = config.pk_fields or KAFKA_PK_FIELDS
            key_fields = tuple(dict(s, field=n) for s, n in zip(KAFKA_PK_SCHEMAS, key_columns, strict=True))
        else:
            key_columns, key_fields = (), ()
        rest = tuple(n for n in names if n not in key_columns and config.field_written(topic, n, False))
        shape = self._intern(
            Shape(
                table,
                False,
                (*key_columns, *rest),
                tuple(key_columns),
                (*key_fields, *(fields[names.index(n)] for n in rest)),
            )
        )
        if config.pk_mode is PkMode.RECORD_KEY:
            read_rest = reader_of(rest)

            def build(record: ConsumerRecord, key_payload: Any, payload: Any) -> tuple[Any, ...]:
                return read_key(record, key_payload) + read_rest(record, payload)

        elif config.pk_mode is PkMode.RECORD_VALUE:
            read_row = reader_of((*key_columns, *rest))

            def build(record: ConsumerRecord, key_payload: Any, payload: Any) -> tuple[Any, ...]:
                return read_row(record, payload)

        elif config.pk_mode is PkMode.KAFKA:
            read_rest = reader_of(rest)

            def build(record: ConsumerRecord, key_payload: Any, payload: Any) -> tuple[Any, ...]:
                coordinates = (string_literal(record.topic), str(record.partition), str(record.offset))
                return coordinates + read_rest(record, payload)

        else:
            read_columns = reader_of(rest)

            def build(record: ConsumerRecord, key_payload: Any, payload: Any) -> tuple[Any, ...]:
                return read_columns(record, payload)

        return RowPlan(shape, build)

    def _key_plan(self, topic: str, key: Message) -> KeyPlan:
        """The key's column names, their field schemas, and how to read them from a key payload."""
        schema = key[1] or {}
        pk_fields = self.config.pk_fields
        if schema.get("type") == "struct":
            fields = struct_fields(schema, "key")
            all_names = tuple(f["field"] for f in fields)
            names = pk_fields or tuple(n for n in all_names if self.config.field_written(topic, n, True))
            reader = StructReader(
                [fields[i] for i in positions(all_names, names, self.config.PK_FIELDS_OPTION, "key")], self.zone
            )

            def read_struct(record: ConsumerRecord, key_payload: Any) -> tuple[Any, ...]:
                return tuple(reader.read(key_payload, record.key, "key"))

            return tuple(names), reader.fields, read_struct
        if len(pk_fields) != 1:
            raise MalformedRecord(
                f"the key is a primitive {schema.get('type')!r}, so {self.config.PK_FIELDS_OPTION} must name exactly "
                f"one column for it (got {list(pk_fields)})"
            )
        name = pk_fields[0]
        reader = StructReader([dict(schema, field=name)], self.zone, primitive=True)

        def read_primitive(record: ConsumerRecord, key_payload: Any) -> tuple[Any, ...]:
            return tuple(reader.read({name: key_payload}, record.key, "key"))

        return (name,), reader.fields, read_primitive
