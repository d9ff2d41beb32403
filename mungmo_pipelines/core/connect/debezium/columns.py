"""MariaDB columns to the Connect field schemas and payload values Debezium's MariaDB connector
(3.5) writes, for every value-handling mode. Verified byte for byte against records the real
connector produced (tests/fixtures/debezium; the README there lists every rule and quirk).

Each column gets two encoders, because Debezium reads a row two ways and the two disagree on a
few values: ``snapshot`` for rows read with ``SELECT`` (op ``r``, incremental snapshots: the
JDBC driver) and ``binlog`` for rows from the binary log (``c``/``u``/``d``):

- TIMESTAMP(n): the snapshot writes the fewest fraction digits (``…00.5Z``), the binlog exactly
  n digits (``…00.500000Z``);
- the zero TIMESTAMP of a nullable column: null from the snapshot, ``1970-01-01T00:00:00Z`` from
  the binlog;
- DATE/DATETIME in year 0000 with a real month and day (``0000-06-15``): the snapshot's driver
  reads year 1 BC and Debezium's two-digit-year adjuster turns it into 2000 (DATE) or 2001
  (DATETIME); the binlog treats it as an invalid date.

Encoders receive non-null values in the form of :mod:`mungmo_pipelines.core.mariadb.values`.
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

import orjson

from mungmo_pipelines.core.connect.debezium.options import DebeziumOptions
from mungmo_pipelines.core.connect.java_numbers import java_double_text, java_float_text, unscaled_bytes
from mungmo_pipelines.core.mariadb.columns import TableColumn
from mungmo_pipelines.core.mariadb.values import InvalidTemporal

Encoder = Callable[[Any], Any]

DECIMAL = "org.apache.kafka.connect.data.Decimal"
EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()
NAIVE_EPOCH = dt.datetime(1970, 1, 1)
ONE_MICROSECOND = dt.timedelta(microseconds=1)
MICROS_PER_DAY = 86_400_000_000
# MariaDB decimals have at most 65 digits; the default context would round them to 28.
_EXACT = Context(prec=100)
_INT64 = 1 << 64
_INT64_MAX = (1 << 63) - 1
_INVALID_TEMPORAL = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?: (\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?)?$")
_NUMBER = re.compile(r"^-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")
_GEOMETRIES = frozenset(
    ("geometry", "linestring", "polygon", "multipoint", "multilinestring", "multipolygon", "geometrycollection")
)


class UnsupportedColumn(ValueError):
    """A column Debezium's record format has no rule for here."""


class ColumnValueError(ValueError):
    """A value its column's Debezium type cannot carry (the message names the column)."""


@dataclass(frozen=True)
class ColumnCodec:
    """One column: its field schema (JsonConverter key order, with ``field``), its two
    encoders, and ``header`` (payload value, row value) -> the key-header text Kafka Connect's
    ``Values`` writes for it in ``__debezium.newkey``/``oldkey``."""

    schema: dict[str, Any]
    snapshot: Encoder
    binlog: Encoder
    header: Callable[[Any, Any], str]


@dataclass(frozen=True)
class _Kind:
    """What a column becomes before nullability, default and name are added."""

    schema: dict[str, Any]
    snapshot: Encoder
    binlog: Encoder | None = None
    header: Callable[[Any, Any], str] | None = None


# --- Kafka Connect's Values.append, for the key headers of a primary-key change ----------------


def _header_number(payload: Any, value: Any) -> str:
    return str(payload)


def _header_bool(payload: Any, value: Any) -> str:
    return "true" if payload else "false"


def _header_string(payload: Any, value: Any) -> str:
    return '"' + str(payload).replace("\\", "\\\\").replace('"', '\\"') + '"'


