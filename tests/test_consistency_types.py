"""Canonical column expressions against what the real JDBC source and sink make of each type.

The target is written by ``run_jdbc_source`` + ``JdbcSink`` (``auto.create``), so it has the types the
sink chose (LONGTEXT, SMALLINT, DATETIME(3), DECIMAL, LONGBLOB, ...): the check must find it equal,
then find and name one changed value per canonical type.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest

from mungmo_pipelines.core.config.loader import parse_connector
from mungmo_pipelines.core.connect.java_numbers import java_float_text
from mungmo_pipelines.core.consistency import Domain, TableSpec, ValueForm, jdbc_forms
from mungmo_pipelines.core.consistency.jdbc import jdbc_table_spec
from mungmo_pipelines.core.sink.runtime import JdbcSink
from mungmo_pipelines.core.source.jdbc import run_jdbc_source
from tests.support.consistency import SEOUL, differing_columns, ensure_time_zone, run_check
from tests.support.sandbox import Sandbox

PETS = """CREATE TABLE pets (
  id INT NOT NULL PRIMARY KEY,
  visits TINYINT UNSIGNED NOT NULL,
  steps INT UNSIGNED NULL,
  chip BIGINT UNSIGNED NULL,
  weight DECIMAL(5,2) NULL,
  rating FLOAT NULL,
  distance DOUBLE NULL,
  neutered BOOLEAN NULL,
  flag BIT(1) NULL,
  flags BIT(10) NULL,
  postcode CHAR(6) NULL,
  name VARCHAR(40) COLLATE utf8mb4_general_ci NULL,
  note TEXT NULL,
  size ENUM('small', 'medium', 'large') NULL,
  tags SET('calm', 'playful', 'shy') NULL,
  prefs JSON NULL,
  tag BINARY(4) NULL,
  photo VARBINARY(16) NULL,
  born DATE NULL,
  since YEAR NULL,
  walk_time TIME(6) NULL,
  created_at DATETIME(6) NULL,
  seen_at TIMESTAMP(6) NULL
) DEFAULT CHARSET=utf8mb4"""
COLUMNS = (
    "id, visits, steps, chip, weight, rating, distance, neutered, flag, flags, postcode, name, note, size, tags, "
    "prefs, tag, photo, born, since, walk_time, created_at, seen_at"
)
ROW = (
    7, 4294967295, 18446744073709551615, Decimal("4.25"), 1.1, 0.1 + 0.2, 1, 1, b"\x02\x05", "04001 ",
    "Max ", "", "small", "calm,shy", '{"walks": [1, 2], "a": "b"}', b"ab", b"\x01\x02", dt.date(2021, 3, 1), 2019,
    dt.timedelta(hours=7, minutes=30, microseconds=123456), dt.datetime(2026, 1, 2, 3, 4, 5, 123456),
    dt.datetime(2026, 1, 2, 3, 4, 5, 678901),
)  # fmt: skip
# One target edit per row: (id, SQL assignment, the source column that must be named).
EDITS = [
    (1, "visits = visits + 1", "visits"),
    (2, "steps = steps - 1", "steps"),
    (3, "chip = chip - 1", "chip"),
    (4, "weight = 4.2501", "weight"),  # beyond the source's scale: visible once the target has 4 digits
    (5, "rating = 1.1000001", "rating"),  # another float32
    (6, "distance = 0.3", "distance"),  # 0.3 is not 0.1 + 0.2 in double
    (7, "neutered = 0", "neutered"),
    (8, "flag = 0", "flag"),
    (9, "flags = X'0206'", "flags"),
    (10, "postcode = '04002'", "postcode"),
    (11, "name = 'max '", "name"),  # case only, on a utf8mb4_unicode_ci target
    (12, "name = 'Max'", "name"),  # trailing space dropped
    (13, "note = NULL", "note"),  # NULL is not ''
    (14, "size = 'Small'", "size"),
    (15, "tags = 'calm'", "tags"),
    (16, """prefs = '{"walks":[1,2],"a":"b"}'""", "prefs"),  # JSON compared as text
    (17, "tag = X'61630000'", "tag"),
    (18, "photo = X'010200'", "photo"),  # a trailing zero byte matters in VARBINARY
    (19, "born = '2021-03-02'", "born"),
    (20, "since = '2020-01-01'", "since"),
    (21, "walk_time = '07:30:00.124'", "walk_time"),
    (22, "created_at = '2026-01-02 03:04:05.124'", "created_at"),
    (23, "seen_at = seen_at + INTERVAL 1 SECOND", "seen_at"),
]


class Pipeline:
    """A source table replicated by the project's JDBC source (bulk) and sink (auto.create, upsert on id)."""

    def __init__(self, sandbox: Sandbox, ddl: str, table: str, source_zone: str, sink_zone: str) -> None:
        self.sandbox = sandbox
        self.source_db = sandbox.database("src")
        self.target_db = sandbox.database("tgt")
        sandbox.execute(self.source_db, ddl)
        self.table = table
        self.topic = sandbox.topic(table)
        self.source = parse_connector(
            sandbox.source_body(self.source_db, mode="bulk", **{"table.whitelist": table, "db.timezone": source_zone})
        )
        self.sink = parse_connector(
            sandbox.sink_body(
                self.target_db,
                topics=self.topic,
                **{
                    "auto.create": "true",
                    "insert.mode": "upsert",
                    "pk.mode": "record_value",
                    "pk.fields": "id",
                    "db.timezone": sink_zone,
                },
            )
        )

    def insert(self, columns: str, rows: list[tuple[Any, ...]]) -> None:
        with self.sandbox.admin.begin() as conn:
            conn.exec_driver_sql(f"USE `{self.source_db}`")
            marks = ", ".join(["%s"] * len(rows[0]))
            # TIMESTAMP values are given as Seoul wall times; the zone is this statement's only (the
            # connection goes back to a pool other tests share).
            conn.exec_driver_sql(
                f"SET STATEMENT time_zone = '{SEOUL}' FOR INSERT INTO {self.table} ({columns}) VALUES ({marks})", rows
            )

    def replicate(self) -> None:
        run_jdbc_source(self.source, self.sandbox.engine(self.source_db), self.sandbox.kafka)
        JdbcSink(self.sink, self.sandbox.engine(self.target_db), self.sandbox.kafka).run()

    def spec(self) -> TableSpec:
        return jdbc_table_spec(self.source, self.sink, self.table)

    def target(self, *statements: str) -> None:
        self.sandbox.execute(self.target_db, *statements)


