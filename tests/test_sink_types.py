"""The sink half of the type mapping: values checked as JsonConverter would, columns compared by type."""

from __future__ import annotations

import base64
import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from mungmo_pipelines.core.connect.schema import DATE, DECIMAL, TIME, TIMESTAMP, UTC
from mungmo_pipelines.core.connect.sink_types import column_ddl, column_holds, value_literal
from mungmo_pipelines.core.errors import ConnectValueError
from mungmo_pipelines.core.mariadb.columns import TableColumn
from tests.support.sandbox import Sandbox


def schema(connect_type: str, name: str | None = None, **parameters: str) -> dict:
    found = {"type": connect_type, "optional": False, "field": "f"}
    if name:
        found["name"] = name
    if parameters:
        found["parameters"] = parameters
    return found


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        (schema("int8"), -128, "-128"),
        (schema("int32"), 2**31 - 1, "2147483647"),
        (schema("boolean"), True, "1"),
        (schema("double"), 3, "3.0"),
        (schema("float64"), 2.5, "2.5"),
        (schema("string"), 'it\'s a \\ "test"\n', r"""'it\'s a \\ \"test\"\n'"""),
        (schema("string"), "서울 🐾", "'서울 🐾'"),
        (schema("bytes"), "iVBORw0K", "X'89504e470d0a'"),
        (schema("bytes", DECIMAL, scale="2"), "+x4=", "-12.50"),
        (schema("bytes", DECIMAL, scale="3"), "AQ==", "0.001"),
        (schema("bytes", DECIMAL, scale="0"), "AQ==", "1"),
        (schema("bytes", DECIMAL, scale="-2"), "AQ==", "100"),
        (schema("bytes", DECIMAL, scale="2"), Decimal("1.005"), "1.005"),
        (schema("bytes", DECIMAL, scale="2"), Decimal("1E+3"), "1000"),
        (schema("bytes", DECIMAL, scale="2"), 7, "7"),
        (schema("int32", DATE), -1, "'1969-12-31'"),
        (schema("int32", TIME), 45_296_789, "'12:34:56.789'"),
        (schema("int64", TIMESTAMP), 946684799999, "'1999-12-31 23:59:59.999'"),
    ],
)
def test_payload_values_become_mariadb_literals(field: dict, value: object, expected: str) -> None:
    assert value_literal(field, UTC)(value) == expected


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        (schema("int32"), 3.7, "expected an int32 (a JSON integer from -2147483648 to 2147483647), got 3.7"),
        (schema("int32"), "3", "got '3'"),
        (schema("int8"), True, "got True"),
        (schema("int8"), 128, "got 128"),
        (schema("boolean"), 1, "expected a boolean"),
        (schema("double"), float("inf"), "expected a double (float64) (a finite JSON number), got inf"),
        (schema("float"), "1.5", "got '1.5'"),
        (schema("string"), 5, "expected a string"),
        (schema("bytes"), "not base64!", "expected bytes (a base64 JSON string)"),
        (schema("int64", TIMESTAMP), 10**20, "expected a Timestamp in epoch ms"),
        (schema("int32", "org.apache.kafka.connect.data.Time"), 86_400_000, "expected a Time in ms since midnight"),
    ],
)
def test_values_the_connect_type_cannot_hold_are_rejected(field: dict, value: object, message: str) -> None:
    with pytest.raises(ConnectValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        value_literal(field, UTC)(value)


def test_timestamps_are_written_as_wall_time_in_db_timezone() -> None:
    seoul = value_literal(schema("int64", TIMESTAMP), ZoneInfo("Asia/Seoul"))
    assert seoul(0) == "'1970-01-01 09:00:00.000'"


# Every ASCII control character, quotes, backslash, % and braces (statement templates), Korean, emoji.
TRICKY_TEXT = "".join(map(chr, range(128))) + "'\\\"%s{0} 서울 🐾 \u2028"


def _unscaled(value: int) -> str:
    return base64.b64encode(value.to_bytes((value.bit_length() + 8) // 8, "big", signed=True)).decode()


@pytest.mark.parametrize(
    ("field", "value", "expected", "column_type"),
    [
        (schema("int64"), -(2**63), -(2**63), "BIGINT"),
        (schema("double"), 1e300, 1e300, "DOUBLE"),
        (schema("double"), -2.5e-300, -2.5e-300, "DOUBLE"),
        (schema("string"), TRICKY_TEXT, TRICKY_TEXT, "LONGTEXT"),
        # Each character to escape alone too: none of them may rely on another being present.
        *((schema("string"), f"a{c}b", f"a{c}b", "LONGTEXT") for c in "\x00\\\n\r\x1a'\""),
        (schema("bytes"), base64.b64encode(bytes(range(256))).decode(), bytes(range(256)), "LONGBLOB"),
        (schema("bytes"), "", b"", "LONGBLOB"),
        (schema("bytes", DECIMAL, scale="2"), "+x4=", Decimal("-12.50"), "DECIMAL(10,2)"),
        (
            schema("bytes", DECIMAL, scale="30"),
            _unscaled(1 - 10**65),
            Decimal((1, (9,) * 65, -30)),
            "DECIMAL(65,30)",
        ),
        (schema("int32", DATE), 2932896, dt.date(9999, 12, 31), "DATE"),
        (
            schema("int32", TIME),
            86_399_999,
            dt.timedelta(hours=23, minutes=59, seconds=59, milliseconds=999),
            "TIME(3)",
        ),
        (schema("int64", TIMESTAMP), 1767225600123, dt.datetime(2026, 1, 1, 0, 0, 0, 123000), "DATETIME(3)"),
    ],
)
def test_literals_read_back_from_mariadb_as_the_value(
    sandbox: Sandbox, field: dict, value: object, expected: object, column_type: str
) -> None:
    """The server, not this module, says the escaping, exact decimals and temporal formats are right."""
    database = sandbox.database("literals")
    sandbox.execute(database, f"CREATE TABLE t (v {column_type})")
    conn = sandbox.engine(database).raw_connection()
    try:
        with conn.cursor() as cursor:  # no parameters: PyMySQL sends the statement as it is
            cursor.execute(f"INSERT INTO t (v) VALUES ({value_literal(field, UTC)(value)})")
        conn.commit()
    finally:
        conn.close()
    assert sandbox.rows(database, "SELECT v FROM t") == [(expected,)]


def column(data_type: str, column_type: str, precision: int | None = None, scale: int | None = None) -> TableColumn:
    return TableColumn("c", data_type, column_type, True, precision, scale)


@pytest.mark.parametrize(
    ("field", "existing", "holds"),
    [
        (schema("int32"), column("bigint", "bigint(20)"), True),
        (schema("int64"), column("int", "int(11)"), False),
        (schema("int16"), column("tinyint", "tinyint(3) unsigned"), True),
        # TINYINT(1) is JDBC BIT to the source, so int8 (not boolean): an int8 field fits it.
        (schema("int8"), column("tinyint", "tinyint(1)"), True),
        (schema("boolean"), column("tinyint", "tinyint(4)"), True),
        (schema("int64"), column("bigint", "bigint(20) unsigned"), True),
        (schema("float32"), column("double", "double"), True),
        (schema("double"), column("float", "float"), False),
        (schema("bytes", DECIMAL, scale="2"), column("decimal", "decimal(10,4)", 10, 4), True),
        (schema("bytes", DECIMAL, scale="4"), column("decimal", "decimal(10,2)", 10, 2), False),
        (schema("int64"), column("decimal", "decimal(20,0)", 20, 0), True),
        (schema("string"), column("varchar", "varchar(20)"), True),
        (schema("string"), column("enum", "enum('a','b')"), True),
        (schema("string"), column("int", "int(11)"), False),
        (schema("int64", TIMESTAMP), column("timestamp", "timestamp(3)"), True),
        (schema("int32", DATE), column("datetime", "datetime"), False),
    ],
)
def test_existing_columns_are_compared_through_the_mapping(field: dict, existing: TableColumn, holds: bool) -> None:
    assert column_holds(field, existing) is holds


def test_created_column_types() -> None:
    assert column_ddl(schema("string"), is_key=True) == "VARCHAR(255) COLLATE utf8mb4_nopad_bin"
    assert column_ddl(schema("string"), is_key=False) == "LONGTEXT"
    assert column_ddl(schema("bytes"), is_key=True) == "VARBINARY(255)"
    assert column_ddl(schema("bytes", DECIMAL, scale="2"), is_key=False) == "DECIMAL(65,2)"
    precise = schema("bytes", DECIMAL, scale="2", **{"connect.decimal.precision": "7"})
    assert column_ddl(precise, is_key=False) == "DECIMAL(7,2)"