def java_bigdecimal_text(value: Decimal) -> str:
    """``BigDecimal.toString``: plain unless the exponent is below -6 or the scale negative."""
    sign, digits, exponent = value.as_tuple()
    coefficient = "".join(map(str, digits)).lstrip("0") or "0"
    scale = -int(exponent)
    adjusted = -scale + len(coefficient) - 1
    prefix = "-" if sign and coefficient != "0" else ""
    if scale >= 0 and adjusted >= -6:
        if scale == 0:
            return prefix + coefficient
        padded = coefficient.rjust(scale + 1, "0")
        return prefix + padded[:-scale] + "." + padded[-scale:]
    mantissa = coefficient[0] + ("." + coefficient[1:] if len(coefficient) > 1 else "")
    return f"{prefix}{mantissa}E{'+' if adjusted > 0 else ''}{adjusted}"


def _header_decimal(payload: Any, value: Any) -> str:
    return java_bigdecimal_text(value if isinstance(value, Decimal) else Decimal(value))


def _header_text(payload: Any, value: Any) -> str:
    """A pre-rendered JSON number (float, double) is Java's text already."""
    return bytes(orjson.dumps(payload)).decode()


# --- integers ------------------------------------------------------------------------------------


def same(value: Any) -> Any:
    """The payload is the row value itself (integers, text): encoders compare against this."""
    return value


def _integer(connect_type: str) -> _Kind:
    return _Kind({"type": connect_type}, same, header=_header_number)


def _unsigned_bigint(column: TableColumn, options: DebeziumOptions) -> _Kind:
    if options.bigint_unsigned_handling_mode == "precise":
        return _Kind(_decimal_schema(0, 20), _base64_unscaled(0), header=_header_decimal)
    wrap = options.unsigned_overflow == "wrap"

    def encode(value: int) -> int:
        if value <= _INT64_MAX:
            return value
        if wrap:
            return value - _INT64
        raise ColumnValueError(
            f"column {column.name!r}: BIGINT UNSIGNED {value} is above 2^63-1, which "
            "bigint.unsigned.handling.mode=long cannot carry (Debezium would write "
            f"{value - _INT64}); use bigint.unsigned.handling.mode=precise"
        )

    return _Kind({"type": "int64"}, encode, header=_header_number)


def _integer_kind(column: TableColumn, options: DebeziumOptions) -> _Kind:
    unsigned = column.unsigned
    data_type = column.data_type
    if data_type == "tinyint":
        return _integer("int16")
    if data_type == "smallint":
        return _integer("int32" if unsigned else "int16")
    if data_type == "mediumint":
        return _integer("int32")
    if data_type == "int":
        return _integer("int64" if unsigned else "int32")
    if unsigned:
        return _unsigned_bigint(column, options)
    return _integer("int64")


# --- decimals and floating point -----------------------------------------------------------------


def _b64(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).decode("ascii")


def _decimal_schema(scale: int, precision: int) -> dict[str, Any]:
    parameters = {"scale": str(scale), "connect.decimal.precision": str(precision)}
    return {"type": "bytes", "name": DECIMAL, "version": 1, "parameters": parameters}


def _base64_unscaled(scale: int) -> Encoder:
    def encode(value: Decimal | int) -> str:
        unscaled = value if isinstance(value, int) else int(value.scaleb(scale, _EXACT))
        return _b64(unscaled_bytes(unscaled))

    return encode


def _plain_decimal(scale: int) -> Encoder:
    """``BigDecimal.toPlainString`` at the column's scale (Java has no negative zero)."""
    quantum = Decimal(1).scaleb(-scale)

    def encode(value: Decimal) -> str:
        if value.as_tuple().exponent != -scale:
            value = value.quantize(quantum, context=_EXACT)
        return format(abs(value) if value.is_zero() else value, "f")

    return encode


def _double_decimal(value: Decimal) -> orjson.Fragment:
    return orjson.Fragment(java_double_text(float(value)))


