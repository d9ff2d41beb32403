"""Debezium change events (``{before, after, source, op, ts_ms, …}``) as the sinks read them.

Two readers of the same envelope:

* ``ChangeEventReader``: what Debezium's JDBC sink does with a record (its
  ``KafkaDebeziumSinkRecord`` and ``JdbcChangeEventSink``): ``c``/``r``/``u`` write ``after``,
  ``d`` deletes (with ``delete.enabled``), ``t`` truncates (with ``truncate.enabled``),
  tombstones delete by the record key, and a value that is not an envelope is a row as it is.
* ``ExtractNewRecordState``: Debezium's "unwrap" transform, which turns an event into the row it
  leaves behind (or a delete, a tombstone, a rewritten row with ``__deleted``), for sinks that
  read plain rows.

Both work on messages as ``EnvelopeReader`` parses them, ``(schema identity, schema, payload)``,
and derive the row's schema once per envelope schema; a record then costs a few dict lookups.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, NamedTuple

from mungmo_pipelines.core.config.sink import PkMode, SinkConfig
from mungmo_pipelines.core.config.transforms import DELETED_FIELD, AddedField, ExtractNewRecordState, OnDelete
from mungmo_pipelines.core.errors import MalformedRecord

Message = tuple[bytes, dict[str, Any] | None, Any]  # (schema identity, schema, payload)

ENVELOPE_SUFFIX = ".Envelope"
SCHEMA_CHANGE_VALUE = "SchemaChangeValue"
DELETED_SCHEMA = {"type": "string", "optional": True, "field": DELETED_FIELD}
# What Kafka Connect's SchemaUtil.copySchemaBasics keeps of a schema (not its default, not its optionality).
_SCHEMA_BASICS = ("type", "fields", "keySchema", "valueSchema", "items", "name", "version", "doc", "parameters")


def is_envelope(schema: dict[str, Any] | None) -> bool:
    """A Debezium change event's value schema (``Envelope.isEnvelopeSchema``)."""
    return schema is not None and str(schema.get("name") or "").endswith(ENVELOPE_SUFFIX)


def _field_schema(schema: dict[str, Any], name: str) -> dict[str, Any] | None:
    for candidate in schema.get("fields") or ():
        if isinstance(candidate, dict) and candidate.get("field") == name:
            return candidate
    return None


def _struct_of(envelope: dict[str, Any], name: str) -> dict[str, Any]:
    """The struct schema of the envelope's ``before``/``after`` field."""
    found = _field_schema(envelope, name)
    if found is None or found.get("type") != "struct":
        raise MalformedRecord(f"value schema {envelope.get('name')!r} has no {name!r} struct, as a change event must")
    return found


class Op(Enum):
    """What a record does to its table."""

    WRITE = "write"  # insert/upsert/update the row
    DELETE = "delete"  # delete by the record key, or by the key fields of ``row``
    TRUNCATE = "truncate"
    SKIP = "skip"


class Event(NamedTuple):
    op: Op
    row: Message | None = None
    source: dict[str, Any] | None = None  # the change event's source block, for ${source.*} table names


SKIPPED = Event(Op.SKIP)


class ChangeEventReader:
    """Debezium's JDBC sink's reading of a record value (after any transforms)."""

    def __init__(self, config: SinkConfig) -> None:
        self.delete_enabled = config.delete_enabled
        self.truncate_enabled = config.truncate_enabled
        self.deletes_by_key = config.pk_mode is PkMode.RECORD_KEY
        # value schema identity -> the (after, before) row templates of a change event, or None for a plain row
        self._rows: dict[bytes, tuple[Message, Message] | None] = {}

    def read(self, value: Message | None) -> Event:
        if value is None or value[2] is None:
            # A tombstone (or a flattened delete, a null value with a schema): Debezium deletes by the record
            # key; with primary.key.mode=record_value there is nothing to delete by, so it is skipped.
            return Event(Op.DELETE) if self.delete_enabled and self.deletes_by_key else SKIPPED
        identity, schema, payload = value
        if identity not in self._rows:
            self._rows[identity] = self._templates(identity, schema)
        templates = self._rows[identity]
        if templates is None:
            return Event(Op.WRITE, value)  # a row as it is (already unwrapped)
        if type(payload) is not dict:
            raise MalformedRecord(f"change event payload must be an object, got {type(payload).__name__}")
        op = payload.get("op")
        source = payload.get("source")
        if op in ("c", "r", "u"):
            after = payload.get("after")
            if after is None:
                raise MalformedRecord(f"change event op={op!r} without an 'after' row")
            return Event(Op.WRITE, (templates[0][0], templates[0][1], after), source)
        if op == "d":
            if not self.delete_enabled:
                return SKIPPED
            if self.deletes_by_key:
                return Event(Op.DELETE, None, source)
            before = payload.get("before")
            if before is None:
                raise MalformedRecord("delete event without a 'before' row to take primary.key.fields from")
            return Event(Op.DELETE, (templates[1][0], templates[1][1], before), source)
        if op == "t":
            return Event(Op.TRUNCATE, None, source) if self.truncate_enabled else SKIPPED
        raise MalformedRecord(f"change event op={op!r}: expected c, r, u, d or t")

    @staticmethod
    def _templates(identity: bytes, schema: dict[str, Any] | None) -> tuple[Message, Message] | None:
        """The ``after`` and ``before`` row schemas of a change event's value schema; ``None`` for a plain row."""
        name = str((schema or {}).get("name") or "")
        if SCHEMA_CHANGE_VALUE in name:
            raise MalformedRecord(
                f"a schema change event ({name}), which the JDBC sink cannot write: leave the schema change "
                "topic (topic.prefix alone) out of topics/topics.regex"
            )
        unnamed_event = schema is not None and not name and _field_schema(schema, "op") is not None
        if schema is None or not (is_envelope(schema) or unnamed_event):
            return None
        return (
            (identity + b"#after", _struct_of(schema, "after"), None),
            (identity + b"#before", _struct_of(schema, "before"), None),
        )


