"""Completing a table map's schema with what only the live table knows: column defaults,
AUTO_INCREMENT and the exact COLUMN_TYPE text (display widths such as ``int(11)``).

The binlog never carries defaults. The live table describes a table map's rows only while it still
has the same columns, so completion happens only then; after a later ALTER the table map's schema
stays as it is (defaults ``None``) until the server writes a table map of the new shape.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from mungmo_pipelines.core.mariadb.columns import TableColumn, TableSchema

_COLUMNS = """
SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT, EXTRA
FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION
"""


def _same_column(binlog: TableColumn, live: tuple[Any, ...]) -> bool:
    name, data_type, column_type, nullable = live[0], str(live[1]).lower(), str(live[2]).lower(), live[3] == "YES"
    if (binlog.name, binlog.nullable, binlog.unsigned) != (name, nullable, "unsigned" in column_type):
        return False
    if data_type == binlog.data_type:
        return True
    # Types the binlog stores as another: JSON is LONGTEXT, UUID and INET6 are BINARY(16), INET4 BINARY(4).
    stored_as = {"json": "longtext", "uuid": "binary", "inet6": "binary", "inet4": "binary"}
    return stored_as.get(data_type) == binlog.data_type


class SchemaCompleter:
    """Completes table-map schemas from ``information_schema.COLUMNS``, once per distinct schema."""

    def __init__(self, connection: Any) -> None:
        self._connection = connection
        self._completed: dict[TableSchema, TableSchema] = {}

    def complete(self, schema: TableSchema) -> TableSchema:
        """``schema`` with each column's ``default``, ``auto_increment`` and ``column_type`` from the
        live table, when the live table has exactly the table map's columns
        (names, order, nullability, signedness, storage types). Otherwise ``schema`` itself: the rows
        were written before a change of the table, and the live table no longer describes them.

        A completed schema is remembered; an uncompleted one is asked again next time (the live
        table may have been changed back).
        """
        done = self._completed.get(schema)
        if done is not None:
            return done
        with self._connection.cursor() as cursor:
            cursor.execute(_COLUMNS, (schema.database, schema.name))
            live = cursor.fetchall()
        if len(live) != len(schema.columns) or not all(
            _same_column(column, row) for column, row in zip(schema.columns, live, strict=True)
        ):
            return schema
        columns = tuple(
            replace(
                column,
                # JSON, UUID and INET columns keep the type their binlog values have (longtext, binary).
                column_type=str(row[2]) if str(row[1]).lower() == column.data_type else column.column_type,
                default=None if row[4] is None else str(row[4]),
                auto_increment="auto_increment" in str(row[5]).lower(),
            )
            for column, row in zip(schema.columns, live, strict=True)
        )
        completed = replace(schema, columns=columns)
        self._completed[schema] = completed
        return completed
