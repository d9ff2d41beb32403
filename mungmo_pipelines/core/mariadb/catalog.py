"""Catalog readers: what tables, columns and keys a database has, from ``information_schema``.

Each reader works on the connection's current database (``DATABASE()``), through a DB-API
:class:`~mungmo_pipelines.core.mariadb.session.Cursor`.
"""

from __future__ import annotations

from sqlalchemy import Engine

from mungmo_pipelines.core.mariadb.columns import ResultColumn, TableColumn, TableSchema
from mungmo_pipelines.core.mariadb.dialect import quote
from mungmo_pipelines.core.mariadb.session import Cursor, dbapi_cursor, fetch_one

# The columns' query, for the current database (DATABASE()) or a named one (%s).
_COLUMNS = (
    "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, NUMERIC_PRECISION, NUMERIC_SCALE, "
    "DATETIME_PRECISION, CHARACTER_MAXIMUM_LENGTH, CHARACTER_SET_NAME, COLUMN_DEFAULT, EXTRA, IS_GENERATED, "
    "COLLATION_NAME "
    "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = {schema} AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION"
)
_PRIMARY_KEY = (
    "SELECT COLUMN_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = {schema} "
    "AND TABLE_NAME = %s AND INDEX_NAME = 'PRIMARY' ORDER BY SEQ_IN_INDEX"
)


class TableNotFound(LookupError):
    """The table is not in ``information_schema`` (dropped, or not visible to the user)."""


def current_database(cursor: Cursor) -> str:
    cursor.execute("SELECT DATABASE()")
    return str(fetch_one(cursor)[0])


def list_tables(cursor: Cursor) -> list[str]:
    """Base tables of the connection's own database only (never same-named tables elsewhere)."""
    cursor.execute(
        "SELECT TABLE_NAME FROM information_schema.TABLES "
        "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME"
    )
    return [row[0] for row in cursor.fetchall()]


def table_engine(cursor: Cursor, table: str) -> str | None:
    """The table's storage engine, ``""`` for a view, ``None`` when there is no such table."""
    cursor.execute(
        "SELECT ENGINE FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s", (table,)
    )
    found = cursor.fetchone()
    return None if found is None else found[0] or ""


def table_columns(cursor: Cursor, table: str, database: str | None = None) -> tuple[TableColumn, ...]:
    """The table's columns in ordinal order (empty when there is no such table); ``database``
    defaults to the connection's own."""
    cursor.execute(_COLUMNS.format(schema="DATABASE()" if database is None else "%s"), _params(database, table))
    return tuple(
        TableColumn(
            name=row[0],
            data_type=row[1].lower(),
            column_type=row[2],
            nullable=row[3] == "YES",
            numeric_precision=row[4],
            numeric_scale=row[5],
            datetime_precision=row[6],
            character_maximum_length=row[7],
            charset=row[8],
            default=row[9],
            auto_increment="auto_increment" in (row[10] or "").lower(),
            generated=(row[11] or "NEVER") != "NEVER",
            labels=enum_labels(row[2]) if row[1].lower() in ("enum", "set") else (),
            collation=row[12],
        )
        for row in cursor.fetchall()
    )


def _params(database: str | None, table: str) -> tuple[str, ...]:
    return (table,) if database is None else (database, table)


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


def read_table_schema(cursor: Cursor, database: str, table: str) -> TableSchema:
    """The columns and primary key of ``database.table``; :class:`TableNotFound` when it is not there."""
    columns = table_columns(cursor, table, database)
    if not columns:
        raise TableNotFound(f"table {database}.{table} not found in information_schema")
    return TableSchema(database, table, columns, primary_key(cursor, table, database))


def table_indexes(
    cursor: Cursor, table: str, unique_only: bool = False, database: str | None = None
) -> dict[str, tuple[str, ...]]:
    """Index name -> its columns in order, the primary key (``PRIMARY``) first."""
    cursor.execute(
        "SELECT INDEX_NAME, COLUMN_NAME FROM information_schema.STATISTICS "
        f"WHERE TABLE_SCHEMA = {'DATABASE()' if database is None else '%s'} AND TABLE_NAME = %s"
        + (" AND NON_UNIQUE = 0" if unique_only else "")
        + " ORDER BY INDEX_NAME = 'PRIMARY' DESC, INDEX_NAME, SEQ_IN_INDEX",
        _params(database, table),
    )
    indexes: dict[str, tuple[str, ...]] = {}
    for index, column in cursor.fetchall():
        indexes[index] = (*indexes.get(index, ()), column)
    return indexes


def primary_key(cursor: Cursor, table: str, database: str | None = None) -> tuple[str, ...]:
    cursor.execute(_PRIMARY_KEY.format(schema="DATABASE()" if database is None else "%s"), _params(database, table))
    return tuple(row[0] for row in cursor.fetchall())


def auto_increment_column(cursor: Cursor, table: str) -> str | None:
    cursor.execute(
        "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() "
        "AND TABLE_NAME = %s AND EXTRA LIKE '%%auto_increment%%'",
        (table,),
    )
    found = cursor.fetchone()
    return None if found is None else found[0]


def result_columns(cursor: Cursor, from_sql: str) -> tuple[ResultColumn, ...]:
    """The columns of ``SELECT * FROM <from_sql>`` as the protocol describes them (what a JDBC driver saw).

    PyMySQL exposes each column's flags and charset only on its private ``_result.fields``
    (``cursor.description`` lacks both, and they decide UNSIGNED, NOT NULL and binary vs text):
    the one reach into PyMySQL's privates.
    """
    cursor.execute(f"SELECT * FROM {from_sql} LIMIT 0")
    fields = cursor._result.fields  # type: ignore[attr-defined]
    cursor.fetchall()
    return tuple(ResultColumn.from_field(f) for f in fields)


def describe_tables(
    engine: Engine, tables: list[str], database: str | None = None
) -> dict[str, tuple[TableSchema, int]]:
    """Each existing table's schema and exact row count (``COUNT(*)``), in ``database`` (default: the engine's).

    For the asset metadata Dagster shows (``dagster/column_schema``, ``dagster/row_count``); a table
    that does not exist (yet) is left out.
    """
    described = {}
    with engine.connect() as conn, dbapi_cursor(conn) as cursor:
        schema = database or current_database(cursor)
        for table in tables:
            columns = table_columns(cursor, table, schema)
            if not columns:
                continue
            cursor.execute(f"SELECT COUNT(*) FROM {quote(schema)}.{quote(table)}")
            rows = int(fetch_one(cursor)[0])
            described[table] = (TableSchema(schema, table, columns, primary_key(cursor, table, schema)), rows)
    return described
