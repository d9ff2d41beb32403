"""Debezium's logical types in the sink type table, without servers: the literal each value becomes, the
values refused by name, the columns created, and which existing columns take them."""

from __future__ import annotations

import base64
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from mungmo_pipelines.core.connect.schema import UTC
from mungmo_pipelines.core.connect.sink_types import column_ddl, column_holds, fraction_loss, sink_type, value_literal
from mungmo_pipelines.core.errors import ConnectValueError, UnsupportedColumnType
from mungmo_pipelines.core.mariadb.columns import TableColumn

SEOUL = ZoneInfo("Asia/Seoul")


def schema(connect_type: str, name: str, **parameters: str) -> dict[str, Any]:
    found: dict[str, Any] = {"type": connect_type, "optional": True, "name": name, "version": 1, "field": "c"}
    if parameters:
        found["parameters"] = parameters
    return found


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


MICRO_TIME = schema("int64", "io.debezium.time.MicroTime")
TIMESTAMP = schema("int64", "io.debezium.time.Timestamp")
MICRO_TIMESTAMP = schema("int64", "io.debezium.time.MicroTimestamp")
ZONED = schema("string", "io.debezium.time.ZonedTimestamp")
BITS12 = schema("bytes", "io.debezium.data.Bits", length="12")
ENUM = schema("string", "io.debezium.data.Enum", allowed="small,medium,large")
SET = schema("string", "io.debezium.data.EnumSet", allowed="walk,meal,bath")


@pytest.mark.parametrize(
    ("field", "value", "literal"),
    [
        (schema("int32", "io.debezium.time.Date"), 2932896, "'9999-12-31'"),
        (schema("int32", "io.debezium.time.Date"), -354285, "'1000-01-01'"),
        (schema("int32", "io.debezium.time.Time"), 45296789, "'12:34:56.789000'"),
        (MICRO_TIME, 3020399000000, "'838:59:59.000000'"),
        (MICRO_TIME, -3020399000000, "'-838:59:59.000000'"),
        (MICRO_TIME, -1500000, "'-00:00:01.500000'"),
        (MICRO_TIME, 1, "'00:00:00.000001'"),
        (schema("int64", "io.debezium.time.NanoTime"), 86399999999000, "'23:59:59.999999'"),
        (TIMESTAMP, 253402300799000, "'9999-12-31 23:59:59.000000'"),
        (TIMESTAMP, -1, "'1969-12-31 23:59:59.999000'"),
        (MICRO_TIMESTAMP, 1767323045678901, "'2026-01-02 03:04:05.678901'"),
        (schema("int64", "io.debezium.time.NanoTimestamp"), 1000, "'1970-01-01 00:00:00.000001'"),
        (ZONED, "2038-01-19T03:14:07.999999Z", "'2038-01-19 03:14:07.999999'"),
        (ZONED, "2026-01-01T09:00:00+09:00", "'2026-01-01 00:00:00.000000'"),
        (ZONED, "2026-01-01T00:00:00.123456000Z", "'2026-01-01 00:00:00.123456'"),
        (schema("string", "io.debezium.time.ZonedTime"), "10:15:30.5Z", "'10:15:30.500000'"),
        (schema("int32", "io.debezium.time.Year"), 2155, "2155"),
        (schema("int32", "io.debezium.time.Year"), 0, "0"),
        (schema("int64", "io.debezium.time.MicroDuration"), -5, "-5"),
        (schema("string", "io.debezium.data.Json"), '{"a": "b\'c"}', '\'{\\"a\\": \\"b\\\'c\\"}\''),
        (
            schema("string", "io.debezium.data.Uuid"),
            "123e4567-e89b-12d3-a456-426655440000",
            "'123e4567-e89b-12d3-a456-426655440000'",
        ),
        (ENUM, "large", "'large'"),
        (SET, "walk,bath", "'walk,bath'"),
        (SET, "", "''"),
        # Bits are Java's BitSet.toByteArray(): little-endian. b'101010101010' = 0xAAA arrives as AA 0A.
        (BITS12, b64(bytes([0xAA, 0x0A])), "b'101010101010'"),
        (schema("bytes", "io.debezium.data.Bits", length="64"), b64(b"\xff" * 8), "b'" + "1" * 64 + "'"),
        (schema("bytes", "io.debezium.data.Bits", length="8"), b64(b"\x00"), "b'0'"),
        (
            schema("struct", "io.debezium.data.VariableScaleDecimal"),
            {"scale": 3, "value": b64((-123456).to_bytes(3, "big", signed=True))},
            "-123.456",
        ),
        (
            schema("struct", "io.debezium.data.geometry.Geometry"),
            {"wkb": b64(bytes.fromhex("0101000000000000000000f03f0000000000000040")), "srid": None},
            "ST_GeomFromWKB(X'0101000000000000000000f03f0000000000000040',0)",
        ),
        (
            schema("struct", "io.debezium.data.geometry.Point"),
            {"x": 126.978, "y": 37.5665, "wkb": None, "srid": 4326},
            "ST_PointFromText('POINT(126.978 37.5665)',4326)",
        ),
    ],
)
def test_debezium_values_become_literals(field: dict[str, Any], value: Any, literal: str) -> None:
    assert value_literal(field, UTC)(value) == literal


