"""Kafka Connect fields to MariaDB columns and literals: the sink type table.

Values arrive as JsonConverter payload values (JSON numbers, strings, booleans). Each row of
``SINK_TYPES`` checks a value against its Connect type the way JsonConverter would (an int32
field must hold a JSON integer in range, never 3.7 or "3"), so a wrong value is rejected by
name instead of coerced by MariaDB, and writes it straight as a MariaDB literal. Going from
the payload to the literal in one step, with the type known from the schema, costs a
fraction of binding through PyMySQL: no Decimal or datetime objects in between, no
per-value type dispatch in the driver (``docs/decisions/literals-not-bound-parameters.md``).
Each row also names the column ``auto.create`` makes for the type and the Connect types an
existing column stores without loss. Debezium's logical types (``io.debezium.time.*``,
``io.debezium.data.*``) get the columns Debezium's JDBC sink creates on MariaDB, except where
those lose values (DECIMAL(65,30) capped at 38 digits, DOUBLE for a variable-scale decimal),
and are matched to existing columns by the column's own type. ``docs/types.md`` shows the table.
"""

from __future__ import annotations

import binascii
import dataclasses
import datetime as dt
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from mungmo_pipelines.core.connect.schema import (
    DATE,
    DBZ_BITS,
    DBZ_DATE,
    DBZ_ENUM,
    DBZ_ENUM_SET,
    DBZ_GEOMETRY,
    DBZ_JSON,
    DBZ_MICRO_DURATION,
    DBZ_MICRO_TIME,
    DBZ_MICRO_TIMESTAMP,
    DBZ_NANO_TIME,
    DBZ_NANO_TIMESTAMP,
    DBZ_POINT,
    DBZ_TIME,
    DBZ_TIMESTAMP,
    DBZ_UUID,
    DBZ_VARIABLE_SCALE_DECIMAL,
    DBZ_YEAR,
    DBZ_ZONED_TIME,
    DBZ_ZONED_TIMESTAMP,
    DECIMAL,
    DECIMAL_PRECISION,
    EPOCH,
    EPOCH_DAY,
    NAIVE_EPOCH,
    TIME,
    TIMESTAMP,
    connect_kind,
    decimal_scale,
)
from mungmo_pipelines.core.connect.source_types import field_codec
from mungmo_pipelines.core.errors import ConnectValueError, UnsupportedColumnType
from mungmo_pipelines.core.mariadb.columns import ResultColumn, TableColumn
from mungmo_pipelines.core.mariadb.dialect import is_utc

Literal = Callable[[Any], str]
NULL = "NULL"

# What mysql_real_escape_string escapes; the session's sql_mode never has NO_BACKSLASH_ESCAPES.
_ESCAPES = str.maketrans({"\0": "\\0", "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\x1a": "\\Z", "'": "\\'", '"': '\\"'})
# str.translate looks up every character; most text has nothing to escape, which a regex finds in C.
_NEEDS_ESCAPE = re.compile(r"""[\x00\\\n\r\x1a'"]""").search


def string_literal(value: str) -> str:
    """A quoted MariaDB string literal: safe for any text on a utf8mb4 connection."""
    return "'" + (value if _NEEDS_ESCAPE(value) is None else value.translate(_ESCAPES)) + "'"


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
    if is_utc(zone):

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
    precision = (schema.get("parameters") or {}).get(DECIMAL_PRECISION)
    digits = int(str(precision)) if str(precision or "").isdigit() else 65
    return f"DECIMAL({min(65, max(digits, scale, 1))},{scale})"


# --- Debezium's logical types -----------------------------------------------------------------

# MariaDB's TIME range, in microseconds: -838:59:59.999999 to 838:59:59.999999.
_MAX_TIME_MICROS = 3_020_399_999_999
_MIN_MICROS = (dt.datetime.min - NAIVE_EPOCH) // dt.timedelta(microseconds=1)
_MAX_MICROS = (dt.datetime.max - NAIVE_EPOCH) // dt.timedelta(microseconds=1)


