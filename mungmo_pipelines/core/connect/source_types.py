"""MariaDB columns to Kafka Connect fields: the source type table.

``SOURCE_TYPES`` says how a result-set column becomes a Connect field: what Confluent's JDBC
source (kafka-connect-jdbc 10.6, ``GenericDatabaseDialect.addFieldToSchema`` and
``columnConverterFor``) emits for it when it reads through MariaDB Connector/J 2.7, the driver
the team ran. Columns are matched on the protocol's column definition (type code, length,
flags, charset), which is exactly what that driver's ``ResultSetMetaData`` is computed from,
so ``query`` mode gets the same mapping as tables. ``docs/types.md`` shows the table.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Context, Decimal
from typing import Any

import orjson
from pymysql.constants import FIELD_TYPE

from mungmo_pipelines.core.connect.java_numbers import java_double_text, java_float_text, unscaled_bytes
from mungmo_pipelines.core.connect.schema import (
    DATE,
    DECIMAL,
    DECIMAL_PRECISION,
    EPOCH_DAY,
    MILLIS_PER_DAY,
    TIME,
    TIMESTAMP,
    UTC,
    epoch_millis,
)
from mungmo_pipelines.core.errors import UnsupportedColumnType
from mungmo_pipelines.core.mariadb.columns import ResultColumn

Encoder = Callable[[Any], Any]


@dataclass(frozen=True)
class FieldCodec:
    """How one column's values are written into a Connect JSON payload.

    ``encode`` returns a value ``orjson`` writes exactly as Jackson does (str, int, None) or an
    ``orjson.Fragment`` of pre-rendered JSON (floats in Java's ``toString`` form).
    """

    schema: dict[str, Any]
    encode: Encoder


# --- value encoders (Python value from PyMySQL -> JsonConverter value) ---------------------


def _same(value: Any) -> Any:
    return value


def _base64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def _bit_number(value: bytes) -> int:
    return int.from_bytes(value, "big")


# MariaDB decimals have at most 65 digits; the default context would round them to 28.
_EXACT = Context(prec=100)


def _decimal(scale: int) -> Encoder:
    def encode(value: Decimal) -> str:
        return _base64(unscaled_bytes(int(value.scaleb(scale, _EXACT))))

    return encode


def _unsigned_bigint(value: int) -> str:
    return _base64(unscaled_bytes(value))


def _float32_json(value: float) -> orjson.Fragment:
    return orjson.Fragment(java_float_text(value))


def _float64_json(value: float) -> orjson.Fragment:
    return orjson.Fragment(java_double_text(value))


def _zero_temporal(column: ResultColumn, value: Any) -> None:
    """Zero dates (``0000-00-00``) read as NULL, as Connector/J returns them."""
    if value not in ("0000-00-00", "0000-00-00 00:00:00") and not str(value).startswith("0000-00-00 00:00:00."):
        raise ValueError(f"column {column.name!r}: {value!r} is not a valid date")
    if not column.nullable:
        raise ValueError(
            f"column {column.name!r} is NOT NULL but holds the zero date {value!r}, which reads as NULL "
            "(the JDBC source failed on it the same way)"
        )


def _days(column: ResultColumn) -> Encoder:
    def encode(value: dt.date | str) -> int | None:
        if isinstance(value, str):
            _zero_temporal(column, value)
            return None
        return (value - EPOCH_DAY).days

    return encode


def _year_days(column: ResultColumn) -> Encoder:
    def encode(value: int) -> int | None:
        if value == 0:
            _zero_temporal(column, "0000-00-00")
            return None
        return (dt.date(value, 1, 1) - EPOCH_DAY).days

    return encode


def _time_millis(column: ResultColumn) -> Encoder:
    def encode(value: dt.timedelta) -> int:
        millis = value // dt.timedelta(milliseconds=1)
        if not 0 <= millis <= MILLIS_PER_DAY:
            raise ValueError(
                f"column {column.name!r}: TIME {value} is outside 00:00:00-24:00:00, which a Connect Time "
                "cannot hold (the JDBC source failed on it too)"
            )
        return millis

    return encode


def _timestamp(column: ResultColumn, zone: dt.tzinfo) -> Encoder:
    def encode(value: dt.datetime | str) -> int | None:
        if isinstance(value, str):
            _zero_temporal(column, value)
            return None
        return epoch_millis(value, zone)

    return encode


# --- the source table ----------------------------------------------------------------------

Build = Callable[[ResultColumn, dt.tzinfo], tuple[dict[str, Any], Encoder]]


@dataclass(frozen=True)
class SourceType:
    """One row of the source mapping: which columns it matches and what they become.

    ``jdbc`` is the ``java.sql.Types`` Connector/J 2.7 reports, which decided the JDBC source's
    schema; ``note`` says where this project deliberately differs from the JDBC source.
    """

    mariadb: str
    jdbc: str
    connect: str
    payload: str
    matches: Callable[[ResultColumn], bool]
    build: Build
    note: str = ""


def _types(*codes: int, unsigned: bool | None = None, binary: bool | None = None) -> Callable[[ResultColumn], bool]:
    def matches(column: ResultColumn) -> bool:
        return (
            column.type_code in codes
            and (unsigned is None or column.unsigned == unsigned)
            and (binary is None or column.binary == binary)
        )

    return matches


def _is_tinyint1(unsigned: bool) -> Callable[[ResultColumn], bool]:
    """Display width 1: Connector/J's ``tinyInt1isBit`` (on by default) reports ``BIT``."""
    return lambda c: c.type_code == FIELD_TYPE.TINY and c.length == 1 and c.unsigned == unsigned


def _is_bit1(column: ResultColumn) -> bool:
    return column.type_code == FIELD_TYPE.BIT and column.length == 1


def _plain(connect_type: str, encoder: Encoder = _same) -> Build:
    return lambda column, zone: ({"type": connect_type}, encoder)


def _logical(connect_type: str, name: str, encoder: Callable[[ResultColumn], Encoder]) -> Build:
    return lambda column, zone: ({"type": connect_type, "name": name, "version": 1}, encoder(column))


def _decimal_schema(scale: int, precision: int) -> dict[str, Any]:
    parameters = {"scale": str(scale), DECIMAL_PRECISION: str(precision)}
    return {"type": "bytes", "name": DECIMAL, "version": 1, "parameters": parameters}


_TEXT = (FIELD_TYPE.VAR_STRING, FIELD_TYPE.STRING, FIELD_TYPE.VARCHAR, FIELD_TYPE.JSON)
_BLOBS = (FIELD_TYPE.TINY_BLOB, FIELD_TYPE.MEDIUM_BLOB, FIELD_TYPE.LONG_BLOB, FIELD_TYPE.BLOB)

SOURCE_TYPES: tuple[SourceType, ...] = (
    SourceType(
        "TINYINT(1), BOOLEAN",
        "BIT",
        "int8",
        "the stored number (0 or 1 for booleans)",
        _is_tinyint1(unsigned=False),
        _plain("int8"),
    ),
    SourceType(
        "TINYINT(1) UNSIGNED",
        "BIT",
        "int16",
        "number",
        _is_tinyint1(unsigned=True),
        _plain("int16"),
        "JDBC source: int8, failing on values above 127",
    ),
    SourceType("TINYINT", "TINYINT", "int8", "number", _types(FIELD_TYPE.TINY, unsigned=False), _plain("int8")),
    SourceType(
        "TINYINT UNSIGNED", "TINYINT", "int16", "number", _types(FIELD_TYPE.TINY, unsigned=True), _plain("int16")
    ),
    SourceType("SMALLINT", "SMALLINT", "int16", "number", _types(FIELD_TYPE.SHORT, unsigned=False), _plain("int16")),
    SourceType(
        "SMALLINT UNSIGNED", "SMALLINT", "int32", "number", _types(FIELD_TYPE.SHORT, unsigned=True), _plain("int32")
    ),
    SourceType(
        "MEDIUMINT, INT",
        "INTEGER",
        "int32",
        "number",
        _types(FIELD_TYPE.INT24, FIELD_TYPE.LONG, unsigned=False),
        _plain("int32"),
    ),
    SourceType(
        "MEDIUMINT UNSIGNED, INT UNSIGNED",
        "INTEGER",
        "int64",
        "number",
        _types(FIELD_TYPE.INT24, FIELD_TYPE.LONG, unsigned=True),
        _plain("int64"),
    ),
    SourceType("BIGINT", "BIGINT", "int64", "number", _types(FIELD_TYPE.LONGLONG, unsigned=False), _plain("int64")),
    SourceType(
        "BIGINT UNSIGNED",
        "BIGINT",
        "Decimal, scale 0, precision 20",
        "base64 of the unscaled value",
        _types(FIELD_TYPE.LONGLONG, unsigned=True),
        lambda column, zone: (_decimal_schema(0, 20), _unsigned_bigint),
        "JDBC source: int64, failing above 9223372036854775807",
    ),
    SourceType(
        "DECIMAL(p,s), NUMERIC",
        "DECIMAL",
        "Decimal, scale s, connect.decimal.precision p",
        "base64 of the big-endian two's-complement unscaled value",
        _types(FIELD_TYPE.NEWDECIMAL, FIELD_TYPE.DECIMAL),
        lambda column, zone: (_decimal_schema(column.decimals, column.decimal_precision), _decimal(column.decimals)),
    ),
    SourceType(
        "FLOAT",
        "REAL",
        'float32 (JSON schema type "float")',
        "number as Java's Float.toString",
        _types(FIELD_TYPE.FLOAT),
        _plain("float", _float32_json),
    ),
    SourceType(
        "DOUBLE, REAL",
        "DOUBLE",
        'float64 (JSON schema type "double")',
        "number as Java's Double.toString",
        _types(FIELD_TYPE.DOUBLE),
        _plain("double", _float64_json),
    ),
    SourceType("BIT(1)", "BIT", "int8", "0 or 1", _is_bit1, _plain("int8", _bit_number)),
    SourceType(
        "BIT(n), n > 1",
        "VARBINARY",
        "bytes",
        "base64 of the big-endian bits",
        _types(FIELD_TYPE.BIT),
        _plain("bytes", _base64),
    ),
    SourceType(
        "CHAR, VARCHAR, TINYTEXT..LONGTEXT, JSON, ENUM, SET, UUID, INET4, INET6",
        "CHAR, VARCHAR, LONGVARCHAR",
        "string",
        "string (UTF-8, as stored)",
        _types(*_TEXT, *_BLOBS, binary=False),
        _plain("string"),
    ),
    SourceType(
        "BINARY, VARBINARY, TINYBLOB..LONGBLOB, GEOMETRY",
        "BINARY, VARBINARY, LONGVARBINARY",
        "bytes",
        "base64",
        _types(*_TEXT, *_BLOBS, FIELD_TYPE.GEOMETRY, binary=True),
        _plain("bytes", _base64),
    ),
    SourceType(
        "DATE",
        "DATE",
        "Date",
        "days since 1970-01-01; the zero date is null",
        _types(FIELD_TYPE.DATE),
        _logical("int32", DATE, _days),
    ),
    SourceType(
        "YEAR",
        "DATE (yearIsDateType)",
        "Date",
        "days since 1970-01-01 of 1 January; 0000 is null",
        _types(FIELD_TYPE.YEAR),
        _logical("int32", DATE, _year_days),
        "JDBC source: YEAR 0000 became a pre-Gregorian date",
    ),
    SourceType(
        "TIME(0-6)",
        "TIME",
        "Time",
        "milliseconds since midnight (00:00:00 to 24:00:00)",
        _types(FIELD_TYPE.TIME),
        _logical("int32", TIME, _time_millis),
        "JDBC source: shifted by db.timezone's 1970 UTC offset (same with the default UTC)",
    ),
    SourceType(
        "DATETIME(0-6)",
        "TIMESTAMP",
        "Timestamp",
        "milliseconds since the epoch of the wall-clock time in db.timezone; the zero date is null",
        _types(FIELD_TYPE.DATETIME),
        lambda column, zone: ({"type": "int64", "name": TIMESTAMP, "version": 1}, _timestamp(column, zone)),
    ),
    SourceType(
        "TIMESTAMP(0-6)",
        "TIMESTAMP",
        "Timestamp",
        "milliseconds since the epoch of the stored instant",
        _types(FIELD_TYPE.TIMESTAMP),
        lambda column, zone: ({"type": "int64", "name": TIMESTAMP, "version": 1}, _timestamp(column, UTC)),
        "JDBC source: the session's text read in db.timezone (the same when the server runs in db.timezone)",
    ),
)


def source_type(column: ResultColumn) -> SourceType:
    for candidate in SOURCE_TYPES:
        if candidate.matches(column):
            return candidate
    raise UnsupportedColumnType(f"column {column.name!r} has protocol type {column.type_code}, which has no mapping")


def field_codec(column: ResultColumn, zone: dt.tzinfo = UTC) -> FieldCodec:
    """The Connect field schema (in JsonConverter's key order) and encoder for a column."""
    parts, encoder = source_type(column).build(column, zone)
    schema: dict[str, Any] = {"type": parts["type"], "optional": column.nullable}
    for key in ("name", "version", "parameters"):
        if key in parts:
            schema[key] = parts[key]
    schema["field"] = column.name
    return FieldCodec(schema, encoder)


def source_types_markdown() -> str:
    """``SOURCE_TYPES`` as the table in ``docs/types.md``."""
    lines = [
        "| MariaDB column | JDBC type (Connector/J 2.7) | Connect schema | JSON payload "
        "| differs from the JDBC source |",
        "| --- | --- | --- | --- | --- |",
    ]
    for row in SOURCE_TYPES:
        lines.append(f"| {row.mariadb} | {row.jdbc} | {row.connect} | {row.payload} | {row.note or '—'} |")
    return "\n".join(lines)