@pytest.fixture
def seoul(admin_engine) -> str:
    return ensure_time_zone(admin_engine, SEOUL)


def test_every_type_the_sink_chose_compares_equal_and_each_changed_value_is_named(sandbox: Sandbox, seoul: str) -> None:
    pipeline = Pipeline(sandbox, PETS, "pets", seoul, seoul)
    pipeline.insert(COLUMNS, [(key, *ROW) for key in range(1, len(EDITS) + 3)])
    # Zero dates (allowed by the server's sql_mode) travel as NULL, as Connector/J reads them.
    sandbox.execute(
        pipeline.source_db,
        f"INSERT INTO pets ({COLUMNS}) SELECT id + 100, visits, steps, chip, weight, rating, distance, neutered, "
        "flag, flags, postcode, name, note, size, tags, prefs, tag, photo, '0000-00-00', 0, walk_time, "
        "'0000-00-00 00:00:00', '0000-00-00 00:00:00' FROM pets WHERE id = 1",
    )
    pipeline.replicate()
    target_types = dict(
        sandbox.rows(pipeline.target_db, "SELECT COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS "
                     f"WHERE TABLE_SCHEMA = '{pipeline.target_db}'")
    )  # fmt: skip
    assert (target_types["visits"], target_types["created_at"], target_types["name"]) == (
        "smallint(6)",
        "datetime(3)",
        "longtext",
    )

    spec = pipeline.spec()
    assert (spec.source_table, spec.target_table, spec.key, spec.zone) == ("pets", pipeline.topic, ("id",), seoul)
    equal = run_check(sandbox, spec)
    assert equal.passed, equal.summary()
    assert equal.stats.source_rows == equal.stats.target_rows == len(EDITS) + 3
    zero_dates = sandbox.rows(
        pipeline.target_db, f"SELECT born, since, created_at, seen_at FROM `{pipeline.topic}` WHERE id = 101"
    )
    assert zero_dates == [(None, None, None, None)]
    assert (
        "created_at: source datetime(6) compared at 3 fraction digits, the precision the pipeline carries"
        in equal.notes
    )
    assert f"seen_at: TIMESTAMP compared as the wall-clock time in {seoul}, as the sink writes it" in equal.notes

    # Microseconds the pipeline does not carry are not a difference; a wider DECIMAL in the target is not either.
    sandbox.execute(pipeline.source_db, "UPDATE pets SET created_at = '2026-01-02 03:04:05.123999' WHERE id = 1")
    pipeline.target(f"ALTER TABLE `{pipeline.topic}` MODIFY weight DECIMAL(10,4) NULL")
    assert run_check(sandbox, spec).passed

    pipeline.target(*(f"UPDATE `{pipeline.topic}` SET {change} WHERE id = {key}" for key, change, _ in EDITS))
    found = run_check(sandbox, spec)
    assert differing_columns(found) == {key: {column} for key, _, column in EDITS}
    assert found.counts() == {"missing": 0, "extra": 0, "different": len(EDITS), "explained": 0, "in_flight": 0}
    shown = {d.key[0]: d.columns[0] for d in found.differences}
    assert (shown[4].source, shown[4].target) == ("4.25", "4.2501")
    assert (shown[11].source, shown[11].target) == ("Max ", "max ")
    assert (shown[12].source, shown[12].target) == ("Max ", "Max")
    assert (shown[13].source, shown[13].target) == ("", None)
    assert (shown[18].source, shown[18].target) == ("0x0102", "0x010200")
    assert (shown[22].source, shown[22].target) == ("2026-01-02 03:04:05.123", "2026-01-02 03:04:05.124")
    assert shown[23].source == "2026-01-02 03:04:05.678"  # the TIMESTAMP as the Seoul wall time the sink wrote