def _decimal_kind(column: TableColumn, options: DebeziumOptions) -> _Kind:
    scale = column.numeric_scale or 0
    if options.decimal_handling_mode == "double":
        return _Kind({"type": "double"}, _double_decimal, header=_header_text)
    if options.decimal_handling_mode == "string":
        return _Kind({"type": "string"}, _plain_decimal(scale), header=_header_string)
    return _Kind(
        _decimal_schema(scale, column.numeric_precision or 10), _base64_unscaled(scale), header=_header_decimal
    )


def _float32(value: float) -> orjson.Fragment:
    return orjson.Fragment(java_float_text(value))


def _float64(value: float) -> orjson.Fragment:
    return orjson.Fragment(java_double_text(value))


# --- bits, binary, geometry ----------------------------------------------------------------------


def _bit_kind(column: TableColumn) -> _Kind:
    length = column.numeric_precision or 1
    if length == 1:
        return _Kind({"type": "boolean"}, bool, header=_header_bool)
    size = (length + 7) // 8

    def encode(value: int) -> str:
        # Debezium's Bits are little-endian: BIT(12) b'101010101010' (0xAAA) is AA 0A.
        return _b64(value.to_bytes(size, "little"))

    schema = {"type": "bytes", "name": "io.debezium.data.Bits", "version": 1, "parameters": {"length": str(length)}}
    return _Kind(schema, encode, header=_header_string)


def _urlsafe(value: bytes) -> str:
    return base64.urlsafe_b64encode(value).decode("ascii")


def _hex(value: bytes) -> str:
    return value.hex()


_BINARY_ENCODERS: dict[str, tuple[str, Encoder]] = {
    "bytes": ("bytes", _b64),
    "base64": ("string", _b64),
    "base64-url-safe": ("string", _urlsafe),
    "hex": ("string", _hex),
}


def _binary_kind(options: DebeziumOptions) -> _Kind:
    connect_type, encode = _BINARY_ENCODERS[options.binary_handling_mode]
    return _Kind({"type": connect_type}, encode, header=_header_string)


_GEOMETRY_SCHEMA = {
    "type": "struct",
    "fields": [
        {"type": "bytes", "optional": False, "field": "wkb"},
        {"type": "int32", "optional": True, "field": "srid"},
    ],
}
_POINT_SCHEMA = {
    "type": "struct",
    "fields": [
        {"type": "double", "optional": False, "field": "x"},
        {"type": "double", "optional": False, "field": "y"},
        {"type": "bytes", "optional": True, "field": "wkb"},
        {"type": "int32", "optional": True, "field": "srid"},
    ],
}


def _srid_and_wkb(value: bytes) -> tuple[int | None, bytes]:
    """MariaDB stores a geometry as its SRID (4 bytes, little-endian) then WKB; SRID 0 is null."""
    return int.from_bytes(value[:4], "little") or None, value[4:]


def _geometry(value: bytes) -> dict[str, Any]:
    srid, wkb = _srid_and_wkb(value)
    return {"wkb": _b64(wkb), "srid": srid}


def _point(column: TableColumn) -> Encoder:
    def encode(value: bytes) -> dict[str, Any]:
        srid, wkb = _srid_and_wkb(value)
        order = "<" if wkb[:1] == b"\x01" else ">"
        if len(wkb) < 21 or struct.unpack_from(order + "I", wkb, 1)[0] != 1:
            raise ColumnValueError(f"column {column.name!r}: POINT value is not a WKB point ({wkb[:9].hex()}...)")
        x, y = struct.unpack_from(order + "dd", wkb, 5)
        return {"x": orjson.Fragment(java_double_text(x)), "y": orjson.Fragment(java_double_text(y)), "wkb": _b64(wkb),
                "srid": srid}  # fmt: skip

    return encode


# --- temporal ------------------------------------------------------------------------------------


def _adjust_year(year: int) -> int:
    """Debezium's two-digit-year adjuster (``enable.time.adjuster``, on by default)."""
    if year < 70:
        return year + 2000
    if year < 100:
        return year + 1900
    return year


