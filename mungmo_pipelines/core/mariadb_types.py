"""MariaDB column types to Kafka Connect schemas and back: the project's type-mapping table.

``SOURCE_TYPES`` says how a MariaDB column becomes a Connect field (what Confluent's JDBC
source emits for it through the MariaDB driver), ``SINK_TYPES`` how a Connect field becomes
a MariaDB column when the sink creates or evolves a table. The README shows both tables.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

DECIMAL = "org.apache.kafka.connect.data.Decimal"
TIMESTAMP = "org.apache.kafka.connect.data.Timestamp"
DATE = "org.apache.kafka.connect.data.Date"
TIME = "org.apache.kafka.connect.data.Time"

EPOCH_DAY = dt.date(1970, 1, 1)
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
UTC = ZoneInfo("UTC")


@dataclass(frozen=True)
class Column:
    """A column as ``information_schema.COLUMNS`` describes it."""

    name: str
    data_type: str
    column_type: str
    nullable: bool
    numeric_precision: int | None = None
    numeric_scale: int | None = None

    @property
    def unsigned(self) -> bool:
        return "unsigned" in self.column_type.lower()


Encoder = Callable[[Any], Any]


@dataclass(frozen=True)
class FieldCodec:
    """How one column's values are written into a Connect JSON payload."""

    schema: dict[str, Any]
    encode: Encoder


# --- value encoders (Python value from PyMySQL -> JsonConverter value) ---------------------


def _same(value: Any) -> Any:
    return value


def _base64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def _bit_bool(value: bytes | int) -> bool:
    return (int.from_bytes(value, "big") if isinstance(value, bytes) else int(value)) != 0


def _flag(value: int) -> bool:
    return value != 0


def _float(value: Any) -> float:
    return float(value)


def unscaled_bytes(value: Decimal, scale: int) -> bytes:
    """Java's ``BigInteger.toByteArray()`` of the unscaled value: minimal two's complement."""
    unscaled = int(value.scaleb(scale).to_integral_value())
    length = ((unscaled if unscaled >= 0 else ~unscaled).bit_length() + 8) // 8
    return unscaled.to_bytes(length, "big", signed=True)


def _decimal(scale: int) -> Encoder:
    return lambda value: _base64(unscaled_bytes(Decimal(value), scale))


def _int_from_decimal(value: Decimal) -> int:
    return int(value)


def _days(value: dt.date) -> int:
    return (value - EPOCH_DAY).days


def _year_days(value: int) -> int:
    return (dt.date(int(value), 1, 1) - EPOCH_DAY).days


def _time_ms(value: dt.timedelta | dt.time) -> int:
    if isinstance(value, dt.time):
        value = dt.timedelta(
            hours=value.hour, minutes=value.minute, seconds=value.second, microseconds=value.microsecond
        )
    if not dt.timedelta(0) <= value < dt.timedelta(days=1):
        raise ValueError(f"TIME value {value} is outside 00:00:00-23:59:59, which a Connect Time cannot hold")
    return value // dt.timedelta(milliseconds=1)


def epoch_millis(value: dt.datetime, zone: dt.tzinfo) -> int:
    aware = value if value.tzinfo else value.replace(tzinfo=zone)
    return (aware - EPOCH) // dt.timedelta(milliseconds=1)


def _timestamp(zone: dt.tzinfo) -> Encoder:
    return lambda value: epoch_millis(value, zone)


# --- the source table ----------------------------------------------------------------------


def _int_type_for_precision(precision: int) -> str:
    if precision > 9:
        return "int64"
    if precision > 4:
        return "int32"
    if precision > 2:
        return "int16"
    return "int8"


def _decimal_field(column: Column, numeric_mapping: str) -> tuple[dict[str, Any], Encoder]:
    precision = column.numeric_precision or 65
    scale = column.numeric_scale or 0
    if numeric_mapping in ("precision_only", "best_fit", "best_fit_eager_double") and scale == 0 and precision < 19:
        return {"type": _int_type_for_precision(precision)}, _int_from_decimal
    if (numeric_mapping == "best_fit" and scale > 0 and precision < 19) or (
        numeric_mapping == "best_fit_eager_double" and scale > 0
    ):
        return {"type": "float64"}, _float
    return {"type": "bytes", "name": DECIMAL, "version": 1, "parameters": {"scale": str(scale)}}, _decimal(scale)


