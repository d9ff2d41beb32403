"""A table's shape read from ``information_schema``, as :class:`TableSchema`."""

from __future__ import annotations

from typing import Any

from mungmo_pipelines.core.mariadb.columns import TableColumn, TableSchema

_COLUMNS = (
    "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, NUMERIC_PRECISION, NUMERIC_SCALE, "
    "DATETIME_PRECISION, CHARACTER_MAXIMUM_LENGTH, CHARACTER_SET_NAME, COLUMN_DEFAULT, EXTRA "
    "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION"
)
_PRIMARY_KEY = (
    "SELECT COLUMN_NAME FROM information_schema.STATISTICS "
    "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s AND INDEX_NAME = 'PRIMARY' ORDER BY SEQ_IN_INDEX"
)


class TableNotFound(LookupError):
    """The table is not in ``information_schema`` (dropped, or not visible to the user)."""


def enum_labels(column_type: str) -> tuple[str, ...]:
    """The labels of ``enum('a','it''s')`` / ``set(...)`` in definition order, unquoted."""
    body = column_type[column_type.index("(") + 1 : column_type.rindex(")")]
    labels: list[str] = []
    i = 0
    while i < len(body):
        if body[i] != "'":
            i += 1
            continue
        i += 1
        label: list[str] = []
        while i < len(body):
            if body[i] == "'" and body[i + 1 : i + 2] == "'":
                label.append("'")
                i += 2
            elif body[i] == "\\" and i + 1 < len(body):
                label.append(body[i + 1])
                i += 2
            elif body[i] == "'":
                i += 1
                break
            else:
                label.append(body[i])
                i += 1
        labels.append("".join(label))
    return tuple(labels)


def read_table_schema(cursor: Any, database: str, table: str) -> TableSchema:
    """The columns and primary key of ``database.table`` (a DB-API cursor, ``%s`` parameters)."""
    cursor.execute(_COLUMNS, (database, table))
    rows = cursor.fetchall()
    if not rows:
        raise TableNotFound(f"table {database}.{table} not found in information_schema")
    columns = []
    for name, data_type, column_type, nullable, precision, scale, fsp, length, charset, default, extra in rows:
        data_type = data_type.lower()
        columns.append(
            TableColumn(
                name=name,
                data_type=data_type,
                column_type=column_type,
                nullable=nullable == "YES",
                numeric_precision=precision,
                numeric_scale=scale,
                datetime_precision=fsp,
                character_maximum_length=length,
                charset=charset,
                default=default,
                auto_increment="auto_increment" in (extra or "").lower(),
                labels=enum_labels(column_type) if data_type in ("enum", "set") else (),
            )
        )
    cursor.execute(_PRIMARY_KEY, (database, table))
    return TableSchema(database, table, tuple(columns), tuple(row[0] for row in cursor.fetchall()))
