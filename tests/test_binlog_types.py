"""Every MariaDB column type from an INSERT, UPDATE and DELETE to the values the contract says,
compared with a SELECT of the same rows (converted to the contract), on the real server."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from mungmo_pipelines.core.mariadb.binlog import TransactionBegin, TransactionCommit
from mungmo_pipelines.core.mariadb.values import InvalidTemporal
from tests.support.binlog import connect, contract_values, head, read_changes, rows_of

ALL_TYPES = """
CREATE TABLE all_types (
  id INT NOT NULL PRIMARY KEY,
  i8 TINYINT, u8 TINYINT UNSIGNED, i16 SMALLINT, u16 SMALLINT UNSIGNED, i24 MEDIUMINT, u24 MEDIUMINT UNSIGNED,
  i32 INT, u32 INT UNSIGNED, i64 BIGINT, u64 BIGINT UNSIGNED,
  d65 DECIMAL(65,30), d52 DECIMAL(5,2), d10 DECIMAL(10,0), du DECIMAL(12,4) UNSIGNED, d18 DECIMAL(18,9),
  f FLOAT, db DOUBLE,
  b1 BIT(1), b13 BIT(13), b64 BIT(64),
  y YEAR, dte DATE,
  dt0 DATETIME, dt3 DATETIME(3), dt6 DATETIME(6),
  ts0 TIMESTAMP NULL, ts1 TIMESTAMP(1) NULL, ts6 TIMESTAMP(6) NULL,
  t0 TIME, t1 TIME(1), t2 TIME(2), t3 TIME(3), t4 TIME(4), t5 TIME(5), t6 TIME(6),
  ch CHAR(10), chbig CHAR(255), chl CHAR(5) CHARACTER SET latin1, bn BINARY(16),
  vc VARCHAR(300), vcl VARCHAR(20) CHARACTER SET latin1, vb VARBINARY(20),
  tt TINYTEXT, tx TEXT, mt MEDIUMTEXT, lt LONGTEXT, tb TINYBLOB, bb BLOB, mb MEDIUMBLOB, lb LONGBLOB,
  js JSON, en ENUM('', 'a', 'b', '한국'), st SET('x', 'y', 'z', '값'), ge GEOMETRY, pt POINT
) DEFAULT CHARSET=utf8mb4
"""

ROWS = [
    # typical values, Korean and emoji
    """(1, -5, 250, -300, 65000, -8000000, 16000000, -2000000000, 4000000000, -9000000000000000000,
      12345678901234567890,
      1234.5, 3.14, 42, 99999999.9999, -0.000000001,
      3.14, 2.718281828459045,
      b'1', b'1010101010101', b'1000000000000000000000000000000000000000000000000000000000000001',
      2024, '2024-02-29',
      '2024-01-01 12:34:56', '2024-01-01 12:34:56.789', '2024-01-01 12:34:56.123456',
      '2024-03-03 03:03:03', '2024-03-03 03:03:03.5', '2038-01-19 03:14:07.999999',
      '12:34:56', '12:34:56.7', '-12:34:56.78', '00:00:00.123', '-00:00:00.1234', '838:59:59.99999', '-00:00:01.000001',
      '산책 🐾', REPEAT('가', 255), 'café', x'0102',
      CONCAT('망원동 한강공원 🐕 ', REPEAT('x', 250)), 'naïve €', x'00ff00',
      '짧은 글', '텍스트 🐾', 'medium', REPEAT('long ', 1000), x'00', x'0001', x'000102', REPEAT(x'ff', 70000),
      '{"이름": "초코", "age": 3}', '한국', 'x,z,값',
      ST_GeomFromText('POLYGON((0 0,1 0,1 1,0 0))'), POINT(126.9, 37.5))""",
    # extremes and zero values (sql_mode '' allows zero dates)
    """(2, -128, 255, -32768, 65535, -8388608, 16777215, -2147483648, 4294967295, -9223372036854775808,
      18446744073709551615,
      -99999999999999999999999999999999999.999999999999999999999999999999, -999.99, -9999999999, 0, 999999999.999999999,
      -3.4e38, -1.7976931348623157e308,
      b'0', b'1111111111111', b'1111111111111111111111111111111111111111111111111111111111111111',
      0, '0000-00-00',
      '0000-00-00 00:00:00', '0000-00-00 00:00:00.000', '9999-12-31 23:59:59.999999',
      '0000-00-00 00:00:00', '0000-00-00 00:00:00.0', '1970-01-01 00:00:01.000001',
      '-838:59:59', '-00:00:00.1', '-00:00:00.01', '-838:59:59.999', '-00:00:00.0001', '-00:00:00.00001',
      '-838:59:59.000000',
      'ab  ', '', 'x', x'01000000000000000000000000000000',
      '', _binary x'81', x'',
      '', '', '', '', x'', x'', x'', x'',
      '[]', '', '', ST_GeomFromText('POINT(0 0)'), POINT(0, 0))""",
    # NULL everywhere it may be
    "(3" + ", NULL" * 55 + ")",
    # dates with zero parts, and maximum positive times
    """(4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
      0.000000000000000000000000000001, 0.01, 1, 0.0001, -999999999.999999999,
      1.5e-38, 5e-324, b'0', b'0', b'0', 1901, '2024-00-10',
      '2024-02-00 10:00:00', '0000-01-01 00:00:00.001', '2024-00-00 00:00:00.000001',
      '2024-06-01 00:00:00', NULL, NULL,
      '838:59:59', '838:59:59.9', '838:59:59.99', '838:59:59.999', '838:59:59.9999', '838:59:59.99999',
      '838:59:59.999999',
      ' x', 'y', 'z', x'ff', 'a', 'b', x'01', 'c', 'd', 'e', 'f', x'02', x'03', x'04', x'05',
      '{}', 'b', 'y', NULL, NULL)""",
]


def test_every_type_round_trips_through_insert_update_and_delete(sandbox):
    database = sandbox.database("types")
    connection = connect(database)
    with connection.cursor() as cursor:
        cursor.execute(ALL_TYPES)
        cursor.execute("SET SESSION sql_mode = ''")
        start = head()
        for values in ROWS:
            cursor.execute("INSERT INTO all_types VALUES " + values)
        cursor.execute("SELECT * FROM all_types ORDER BY id")
        inserted = cursor.fetchall()
        cursor.execute("UPDATE all_types SET i32 = COALESCE(i32, 0) + 1, vc = CONCAT(COALESCE(vc, ''), '+')")
        cursor.execute("SELECT * FROM all_types ORDER BY id")
        updated = cursor.fetchall()
        cursor.execute("DELETE FROM all_types")
    connection.close()

    rows = rows_of(read_changes(start, [database]))
    assert [r.operation for r in rows] == ["insert"] * 4 + ["update"] * 4 + ["delete"] * 4
    schema = rows[0].table
    for change, selected in zip(rows[:4], inserted, strict=True):
        assert change.before is None
        assert change.after == contract_values(schema, selected)
    for change, before, after in zip(rows[4:8], inserted, updated, strict=True):
        assert change.before == contract_values(schema, before)
        assert change.after == contract_values(schema, after)
    for change, selected in zip(rows[8:], updated, strict=True):
        assert change.before == contract_values(schema, selected)
        assert change.after is None


def test_values_follow_the_contract_where_a_select_and_the_binlog_disagree(sandbox):
    """The cases python-mysql-replication gets wrong: YEAR 0000, BINARY trailing zeros, zero dates,
    negative TIME with fractions, BIT, plus unsigned maxima, DECIMAL(65,30) and latin1's holes."""
    database = sandbox.database("contract")
    connection = connect(database)
    with connection.cursor() as cursor:
        cursor.execute(ALL_TYPES)
        cursor.execute("SET SESSION sql_mode = ''")
        start = head()
        cursor.execute("INSERT INTO all_types VALUES " + ROWS[1])
    connection.close()
    (change,) = rows_of(read_changes(start, [database]))
    values = change.values()
    assert values["y"] == 0
    assert values["bn"] == b"\x01" + b"\x00" * 15
    assert values["dte"] == InvalidTemporal("0000-00-00")
    assert values["dt0"] == InvalidTemporal("0000-00-00 00:00:00")
    assert values["dt3"] == InvalidTemporal("0000-00-00 00:00:00.000")
    assert values["ts0"] == InvalidTemporal("0000-00-00 00:00:00")
    assert values["ts1"] == InvalidTemporal("0000-00-00 00:00:00.0")
    assert values["t0"] == -dt.timedelta(hours=838, minutes=59, seconds=59)
    assert values["t1"] == -dt.timedelta(microseconds=100000)
    assert values["t2"] == -dt.timedelta(microseconds=10000)
    assert values["t3"] == -dt.timedelta(hours=838, minutes=59, seconds=59, milliseconds=999)
    assert values["t4"] == -dt.timedelta(microseconds=100)
    assert values["t5"] == -dt.timedelta(microseconds=10)
    assert values["b1"] == 0
    assert values["b13"] == 0x1FFF
    assert values["b64"] == 2**64 - 1
    assert values["u64"] == 18446744073709551615
    assert values["i64"] == -(2**63)
    assert values["d65"] == Decimal("-99999999999999999999999999999999999.999999999999999999999999999999")
    assert values["d65"].as_tuple().exponent == -30
    assert values["ch"] == "ab"
    assert values["vcl"] == "\x81"
    assert values["ts6"] == dt.datetime(1970, 1, 1, 0, 0, 1, 1, tzinfo=dt.UTC)
    assert values["en"] == ""
    assert values["st"] == ""


