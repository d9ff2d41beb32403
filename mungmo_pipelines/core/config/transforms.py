"""Single message transforms of a sink body (``transforms``, ``transforms.<alias>.*``).

One transform type is supported: Debezium's ``ExtractNewRecordState`` ("unwrap"), which turns a
Debezium change event into the row it leaves behind, so that a sink reading plain rows (the
JDBC sink with ``pk.mode=record_key`` and ``delete.enabled``) applies CDC topics. Its options
are Debezium 3.5's, plus the pre-3.0 ``delete.handling.mode`` and ``drop.tombstones``, read
as Debezium 2.x read them (``LegacyDeleteHandlingStrategy``). Any other type or option is
refused by name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from mungmo_pipelines.core.config.options import Bool, Choice, Kind, Text

T = TypeVar("T")

EXTRACT_NEW_RECORD_STATE = "io.debezium.transforms.ExtractNewRecordState"
METADATA_PREFIX = "__"
DELETED_FIELD = "__deleted"


class DeleteTombstoneHandling(StrEnum):
    """``delete.tombstone.handling.mode``: what becomes of delete events and of tombstones."""

    DROP = "drop"
    TOMBSTONE = "tombstone"
    REWRITE = "rewrite"
    REWRITE_WITH_TOMBSTONE = "rewrite-with-tombstone"
    DELETE_TO_TOMBSTONE = "delete-to-tombstone"


class LegacyDeleteHandling(StrEnum):
    """``delete.handling.mode``, removed in Debezium 3.0."""

    DROP = "drop"
    REWRITE = "rewrite"
    NONE = "none"


class OnDelete(StrEnum):
    """What a delete event (``op=d``) becomes."""

    DROP = "drop"  # nothing
    NULL_VALUE = "null value"  # the key with a null value: a delete for the sink
    TOMBSTONE = "tombstone"  # the key with a null value and no value schema
    REWRITE = "rewrite"  # the row before the delete, with __deleted = "true"


# delete.tombstone.handling.mode -> (delete events, tombstones kept, __deleted on every row)
_MODES = {
    DeleteTombstoneHandling.DROP: (OnDelete.DROP, False, False),
    DeleteTombstoneHandling.TOMBSTONE: (OnDelete.NULL_VALUE, False, False),
    DeleteTombstoneHandling.REWRITE: (OnDelete.REWRITE, False, True),
    DeleteTombstoneHandling.REWRITE_WITH_TOMBSTONE: (OnDelete.REWRITE, True, True),
    DeleteTombstoneHandling.DELETE_TO_TOMBSTONE: (OnDelete.TOMBSTONE, False, False),
}
_LEGACY = {
    LegacyDeleteHandling.DROP: OnDelete.DROP,
    LegacyDeleteHandling.NONE: OnDelete.NULL_VALUE,
    LegacyDeleteHandling.REWRITE: OnDelete.REWRITE,
}

# The envelope's top-level fields and the transaction block's; any other unqualified name is in ``source``.
_TOP_LEVEL = ("op", "ts_ms", "ts_us", "ts_ns")
_TRANSACTION = ("id", "total_order", "data_collection_order")

_OPTIONS = (
    "type",
    "delete.tombstone.handling.mode",
    "delete.handling.mode",
    "drop.tombstones",
    "add.fields",
    "add.fields.prefix",
    "add.headers",
    "add.headers.prefix",
)


@dataclass(frozen=True)
class AddedField:
    """One entry of ``add.fields``/``add.headers``: ``[struct.]field[:new_name]``."""

    struct: str | None  # "source", "transaction", or None for the envelope's own fields
    field: str
    name: str  # the field (or header) it becomes, prefix included


def added_fields(prefix: str, text: str) -> tuple[AddedField, ...]:
    """``add.fields`` as Debezium's ``FieldReference`` reads it."""
    found = []
    for entry in (part.strip() for part in text.split(",") if part.strip()):
        reference, _, new_name = entry.partition(":")
        if ":" in new_name or not reference:
            raise ValueError(f"expected [struct.]field[:new_name], got {entry!r}")
        qualifier, _, field = reference.rpartition(".")
        struct: str | None = qualifier
        if not qualifier:
            field = reference
            struct = None if field in _TOP_LEVEL else "transaction" if field in _TRANSACTION else "source"
            name = field
        else:
            name = f"{qualifier}_{field}"
        found.append(AddedField(struct, field, prefix + (new_name or name)))
    return tuple(found)