CLOCKS = """CREATE TABLE clocks (
  id INT NOT NULL PRIMARY KEY,
  created_at DATETIME(3) NOT NULL,
  seen_at TIMESTAMP(3) NULL
) DEFAULT CHARSET=utf8mb4"""


def test_wall_clock_times_read_in_another_zone_are_converted_before_comparing(sandbox: Sandbox, seoul: str) -> None:
    pipeline = Pipeline(sandbox, CLOCKS, "clocks", "UTC", seoul)  # source read in UTC, sink writes Seoul time
    pipeline.insert(
        "id, created_at, seen_at",
        [
            (i, dt.datetime(2026, 3, 1, 23, 30, 0, 250000) + dt.timedelta(hours=i), dt.datetime(2026, 3, 2))
            for i in range(1, 6)
        ],
    )
    pipeline.replicate()
    shifted = sandbox.rows(pipeline.target_db, f"SELECT created_at FROM `{pipeline.topic}` WHERE id = 1")[0][0]
    assert shifted == dt.datetime(2026, 3, 2, 9, 30, 0, 250000)  # 00:30 UTC is 09:30 in Seoul

    converted = run_check(sandbox, pipeline.spec())
    assert converted.passed, converted.summary()
    assert f"created_at: wall-clock times converted from UTC to {seoul}, as the pipeline does" in converted.notes
    # Read as if the source's wall times were already Seoul's, every row differs in created_at only.
    unconverted = run_check(sandbox, replace(pipeline.spec(), forms=jdbc_forms(seoul)))
    assert differing_columns(unconverted) == {i: {"created_at"} for i in range(1, 6)}