class Dropped:
    """What a transform returns for a record it removes from the stream."""


DROPPED = Dropped()


@dataclass(frozen=True)
class _Unwrapped:
    """One envelope schema's rows as the transform emits them."""

    row: tuple[bytes, dict[str, Any]]  # c/r/u: after (+ __deleted "false" when rewriting) + added fields
    deleted: tuple[bytes, dict[str, Any]]  # d when rewriting: before + __deleted "true" + added fields
    null_value: tuple[bytes, dict[str, Any]]  # d as a null value with after's schema
    added: tuple[tuple[AddedField, str | None], ...]  # the add.fields present in this schema, and where


class UnwrapTransform:
    """``io.debezium.transforms.ExtractNewRecordState`` on parsed messages."""

    def __init__(self, settings: ExtractNewRecordState) -> None:
        self.settings = settings
        self._plans: dict[bytes, _Unwrapped | None] = {}

    def apply(self, value: Message | None) -> Message | Dropped | None:
        settings = self.settings
        if value is None or value[2] is None:
            return value if settings.keep_tombstones else DROPPED
        identity, schema, payload = value
        plan = self._plans.get(identity, DROPPED)
        if plan is DROPPED:
            plan = self._plans[identity] = self._plan(identity, schema) if is_envelope(schema) else None
        if plan is None:
            return value  # not a change event (a heartbeat, a schema change): passed on unchanged
        assert isinstance(plan, _Unwrapped)
        if type(payload) is not dict:
            raise MalformedRecord(f"change event payload must be an object, got {type(payload).__name__}")
        after = payload.get("after")
        if after is not None:
            row = self._with_added(plan, payload, after, "false" if settings.rewrite else None)
            return plan.row[0], plan.row[1], row
        before = payload.get("before")
        if before is None:
            return DROPPED  # a truncate event: the transform drops it
        on_delete = settings.on_delete
        if on_delete is OnDelete.DROP:
            return DROPPED
        if on_delete is OnDelete.TOMBSTONE:
            return None
        if on_delete is OnDelete.NULL_VALUE:
            return plan.null_value[0], plan.null_value[1], None
        return plan.deleted[0], plan.deleted[1], self._with_added(plan, payload, before, "true")

    def _with_added(self, plan: _Unwrapped, payload: dict[str, Any], row: Any, deleted: str | None) -> Any:
        if deleted is None and not plan.added:
            return row
        if type(row) is not dict:
            raise MalformedRecord(f"change event row must be an object, got {type(row).__name__}")
        row = dict(row)
        if deleted is not None:
            row[DELETED_FIELD] = deleted
        for added, struct in plan.added:
            parent = payload if struct is None else payload.get(struct)
            row[added.name] = parent.get(added.field) if isinstance(parent, dict) else None
        return row

    def _plan(self, identity: bytes, envelope: dict[str, Any] | None) -> _Unwrapped:
        assert envelope is not None
        after, before = _struct_of(envelope, "after"), _struct_of(envelope, "before")
        added: list[tuple[AddedField, str | None]] = []
        added_schemas: list[dict[str, Any]] = []
        for reference in self.settings.add_fields:
            found = self._added_schema(envelope, reference)
            if found is not None:
                added.append((reference, found[0]))
                added_schemas.append(found[1])

        def row_schema(row: dict[str, Any], extra: list[dict[str, Any]], tag: bytes) -> tuple[bytes, dict[str, Any]]:
            fields = [*row.get("fields", []), *extra, *added_schemas]
            return identity + tag, {**row, "fields": fields}

        deleted = [DELETED_SCHEMA] if self.settings.rewrite else []
        return _Unwrapped(
            row=row_schema(after, deleted, b"#unwrapped"),
            deleted=row_schema(before, deleted, b"#unwrapped-delete"),
            null_value=(identity + b"#unwrapped-null", after),
            added=tuple(added),
        )

    @staticmethod
    def _added_schema(envelope: dict[str, Any], reference: AddedField) -> tuple[str | None, dict[str, Any]] | None:
        """Where an added field's value is and its schema (basics copied, optional, renamed), or ``None``
        when the envelope has no such field (Debezium then adds nothing)."""
        struct = reference.struct
        parent = envelope if struct is None else _field_schema(envelope, struct)
        found = _field_schema(parent, reference.field) if parent is not None else None
        if found is None:
            found, struct = _field_schema(envelope, reference.field), None
        if found is None:
            return None
        schema = {k: found[k] for k in _SCHEMA_BASICS if k in found}
        schema.update(optional=True, field=reference.name)
        return struct, schema