def _micros(value: Any, what: str, per_micro: int, per_second: int) -> int:
    """A JSON integer in units of ``1/per_second`` s, in microseconds; sub-microsecond digits are refused
    (MariaDB keeps six), never dropped."""
    if type(value) is not int:
        raise ConnectValueError(f"expected a {what} (a JSON integer), got {value!r}")
    if per_micro > 1:
        micros, rest = divmod(value, per_micro)
        if rest:
            raise ConnectValueError(f"{what} {value} has nanoseconds, which MariaDB (microseconds at most) would drop")
        return micros
    return value * (1_000_000 // per_second)


def _duration(
    what: str, per_micro: int = 1, per_second: int = 1_000_000
) -> Callable[[dict[str, Any], dt.tzinfo], Literal]:
    """Debezium's Time/MicroTime/NanoTime: a signed duration (MariaDB's TIME is one, -838:59:59 to 838:59:59)."""

    def build(schema: dict[str, Any], zone: dt.tzinfo) -> Literal:
        def literal(value: Any) -> str:
            micros = _micros(value, what, per_micro, per_second)
            if not -_MAX_TIME_MICROS <= micros <= _MAX_TIME_MICROS:
                raise ConnectValueError(f"{what} {value} is outside MariaDB's TIME range (-838:59:59 to 838:59:59)")
            seconds, fraction = divmod(abs(micros), 1_000_000)
            sign = "-" if micros < 0 else ""
            return f"'{sign}{seconds // 3600:02}:{seconds // 60 % 60:02}:{seconds % 60:02}.{fraction:06}'"

        return literal

    return build


def _epoch_wall_time(
    what: str, per_micro: int = 1, per_second: int = 1_000_000
) -> Callable[[dict[str, Any], dt.tzinfo], Literal]:
    """Debezium's Timestamp/MicroTimestamp/NanoTimestamp: a DATETIME's wall time encoded as if it were UTC,
    so it is written back as that wall time whatever the session's zone (as Debezium's sink does)."""

    def build(schema: dict[str, Any], zone: dt.tzinfo) -> Literal:
        def literal(value: Any) -> str:
            micros = _micros(value, what, per_micro, per_second)
            if not _MIN_MICROS <= micros <= _MAX_MICROS:
                raise ConnectValueError(f"{what} {value} is outside the years 1 to 9999")
            return "'" + (NAIVE_EPOCH + dt.timedelta(0, 0, micros)).isoformat(" ", "microseconds") + "'"

        return literal

    return build


_ZONED = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d(?::\d\d)?)")
_ZONED_TIME = re.compile(r"(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d(?::\d\d)?)")
# TIMESTAMP's range as instants; Debezium writes CURRENT_TIMESTAMP defaults as the epoch, which is outside it.
_TIMESTAMP_RANGE = (
    dt.datetime(1970, 1, 1, 0, 0, 1, tzinfo=dt.UTC),
    dt.datetime(2038, 1, 19, 3, 14, 7, 999999, tzinfo=dt.UTC),
)


def _offset(text: str) -> dt.tzinfo:
    if text == "Z":
        return dt.UTC
    sign = -1 if text[0] == "-" else 1
    hours, minutes, *seconds = (int(part) for part in text[1:].split(":"))
    return dt.timezone(sign * dt.timedelta(hours=hours, minutes=minutes, seconds=seconds[0] if seconds else 0))


def _fraction_micros(digits: str | None, value: str) -> int:
    digits = digits or ""
    if len(digits) > 6 and int(digits[6:]):
        raise ConnectValueError(f"{value!r} has nanoseconds, which MariaDB (microseconds at most) would drop")
    return int(digits[:6].ljust(6, "0"))


