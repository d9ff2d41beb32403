"""Kafka Connect fields to MariaDB columns and literals: the sink type table.

Values arrive as JsonConverter payload values (JSON numbers, strings, booleans). Each row of
``SINK_TYPES`` checks a value against its Connect type the way JsonConverter would (an int32
field must hold a JSON integer in range, never 3.7 or "3"), so a wrong value is rejected by
name instead of coerced by MariaDB, and writes it straight as a MariaDB literal. Going from
the payload to the literal in one step, with the type known from the schema, costs a
fraction of binding through PyMySQL: no Decimal or datetime objects in between, no
per-value type dispatch in the driver (``docs/decisions/literals-not-bound-parameters.md``).
Each row also names the column ``auto.create`` makes for the type and the Connect types an
existing column stores without loss. ``docs/types.md`` shows the table.
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


_INTEGERS = ("int8", "int16", "int32", "int64")


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
        _sink_type(TIME, "TIME(3)", _time, "`'HH:MM:SS.fff'`"),
        _sink_type(
            TIMESTAMP, "DATETIME(3)", _timestamp_value, "`'YYYY-MM-DD HH:MM:SS.fff'`, wall time in `db.timezone`"
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
        name = row.connect.rsplit(".", 1)[-1]
        lines.append(f"| {name} | {row.column_doc} | {', '.join(others)} | {row.written_as} |")
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
    (VARCHAR(20), TIMESTAMP's 2038) are checked per value by MariaDB's strict mode instead.
    """
    stored = field_codec(ResultColumn.from_table_column(column)).schema
    stored_kind, kind = connect_kind(stored), connect_kind(schema)
    if kind not in sink_type(stored).holds:
        return False
    if stored_kind == DECIMAL and kind == DECIMAL:
        return decimal_scale(schema) <= decimal_scale(stored)
    return True