@dataclass(frozen=True)
class SourceType:
    """One row of the source mapping: which columns it matches and what they become."""

    mariadb: str
    connect: str
    matches: Callable[[Column], bool]
    build: Callable[[Column, str, dt.tzinfo], tuple[dict[str, Any], Encoder]]


def _of(*data_types: str, unsigned: bool | None = None) -> Callable[[Column], bool]:
    def matches(column: Column) -> bool:
        return column.data_type in data_types and (unsigned is None or column.unsigned == unsigned)

    return matches


def _plain(connect_type: str, encoder: Encoder = _same) -> Callable[..., tuple[dict[str, Any], Encoder]]:
    return lambda column, numeric_mapping, zone: ({"type": connect_type}, encoder)


def _logical(connect_type: str, name: str, encoder: Encoder) -> Callable[..., tuple[dict[str, Any], Encoder]]:
    return lambda column, numeric_mapping, zone: ({"type": connect_type, "name": name, "version": 1}, encoder)


def _is_tinyint1(column: Column) -> bool:
    return column.data_type == "tinyint" and column.column_type.lower().startswith("tinyint(1)")


def _is_bit1(column: Column) -> bool:
    return column.data_type == "bit" and (column.numeric_precision or 1) == 1


SOURCE_TYPES: tuple[SourceType, ...] = (
    SourceType("BOOLEAN / TINYINT(1)", "boolean", _is_tinyint1, _plain("boolean", _flag)),
    SourceType("BIT(1)", "boolean", _is_bit1, _plain("boolean", _bit_bool)),
    SourceType("BIT(n>1)", "bytes (base64)", _of("bit"), _plain("bytes", _base64)),
    SourceType("TINYINT", "int8", _of("tinyint", unsigned=False), _plain("int8")),
    SourceType("TINYINT UNSIGNED", "int16", _of("tinyint", unsigned=True), _plain("int16")),
    SourceType("SMALLINT", "int16", _of("smallint", unsigned=False), _plain("int16")),
    SourceType(
        "SMALLINT UNSIGNED, MEDIUMINT [UNSIGNED], INT",
        "int32",
        lambda c: _of("smallint", unsigned=True)(c) or _of("mediumint")(c) or _of("int", unsigned=False)(c),
        _plain("int32"),
    ),
    SourceType(
        "INT UNSIGNED, BIGINT",
        "int64",
        lambda c: _of("int", unsigned=True)(c) or _of("bigint", unsigned=False)(c),
        _plain("int64"),
    ),
    SourceType(
        "BIGINT UNSIGNED",
        "Decimal scale 0 (the JDBC source's int64 overflowed above 2^63-1)",
        _of("bigint", unsigned=True),
        lambda column, numeric_mapping, zone: (
            {"type": "bytes", "name": DECIMAL, "version": 1, "parameters": {"scale": "0"}},
            _decimal(0),
        ),
    ),
    SourceType("DECIMAL(p,s)", "Decimal (see numeric.mapping)", _of("decimal"), lambda c, m, z: _decimal_field(c, m)),
    SourceType("FLOAT", "float32", _of("float"), _plain("float32", _float)),
    SourceType("DOUBLE", "float64", _of("double"), _plain("float64", _float)),
    SourceType(
        "CHAR, VARCHAR, TINYTEXT..LONGTEXT, JSON, ENUM, SET",
        "string",
        _of("char", "varchar", "tinytext", "text", "mediumtext", "longtext", "json", "enum", "set", "longtext"),
        _plain("string"),
    ),
    SourceType(
        "BINARY, VARBINARY, TINYBLOB..LONGBLOB",
        "bytes (base64)",
        _of("binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob"),
        _plain("bytes", _base64),
    ),
    SourceType("DATE", "Date (days since epoch)", _of("date"), _logical("int32", DATE, _days)),
    SourceType(
        "YEAR", "Date of 1 January (the driver's yearIsDateType)", _of("year"), _logical("int32", DATE, _year_days)
    ),
    SourceType("TIME", "Time (ms since midnight)", _of("time"), _logical("int32", TIME, _time_ms)),
    SourceType(
        "DATETIME(0-6)",
        "Timestamp (epoch ms, read in db.timezone)",
        _of("datetime"),
        lambda column, numeric_mapping, zone: (
            {"type": "int64", "name": TIMESTAMP, "version": 1},
            _timestamp(zone),
        ),
    ),
    SourceType(
        "TIMESTAMP(0-6)",
        "Timestamp (epoch ms; the instant MariaDB stores)",
        _of("timestamp"),
        lambda column, numeric_mapping, zone: ({"type": "int64", "name": TIMESTAMP, "version": 1}, _timestamp(UTC)),
    ),
)