def _zoned_instant(value: Any) -> dt.datetime:
    match = _ZONED.fullmatch(value) if type(value) is str else None
    if match is None:
        raise ConnectValueError(
            f"expected a ZonedTimestamp (an ISO-8601 string such as 2026-01-02T03:04:05Z), got {value!r}"
        )
    year, month, day, hour, minute, second = (int(part) for part in match.groups()[:6])
    try:
        return dt.datetime(
            year, month, day, hour, minute, second, _fraction_micros(match[7], value), tzinfo=_offset(match[8])
        )
    except ValueError as err:
        raise ConnectValueError(f"ZonedTimestamp {value!r}: {err}") from None


def _zoned_timestamp(schema: dict[str, Any], zone: dt.tzinfo) -> Literal:
    """An instant, written as its wall time in the session's zone (``use.time.zone``), which a TIMESTAMP
    column stores as the same instant."""

    def literal(value: Any) -> str:
        instant = _zoned_instant(value)
        try:
            wall = instant.astimezone(zone).replace(tzinfo=None)
        except OverflowError:
            raise ConnectValueError(f"ZonedTimestamp {value!r} is outside the years 1 to 9999") from None
        return "'" + wall.isoformat(" ", "microseconds") + "'"

    return literal


def _in_timestamp_range(value: Any) -> bool:
    return _TIMESTAMP_RANGE[0] <= _zoned_instant(value) <= _TIMESTAMP_RANGE[1]


def _zoned_time(schema: dict[str, Any], zone: dt.tzinfo) -> Literal:
    """A time with an offset, written as the time in the session's zone on today's date (as Debezium's sink does)."""

    def literal(value: Any) -> str:
        match = _ZONED_TIME.fullmatch(value) if type(value) is str else None
        if match is None:
            raise ConnectValueError(f"expected a ZonedTime (such as 03:04:05Z), got {value!r}")
        hour, minute, second = (int(part) for part in match.groups()[:3])
        try:
            moment = dt.datetime.combine(
                dt.date.today(),
                dt.time(hour, minute, second, _fraction_micros(match[4], value)),
                tzinfo=_offset(match[5]),
            )
        except ValueError as err:
            raise ConnectValueError(f"ZonedTime {value!r}: {err}") from None
        return "'" + moment.astimezone(zone).time().isoformat("microseconds") + "'"

    return literal


def _year(schema: dict[str, Any], zone: dt.tzinfo) -> Literal:
    def literal(value: Any) -> str:
        if type(value) is not int or not (value == 0 or 1901 <= value <= 2155):
            raise ConnectValueError(f"expected a Year a YEAR column holds (0 or 1901 to 2155), got {value!r}")
        return str(value)

    return literal


def _allowed(schema: dict[str, Any]) -> list[str]:
    allowed = (schema.get("parameters") or {}).get("allowed")
    if not isinstance(allowed, str):
        raise UnsupportedColumnType(
            f"field {schema.get('field')!r}: {schema.get('name')} without an 'allowed' parameter"
        )
    return allowed.split(",")


def _enum(schema: dict[str, Any], zone: dt.tzinfo) -> Literal:
    allowed = frozenset(_allowed(schema))

    def literal(value: Any) -> str:
        if type(value) is not str or value not in allowed:
            raise ConnectValueError(f"expected one of the Enum's values {sorted(allowed)}, got {value!r}")
        return string_literal(value)

    return literal


def _enum_set(schema: dict[str, Any], zone: dt.tzinfo) -> Literal:
    allowed = frozenset(_allowed(schema))

    def literal(value: Any) -> str:
        if type(value) is not str or (value and not set(value.split(",")) <= allowed):
            raise ConnectValueError(f"expected an EnumSet: comma-separated values of {sorted(allowed)}, got {value!r}")
        return string_literal(value)

    return literal


def _labels_column(kind: str) -> Callable[[dict[str, Any]], str]:
    return lambda schema: f"{kind}({','.join(string_literal(label) for label in _allowed(schema))})"


def _bit_length(schema: dict[str, Any]) -> int:
    length = str((schema.get("parameters") or {}).get("length", ""))
    if not length.isdigit() or not 1 <= int(length) <= 64:
        raise UnsupportedColumnType(f"field {schema.get('field')!r}: Bits length {length!r} is outside BIT's 1-64")
    return int(length)