def _adjusted_date(value: dt.date) -> dt.date:
    if value.year >= 100:
        return value
    try:
        return value.replace(year=_adjust_year(value.year))
    except ValueError:  # 29 February of a year that is no leap year after the shift: Java clamps
        return value.replace(year=_adjust_year(value.year), day=28)


def _year_zero(value: InvalidTemporal, year: int) -> dt.datetime | None:
    """The snapshot's reading of a year-0000 date with a real month and day (see the module doc)."""
    parts = _INVALID_TEMPORAL.match(value.text)
    if parts is None or parts[1] != "0000" or parts[2] == "00" or parts[3] == "00":
        return None
    fraction = (parts[7] or "").ljust(6, "0")
    try:
        return dt.datetime(year, int(parts[2]), int(parts[3]), int(parts[4] or 0), int(parts[5] or 0),
                           int(parts[6] or 0), int(fraction or 0))  # fmt: skip
    except ValueError:
        return None


def _fraction_minimal(micro: int) -> str:
    """Java's ISO formatter: the fewest fraction digits, none for a whole second."""
    return "." + f"{micro:06d}".rstrip("0") if micro else ""


def _iso_datetime(value: dt.datetime, fraction: str) -> str:
    return (
        f"{value.year:04d}-{value.month:02d}-{value.day:02d}T{value.hour:02d}:{value.minute:02d}:{value.second:02d}"
        f"{fraction}Z"
    )


@dataclass(frozen=True)
class _Temporal:
    """How one time.precision.mode writes a DATE / DATETIME(fsp) / TIME value."""

    schema: dict[str, Any]
    write: Callable[[Any], Any]  # a valid value (date, naive datetime or timedelta) -> payload
    epoch: Any  # what a NOT NULL column's invalid value becomes


def _named(connect_type: str, name: str) -> dict[str, Any]:
    return {"type": connect_type, "name": name, "version": 1}


def _days(value: dt.date) -> int:
    return value.toordinal() - EPOCH_ORDINAL


def _micros(value: dt.datetime) -> int:
    return (value - NAIVE_EPOCH) // ONE_MICROSECOND


def _millis(value: dt.datetime) -> int:
    return (value - NAIVE_EPOCH) // ONE_MICROSECOND // 1000


def _nanos(value: dt.datetime) -> int:
    """Epoch nanoseconds as a Java long: 9999-12-31 overflows and wraps, as in Debezium."""
    nanos = _micros(value) * 1000
    return (nanos + (1 << 63)) % _INT64 - (1 << 63)


def _date_temporal(mode: str) -> _Temporal:
    if mode == "connect":
        return _Temporal(_named("int32", "org.apache.kafka.connect.data.Date"), _days, 0)
    if mode == "isostring":
        return _Temporal(_named("string", "io.debezium.time.IsoDate"), lambda v: v.isoformat() + "Z", "1970-01-01Z")
    return _Temporal(_named("int32", "io.debezium.time.Date"), _days, 0)


def _datetime_temporal(mode: str, fsp: int) -> _Temporal:
    if mode == "connect":
        return _Temporal(_named("int64", "org.apache.kafka.connect.data.Timestamp"), _millis, 0)
    if mode == "isostring":
        return _Temporal(
            _named("string", "io.debezium.time.IsoTimestamp"),
            lambda v: _iso_datetime(v, _fraction_minimal(v.microsecond)),
            "1970-01-01T00:00:00Z",
        )
    if mode == "nanoseconds":
        return _Temporal(_named("int64", "io.debezium.time.NanoTimestamp"), _nanos, 0)
    if mode == "microseconds" or fsp > 3:
        return _Temporal(_named("int64", "io.debezium.time.MicroTimestamp"), _micros, 0)
    return _Temporal(_named("int64", "io.debezium.time.Timestamp"), _millis, 0)


