"""What is compared and how each side reads it: the column mapping, the key, and per side the
canonical expressions, the row hash and the key as ranges compare it.

The row hash is pt-table-checksum's, ``CRC32(CONCAT_WS('#', <canonical columns>, <NULL bitmap>))``,
hashed once more: CRC32 is affine, so one change at the same distance from the end of two rows (a
column set to the same new value) changes both CRC32s by the same bits, and the ``BIT_XOR`` of a
piece holding both would not change at all; the CRC32 of each row's CRC32 (its decimal text) does
not carry a change through alike. ``CONCAT_WS`` skips NULLs, so the bitmap (``CONCAT(ISNULL(c1),
...)`` over every column that may be NULL on either side) is what tells NULL from ``''`` and which
column was NULL.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from mungmo_pipelines.core.consistency.catalog import TableDescription
from mungmo_pipelines.core.consistency.expressions import (
    BINARIES,
    INTEGERS,
    TEXTS,
    Domain,
    SideExpression,
    UncomparableColumn,
    ValueForm,
    canonical,
    compared_form,
    jdbc_forms,
)
from mungmo_pipelines.core.errors import ConsistencyError
from mungmo_pipelines.core.mariadb.columns import TableColumn
from mungmo_pipelines.core.mariadb.dialect import quote

SEPARATOR = "#"


@dataclass(frozen=True)
class TableSpec:
    """A replicated table: where both ends are, which source column the sink writes into which
    target column (``None``: every source column, same name), the key (empty: the source's primary
    key), the zone the sink writes wall-clock times in (its ``db.timezone``) and what the pipeline
    carries per source column (default: the JDBC source's forms, reading wall times in ``zone``)."""

    source_database: str
    source_table: str
    target_database: str
    target_table: str
    columns: Mapping[str, str] | None = None
    key: tuple[str, ...] = ()
    zone: str = "UTC"
    forms: Callable[[TableColumn], ValueForm] | None = None
    # Without ``columns``: which source columns the pipeline writes, same name (None: every one).
    written: Callable[[str], bool] | None = None

    @property
    def source_label(self) -> str:
        return f"{self.source_database}.{self.source_table}"

    @property
    def target_label(self) -> str:
        return f"{self.target_database}.{self.target_table}"


@dataclass(frozen=True)
class ComparedColumn:
    source: str
    target: str
    form: ValueForm
    source_sql: SideExpression
    target_sql: SideExpression
    nullable: bool


@dataclass(frozen=True)
class SideSql:
    """What one side's queries read: the table, the key as ranges and lookups compare it
    (``key_refs``, in the source's collation on both sides), the key as stored (``key_columns``),
    the canonical key and values as bytes, and the row hash."""

    table: str
    key_refs: tuple[str, ...]
    key_columns: tuple[str, ...]
    canonical_key: tuple[str, ...]
    values: tuple[str, ...]
    row_hash: str


@dataclass(frozen=True)
class Plan:
    key: tuple[str, ...]
    columns: tuple[ComparedColumn, ...]
    source: SideSql
    target: SideSql
    notes: tuple[str, ...]

    def side(self, role: str) -> SideSql:
        return self.source if role == "source" else self.target


@dataclass(frozen=True)
class CountOnly:
    """The tables can only be compared by row count, and why (``target_exists``: False when the
    target table is not there yet, counted as empty)."""

    reason: str
    notes: tuple[str, ...] = ()
    target_exists: bool = True


def plan_comparison(spec: TableSpec, source: TableDescription, target: TableDescription) -> Plan | CountOnly:
    written = spec.written or (lambda name: True)
    mapping = (
        dict(spec.columns)
        if spec.columns is not None
        else {c.name: c.name for c in source.schema.columns if written(c.name)}
    )
    key = spec.key or source.schema.primary_key
    if not key:
        return CountOnly(
            f"source table {source.label} has no primary key: rows cannot be matched by key, so only row "
            "counts are compared"
        )
    for name in key:
        mapping.setdefault(name, name)
    columns, notes = _compared_columns(spec, source, target, mapping)
    by_source = {c.source: c for c in columns}
    target_key = tuple(by_source[name].target for name in key)
    if not target.has_unique_key(target_key):
        return CountOnly(
            f"target table {target.label} has no primary key or unique index on ({', '.join(target_key)}): "
            "key ranges would read the whole target each time, so only row counts are compared",
            notes,
        )
    for name in key:
        problem = _inexact_key(source.column(name), target.column(by_source[name].target), by_source[name].form)
        if problem:
            return CountOnly(f"key column {name!r} {problem}: keys must be carried exactly to be matched", notes)
    target_refs, key_notes = _target_key_refs(source, target, key, target_key)
    ordered = (*(by_source[name] for name in key), *(c for c in columns if c.source not in key))
    return Plan(
        key=key,
        columns=ordered,
        source=_side_sql(spec.source_database, spec.source_table, key, tuple(quote(k) for k in key), ordered, "source"),
        target=_side_sql(spec.target_database, spec.target_table, target_key, target_refs, ordered, "target"),
        notes=notes + key_notes,
    )


def _compared_columns(
    spec: TableSpec, source: TableDescription, target: TableDescription, mapping: dict[str, str]
) -> tuple[list[ComparedColumn], tuple[str, ...]]:
    columns, notes = [], []
    forms = spec.forms or jdbc_forms(spec.zone)
    for source_name, target_name in mapping.items():
        source_column = source.column(source_name)
        if source_column is None:
            raise ConsistencyError(f"source table {source.label} has no column {source_name!r} (in the column mapping)")
        target_column = target.column(target_name)
        if target_column is None:
            raise ConsistencyError(
                f"target table {target.label} has no column {target_name!r} (mapped from source column {source_name!r})"
            )
        form = compared_form(forms(source_column), spec.zone)
        if form.domain == Domain.BYTES and _pads(source_column, target_column):
            form = replace(form, trailing_zero_bytes=False)
        try:
            source_sql = canonical(source_column, form, "source", spec.zone, quote(source_name))
            target_sql = canonical(target_column, form, "target", spec.zone, quote(target_name))
        except UncomparableColumn as err:
            raise ConsistencyError(f"{source.label} -> {target.label}: {err}") from None
        nullable = (
            source_column.nullable
            or target_column.nullable
            or source_sql.null_sql != quote(source_name)
            or target_sql.null_sql != quote(target_name)
        )
        columns.append(ComparedColumn(source_name, target_name, form, source_sql, target_sql, nullable))
        notes.extend(_notes(source_column, target_column, form, spec.zone))
    return columns, tuple(notes)


def _pads(source: TableColumn, target: TableColumn) -> bool:
    """Whether a BINARY(m) target pads what it stores with zero bytes the source's values lack."""
    same_width = source.data_type == "binary" and source.character_maximum_length == target.character_maximum_length
    return target.data_type == "binary" and not same_width


def _notes(column: TableColumn, target: TableColumn, form: ValueForm, zone: str) -> list[str]:
    """What the comparison of one column deliberately leaves out, as the pipeline does."""
    notes = []
    name = column.name
    temporal = form.domain in (Domain.TIME, Domain.DATETIME, Domain.INSTANT)
    if temporal and (column.datetime_precision or 0) > form.fraction_digits:
        notes.append(
            f"{name}: source {column.column_type} compared at {form.fraction_digits} fraction digits, "
            "the precision the pipeline carries"
        )
    if form.domain == Domain.INSTANT:
        notes.append(f"{name}: TIMESTAMP compared as the wall-clock time in {zone}, as the sink writes it")
    if form.domain == Domain.DATETIME and form.wall_zone:
        notes.append(f"{name}: wall-clock times converted from {form.wall_zone} to {zone}, as the pipeline does")
    if form.domain == Domain.FLOAT32 and target.data_type != "float":
        notes.append(f"{name}: target {target.column_type} compared as float32, the precision the pipeline carries")
    if form.domain == Domain.BYTES and not form.trailing_zero_bytes:
        notes.append(f"{name}: compared without trailing zero bytes")
    return notes


_EXACT_KEY_TYPES = {
    Domain.NUMBER: INTEGERS | {"decimal"},
    Domain.TEXT: TEXTS | BINARIES,
    Domain.BYTES: BINARIES,
    Domain.DATE: {"date"},
    Domain.TIME: {"time"},
    Domain.DATETIME: {"datetime", "timestamp"},
    Domain.INSTANT: {"datetime", "timestamp"},
}


def _inexact_key(source: TableColumn | None, target: TableColumn | None, form: ValueForm) -> str | None:
    """Why a key column's values would not be the same key values on both sides, or None."""
    assert source is not None and target is not None  # checked by _compared_columns
    allowed = _EXACT_KEY_TYPES.get(form.domain, set())
    if source.data_type not in allowed or target.data_type not in allowed:
        return f"is {source.column_type} in the source and {target.column_type} in the target, carried as {form.domain}"
    if (source.datetime_precision or 0) > form.fraction_digits and form.domain in (
        Domain.TIME,
        Domain.DATETIME,
        Domain.INSTANT,
    ):
        return f"({source.column_type}) loses fraction digits on the way ({form.fraction_digits} carried)"
    if form.domain == Domain.DATETIME and form.wall_zone is not None:
        return f"({source.column_type}) is converted between time zones on the way"
    if form.domain == Domain.BYTES and not form.trailing_zero_bytes:
        return f"({source.column_type}) loses trailing zero bytes on the way"
    return None


def _target_key_refs(
    source: TableDescription, target: TableDescription, key: tuple[str, ...], target_key: tuple[str, ...]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The target's key columns as the source's key compares: strings in the source's collation.

    A different collation orders strings differently, so the same range would hold different rows
    on the two sides; comparing in one collation keeps ranges aligned, at the price of the target's
    index on that column (noted)."""
    refs, notes = [], []
    for source_name, target_name in zip(key, target_key, strict=True):
        ref = quote(target_name)
        source_collation = source.collations.get(source_name)
        target_collation = target.collations.get(target_name)
        if source_collation != target_collation:
            if source_collation is None:
                ref = f"CAST({ref} AS BINARY)"
            else:
                charset = source_collation.split("_", 1)[0]
                ref = f"CONVERT({ref} USING {charset}) COLLATE {source_collation}"
            notes.append(
                f"key column {target_name!r}: the target's collation ({target_collation or 'binary'}) differs from "
                f"the source's ({source_collation or 'binary'}); the target is compared in the source's, which its "
                "index cannot serve, so its key ranges read more rows"
            )
        refs.append(ref)
    return tuple(refs), tuple(notes)


def _side_sql(
    database: str,
    table: str,
    key: tuple[str, ...],
    key_refs: tuple[str, ...],
    columns: tuple[ComparedColumn, ...],
    role: str,
) -> SideSql:
    expressions = [c.source_sql if role == "source" else c.target_sql for c in columns]
    parts = [e.sql for e in expressions]
    nullable = [e.null_sql for e, c in zip(expressions, columns, strict=True) if c.nullable]
    if nullable:
        parts.append("CONCAT(" + ", ".join(f"ISNULL({sql})" for sql in nullable) + ")")
    row = f"CONCAT_WS('{SEPARATOR}', " + ", ".join(parts) + ")"
    values = tuple(f"CAST({e.sql} AS BINARY)" for e in expressions)
    return SideSql(
        table=f"{quote(database)}.{quote(table)}",
        key_refs=key_refs,
        key_columns=tuple(quote(k) for k in key),
        canonical_key=values[: len(key)],
        values=values,
        row_hash=f"CRC32(CRC32({row}))",
    )