class UnsupportedColumnType(ValueError):
    """A column whose type has no Connect mapping."""


def field_codec(column: Column, numeric_mapping: str = "none", zone: dt.tzinfo = UTC) -> FieldCodec:
    """The Connect field schema (in JsonConverter's key order) and encoder for a column."""
    for source_type in SOURCE_TYPES:
        if source_type.matches(column):
            parts, encoder = source_type.build(column, numeric_mapping, zone)
            schema: dict[str, Any] = {"type": parts["type"], "optional": column.nullable}
            for key in ("name", "version", "parameters"):
                if key in parts:
                    schema[key] = parts[key]
            schema["field"] = column.name
            return FieldCodec(schema, encoder)
    raise UnsupportedColumnType(f"column {column.name!r} has type {column.column_type!r}, which has no Connect mapping")


# --- the sink table ------------------------------------------------------------------------
#
# Values arrive as JsonConverter payload values (JSON numbers, strings, booleans). Each row of
# SINK_TYPES checks a value against its Connect type the way JsonConverter would (an int32
# field must hold a JSON integer in range, never 3.7 or "3") and turns it into what PyMySQL
# binds, so a wrong value is rejected by name instead of coerced by MariaDB.

Converter = Callable[[Any], Any]


class ConnectValueError(ValueError):
    """A payload value that its field's Connect type cannot hold."""


def _integer(connect_type: str, bits: int) -> Callable[[dict[str, Any], dt.tzinfo], Converter]:
    low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1

    def build(schema: dict[str, Any], zone: dt.tzinfo) -> Converter:
        def convert(value: Any) -> int:
            if type(value) is not int or not low <= value <= high:
                raise ConnectValueError(
                    f"expected an {connect_type} (a JSON integer from {low} to {high}), got {value!r}"
                )
            return value

        return convert

    return build


def _floating(connect_type: str) -> Callable[[dict[str, Any], dt.tzinfo], Converter]:
    def build(schema: dict[str, Any], zone: dt.tzinfo) -> Converter:
        def convert(value: Any) -> float:
            if type(value) not in (int, float):
                raise ConnectValueError(f"expected a {connect_type} (a JSON number), got {value!r}")
            return float(value)

        return convert

    return build


def _boolean(schema: dict[str, Any], zone: dt.tzinfo) -> Converter:
    def convert(value: Any) -> int:
        if type(value) is not bool:
            raise ConnectValueError(f"expected a boolean (true or false), got {value!r}")
        return 1 if value else 0

    return convert


def _string(schema: dict[str, Any], zone: dt.tzinfo) -> Converter:
    def convert(value: Any) -> str:
        if type(value) is not str:
            raise ConnectValueError(f"expected a string, got {value!r}")
        return value

    return convert


def _base64_bytes(value: Any) -> bytes:
    if type(value) is not str:
        raise ConnectValueError(f"expected bytes (a base64 JSON string), got {value!r}")
    try:
        return binascii.a2b_base64(value, strict_mode=True)
    except (binascii.Error, ValueError):
        raise ConnectValueError(f"expected bytes (a base64 JSON string), got {value!r}") from None


def _bytes(schema: dict[str, Any], zone: dt.tzinfo) -> Converter:
    return _base64_bytes


def decimal_scale(schema: dict[str, Any]) -> int:
    """The ``scale`` parameter of a Connect Decimal schema (a string, as Connect writes it)."""
    try:
        return int((schema.get("parameters") or {})["scale"])
    except (KeyError, TypeError, ValueError):
        raise ConnectValueError('a Decimal schema needs an integer "scale" parameter') from None