def _calendar_kind(column: TableColumn, temporal: _Temporal, year_zero_reads_as: int) -> _Kind:
    """DATE or DATETIME: invalid values (zero dates) are null or the epoch; the snapshot reads a
    year-0000 value with a real month and day as ``year_zero_reads_as`` (module doc)."""
    invalid = None if column.nullable else temporal.epoch
    is_date = column.data_type == "date"

    def binlog(value: dt.date | InvalidTemporal) -> Any:
        if isinstance(value, InvalidTemporal):
            return invalid
        return temporal.write(_adjusted_date(value))

    def snapshot(value: dt.date | InvalidTemporal) -> Any:
        if isinstance(value, InvalidTemporal):
            read = _year_zero(value, year_zero_reads_as)
            if read is None:
                return invalid
            return temporal.write(read.date() if is_date else read)
        return temporal.write(_adjusted_date(value))

    return _Kind(temporal.schema, snapshot, binlog, header=_temporal_header(temporal))


def _temporal_header(temporal: _Temporal) -> Callable[[Any, Any], str]:
    return _header_string if temporal.schema["type"] == "string" else _header_number


def _time_kind(column: TableColumn, options: DebeziumOptions) -> _Kind:
    mode = options.time_precision_mode
    if mode in ("adaptive_time_microseconds", "microseconds"):
        return _Kind(_named("int64", "io.debezium.time.MicroTime"), lambda v: v // ONE_MICROSECOND,
                     header=_header_number)  # fmt: skip
    if mode == "nanoseconds":
        return _Kind(_named("int64", "io.debezium.time.NanoTime"), lambda v: v // ONE_MICROSECOND * 1000,
                     header=_header_number)  # fmt: skip
    # connect and isostring hold a time of day only: negative or >= 24h is null, or an error
    # for a NOT NULL column (Debezium fails the record, see fixtures/debezium/failures).
    write: Callable[[int], Any]
    if mode == "connect":
        schema, write = _named("int32", "org.apache.kafka.connect.data.Time"), lambda micros: micros // 1000
    else:
        schema, write = _named("string", "io.debezium.time.IsoTime"), _iso_time

    def encode(value: dt.timedelta) -> Any:
        micros = value // ONE_MICROSECOND
        if 0 <= micros < MICROS_PER_DAY:
            return write(micros)
        if column.nullable:
            return None
        raise ColumnValueError(
            f"column {column.name!r}: TIME {_time_text(micros)} is outside 00:00:00-24:00:00, which "
            f"time.precision.mode={mode} cannot carry in a NOT NULL column"
        )

    return _Kind(schema, encode, header=_header_string if mode == "isostring" else _header_number)


def _time_text(micros: int) -> str:
    """A TIME as MariaDB prints it (``-01:02:03.500000``)."""
    seconds, micro = divmod(abs(micros), 1_000_000)
    sign = "-" if micros < 0 else ""
    return f"{sign}{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}.{micro:06d}"


def _iso_time(micros: int) -> str:
    seconds, micro = divmod(micros, 1_000_000)
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}{_fraction_minimal(micro)}Z"


def _timestamp_kind(column: TableColumn) -> _Kind:
    """TIMESTAMP is an instant: a ZonedTimestamp in UTC whatever time.precision.mode says."""
    fsp = column.datetime_precision or 0
    invalid_snapshot = None if column.nullable else "1970-01-01T00:00:00Z"

    def snapshot(value: dt.datetime | InvalidTemporal) -> str | None:
        if isinstance(value, InvalidTemporal):
            return invalid_snapshot
        value = _in_utc(value)
        return _iso_datetime(value, _fraction_minimal(value.microsecond))

    def binlog(value: dt.datetime | InvalidTemporal) -> str:
        if isinstance(value, InvalidTemporal):
            return "1970-01-01T00:00:00Z"
        value = _in_utc(value)
        return _iso_datetime(value, f".{value.microsecond:06d}"[: fsp + 1] if fsp else "")

    return _Kind(_named("string", "io.debezium.time.ZonedTimestamp"), snapshot, binlog, header=_header_string)