def test_schema_comes_from_the_table_map(sandbox):
    database = sandbox.database("schema")
    connection = connect(database)
    with connection.cursor() as cursor:
        cursor.execute(ALL_TYPES)
        start = head()
        cursor.execute("INSERT INTO all_types (id) VALUES (1)")
    connection.close()
    changes = read_changes(start, [database])
    assert isinstance(changes[0], TransactionBegin)
    assert isinstance(changes[-1], TransactionCommit)
    schema = rows_of(changes)[0].table
    assert (schema.database, schema.name, schema.primary_key) == (database, "all_types", ("id",))
    columns = {c.name: c for c in schema.columns}
    assert [c.name for c in schema.columns][:4] == ["id", "i8", "u8", "i16"]
    assert not columns["id"].nullable and columns["i8"].nullable
    assert columns["u64"].column_type == "bigint unsigned" and columns["u64"].unsigned
    assert columns["d65"].column_type == "decimal(65,30)"
    assert (columns["du"].numeric_precision, columns["du"].numeric_scale, columns["du"].unsigned) == (12, 4, True)
    assert columns["b13"].column_type == "bit(13)"
    assert columns["dt3"].column_type == "datetime(3)" and columns["dt3"].datetime_precision == 3
    assert columns["ts0"].column_type == "timestamp"
    assert columns["t6"].column_type == "time(6)"
    assert (columns["ch"].column_type, columns["ch"].charset) == ("char(10)", "utf8mb4")
    assert (columns["chl"].column_type, columns["chl"].charset) == ("char(5)", "latin1")
    assert (columns["bn"].column_type, columns["bn"].charset) == ("binary(16)", None)
    assert columns["vc"].column_type == "varchar(300)"
    assert columns["vb"].column_type == "varbinary(20)"
    assert [columns[n].data_type for n in ("tt", "tx", "mt", "lt", "tb", "bb", "mb", "lb", "js")] == [
        "tinytext", "text", "mediumtext", "longtext", "tinyblob", "blob", "mediumblob", "longblob", "longtext"
    ]  # fmt: skip
    assert columns["en"].labels == ("", "a", "b", "한국")
    assert columns["en"].column_type == "enum('','a','b','한국')"
    assert columns["st"].labels == ("x", "y", "z", "값")
    assert (columns["ge"].data_type, columns["pt"].data_type) == ("geometry", "point")