def test_zoned_timestamps_are_written_in_the_session_zone_and_datetimes_keep_their_wall_time() -> None:
    assert value_literal(ZONED, SEOUL)("2026-01-01T00:00:00Z") == "'2026-01-01 09:00:00.000000'"
    assert value_literal(TIMESTAMP, SEOUL)(1767225600000) == "'2026-01-01 00:00:00.000000'"
    assert value_literal(MICRO_TIMESTAMP, SEOUL)(1767225600000000) == "'2026-01-01 00:00:00.000000'"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        (MICRO_TIME, 3020400000000, "outside MariaDB's TIME range"),
        (MICRO_TIME, 1.5, "expected a MicroTime in µs (a JSON integer)"),
        (schema("int64", "io.debezium.time.NanoTime"), 1, "has nanoseconds, which MariaDB"),
        (schema("int64", "io.debezium.time.NanoTimestamp"), 1500, "has nanoseconds, which MariaDB"),
        (MICRO_TIMESTAMP, -62135596800000001, "outside the years 1 to 9999"),
        (ZONED, "2026-01-01 00:00:00", "expected a ZonedTimestamp"),
        (ZONED, "2026-01-01T00:00:00.1234567Z", "has nanoseconds"),
        (ZONED, "infinity", "expected a ZonedTimestamp"),
        (ZONED, "2026-02-30T00:00:00Z", "day is out of range"),
        (schema("int32", "io.debezium.time.Year"), 1900, "0 or 1901 to 2155"),
        (ENUM, "", "expected one of the Enum's values"),
        (ENUM, "tiny", "expected one of the Enum's values"),
        (SET, "walk,swim", "comma-separated values of"),
        (BITS12, b64(bytes([0x00, 0x10])), "more than the 12 bits"),
        (BITS12, "not base64!", "expected bytes (a base64 JSON string)"),
        (schema("struct", "io.debezium.data.VariableScaleDecimal"), {"scale": 31, "value": b64(b"\x01")}, "0 to 30"),
        (
            schema("struct", "io.debezium.data.VariableScaleDecimal"),
            {"scale": 0, "value": b64((10**36).to_bytes(16, "big", signed=True))},
            "more than the 35 integer digits",
        ),
        (schema("struct", "io.debezium.data.geometry.Geometry"), {"wkb": b64(b"\x01"), "srid": -1}, "srid"),
        (schema("struct", "io.debezium.data.geometry.Point"), {"x": float("nan"), "y": 1.0}, "finite x and y"),
    ],
)
def test_values_a_column_would_change_are_refused_by_name(field: dict[str, Any], value: Any, message: str) -> None:
    with pytest.raises(ConnectValueError) as raised:
        value_literal(field, UTC)(value)
    assert message in str(raised.value)