def decimal_from_connect(value: Any, scale: int) -> Decimal:
    """Decimal from base64 unscaled bytes (``decimal.format=BASE64``) or a JSON number (``NUMERIC``)."""
    if type(value) is str:
        unscaled = int.from_bytes(_base64_bytes(value), "big", signed=True)
        return Decimal(unscaled).scaleb(-scale)
    if type(value) in (int, float, Decimal):
        return Decimal(str(value)) if type(value) is float else Decimal(value)
    raise ConnectValueError(f"expected a Decimal (base64 unscaled bytes or a JSON number), got {value!r}")


def _decimal_value(schema: dict[str, Any], zone: dt.tzinfo) -> Converter:
    scale = decimal_scale(schema)
    return lambda value: decimal_from_connect(value, scale)


def _epoch_integer(value: Any, what: str, low: int, high: int) -> int:
    if type(value) is not int or not low <= value <= high:
        raise ConnectValueError(f"expected a {what} (a JSON integer from {low} to {high}), got {value!r}")
    return value


# The JSON integers a Date/Timestamp may carry: the range Python's date/datetime can represent.
_MIN_DAY, _MAX_DAY = (dt.date.min - EPOCH_DAY).days, (dt.date.max - EPOCH_DAY).days
_MIN_MS, _MAX_MS = _MIN_DAY * 86_400_000, _MAX_DAY * 86_400_000


def _date(schema: dict[str, Any], zone: dt.tzinfo) -> Converter:
    return lambda value: EPOCH_DAY + dt.timedelta(days=_epoch_integer(value, "Date in days", _MIN_DAY, _MAX_DAY))


def _time(schema: dict[str, Any], zone: dt.tzinfo) -> Converter:
    return lambda value: dt.timedelta(milliseconds=_epoch_integer(value, "Time in ms since midnight", 0, 86_399_999))


_NAIVE_EPOCH = EPOCH.replace(tzinfo=None)


def _timestamp_value(schema: dict[str, Any], zone: dt.tzinfo) -> Converter:
    if zone.utcoffset(None) == dt.timedelta(0) and str(zone) in ("UTC", "Etc/UTC"):

        def in_utc(value: Any) -> dt.datetime:
            return _NAIVE_EPOCH + dt.timedelta(
                milliseconds=_epoch_integer(value, "Timestamp in epoch ms", _MIN_MS, _MAX_MS)
            )

        return in_utc

    def convert(value: Any) -> dt.datetime:
        millis = _epoch_integer(value, "Timestamp in epoch ms", _MIN_MS, _MAX_MS)
        return (EPOCH + dt.timedelta(milliseconds=millis)).astimezone(zone).replace(tzinfo=None)

    return convert


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
    Connect types a column of it stores without loss, and how payload values are checked."""

    connect: str
    column: Callable[[dict[str, Any]], str]
    key_column: Callable[[dict[str, Any]], str]
    holds: frozenset[str]
    converter: Callable[[dict[str, Any], dt.tzinfo], Converter]


_INTEGERS = ("int8", "int16", "int32", "int64")


def _sink_type(
    connect: str,
    column: str | Callable[[dict[str, Any]], str],
    converter: Callable[[dict[str, Any], dt.tzinfo], Converter],
    holds: tuple[str, ...] = (),
    key_column: str | None = None,
) -> SinkType:
    as_ddl = column if callable(column) else _fixed(column)
    key_ddl = _fixed(key_column) if key_column else as_ddl
    return SinkType(connect, as_ddl, key_ddl, frozenset((connect, *holds)), converter)


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


def value_converter(schema: dict[str, Any], zone: dt.tzinfo) -> Converter:
    """Checks a payload value against the field's Connect type and returns what PyMySQL binds."""
    return sink_type(schema).converter(schema, zone)


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
    stored = field_codec(column).schema
    stored_kind, kind = connect_kind(stored), connect_kind(schema)
    if kind not in sink_type(stored).holds:
        return False
    if stored_kind == DECIMAL and kind == DECIMAL:
        return decimal_scale(schema) <= decimal_scale(stored)
    return True