def test_collations_map_to_the_right_columns_whatever_their_order(sandbox):
    """A table map lists collations per text column (geometry counts as one); a shift by one column
    would decode latin1 bytes as UTF-8 or the reverse."""
    database = sandbox.database("collations")
    connection = connect(database)
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE c (id INT PRIMARY KEY, ge GEOMETRY, l1 VARCHAR(5) CHARACTER SET latin1, u TEXT, "
            "e ENUM('é', '한') CHARACTER SET utf8mb4, l2 CHAR(3) CHARACTER SET latin1, s SET('ä', 'ö') "
            "CHARACTER SET latin1, b VARBINARY(4), u2 VARCHAR(5) COLLATE utf8mb4_bin) DEFAULT CHARSET=utf8mb4"
        )
        start = head()
        cursor.execute(
            "INSERT INTO c VALUES (1, POINT(1, 2), _binary x'81e9', '한국', '한', _binary x'80', 'ä,ö', x'ff', '🐾')"
        )
    connection.close()
    (change,) = rows_of(read_changes(start, [database]))
    values = change.values()
    assert (values["l1"], values["u"], values["e"], values["l2"], values["s"]) == ("\x81é", "한국", "한", "€", "ä,ö")
    assert (values["b"], values["u2"]) == (b"\xff", "🐾")
    charsets = {c.name: c.charset for c in change.table.columns}
    assert charsets == {
        "id": None, "ge": None, "l1": "latin1", "u": "utf8mb4", "e": "utf8mb4", "l2": "latin1", "s": "latin1",
        "b": None, "u2": "utf8mb4",
    }  # fmt: skip