def _bits(schema: dict[str, Any], zone: dt.tzinfo) -> Literal:
    """Bits: base64 of the bits little-endian (Java's ``BitSet.toByteArray``), as a ``b'…'`` literal."""
    length = _bit_length(schema)

    def literal(value: Any) -> str:
        number = int.from_bytes(_base64_bytes(value), "little")
        if number >> length:
            raise ConnectValueError(f"Bits value {value!r} has more than the {length} bits of its schema")
        return f"b'{number:b}'"

    return literal


def _variable_scale_decimal(schema: dict[str, Any], zone: dt.tzinfo) -> Literal:
    def literal(value: Any) -> str:
        scale = value.get("scale") if type(value) is dict else None
        if type(scale) is not int or not 0 <= scale <= 30:
            raise ConnectValueError(
                f"expected a VariableScaleDecimal {{scale, value}} with a scale from 0 to 30 (what DECIMAL(65,30) "
                f"keeps), got {value!r}"
            )
        text = decimal_literal(value.get("value"), scale)
        if len(text.lstrip("-").partition(".")[0]) > 35:
            raise ConnectValueError(
                f"VariableScaleDecimal {text} has more than the 35 integer digits of DECIMAL(65,30)"
            )
        return text

    return literal


def _geometry(schema: dict[str, Any], zone: dt.tzinfo) -> Literal:
    """Geometry/Point: ``{wkb, srid}`` (Point adds x, y) as ``ST_GeomFromWKB``, which stores what MariaDB read."""

    def literal(value: Any) -> str:
        if type(value) is not dict:
            raise ConnectValueError(f"expected a {schema.get('name')} struct {{wkb, srid}}, got {value!r}")
        srid = value.get("srid")
        if srid is None:
            srid = 0
        if type(srid) is not int or not 0 <= srid <= 4_294_967_295:
            raise ConnectValueError(f"expected a geometry srid (a JSON integer from 0 to 4294967295), got {srid!r}")
        if value.get("wkb") is None:
            x, y = (value.get(axis) for axis in "xy")
            if not (isinstance(x, int | float) and isinstance(y, int | float) and math.isfinite(x + y)):
                raise ConnectValueError(f"expected a Point with wkb or finite x and y, got {value!r}")
            return f"ST_PointFromText('POINT({float(x)!r} {float(y)!r})',{srid})"
        return f"ST_GeomFromWKB(X'{_base64_bytes(value['wkb']).hex()}',{srid})"

    return literal


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
    written_as: str  # the literal's form, for the docs
    column_doc: str = ""  # the column, for the docs, when it depends on the schema
    # Debezium's types are matched to an existing column by the column's own type instead of ``holds``.
    fits: Callable[[dict[str, Any], TableColumn], bool] | None = None
    fits_doc: str = ""
    fraction_digits: int | None = None  # fractional-second digits its literals carry (a narrower column loses them)
    default_ok: Callable[[Any], bool] | None = None  # whether a schema default may be the column's DEFAULT


_INTEGERS = ("int8", "int16", "int32", "int64")
_TEXT_TYPES = frozenset({"char", "varchar", "tinytext", "text", "mediumtext", "longtext"})
STRING_KEY = "VARCHAR(255) COLLATE utf8mb4_nopad_bin"


def _columns(*data_types: str) -> Callable[[dict[str, Any], TableColumn], bool]:
    return lambda schema, column: column.data_type.lower() in data_types


def _labels_fit(kind: str) -> Callable[[dict[str, Any], TableColumn], bool]:
    """An ENUM/SET with every allowed value (in any order), or a text column."""
    return lambda schema, column: (
        column.data_type.lower() in _TEXT_TYPES
        or (column.data_type.lower() == kind and set(_allowed(schema)) <= set(column.labels))
    )


def _bits_fit(schema: dict[str, Any], column: TableColumn) -> bool:
    return column.data_type.lower() == "bit" and (column.numeric_precision or 1) >= _bit_length(schema)