def _in_utc(value: dt.datetime) -> dt.datetime:
    offset = value.utcoffset()
    return value if not offset else (value - offset).replace(tzinfo=dt.UTC)


def _year(value: int) -> int:
    """YEAR 0000 arrives from the binlog as 1900 (the stored byte 0 plus 1900), which Debezium
    writes; its snapshot fails on it instead (fixtures/debezium/failures/year0000_snapshot)."""
    return value or 1900


# --- every column --------------------------------------------------------------------------------

_TEXT = frozenset(("char", "varchar", "tinytext", "text", "mediumtext", "longtext", "json"))
_BINARY = frozenset(("binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob"))
_INTEGERS = frozenset(("tinyint", "smallint", "mediumint", "int", "bigint"))


def _kind(column: TableColumn, options: DebeziumOptions) -> _Kind:
    data_type = column.data_type
    if data_type in _INTEGERS:
        return _integer_kind(column, options)
    if data_type in _TEXT:
        return _Kind({"type": "string"}, same, header=_header_string)
    if data_type in _BINARY:
        return _binary_kind(options)
    if data_type == "decimal":
        return _decimal_kind(column, options)
    if data_type == "float":
        # FLOAT(M,D) is a DOUBLE to Debezium; plain FLOAT (precision <= 24) a float32.
        if column.numeric_scale is None:
            return _Kind({"type": "float"}, _float32, header=_header_text)
        return _Kind({"type": "double"}, _float64, header=_header_text)
    if data_type == "double":
        return _Kind({"type": "double"}, _float64, header=_header_text)
    if data_type == "bit":
        return _bit_kind(column)
    if data_type in ("enum", "set"):
        name = "io.debezium.data.Enum" if data_type == "enum" else "io.debezium.data.EnumSet"
        schema = {"type": "string", "name": name, "version": 1, "parameters": {"allowed": ",".join(column.labels)}}
        return _Kind(schema, same, header=_header_string)
    if data_type == "date":
        return _calendar_kind(column, _date_temporal(options.time_precision_mode), 2000)
    if data_type == "datetime":
        temporal = _datetime_temporal(options.time_precision_mode, column.datetime_precision or 0)
        return _calendar_kind(column, temporal, 2001)
    if data_type == "time":
        return _time_kind(column, options)
    if data_type == "timestamp":
        return _timestamp_kind(column)
    if data_type == "year":
        return _Kind(_named("int32", "io.debezium.time.Year"), _year, header=_header_number)
    if data_type == "point":
        schema = {**_POINT_SCHEMA, "optional": column.nullable, "name": "io.debezium.data.geometry.Point",
                  "version": 1, "doc": "Geometry (POINT)"}  # fmt: skip
        return _Kind(schema, _point(column))
    if data_type in _GEOMETRIES:
        schema = {**_GEOMETRY_SCHEMA, "optional": column.nullable, "name": "io.debezium.data.geometry.Geometry",
                  "version": 1, "doc": "Geometry"}  # fmt: skip
        return _Kind(schema, _geometry)
    if data_type in ("inet4", "inet6", "uuid"):
        raise UnsupportedColumn(
            f"column {column.name!r} is {data_type.upper()}, which Debezium 3.5's MariaDB connector cannot read "
            "either (its DDL parser fails on the table, see tests/fixtures/debezium/failures)"
        )
    raise UnsupportedColumn(f"column {column.name!r} has type {column.column_type!r}, which has no Debezium mapping")


# --- schema defaults -----------------------------------------------------------------------------

_CURRENT_TIMESTAMP = re.compile(r"^current_timestamp(\(\d?\))?$", re.IGNORECASE)


