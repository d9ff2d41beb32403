"""Column descriptions: a table's (``information_schema.COLUMNS``) and a result set's (the protocol's).

Readers that learn a table's shape elsewhere (the binary log's table map with
``binlog_row_metadata=FULL``) fill the same fields, so encoders derive record schemas from one
description whatever read the rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pymysql.constants import FIELD_TYPE, FLAG


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
    collation: str | None = None
    # COLUMN_DEFAULT as MariaDB 10.2+ prints it: a quoted literal ('abc'), a number, NULL,
    # or an expression (current_timestamp()); None when the column has no default.
    default: str | None = None
    auto_increment: bool = False
    generated: bool = False
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


BINARY_CHARSET = 63
UTF8MB4_CHARSET = 45


@dataclass(frozen=True)
class ResultColumn:
    """A result-set column as the server's protocol describes it (what a JDBC driver sees)."""

    name: str
    type_code: int
    length: int
    decimals: int
    flags: int
    charset: int

    @classmethod
    def from_field(cls, field: Any) -> ResultColumn:
        """From a PyMySQL ``FieldDescriptorPacket`` (``cursor.description`` lacks flags and charset)."""
        return cls(field.name, field.type_code, field.length, field.scale, field.flags, field.charsetnr)

    @property
    def unsigned(self) -> bool:
        return bool(self.flags & FLAG.UNSIGNED)

    @property
    def nullable(self) -> bool:
        return not self.flags & FLAG.NOT_NULL

    @property
    def binary(self) -> bool:
        return self.charset == BINARY_CHARSET

    @property
    def auto_increment(self) -> bool:
        return bool(self.flags & FLAG.AUTO_INCREMENT)

    @property
    def decimal_precision(self) -> int:
        """Connector/J's ``getPrecision``: the length minus the sign and the point."""
        return self.length - (0 if self.unsigned else 1) - (1 if self.decimals > 0 else 0)

    @classmethod
    def from_table_column(cls, column: TableColumn) -> ResultColumn:
        """The column definition the server would send for a table column ``information_schema`` describes."""
        data_type = column.data_type.lower()
        type_code, text = _INFORMATION_SCHEMA_TYPES.get(data_type, (FIELD_TYPE.STRING, True))
        flags = (0 if column.nullable else FLAG.NOT_NULL) | (FLAG.UNSIGNED if column.unsigned else 0)
        decimals = column.numeric_scale or 0
        if type_code == FIELD_TYPE.NEWDECIMAL:
            length = (column.numeric_precision or 10) + (1 if decimals else 0) + (0 if column.unsigned else 1)
        elif type_code == FIELD_TYPE.BIT:
            length = column.numeric_precision or 1
        else:
            width = column.column_type.partition("(")[2].partition(")")[0]
            length = int(width) if width.isdigit() else 0
        return cls(column.name, type_code, length, decimals, flags, UTF8MB4_CHARSET if text else BINARY_CHARSET)


# information_schema DATA_TYPE -> (protocol type, whether it is text), as the server sends such columns.
_INFORMATION_SCHEMA_TYPES = {
    "tinyint": (FIELD_TYPE.TINY, False),
    "smallint": (FIELD_TYPE.SHORT, False),
    "mediumint": (FIELD_TYPE.INT24, False),
    "int": (FIELD_TYPE.LONG, False),
    "bigint": (FIELD_TYPE.LONGLONG, False),
    "decimal": (FIELD_TYPE.NEWDECIMAL, False),
    "float": (FIELD_TYPE.FLOAT, False),
    "double": (FIELD_TYPE.DOUBLE, False),
    "bit": (FIELD_TYPE.BIT, False),
    "date": (FIELD_TYPE.DATE, False),
    "time": (FIELD_TYPE.TIME, False),
    "datetime": (FIELD_TYPE.DATETIME, False),
    "timestamp": (FIELD_TYPE.TIMESTAMP, False),
    "year": (FIELD_TYPE.YEAR, False),
    "char": (FIELD_TYPE.STRING, True),
    "varchar": (FIELD_TYPE.VAR_STRING, True),
    "tinytext": (FIELD_TYPE.BLOB, True),
    "text": (FIELD_TYPE.BLOB, True),
    "mediumtext": (FIELD_TYPE.BLOB, True),
    "longtext": (FIELD_TYPE.BLOB, True),
    "json": (FIELD_TYPE.BLOB, True),
    "binary": (FIELD_TYPE.STRING, False),
    "varbinary": (FIELD_TYPE.VAR_STRING, False),
    "tinyblob": (FIELD_TYPE.BLOB, False),
    "blob": (FIELD_TYPE.BLOB, False),
    "mediumblob": (FIELD_TYPE.BLOB, False),
    "longblob": (FIELD_TYPE.BLOB, False),
    **dict.fromkeys(
        ("geometry", "point", "linestring", "polygon", "multipoint", "multilinestring", "multipolygon",
         "geometrycollection"),
        (FIELD_TYPE.GEOMETRY, False),
    ),
}  # fmt: skip