def _wide_decimal_fit(schema: dict[str, Any], column: TableColumn) -> bool:
    scale, precision = column.numeric_scale or 0, column.numeric_precision or 0
    return column.data_type.lower() == "decimal" and scale >= 30 and precision - scale >= 35


def _debezium_type(
    connect: str,
    column: str | Callable[[dict[str, Any]], str],
    literal: Callable[[dict[str, Any], dt.tzinfo], Literal],
    written_as: str,
    fits: Callable[[dict[str, Any], TableColumn], bool],
    fits_doc: str,
    fraction_digits: int | None = None,
    key_column: str | None = None,
    column_doc: str = "",
) -> SinkType:
    row = _sink_type(connect, column, literal, written_as, key_column=key_column)
    return dataclasses.replace(
        row,
        column_doc=column_doc or row.column_doc,
        fits=fits,
        fits_doc=fits_doc,
        fraction_digits=fraction_digits,
    )


_TIME_FITS = "TIME(p); a value with more fractional digits than p is refused"
_DATETIME_FITS = "DATETIME(p); a value with more fractional digits than p is refused"
_TEXT_FITS = "CHAR, VARCHAR, TEXT types"


def _sink_type(
    connect: str,
    column: str | Callable[[dict[str, Any]], str],
    literal: Callable[[dict[str, Any], dt.tzinfo], Literal],
    written_as: str,
    holds: tuple[str, ...] = (),
    key_column: str | None = None,
) -> SinkType:
    as_ddl = column if callable(column) else _fixed(column)
    key_ddl = _fixed(key_column) if key_column else as_ddl
    column_doc = column if isinstance(column, str) else ""
    if key_column:
        column_doc += f" ({key_column} as a key)"
    return SinkType(connect, as_ddl, key_ddl, frozenset((connect, *holds)), literal, written_as, column_doc)