def _java_round(text: str) -> int:
    """``Math.round(Double.parseDouble(text))``, which Debezium applies to integer defaults
    (so BIGINT UNSIGNED DEFAULT 18446744073709551615 becomes 9223372036854775807)."""
    number = float(text)
    if math.isnan(number):
        return 0
    return max(-(1 << 63), min(_INT64_MAX, math.floor(number + 0.5)))


def _parse_time(text: str) -> dt.timedelta:
    negative = text.startswith("-")
    hours, minutes, seconds = text.lstrip("-").split(":")
    whole, _, fraction = seconds.partition(".")
    value = dt.timedelta(
        hours=int(hours), minutes=int(minutes), seconds=int(whole), microseconds=int(fraction.ljust(6, "0") or 0)
    )
    return -value if negative else value


def _parse_temporal(data_type: str, text: str) -> Any:
    try:
        if data_type == "date":
            return dt.date.fromisoformat(text)
        if data_type == "time":
            return _parse_time(text)
        value = dt.datetime.fromisoformat(text)
        return value.replace(tzinfo=dt.UTC) if data_type == "timestamp" else value
    except ValueError:
        return InvalidTemporal(text)


def _default_value(column: TableColumn, kind: _Kind) -> tuple[bool, Any]:
    """(has a default, its payload value), from ``COLUMN_DEFAULT`` the way Debezium's DDL parser
    reads ``DEFAULT``: literals only; ``NULL``, expressions and functions give no default, except
    CURRENT_TIMESTAMP, which is the epoch."""
    text = column.default
    if text is None or text == "NULL" or kind.schema["type"] == "struct":
        return False, None
    data_type = column.data_type
    if _CURRENT_TIMESTAMP.match(text):
        if data_type == "timestamp":
            return True, "1970-01-01T00:00:00Z"
        if data_type == "datetime":
            return True, kind.snapshot(NAIVE_EPOCH)
        return False, None
    if text.startswith("b'") and data_type == "bit":
        return True, kind.snapshot(int(text[2:-1] or "0", 2))
    if len(text) >= 2 and text[0] == text[-1] == "'":
        literal = text[1:-1]  # Debezium keeps doubled quotes doubled: 'it''s' -> it''s
    elif _NUMBER.match(text):
        literal = text
    else:
        return False, None
    if data_type in _INTEGERS:
        rounded = _java_round(literal)
        if data_type == "bigint" and column.unsigned and kind.schema.get("name") == DECIMAL:
            return True, kind.snapshot(int(Decimal(literal)))
        return True, kind.snapshot(rounded)
    if data_type == "decimal":
        return True, kind.snapshot(Decimal(literal))
    if data_type in ("float", "double"):
        return True, kind.snapshot(float(literal))
    if data_type == "year":
        return True, kind.snapshot(int(literal))
    if data_type in ("date", "datetime", "time", "timestamp"):
        try:
            payload = kind.snapshot(_parse_temporal(data_type, literal))
        except ColumnValueError:  # a default the mode cannot carry: the rows will say so
            return False, None
        return payload is not None, payload
    if data_type in _BINARY:
        return True, kind.snapshot(literal.encode("utf-8"))
    return True, kind.snapshot(literal)


def column_codec(column: TableColumn, options: DebeziumOptions) -> ColumnCodec:
    """The field schema and encoders Debezium uses for ``column`` under ``options``."""
    kind = _kind(column, options)
    if kind.schema["type"] == "struct":
        schema = {**kind.schema, "field": column.name}
    else:
        schema = {"type": kind.schema["type"], "optional": column.nullable}
        for key in ("name", "version", "parameters"):
            if key in kind.schema:
                schema[key] = kind.schema[key]
        has_default, default = _default_value(column, kind)
        if has_default:
            schema["default"] = default
        schema["field"] = column.name
    return ColumnCodec(schema, kind.snapshot, kind.binlog or kind.snapshot, kind.header or _header_string)
