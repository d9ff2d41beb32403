"""MariaDB column types to Kafka Connect schemas and back: the project's type-mapping table.

``SOURCE_TYPES`` says how a MariaDB column becomes a Connect field (what Confluent's JDBC
source emits for it through the MariaDB driver), ``SINK_TYPES`` how a Connect field becomes
a MariaDB column when the sink creates or evolves a table. The README shows both tables.
"""

from __future__ import annotations

import base64
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


@dataclass(frozen=True)
class SinkType:
    """One row of the sink mapping: a Connect schema and the MariaDB column made for it."""

    connect: str
    column: str
    key_column: str
    decode: Callable[[Any, dict[str, Any], dt.tzinfo], Any]


def _decode_same(value: Any, schema: dict[str, Any], zone: dt.tzinfo) -> Any:
    return value


def _decode_bool(value: Any, schema: dict[str, Any], zone: dt.tzinfo) -> int:
    return 1 if value else 0


def _decode_bytes(value: Any, schema: dict[str, Any], zone: dt.tzinfo) -> bytes:
    return base64.b64decode(value, validate=True)


def decimal_from_connect(value: Any, scale: int) -> Decimal:
    """Decimal from base64 unscaled bytes (``decimal.format=BASE64``) or a JSON number."""
    if isinstance(value, str):
        unscaled = int.from_bytes(base64.b64decode(value, validate=True), "big", signed=True)
        return Decimal(unscaled).scaleb(-scale)
    return Decimal(str(value))


def _decode_decimal(value: Any, schema: dict[str, Any], zone: dt.tzinfo) -> Decimal:
    return decimal_from_connect(value, int(schema.get("parameters", {}).get("scale", 0)))


def _decode_date(value: Any, schema: dict[str, Any], zone: dt.tzinfo) -> dt.date:
    return EPOCH_DAY + dt.timedelta(days=int(value))


def _decode_time(value: Any, schema: dict[str, Any], zone: dt.tzinfo) -> dt.timedelta:
    return dt.timedelta(milliseconds=int(value))


def _decode_timestamp(value: Any, schema: dict[str, Any], zone: dt.tzinfo) -> dt.datetime:
    return (EPOCH + dt.timedelta(milliseconds=int(value))).astimezone(zone).replace(tzinfo=None)


SINK_TYPES: dict[str, SinkType] = {
    DECIMAL: SinkType(DECIMAL, "DECIMAL(65,{scale})", "DECIMAL(65,{scale})", _decode_decimal),
    DATE: SinkType(DATE, "DATE", "DATE", _decode_date),
    TIME: SinkType(TIME, "TIME(3)", "TIME(3)", _decode_time),
    TIMESTAMP: SinkType(TIMESTAMP, "DATETIME(3)", "DATETIME(3)", _decode_timestamp),
    "int8": SinkType("int8", "TINYINT", "TINYINT", _decode_same),
    "int16": SinkType("int16", "SMALLINT", "SMALLINT", _decode_same),
    "int32": SinkType("int32", "INT", "INT", _decode_same),
    "int64": SinkType("int64", "BIGINT", "BIGINT", _decode_same),
    "float32": SinkType("float32", "FLOAT", "FLOAT", _decode_same),
    "float64": SinkType("float64", "DOUBLE", "DOUBLE", _decode_same),
    "boolean": SinkType("boolean", "TINYINT(1)", "TINYINT(1)", _decode_bool),
    "string": SinkType("string", "LONGTEXT", "VARCHAR(255)", _decode_same),
    "bytes": SinkType("bytes", "LONGBLOB", "VARBINARY(255)", _decode_bytes),
}


def sink_type(schema: dict[str, Any]) -> SinkType:
    """The sink mapping row for a Connect field schema (logical name first, then type)."""
    found = SINK_TYPES.get(schema.get("name") or "") or SINK_TYPES.get(schema.get("type") or "")
    if found is None:
        raise UnsupportedColumnType(
            f"field {schema.get('field')!r} has Connect type {schema.get('type')!r}"
            f"{' (' + schema['name'] + ')' if schema.get('name') else ''}, which has no MariaDB column type"
        )
    return found


def column_ddl(schema: dict[str, Any], is_key: bool) -> str:
    """The MariaDB column type the sink creates for a Connect field."""
    found = sink_type(schema)
    template = found.key_column if is_key else found.column
    return template.format(scale=schema.get("parameters", {}).get("scale", 0))
