"""Kafka Connect schemas as JsonConverter writes them: logical type names, structs, the epoch."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any
from zoneinfo import ZoneInfo

from mungmo_pipelines.core.errors import ConnectValueError

DECIMAL = "org.apache.kafka.connect.data.Decimal"
TIMESTAMP = "org.apache.kafka.connect.data.Timestamp"
DATE = "org.apache.kafka.connect.data.Date"
TIME = "org.apache.kafka.connect.data.Time"
DECIMAL_PRECISION = "connect.decimal.precision"

# Debezium's logical types (io.debezium.time.*, io.debezium.data.*), as its connectors name them.
DBZ_DATE = "io.debezium.time.Date"
DBZ_TIME = "io.debezium.time.Time"
DBZ_MICRO_TIME = "io.debezium.time.MicroTime"
DBZ_NANO_TIME = "io.debezium.time.NanoTime"
DBZ_TIMESTAMP = "io.debezium.time.Timestamp"
DBZ_MICRO_TIMESTAMP = "io.debezium.time.MicroTimestamp"
DBZ_NANO_TIMESTAMP = "io.debezium.time.NanoTimestamp"
DBZ_ZONED_TIMESTAMP = "io.debezium.time.ZonedTimestamp"
DBZ_ZONED_TIME = "io.debezium.time.ZonedTime"
DBZ_YEAR = "io.debezium.time.Year"
DBZ_MICRO_DURATION = "io.debezium.time.MicroDuration"
DBZ_JSON = "io.debezium.data.Json"
DBZ_ENUM = "io.debezium.data.Enum"
DBZ_ENUM_SET = "io.debezium.data.EnumSet"
DBZ_BITS = "io.debezium.data.Bits"
DBZ_UUID = "io.debezium.data.Uuid"
DBZ_VARIABLE_SCALE_DECIMAL = "io.debezium.data.VariableScaleDecimal"
DBZ_GEOMETRY = "io.debezium.data.geometry.Geometry"
DBZ_POINT = "io.debezium.data.geometry.Point"
DEBEZIUM_TYPES = frozenset(
    {
        DBZ_DATE,
        DBZ_TIME,
        DBZ_MICRO_TIME,
        DBZ_NANO_TIME,
        DBZ_TIMESTAMP,
        DBZ_MICRO_TIMESTAMP,
        DBZ_NANO_TIMESTAMP,
        DBZ_ZONED_TIMESTAMP,
        DBZ_ZONED_TIME,
        DBZ_YEAR,
        DBZ_MICRO_DURATION,
        DBZ_JSON,
        DBZ_ENUM,
        DBZ_ENUM_SET,
        DBZ_BITS,
        DBZ_UUID,
        DBZ_VARIABLE_SCALE_DECIMAL,
        DBZ_GEOMETRY,
        DBZ_POINT,
    }
)
LOGICAL_TYPES = frozenset({DECIMAL, TIMESTAMP, DATE, TIME}) | DEBEZIUM_TYPES

EPOCH_DAY = dt.date(1970, 1, 1)
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
NAIVE_EPOCH = dt.datetime(1970, 1, 1)
UTC = ZoneInfo("UTC")
MILLIS_PER_DAY = 86_400_000

# JsonConverter spells FLOAT32/FLOAT64 "float"/"double"; the Connect enum names are read as the same types.
_TYPE_ALIASES = {"float32": "float", "float64": "double"}


def struct_schema(fields: Sequence[dict[str, Any]], name: str | None, optional: bool = False) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "struct", "fields": list(fields), "optional": optional}
    if name is not None:
        schema["name"] = name
    return schema


def connect_kind(schema: dict[str, Any]) -> str:
    """The Connect type a field schema means: its logical name when it has a known one, else its type."""
    name = schema.get("name")
    if name in LOGICAL_TYPES:
        return str(name)
    kind = str(schema.get("type"))
    return _TYPE_ALIASES.get(kind, kind)


def decimal_scale(schema: dict[str, Any]) -> int:
    """The ``scale`` parameter of a Connect Decimal schema (a string, as Connect writes it)."""
    try:
        return int((schema.get("parameters") or {})["scale"])
    except (KeyError, TypeError, ValueError):
        raise ConnectValueError('a Decimal schema needs an integer "scale" parameter') from None


def describe_connect(schema: dict[str, Any]) -> str:
    kind = connect_kind(schema)
    return f"Decimal(scale={schema.get('parameters', {}).get('scale')})" if kind == DECIMAL else kind.rsplit(".", 1)[-1]


def epoch_millis(value: dt.datetime, zone: dt.tzinfo) -> int:
    """Milliseconds since the epoch (floored, as ``java.sql.Timestamp.getTime``) of a wall-clock time."""
    if zone is UTC and value.tzinfo is None:
        return (value - NAIVE_EPOCH) // dt.timedelta(milliseconds=1)
    aware = value if value.tzinfo else value.replace(tzinfo=zone)
    return (aware - EPOCH) // dt.timedelta(milliseconds=1)


def from_epoch_millis(millis: int, nanos: int | None = None) -> dt.datetime:
    """The UTC instant ``millis`` after the epoch; ``nanos`` (``timestamp_nanos``) gives the fraction."""
    seconds, remainder = divmod(millis, 1000)
    micros = remainder * 1000 if nanos is None else nanos // 1000
    return EPOCH + dt.timedelta(seconds=seconds, microseconds=micros)