SINK_TYPES: dict[str, SinkType] = {
    t.connect: t
    for t in (
        _sink_type("boolean", "TINYINT(1)", _boolean, "`1` / `0`"),
        _sink_type("int8", "TINYINT", _integer("int8", 8), "`v`", ("boolean",)),
        _sink_type("int16", "SMALLINT", _integer("int16", 16), "`v`", ("boolean", "int8")),
        _sink_type("int32", "INT", _integer("int32", 32), "`v`", ("boolean", "int8", "int16")),
        _sink_type("int64", "BIGINT", _integer("int64", 64), "`v`", ("boolean", "int8", "int16", "int32")),
        _sink_type("float", "FLOAT", _floating("float (float32)"), "`repr(float(v))`"),
        _sink_type(
            "double", "DOUBLE", _floating("double (float64)"), "`repr(float(v))`", ("float", "int8", "int16", "int32")
        ),
        _sink_type(
            "string",
            "LONGTEXT",
            _string,
            "`'…'`, escaped as `mysql_real_escape_string` does",
            key_column="VARCHAR(255) COLLATE utf8mb4_nopad_bin",
        ),
        _sink_type("bytes", "LONGBLOB", _bytes, "`X'<hex>'`", key_column="VARBINARY(255)"),
        dataclasses.replace(
            _sink_type(
                DECIMAL,
                _decimal_column,
                _decimal_value,
                "exact `-123.45` (never an exponent, which MariaDB reads as a double)",
                ("boolean", *_INTEGERS),
            ),
            column_doc="DECIMAL(65,scale), or DECIMAL(p,scale) with a `connect.decimal.precision` parameter",
        ),
        _sink_type(DATE, "DATE", _date, "`'YYYY-MM-DD'`"),
        dataclasses.replace(_sink_type(TIME, "TIME(3)", _time, "`'HH:MM:SS.fff'`"), fraction_digits=3),
        dataclasses.replace(
            _sink_type(
                TIMESTAMP, "DATETIME(3)", _timestamp_value, "`'YYYY-MM-DD HH:MM:SS.fff'`, wall time in `db.timezone`"
            ),
            fraction_digits=3,
        ),
        _debezium_type(DBZ_DATE, "DATE", _date, "`'YYYY-MM-DD'` (v days after 1970-01-01)", _columns("date"), "DATE"),
        _debezium_type(
            DBZ_TIME,
            "TIME(6)",
            _duration("Time in ms", per_second=1000),
            "`'[-]HHH:MM:SS.ffffff'` (v ms, signed, up to 838:59:59)",
            _columns("time"),
            _TIME_FITS,
            3,
        ),
        _debezium_type(
            DBZ_MICRO_TIME,
            "TIME(6)",
            _duration("MicroTime in µs"),
            "`'[-]HHH:MM:SS.ffffff'` (v µs, signed, up to 838:59:59)",
            _columns("time"),
            _TIME_FITS,
            6,
        ),
        _debezium_type(
            DBZ_NANO_TIME,
            "TIME(6)",
            _duration("NanoTime in ns", per_micro=1000),
            "`'[-]HHH:MM:SS.ffffff'` (v ns; sub-µs digits refused)",
            _columns("time"),
            _TIME_FITS,
            6,
        ),
        _debezium_type(
            DBZ_TIMESTAMP,
            "DATETIME(6)",
            _epoch_wall_time("Timestamp in ms", per_second=1000),
            "`'YYYY-MM-DD HH:MM:SS.ffffff'`: v ms after the epoch, read as UTC, whatever `use.time.zone`",
            _columns("datetime"),
            _DATETIME_FITS,
            3,
        ),
        _debezium_type(
            DBZ_MICRO_TIMESTAMP,
            "DATETIME(6)",
            _epoch_wall_time("MicroTimestamp in µs"),
            "as Timestamp, v in µs",
            _columns("datetime"),
            _DATETIME_FITS,
            6,
        ),
        _debezium_type(
            DBZ_NANO_TIMESTAMP,
            "DATETIME(6)",
            _epoch_wall_time("NanoTimestamp in ns", per_micro=1000),
            "as Timestamp, v in ns; sub-µs digits refused",
            _columns("datetime"),
            _DATETIME_FITS,
            6,
        ),
        dataclasses.replace(
            _debezium_type(
                DBZ_ZONED_TIMESTAMP,
                "TIMESTAMP(6)",
                _zoned_timestamp,
                "`'YYYY-MM-DD HH:MM:SS.ffffff'`: the instant's wall time in `use.time.zone`, the session's zone",
                _columns("timestamp", "datetime"),
                "TIMESTAMP(p), DATETIME(p) (as wall time in `use.time.zone`); more fractional digits than p refused",
                6,
            ),
            default_ok=_in_timestamp_range,
        ),
        _debezium_type(
            DBZ_ZONED_TIME,
            "TIME(6)",
            _zoned_time,
            "`'HH:MM:SS.ffffff'` in `use.time.zone` on today's date",
            _columns("time"),
            _TIME_FITS,
            6,
        ),
        _debezium_type(DBZ_YEAR, "YEAR", _year, "`v` (0 or 1901 to 2155)", _columns("year"), "YEAR"),
        _debezium_type(
            DBZ_MICRO_DURATION, "BIGINT", _integer("MicroDuration in µs", 64), "`v`", _columns("bigint"), "BIGINT"
        ),
        _debezium_type(
            DBZ_JSON, "LONGTEXT", _string, "`'…'` as string", _columns(*_TEXT_TYPES), _TEXT_FITS, key_column=STRING_KEY
        ),
        _debezium_type(
            DBZ_UUID, "LONGTEXT", _string, "`'…'` as string", _columns(*_TEXT_TYPES), _TEXT_FITS, key_column=STRING_KEY
        ),
        _debezium_type(
            DBZ_ENUM,
            _labels_column("ENUM"),
            _enum,
            "`'v'`, one of the `allowed` values",
            _labels_fit("enum"),
            "ENUM with every allowed value; " + _TEXT_FITS,
            column_doc="ENUM('…') of the `allowed` parameter",
        ),
        _debezium_type(
            DBZ_ENUM_SET,
            _labels_column("SET"),
            _enum_set,
            "`'v'`, allowed values joined by `,`",
            _labels_fit("set"),
            "SET with every allowed value; " + _TEXT_FITS,
            column_doc="SET('…') of the `allowed` parameter",
        ),
        _debezium_type(
            DBZ_BITS,
            lambda schema: f"BIT({_bit_length(schema)})",
            _bits,
            "`b'…'`: the little-endian base64 bytes as a number",
            _bits_fit,
            "BIT(m), m at least the `length` parameter",
            column_doc="BIT(n), n the `length` parameter",
        ),
        _debezium_type(
            DBZ_VARIABLE_SCALE_DECIMAL,
            "DECIMAL(65,30)",
            _variable_scale_decimal,
            "exact `-123.45` from `{scale, value}`; a scale above 30 is refused",
            _wide_decimal_fit,
            "DECIMAL(p,s) with s ≥ 30 and p - s ≥ 35 (Debezium's sink makes a DOUBLE, which rounds)",
        ),
        _debezium_type(
            DBZ_GEOMETRY,
            "GEOMETRY",
            _geometry,
            "`ST_GeomFromWKB(X'<wkb>',srid)` (a null srid is 0)",
            _columns("geometry"),
            "GEOMETRY",
        ),
        _debezium_type(
            DBZ_POINT,
            "POINT",
            _geometry,
            "`ST_GeomFromWKB(X'<wkb>',srid)`, or from x and y without wkb",
            _columns("point", "geometry"),
            "POINT, GEOMETRY",
        ),
    )
}