@dataclass(frozen=True)
class ExtractNewRecordState:
    """A parsed ``io.debezium.transforms.ExtractNewRecordState``."""

    alias: str
    on_delete: OnDelete
    keep_tombstones: bool
    rewrite: bool  # every row gets __deleted ("false", or "true" for a rewritten delete)
    add_fields: tuple[AddedField, ...]
    add_headers: tuple[AddedField, ...]  # checked; the JDBC sinks read no headers, so they change nothing

    @classmethod
    def parse(cls, alias: str, options: dict[str, str]) -> ExtractNewRecordState:
        unknown = [key for key in options if key not in _OPTIONS]
        if unknown:
            raise ValueError(
                f"transforms.{alias}.{unknown[0]}: not an option of {EXTRACT_NEW_RECORD_STATE} supported here "
                f"(supported: {', '.join(_OPTIONS[1:])})"
            )
        mode_text = options.get("delete.tombstone.handling.mode")
        legacy_text = options.get("delete.handling.mode")
        tombstones_text = options.get("drop.tombstones")
        if mode_text is not None and (legacy_text is not None or tombstones_text is not None):
            raise ValueError(
                f"transforms.{alias}: delete.tombstone.handling.mode replaces delete.handling.mode and "
                "drop.tombstones; give it alone"
            )
        if mode_text is None and (legacy_text is not None or tombstones_text is not None):
            legacy = _parse(alias, "delete.handling.mode", Choice(LegacyDeleteHandling), legacy_text or "drop")
            drop_tombstones = _parse(alias, "drop.tombstones", Bool(), tombstones_text or "true")
            on_delete, keep, rewrite = _LEGACY[legacy], not drop_tombstones, legacy is LegacyDeleteHandling.REWRITE
        else:
            modes = Choice(DeleteTombstoneHandling)
            mode = _parse(alias, "delete.tombstone.handling.mode", modes, mode_text or "tombstone")
            on_delete, keep, rewrite = _MODES[mode]
        fields_prefix = _parse(alias, "add.fields.prefix", Text(), options.get("add.fields.prefix", METADATA_PREFIX))
        headers_prefix = _parse(alias, "add.headers.prefix", Text(), options.get("add.headers.prefix", METADATA_PREFIX))
        try:
            fields = added_fields(fields_prefix, options.get("add.fields", ""))
        except ValueError as err:
            raise ValueError(f"transforms.{alias}.add.fields: {err}") from None
        try:
            headers = added_fields(headers_prefix, options.get("add.headers", ""))
        except ValueError as err:
            raise ValueError(f"transforms.{alias}.add.headers: {err}") from None
        return cls(alias, on_delete, keep, rewrite, fields, headers)


def _parse(alias: str, key: str, kind: Kind[T], text: str) -> T:
    try:
        return kind.parse(text)
    except ValueError as err:
        raise ValueError(f"transforms.{alias}.{key}: {err}") from None


def parse_transforms(aliases: Sequence[str], options: Sequence[tuple[str, str]]) -> tuple[ExtractNewRecordState, ...]:
    """The chain ``transforms`` names, from the ``transforms.<alias>.*`` options; raises ``ValueError``."""
    by_alias: dict[str, dict[str, str]] = {alias: {} for alias in aliases}
    for key, text in options:
        rest = key[len("transforms.") :]
        alias = next((a for a in aliases if rest.startswith(a + ".")), None)
        if alias is None:
            raise ValueError(f"{key}: names no transform listed in transforms ({', '.join(aliases) or 'none'})")
        by_alias[alias][rest[len(alias) + 1 :]] = text
    chain = []
    for alias, settings in by_alias.items():
        kind = settings.get("type")
        if kind is None:
            raise ValueError(f"transforms.{alias}.type: required for every transform in transforms")
        if kind != EXTRACT_NEW_RECORD_STATE:
            raise ValueError(
                f"transforms.{alias}.type: {kind!r} is not supported here; the one transform this project runs is "
                f"{EXTRACT_NEW_RECORD_STATE}"
            )
        chain.append(ExtractNewRecordState.parse(alias, settings))
    return tuple(chain)
