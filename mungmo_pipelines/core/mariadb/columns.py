"""A table's columns as ``information_schema.COLUMNS`` describes them.

Readers that learn a table's shape elsewhere (the binary log's table map with
``binlog_row_metadata=FULL``) fill the same fields, so encoders derive record schemas from one
description whatever read the rows.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TableColumn:
    """One column: ``data_type`` is ``DATA_TYPE`` lower-cased (``decimal``), ``column_type`` is
    ``COLUMN_TYPE`` as the server prints it (``decimal(65,30) unsigned``, ``enum('a','b')``)."""

    name: str
    data_type: str
    column_type: str
    nullable: bool
    numeric_precision: int | None = None
    numeric_scale: int | None = None
    datetime_precision: int | None = None
    character_maximum_length: int | None = None
    charset: str | None = None
    # COLUMN_DEFAULT as MariaDB 10.2+ prints it: a quoted literal ('abc'), a number, NULL,
    # or an expression (current_timestamp()); None when the column has no default.
    default: str | None = None
    auto_increment: bool = False
    # ENUM and SET labels in definition order; empty for every other type.
    labels: tuple[str, ...] = ()

    @property
    def unsigned(self) -> bool:
        return "unsigned" in self.column_type.lower()


@dataclass(frozen=True)
class TableSchema:
    """A table: its database, name, columns in ordinal order and primary-key column names."""

    database: str
    name: str
    columns: tuple[TableColumn, ...]
    primary_key: tuple[str, ...] = ()

    def column(self, name: str) -> TableColumn | None:
        for column in self.columns:
            if column.name == name:
                return column
        return None