def sink_types_markdown() -> str:
    """``SINK_TYPES`` as the table in ``docs/types.md``."""
    lines = [
        "| Connect type | column | an existing column of this kind also takes | payload `v` written as |",
        "| --- | --- | --- | --- |",
    ]
    for row in SINK_TYPES.values():
        others = [kind.rsplit(".", 1)[-1] for kind in sorted(row.holds - {row.connect}, key=_kind_order)]
        if row.connect == DECIMAL:
            others.append("a Decimal of smaller or equal scale")
        name = row.connect if row.fits else row.connect.rsplit(".", 1)[-1]
        takes = row.fits_doc if row.fits else ", ".join(others)
        lines.append(f"| {name} | {row.column_doc} | {takes} | {row.written_as} |")
    return "\n".join(lines)


def _kind_order(kind: str) -> int:
    return list(SINK_TYPES).index(kind) if kind in SINK_TYPES else len(SINK_TYPES)


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


def column_holds(schema: dict[str, Any], column: TableColumn) -> bool:
    """Whether an existing column stores every value of a Connect field without loss.

    The column is read back through the source table (``SOURCE_TYPES``) (what Connect type it would be as a
    source), then compared with the field: the same type, or one it widens (int32 into a
    BIGINT column, Decimal scale 2 into DECIMAL(10,4)). Lengths and ranges within a type
    (VARCHAR(20), TIMESTAMP's 2038) are checked per value by MariaDB's strict mode instead, and
    fractional seconds beyond the column's by the sink (``fraction_loss``). Debezium's types are
    matched on the column's own type (``fits``).
    """
    found = sink_type(schema)
    if found.fits is not None:
        return found.fits(schema, column)
    stored = field_codec(ResultColumn.from_table_column(column)).schema
    stored_kind, kind = connect_kind(stored), connect_kind(schema)
    if kind not in sink_type(stored).holds:
        return False
    if stored_kind == DECIMAL and kind == DECIMAL:
        return decimal_scale(schema) <= decimal_scale(stored)
    return True


def fraction_loss(literal: str, digits: int) -> bool:
    """Whether a temporal literal (``'…HH:MM:SS.ffffff'``) has non-zero fractional digits beyond ``digits``,
    which a TIME/DATETIME/TIMESTAMP column of that precision would drop without a warning."""
    point = literal.rfind(".")
    return point > 0 and literal[point + 1 + digits : -1].strip("0") != ""