def test_forms_other_pipelines_carry_use_the_same_engine(sandbox: Sandbox) -> None:
    """A binlog pipeline carries microseconds, BIT as little-endian bytes and BINARY(n) without trailing zeros."""
    source_db, target_db = sandbox.database("src"), sandbox.database("tgt")
    sandbox.execute(
        source_db,
        "CREATE TABLE events (id INT PRIMARY KEY, at DATETIME(6) NOT NULL, flags BIT(10) NOT NULL, "
        "tag BINARY(4) NOT NULL)",
        "INSERT INTO events VALUES (1, '2026-01-01 10:00:00.123456', b'1000000011', 'ab'), "
        "(2, '2026-01-01 10:00:00.000001', b'1', 'abcd')",
    )
    sandbox.execute(
        target_db,
        "CREATE TABLE events (id INT PRIMARY KEY, at DATETIME(6) NOT NULL, flags LONGBLOB NOT NULL, "
        "tag LONGBLOB NOT NULL)",
        "INSERT INTO events VALUES (1, '2026-01-01 10:00:00.123456', X'0302', 'ab'), "
        "(2, '2026-01-01 10:00:00.000001', X'0100', 'abcd')",
    )
    forms = {
        "id": ValueForm(Domain.NUMBER),
        "at": ValueForm(Domain.DATETIME, fraction_digits=6),
        "flags": ValueForm(Domain.NUMBER, byte_order="little"),
        "tag": ValueForm(Domain.BYTES, trailing_zero_bytes=False),
    }
    spec = TableSpec(source_db, "events", target_db, "events", forms=lambda column: forms[column.name])
    assert run_check(sandbox, spec).passed

    sandbox.execute(target_db, "UPDATE events SET at = '2026-01-01 10:00:00.123457' WHERE id = 1")
    sandbox.execute(target_db, "UPDATE events SET flags = X'0200', tag = 'abc' WHERE id = 2")
    assert differing_columns(run_check(sandbox, spec)) == {1: {"at"}, 2: {"flags", "tag"}}


def test_float_carried_as_float32_text_equals_a_double_target(sandbox: Sandbox) -> None:
    """The JDBC source sends FLOAT as Java's Float.toString; a DOUBLE target column stores that text's
    double, which is not the float32 widened: compared as float32, they are equal."""
    source_db, target_db = sandbox.database("src"), sandbox.database("tgt")
    values = [1.1, 3.4e38, 1.17549435e-38, 0.3, -2.5, 16777217.0]
    sandbox.execute(source_db, "CREATE TABLE f (id INT PRIMARY KEY, x FLOAT NOT NULL)")
    sandbox.execute(target_db, "CREATE TABLE f (id INT PRIMARY KEY, x DOUBLE NOT NULL)")
    with sandbox.admin.begin() as conn:
        conn.exec_driver_sql(f"INSERT INTO `{source_db}`.f VALUES (%s, %s)", list(enumerate(values)))
        carried = [(i, float(java_float_text(v))) for i, v in enumerate(values)]
        conn.exec_driver_sql(f"INSERT INTO `{target_db}`.f VALUES (%s, %s)", carried)
    spec = TableSpec(source_db, "f", target_db, "f")
    equal = run_check(sandbox, spec)
    assert equal.passed, equal.summary()
    assert "x: target double compared as float32, the precision the pipeline carries" in equal.notes
    sandbox.execute(target_db, "UPDATE f SET x = 1.1000001 WHERE id = 0")
    assert differing_columns(run_check(sandbox, spec)) == {0: {"x"}}