@pytest.mark.parametrize(
    ("field", "column", "key_column"),
    [
        (MICRO_TIME, "TIME(6)", "TIME(6)"),
        (TIMESTAMP, "DATETIME(6)", "DATETIME(6)"),
        (ZONED, "TIMESTAMP(6)", "TIMESTAMP(6)"),
        (schema("int32", "io.debezium.time.Year"), "YEAR", "YEAR"),
        (ENUM, "ENUM('small','medium','large')", "ENUM('small','medium','large')"),
        (SET, "SET('walk','meal','bath')", "SET('walk','meal','bath')"),
        (BITS12, "BIT(12)", "BIT(12)"),
        (schema("string", "io.debezium.data.Json"), "LONGTEXT", "VARCHAR(255) COLLATE utf8mb4_nopad_bin"),
        (schema("struct", "io.debezium.data.VariableScaleDecimal"), "DECIMAL(65,30)", "DECIMAL(65,30)"),
        (schema("struct", "io.debezium.data.geometry.Point"), "POINT", "POINT"),
    ],
)
def test_columns_created_for_debezium_types(field: dict[str, Any], column: str, key_column: str) -> None:
    assert (column_ddl(field, False), column_ddl(field, True)) == (column, key_column)


def test_enum_labels_with_quotes_are_escaped_and_a_missing_list_is_named() -> None:
    assert column_ddl(schema("string", "io.debezium.data.Enum", allowed="it's,a"), False) == "ENUM('it\\'s','a')"
    with pytest.raises(UnsupportedColumnType, match="without an 'allowed' parameter"):
        column_ddl(schema("string", "io.debezium.data.Enum"), False)


def column(data_type: str, column_type: str, **extra: Any) -> TableColumn:
    return TableColumn("c", data_type, column_type, True, **extra)


@pytest.mark.parametrize(
    ("field", "existing", "holds"),
    [
        (TIMESTAMP, column("datetime", "datetime", datetime_precision=0), True),  # checked per value
        (TIMESTAMP, column("timestamp", "timestamp(6)", datetime_precision=6), False),
        (ZONED, column("datetime", "datetime(6)", datetime_precision=6), True),
        (MICRO_TIME, column("time", "time(6)", datetime_precision=6), True),
        (MICRO_TIME, column("varchar", "varchar(20)"), False),
        (ENUM, column("enum", "enum('large','medium','small','x')", labels=("large", "medium", "small", "x")), True),
        (ENUM, column("enum", "enum('small','medium')", labels=("small", "medium")), False),
        (ENUM, column("varchar", "varchar(10)"), True),
        (BITS12, column("bit", "bit(16)", numeric_precision=16), True),
        (BITS12, column("bit", "bit(8)", numeric_precision=8), False),
        (
            schema("struct", "io.debezium.data.VariableScaleDecimal"),
            column("decimal", "decimal(65,30)", numeric_precision=65, numeric_scale=30),
            True,
        ),
        (
            schema("struct", "io.debezium.data.VariableScaleDecimal"),
            column("decimal", "decimal(65,10)", numeric_precision=65, numeric_scale=10),
            False,
        ),
        (schema("struct", "io.debezium.data.geometry.Point"), column("geometry", "geometry"), True),
        (schema("struct", "io.debezium.data.geometry.Geometry"), column("point", "point"), False),
    ],
)
def test_existing_columns_are_matched_on_their_own_type(
    field: dict[str, Any], existing: TableColumn, holds: bool
) -> None:
    assert column_holds(field, existing) is holds


def test_fraction_loss_and_timestamp_defaults() -> None:
    assert fraction_loss("'2026-01-01 00:00:00.500000'", 0)
    assert not fraction_loss("'2026-01-01 00:00:00.500000'", 1)
    assert not fraction_loss("'2026-01-01 00:00:00.000000'", 0)
    assert fraction_loss("'-00:00:01.000010'", 4) and not fraction_loss("NULL", 0)
    zoned = sink_type(ZONED)
    assert zoned.default_ok is not None and zoned.fraction_digits == 6
    # Debezium gives CURRENT_TIMESTAMP columns the epoch as default, which no TIMESTAMP column takes.
    assert not zoned.default_ok("1970-01-01T00:00:00Z") and zoned.default_ok("2020-01-01T00:00:00Z")
