"""MariaDB column types to Kafka Connect schemas and back: the project's type-mapping tables.

``SOURCE_TYPES`` says how a result-set column becomes a Connect field: what Confluent's JDBC
source (kafka-connect-jdbc 10.6, ``GenericDatabaseDialect.addFieldToSchema`` and
``columnConverterFor``) emits for it when it reads through MariaDB Connector/J 2.7, the driver
the team ran. Columns are matched on the protocol's column definition (type code, length,
flags, charset), which is exactly what that driver's ``ResultSetMetaData`` is computed from,
so ``query`` mode gets the same mapping as tables. ``SINK_TYPES`` says how a Connect field
becomes a MariaDB column when the sink creates or evolves a table. The README shows both.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import math
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Context, Decimal
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from pymysql.constants import FIELD_TYPE, FLAG

DECIMAL = "org.apache.kafka.connect.data.Decimal"
TIMESTAMP = "org.apache.kafka.connect.data.Timestamp"
DATE = "org.apache.kafka.connect.data.Date"
TIME = "org.apache.kafka.connect.data.Time"
DECIMAL_PRECISION = "connect.decimal.precision"

EPOCH_DAY = dt.date(1970, 1, 1)
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
NAIVE_EPOCH = dt.datetime(1970, 1, 1)
UTC = ZoneInfo("UTC")
MILLIS_PER_DAY = 86_400_000
BINARY_CHARSET = 63


class UnsupportedColumnType(ValueError):
    """A column whose type has no Connect mapping."""


@dataclass(frozen=True)
class Column:
    """A column as ``information_schema.COLUMNS`` describes it (the sink's target tables)."""

    name: str
    data_type: str
    column_type: str
    nullable: bool
    numeric_precision: int | None = None
    numeric_scale: int | None = None

    @property
    def unsigned(self) -> bool:
        return "unsigned" in self.column_type.lower()


@dataclass(frozen=True)
class SourceColumn:
    """A result-set column as the server's protocol describes it (what the JDBC driver saw)."""

    name: str
    type_code: int
    length: int
    decimals: int
    flags: int
    charset: int

    @classmethod
    def from_field(cls, field: Any) -> SourceColumn:
        """From a PyMySQL ``FieldDescriptorPacket`` (``cursor._result.fields``)."""
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
    def from_information_schema(cls, column: Column) -> SourceColumn:
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
        return cls(column.name, type_code, length, decimals, flags, _UTF8MB4 if text else BINARY_CHARSET)


_UTF8MB4 = 45
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


def unscaled_bytes(unscaled: int) -> bytes:
    """Java's ``BigInteger.toByteArray()``: minimal big-endian two's complement."""
    length = ((unscaled if unscaled >= 0 else ~unscaled).bit_length() + 8) // 8
    return unscaled.to_bytes(length, "big", signed=True)


# MariaDB decimals have at most 65 digits; the default context would round them to 28.
_EXACT = Context(prec=100)


def _decimal(scale: int) -> Encoder:
    def encode(value: Decimal) -> str:
        return _base64(unscaled_bytes(int(value.scaleb(scale, _EXACT))))

    return encode


def _unsigned_bigint(value: int) -> str:
    return _base64(unscaled_bytes(value))


def java_number_text(digits: str, exponent: int) -> str:
    """Java's ``Double.toString`` layout for the decimal ``0.<digits> * 10**exponent``.

    Plain notation for 1e-3 <= |x| < 1e7, else ``d.dddE<n>``; always a digit after the point.
    """
    scientific = exponent - 1
    if -3 <= scientific < 7:
        if exponent <= 0:
            return "0." + "0" * -exponent + digits
        if exponent >= len(digits):
            return digits + "0" * (exponent - len(digits)) + ".0"
        return digits[:exponent] + "." + digits[exponent:]
    return f"{digits[0]}.{digits[1:] or '0'}E{scientific}"


def _shortest_digits(text: str) -> tuple[str, int]:
    """``1.25e-05`` -> ("125", -4): significant digits and the exponent of 0.<digits>."""
    mantissa, _, exp = text.partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = (whole + fraction).lstrip("0")
    exponent = int(exp or 0) + len(whole) - (len(whole + fraction) - len(digits))
    digits = digits.rstrip("0")
    return digits, exponent


def _java_digits(value: float, shortest: str) -> tuple[str, int]:
    """JDK 19+ digit choice: the shortest that round-trips, but never fewer than two (4.9E-324)."""
    digits, exponent = _shortest_digits(shortest)
    if len(digits) == 1:
        digits, exponent = _shortest_digits(f"{value:.1e}")
    return digits, exponent


def java_double_text(value: float) -> str:
    """``Double.toString`` (JDK 19+, shortest round-trip digits), as Jackson writes a float64."""
    if value == 0:
        return "-0.0" if str(value).startswith("-") else "0.0"
    sign = "-" if value < 0 else ""
    return sign + java_number_text(*_java_digits(abs(value), repr(abs(value))))


def _float32(value: float) -> float:
    """The nearest float32; values beyond its range become infinite, as in Java's ``(float)`` cast."""
    try:
        return struct.unpack("<f", struct.pack("<f", value))[0]
    except OverflowError:
        return float("inf") if value > 0 else float("-inf")


def java_float_text(value: float) -> str:
    """``Float.toString`` of the float32 Connector/J's ``getFloat`` makes of the value."""
    single = _float32(value)
    if single == 0:
        return "-0.0" if str(single).startswith("-") else "0.0"
    for precision in range(1, 10):
        text = f"{abs(single):.{precision - 1}e}"
        if _float32(float(text)) == abs(single):
            break
    sign = "-" if single < 0 else ""
    return sign + java_number_text(*_java_digits(abs(single), text))


def _float32_json(value: float) -> orjson.Fragment:
    return orjson.Fragment(java_float_text(value))


def _float64_json(value: float) -> orjson.Fragment:
    return orjson.Fragment(java_double_text(value))


def _zero_temporal(column: SourceColumn, value: Any) -> None:
    """Zero dates (``0000-00-00``) read as NULL, as Connector/J returns them."""
    if value not in ("0000-00-00", "0000-00-00 00:00:00") and not str(value).startswith("0000-00-00 00:00:00."):
        raise ValueError(f"column {column.name!r}: {value!r} is not a valid date")
    if not column.nullable:
        raise ValueError(
            f"column {column.name!r} is NOT NULL but holds the zero date {value!r}, which reads as NULL "
            "(the JDBC source failed on it the same way)"
        )


def _days(column: SourceColumn) -> Encoder:
    def encode(value: dt.date | str) -> int | None:
        if isinstance(value, str):
            return _zero_temporal(column, value)
        return (value - EPOCH_DAY).days

    return encode


def _year_days(column: SourceColumn) -> Encoder:
    def encode(value: int) -> int | None:
        if value == 0:
            return _zero_temporal(column, "0000-00-00")
        return (dt.date(value, 1, 1) - EPOCH_DAY).days

    return encode


def _time_millis(column: SourceColumn) -> Encoder:
    def encode(value: dt.timedelta) -> int:
        millis = value // dt.timedelta(milliseconds=1)
        if not 0 <= millis <= MILLIS_PER_DAY:
            raise ValueError(
                f"column {column.name!r}: TIME {value} is outside 00:00:00-24:00:00, which a Connect Time "
                "cannot hold (the JDBC source failed on it too)"
            )
        return millis

    return encode


def epoch_millis(value: dt.datetime, zone: dt.tzinfo) -> int:
    """Milliseconds since the epoch (floored, as ``java.sql.Timestamp.getTime``) of a wall-clock time."""
    if zone is UTC and value.tzinfo is None:
        return (value - NAIVE_EPOCH) // dt.timedelta(milliseconds=1)
    aware = value if value.tzinfo else value.replace(tzinfo=zone)
    return (aware - EPOCH) // dt.timedelta(milliseconds=1)


def _timestamp(column: SourceColumn, zone: dt.tzinfo) -> Encoder:
    def encode(value: dt.datetime | str) -> int | None:
        if isinstance(value, str):
            return _zero_temporal(column, value)
        return epoch_millis(value, zone)

    return encode


# --- the source table ----------------------------------------------------------------------

Build = Callable[[SourceColumn, dt.tzinfo], tuple[dict[str, Any], Encoder]]


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
    matches: Callable[[SourceColumn], bool]
    build: Build
    note: str = ""


def _types(*codes: int, unsigned: bool | None = None, binary: bool | None = None) -> Callable[[SourceColumn], bool]:
    def matches(column: SourceColumn) -> bool:
        return (
            column.type_code in codes
            and (unsigned is None or column.unsigned == unsigned)
            and (binary is None or column.binary == binary)
        )

    return matches


def _is_tinyint1(unsigned: bool) -> Callable[[SourceColumn], bool]:
    """Display width 1: Connector/J's ``tinyInt1isBit`` (on by default) reports ``BIT``."""
    return lambda c: c.type_code == FIELD_TYPE.TINY and c.length == 1 and c.unsigned == unsigned


def _is_bit1(column: SourceColumn) -> bool:
    return column.type_code == FIELD_TYPE.BIT and column.length == 1


def _plain(connect_type: str, encoder: Encoder = _same) -> Build:
    return lambda column, zone: ({"type": connect_type}, encoder)


def _logical(connect_type: str, name: str, encoder: Callable[[SourceColumn], Encoder]) -> Build:
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


def source_type(column: SourceColumn) -> SourceType:
    for candidate in SOURCE_TYPES:
        if candidate.matches(column):
            return candidate
    raise UnsupportedColumnType(f"column {column.name!r} has protocol type {column.type_code}, which has no mapping")


def field_codec(column: SourceColumn, zone: dt.tzinfo = UTC) -> FieldCodec:
    """The Connect field schema (in JsonConverter's key order) and encoder for a column."""
    parts, encoder = source_type(column).build(column, zone)
    schema: dict[str, Any] = {"type": parts["type"], "optional": column.nullable}
    for key in ("name", "version", "parameters"):
        if key in parts:
            schema[key] = parts[key]
    schema["field"] = column.name
    return FieldCodec(schema, encoder)


def source_types_markdown() -> str:
    """``SOURCE_TYPES`` as the README's table."""
    lines = [
        "| MariaDB column | JDBC type (Connector/J 2.7) | Connect schema | JSON payload "
        "| differs from the JDBC source |",
        "| --- | --- | --- | --- | --- |",
    ]
    for row in SOURCE_TYPES:
        lines.append(f"| {row.mariadb} | {row.jdbc} | {row.connect} | {row.payload} | {row.note or '—'} |")
    return "\n".join(lines)


# --- the sink table ------------------------------------------------------------------------
#
# Values arrive as JsonConverter payload values (JSON numbers, strings, booleans). Each row of
# SINK_TYPES checks a value against its Connect type the way JsonConverter would (an int32
# field must hold a JSON integer in range, never 3.7 or "3"), so a wrong value is rejected by
# name instead of coerced by MariaDB, and writes it straight as a MariaDB literal. Going from
# the payload to the literal in one step, with the type known from the schema, costs a
# fraction of binding through PyMySQL: no Decimal or datetime objects in between, no
# per-value type dispatch in the driver.

Literal = Callable[[Any], str]
NULL = "NULL"

# What mysql_real_escape_string escapes; the session's sql_mode never has NO_BACKSLASH_ESCAPES.
_ESCAPES = str.maketrans({"\0": "\\0", "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\x1a": "\\Z", "'": "\\'", '"': '\\"'})
# str.translate looks up every character; most text has nothing to escape, which a regex finds in C.
_NEEDS_ESCAPE = re.compile(r"""[\x00\\\n\r\x1a'"]""").search


def string_literal(value: str) -> str:
    """A quoted MariaDB string literal: safe for any text on a utf8mb4 connection."""
    return "'" + (value if _NEEDS_ESCAPE(value) is None else value.translate(_ESCAPES)) + "'"


class ConnectValueError(ValueError):
    """A payload value that its field's Connect type cannot hold."""


def _integer(connect_type: str, bits: int) -> Callable[[dict[str, Any], dt.tzinfo], Literal]:
    low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1

    def build(schema: dict[str, Any], zone: dt.tzinfo) -> Literal:
        def literal(value: Any) -> str:
            if type(value) is not int or not low <= value <= high:
                raise ConnectValueError(
                    f"expected an {connect_type} (a JSON integer from {low} to {high}), got {value!r}"
                )
            return str(value)

        return literal

    return build


def _floating(connect_type: str) -> Callable[[dict[str, Any], dt.tzinfo], Literal]:
    def build(schema: dict[str, Any], zone: dt.tzinfo) -> Literal:
        def literal(value: Any) -> str:
            number = float(value) if type(value) in (int, float) else math.nan
            if not math.isfinite(number):  # 'inf' or 'nan' in a statement would be a column name
                raise ConnectValueError(f"expected a {connect_type} (a finite JSON number), got {value!r}")
            return repr(number)

        return literal

    return build


def _boolean(schema: dict[str, Any], zone: dt.tzinfo) -> Literal:
    def literal(value: Any) -> str:
        if type(value) is not bool:
            raise ConnectValueError(f"expected a boolean (true or false), got {value!r}")
        return "1" if value else "0"

    return literal


def _string(schema: dict[str, Any], zone: dt.tzinfo) -> Literal:
    def literal(value: Any) -> str:
        if type(value) is not str:
            raise ConnectValueError(f"expected a string, got {value!r}")
        return string_literal(value)

    return literal


def _base64_bytes(value: Any) -> bytes:
    if type(value) is not str:
        raise ConnectValueError(f"expected bytes (a base64 JSON string), got {value!r}")
    try:
        return binascii.a2b_base64(value, strict_mode=True)
    except (binascii.Error, ValueError):
        raise ConnectValueError(f"expected bytes (a base64 JSON string), got {value!r}") from None


def _bytes(schema: dict[str, Any], zone: dt.tzinfo) -> Literal:
    return lambda value: "X'" + _base64_bytes(value).hex() + "'"


def decimal_scale(schema: dict[str, Any]) -> int:
    """The ``scale`` parameter of a Connect Decimal schema (a string, as Connect writes it)."""
    try:
        return int((schema.get("parameters") or {})["scale"])
    except (KeyError, TypeError, ValueError):
        raise ConnectValueError('a Decimal schema needs an integer "scale" parameter') from None


def decimal_literal(value: Any, scale: int) -> str:
    """An exact decimal literal (never an exponent, which MariaDB would read as a double) from
    base64 unscaled bytes (``decimal.format=BASE64``) or a JSON number (``NUMERIC``)."""
    if type(value) is str:
        unscaled = int.from_bytes(_base64_bytes(value), "big", signed=True)
        if scale <= 0:
            return str(unscaled * 10**-scale)
        digits = str(abs(unscaled)).rjust(scale + 1, "0")
        return ("-" if unscaled < 0 else "") + digits[:-scale] + "." + digits[-scale:]
    if type(value) is int:
        return str(value)
    if type(value) in (float, Decimal):
        exact = Decimal(str(value)) if type(value) is float else value
        if exact.is_finite():
            return format(exact, "f")
    raise ConnectValueError(f"expected a Decimal (base64 unscaled bytes or a JSON number), got {value!r}")


def _decimal_value(schema: dict[str, Any], zone: dt.tzinfo) -> Literal:
    scale = decimal_scale(schema)
    return lambda value: decimal_literal(value, scale)


def _not_epoch_integer(value: Any, what: str, low: int, high: int) -> ConnectValueError:
    return ConnectValueError(f"expected a {what} (a JSON integer from {low} to {high}), got {value!r}")


def _epoch_integer(value: Any, what: str, low: int, high: int) -> int:
    if type(value) is not int or not low <= value <= high:
        raise _not_epoch_integer(value, what, low, high)
    return value


# The JSON integers a Date/Timestamp may carry: the range Python's date/datetime can represent.
_MIN_DAY, _MAX_DAY = (dt.date.min - EPOCH_DAY).days, (dt.date.max - EPOCH_DAY).days
_MIN_MS, _MAX_MS = _MIN_DAY * 86_400_000, _MAX_DAY * 86_400_000


def _date(schema: dict[str, Any], zone: dt.tzinfo) -> Literal:
    def literal(value: Any) -> str:
        days = _epoch_integer(value, "Date in days", _MIN_DAY, _MAX_DAY)
        return "'" + (EPOCH_DAY + dt.timedelta(days=days)).isoformat() + "'"

    return literal


def _time(schema: dict[str, Any], zone: dt.tzinfo) -> Literal:
    def literal(value: Any) -> str:
        millis = _epoch_integer(value, "Time in ms since midnight", 0, 86_399_999)
        seconds, millis = divmod(millis, 1000)
        return f"'{seconds // 3600:02}:{seconds // 60 % 60:02}:{seconds % 60:02}.{millis:03}'"

    return literal


def _timestamp_value(schema: dict[str, Any], zone: dt.tzinfo) -> Literal:
    """A Timestamp as the wall time in ``db.timezone``, as a DATETIME(3) literal."""
    if zone.utcoffset(None) == dt.timedelta(0) and str(zone) in ("UTC", "Etc/UTC"):

        def in_utc(value: Any) -> str:
            if type(value) is not int or not _MIN_MS <= value <= _MAX_MS:  # _epoch_integer, inlined: per value
                raise _not_epoch_integer(value, "Timestamp in epoch ms", _MIN_MS, _MAX_MS)
            # timedelta(days, seconds, microseconds, milliseconds): positional arguments parse faster.
            return "'" + (NAIVE_EPOCH + dt.timedelta(0, 0, 0, value)).isoformat(" ", "milliseconds") + "'"

        return in_utc

    def in_zone(value: Any) -> str:
        millis = _epoch_integer(value, "Timestamp in epoch ms", _MIN_MS, _MAX_MS)
        wall = (EPOCH + dt.timedelta(milliseconds=millis)).astimezone(zone).replace(tzinfo=None)
        return "'" + wall.isoformat(" ", "milliseconds") + "'"

    return in_zone


def _decimal_column(schema: dict[str, Any]) -> str:
    scale = decimal_scale(schema)
    if not 0 <= scale <= 38:
        raise UnsupportedColumnType(f"field {schema.get('field')!r}: Decimal scale {scale} is outside MariaDB's 0-38")
    precision = (schema.get("parameters") or {}).get("connect.decimal.precision")
    digits = int(precision) if str(precision or "").isdigit() else 65
    return f"DECIMAL({min(65, max(digits, scale, 1))},{scale})"


def _fixed(column_type: str) -> Callable[[dict[str, Any]], str]:
    return lambda schema: column_type


@dataclass(frozen=True)
class SinkType:
    """One row of the sink mapping: a Connect type, the MariaDB column created for it, the
    Connect types a column of it stores without loss, and how a payload value is checked and
    written as a literal."""

    connect: str
    column: Callable[[dict[str, Any]], str]
    key_column: Callable[[dict[str, Any]], str]
    holds: frozenset[str]
    literal: Callable[[dict[str, Any], dt.tzinfo], Literal]


_INTEGERS = ("int8", "int16", "int32", "int64")


def _sink_type(
    connect: str,
    column: str | Callable[[dict[str, Any]], str],
    literal: Callable[[dict[str, Any], dt.tzinfo], Literal],
    holds: tuple[str, ...] = (),
    key_column: str | None = None,
) -> SinkType:
    as_ddl = column if callable(column) else _fixed(column)
    key_ddl = _fixed(key_column) if key_column else as_ddl
    return SinkType(connect, as_ddl, key_ddl, frozenset((connect, *holds)), literal)


SINK_TYPES: dict[str, SinkType] = {
    t.connect: t
    for t in (
        _sink_type("boolean", "TINYINT(1)", _boolean),
        _sink_type("int8", "TINYINT", _integer("int8", 8), ("boolean",)),
        _sink_type("int16", "SMALLINT", _integer("int16", 16), ("boolean", "int8")),
        _sink_type("int32", "INT", _integer("int32", 32), ("boolean", "int8", "int16")),
        _sink_type("int64", "BIGINT", _integer("int64", 64), ("boolean", "int8", "int16", "int32")),
        _sink_type("float", "FLOAT", _floating("float (float32)")),
        _sink_type("double", "DOUBLE", _floating("double (float64)"), ("float", "int8", "int16", "int32")),
        _sink_type("string", "LONGTEXT", _string, key_column="VARCHAR(255) COLLATE utf8mb4_nopad_bin"),
        _sink_type("bytes", "LONGBLOB", _bytes, key_column="VARBINARY(255)"),
        _sink_type(DECIMAL, _decimal_column, _decimal_value, ("boolean", *_INTEGERS)),
        _sink_type(DATE, "DATE", _date),
        _sink_type(TIME, "TIME(3)", _time),
        _sink_type(TIMESTAMP, "DATETIME(3)", _timestamp_value),
    )
}


# JsonConverter spells FLOAT32/FLOAT64 "float"/"double"; the Connect enum names are read as the same types.
_TYPE_ALIASES = {"float32": "float", "float64": "double"}


def connect_kind(schema: dict[str, Any]) -> str:
    """The Connect type a field schema means: its logical name when it has a known one, else its type."""
    name = schema.get("name")
    if name in SINK_TYPES:
        return name
    kind = str(schema.get("type"))
    return _TYPE_ALIASES.get(kind, kind)


def describe_connect(schema: dict[str, Any]) -> str:
    kind = connect_kind(schema)
    return f"Decimal(scale={schema.get('parameters', {}).get('scale')})" if kind == DECIMAL else kind.rsplit(".", 1)[-1]


def sink_type(schema: dict[str, Any]) -> SinkType:
    """The sink mapping row for a Connect field schema (logical name first, then type)."""
    found = SINK_TYPES.get(connect_kind(schema))
    if found is None:
        named = f" ({schema['name']})" if schema.get("name") else ""
        raise UnsupportedColumnType(
            f"field {schema.get('field')!r} has Connect type {schema.get('type')!r}{named}, "
            "which has no MariaDB column type (structs, arrays and maps cannot be written to a column)"
        )
    return found


def value_literal(schema: dict[str, Any], zone: dt.tzinfo) -> Literal:
    """Checks a payload value against the field's Connect type and returns it as a MariaDB literal."""
    return sink_type(schema).literal(schema, zone)


def column_ddl(schema: dict[str, Any], is_key: bool) -> str:
    """The MariaDB column type the sink creates for a Connect field (keys get an indexable type)."""
    found = sink_type(schema)
    return (found.key_column if is_key else found.column)(schema)


def column_holds(schema: dict[str, Any], column: Column) -> bool:
    """Whether an existing column stores every value of a Connect field without loss.

    The column is read back through ``SOURCE_TYPES`` (what Connect type it would be as a
    source), then compared with the field: the same type, or one it widens (int32 into a
    BIGINT column, Decimal scale 2 into DECIMAL(10,4)). Lengths and ranges within a type
    (VARCHAR(20), TIMESTAMP's 2038) are checked per value by MariaDB's strict mode instead.
    """
    stored = field_codec(SourceColumn.from_information_schema(column)).schema
    stored_kind, kind = connect_kind(stored), connect_kind(schema)
    if kind not in sink_type(stored).holds:
        return False
    if stored_kind == DECIMAL and kind == DECIMAL:
        return decimal_scale(schema) <= decimal_scale(stored)
    return True
